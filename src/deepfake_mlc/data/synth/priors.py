"""Label sequence priors: which ordered steps an image gets.

``uniform`` mirrors Seq-DeepFake (every length 0..5 about equally likely, then distinct steps in random
order), so labels are nearly independent. ``correlated`` gives labels a configurable co-occurrence
structure, so that methods modelling label dependencies (graphs, label embeddings) have something to use.
"""

from __future__ import annotations

import numpy as np

from deepfake_mlc.data.labels import SEQUENCE_LENGTH
from deepfake_mlc.data.synth.config import CorrelatedPrior


class StepPrior:
    """Samples step sequences (tuples of distinct step ids 1..5, in application order)."""

    def __init__(self, kind: str, correlated: CorrelatedPrior | None = None) -> None:
        if kind not in ("uniform", "correlated"):
            raise ValueError(f"unknown prior {kind!r}")
        self.kind = kind
        correlated = correlated or CorrelatedPrior()
        lengths = np.asarray(correlated.length_weights, dtype=np.float64)
        self._length_p = lengths / lengths.sum()
        self._base = np.asarray(correlated.base, dtype=np.float64)
        self._affinity = np.asarray(correlated.affinity, dtype=np.float64)

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        if self.kind == "uniform":
            length = int(rng.integers(0, SEQUENCE_LENGTH + 1))
            return tuple(int(i) + 1 for i in rng.permutation(SEQUENCE_LENGTH)[:length])
        return self._sample_correlated(rng)

    def _sample_correlated(self, rng: np.random.Generator) -> tuple[int, ...]:
        length = int(rng.choice(SEQUENCE_LENGTH + 1, p=self._length_p))
        weights = self._base.copy()
        chosen: list[int] = []
        for _ in range(length):
            weights[chosen] = 0.0
            total = weights.sum()
            if total <= 0.0:  # every remaining step has affinity 0 with one already chosen
                break
            step = int(rng.choice(SEQUENCE_LENGTH, p=weights / total))
            chosen.append(step)
            weights = weights * self._affinity[step]
        return tuple(i + 1 for i in chosen)
