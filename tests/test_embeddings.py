"""Label embeddings: GloVe text, matrix files, one-hot, an offline text model and image-based ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from sklearn.decomposition import PCA

from deepfake_mlc.config.schema import EmbeddingConfig
from deepfake_mlc.errors import EmbeddingError
from deepfake_mlc.models import image_embeddings, load_embeddings
from deepfake_mlc.models.embeddings import embedding_spec, save_matrix, words_of

LABELS = ["nose", "Eyeglasses", "hair_color"]


def test_glove_text_file_mean_of_words(tmp_path: Path) -> None:
    glove = tmp_path / "glove.txt"
    glove.write_text("the 9 9 9\nnose 1 0 0\neyeglasses 0 1 0\nhair 0 0 1\ncolor 1 1 1\n")
    matrix = load_embeddings(EmbeddingConfig(path=glove), "word", 3, LABELS)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0], [0.5, 0.5, 1.0]])
    assert words_of("HairColor") == ["hair", "color"]


def test_glove_errors_name_the_word_or_line(tmp_path: Path) -> None:
    glove = tmp_path / "glove.txt"
    glove.write_text("nose 1 0 0\neyeglasses 0 1\n")
    with pytest.raises(EmbeddingError, match=r"glove\.txt:2: vector of 'eyeglasses' has 2 values, expected 3"):
        load_embeddings(EmbeddingConfig(path=glove), "word", 3, LABELS)
    glove.write_text("nose 1 0 0\n")
    with pytest.raises(EmbeddingError, match="no vector for color, eyeglasses, hair"):
        load_embeddings(EmbeddingConfig(path=glove), "word", 3, LABELS)
    with pytest.raises(EmbeddingError, match="path is required for word embeddings"):
        load_embeddings(EmbeddingConfig(), "word", 3, LABELS)
    with pytest.raises(EmbeddingError, match="embedding file not found"):
        load_embeddings(EmbeddingConfig(path=tmp_path / "none.txt"), "word", 3, LABELS)


def test_matrix_files_and_shape_check(tmp_path: Path) -> None:
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "m.npy", matrix)
    save_matrix(tmp_path / "m.safetensors", matrix, LABELS)
    save_file({"other": matrix}, tmp_path / "single.safetensors")
    for name in ("m.npy", "m.safetensors", "single.safetensors"):
        np.testing.assert_array_equal(
            load_embeddings(EmbeddingConfig(path=tmp_path / name), "image", 4, LABELS), matrix
        )
    with pytest.raises(EmbeddingError, match=r"shape \(3, 4\), expected \(3, 5\)"):
        load_embeddings(EmbeddingConfig(path=tmp_path / "m.npy"), "word", 5, LABELS)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(EmbeddingError, match="not a plain numeric"):
        load_embeddings(EmbeddingConfig(path=tmp_path / "objects.npy"), "word", 4, LABELS)


def test_onehot_and_spec_defaults() -> None:
    np.testing.assert_array_equal(load_embeddings(EmbeddingConfig(kind="onehot"), "onehot", 3, LABELS), np.eye(3))
    assert embedding_spec(EmbeddingConfig(), "word", 300, 5) == ("word", 300)
    assert embedding_spec(EmbeddingConfig(kind="onehot"), "word", 300, 5) == ("onehot", 5)
    assert embedding_spec(EmbeddingConfig(kind="text_model"), "word", 300, 5) == ("text_model", 384)
    assert embedding_spec(EmbeddingConfig(dim=64), "image", 200, 5) == ("image", 64)
    with pytest.raises(EmbeddingError, match="one-hot embeddings have dimension 5"):
        embedding_spec(EmbeddingConfig(kind="onehot", dim=7), "word", 300, 5)


def test_offline_text_model_embeddings() -> None:
    cfg = EmbeddingConfig(kind="text_model")
    matrix = load_embeddings(cfg, "text_model", 384, ["nose", "eye", "Eyeglasses"])
    assert matrix.shape == (3, 384)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    similarity = unit @ unit.T
    assert similarity[1, 2] > similarity[0, 2]  # "eye" is closer to "eyeglasses" than "nose" is


def test_image_embeddings_pca_then_label_means() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, (80, 4))
    targets[:4] = np.eye(4)  # every label has an image
    features = rng.normal(size=(80, 16)) + targets @ rng.normal(size=(4, 16)) * 3
    emb = image_embeddings(torch.tensor(features), torch.tensor(targets), dim=6)
    assert emb.shape == (4, 6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    projected = PCA(n_components=6).fit_transform(features)  # components' signs may differ: compare cosines
    means = (targets.T @ projected) / targets.sum(0)[:, None]
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    np.testing.assert_allclose(emb @ emb.T, means @ means.T, atol=1e-5)
    with pytest.raises(EmbeddingError, match="need more than 16 training images and CNN features"):
        image_embeddings(torch.tensor(features[:10]), torch.tensor(targets[:10]), dim=16)
    targets[:, 3] = 0
    with pytest.raises(EmbeddingError, match="every label needs at least one training image"):
        image_embeddings(torch.tensor(features), torch.tensor(targets), dim=6)
