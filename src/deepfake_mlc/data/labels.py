"""Label vocabularies of Seq-DeepFake and the conversions between its step-id labels and multi-hot targets.

Seq-DeepFake annotates each image with the ordered sequence of manipulation steps that produced it,
written as five step ids zero-padded at the end (``"[1, 2, 4, 0, 0]"``). Multi-label classification
ignores the order, so a sequence becomes a multi-hot vector over the subset's five labels.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

SUBSET_DIRS = {"components": "facial_components", "attributes": "facial_attributes"}
SUBSET_LABELS = {
    "components": ("nose", "eye", "eyebrow", "lip", "hair"),
    "attributes": ("Bangs", "Eyeglasses", "Beard", "Smiling", "Young"),
}
SEQUENCE_LENGTH = 5
ORIGINAL_FOLDER = "original"


class LabelError(ValueError):
    """A label string that does not describe a valid manipulation sequence."""


def parse_step_ids(text: str) -> tuple[int, ...]:
    """Parse ``"[1, 2, 4, 0, 0]"`` into its five step ids, validating the Seq-DeepFake rules.

    Rules: exactly five integers in 0..5, zeros only as trailing padding, no repeated step.
    """
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise LabelError(f"label {text!r} is not a list like '[1, 2, 0, 0, 0]'") from None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise LabelError(f"label {text!r} is not a list of integers")
    if len(value) != SEQUENCE_LENGTH:
        raise LabelError(f"label {text!r} has {len(value)} step ids, expected {SEQUENCE_LENGTH}")
    bad = [v for v in value if not 0 <= v <= SEQUENCE_LENGTH]
    if bad:
        raise LabelError(f"label {text!r} has step id {bad[0]} outside 0..{SEQUENCE_LENGTH}")
    steps = list(value)
    while steps and steps[-1] == 0:
        steps.pop()
    if 0 in steps:
        raise LabelError(f"label {text!r} has a 0 before a manipulation step (zeros pad only the end)")
    if len(set(steps)) != len(steps):
        raise LabelError(f"label {text!r} repeats a step id")
    return tuple(value)


def steps_of(step_ids: Sequence[int]) -> tuple[int, ...]:
    """The applied steps (non-zero ids), in order."""
    return tuple(v for v in step_ids if v)


def multi_hot(step_ids: Sequence[int], num_labels: int = SEQUENCE_LENGTH) -> tuple[int, ...]:
    """Order-free multi-hot target: position ``i`` is 1 when step id ``i + 1`` was applied."""
    applied = set(steps_of(step_ids))
    return tuple(int(i + 1 in applied) for i in range(num_labels))


def format_step_ids(steps: Sequence[int]) -> str:
    """Inverse of :func:`parse_step_ids`: ``(1, 2, 4)`` -> ``"[1, 2, 4, 0, 0]"``."""
    padded = list(steps) + [0] * (SEQUENCE_LENGTH - len(steps))
    return "[" + ", ".join(str(v) for v in padded) + "]"


def sequence_folder(steps: Sequence[int], subset: str) -> str:
    """Folder name of a sequence: step names joined by ``-`` (``nose-eye-lip``), ``original`` if empty."""
    names = SUBSET_LABELS[subset]
    return "-".join(names[s - 1] for s in steps) if steps else ORIGINAL_FOLDER
