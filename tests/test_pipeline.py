"""Input pipeline: transforms, loaders and the label statistics the graph methods are built from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_mlc.config import Config, DataConfig, load_config
from deepfake_mlc.data import SeqDeepFake, build_dataset, build_loader, build_transform, label_stats
from deepfake_mlc.errors import ConfigError


def test_eval_transform_resizes_and_normalises() -> None:
    cfg = DataConfig(root=Path("."), image_size=20, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    image = Image.new("RGB", (37, 23), (255, 0, 51))
    x = build_transform(cfg, train=False)(image)
    assert x.shape == (3, 20, 20) and x.dtype == torch.float32
    expected = torch.tensor([(1.0 - 0.5) / 0.5, (0.0 - 0.25) / 0.25, 0.2])
    torch.testing.assert_close(x.mean(dim=(1, 2)), expected, atol=1e-3, rtol=0)


def test_train_transform_augments_eval_does_not() -> None:
    cfg = DataConfig(root=Path("."), image_size=16)
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    eval_t, train_t = build_transform(cfg, train=False), build_transform(cfg, train=True)
    assert torch.equal(eval_t(image), eval_t(image))
    torch.manual_seed(0)
    outs = [train_t(image) for _ in range(4)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


def test_loader_batches_in_order_for_eval_and_seeded_shuffle_for_train(seq_root: Path) -> None:
    cfg = DataConfig(root=seq_root, image_size=16, batch_size=3, num_workers=0)
    ds = build_dataset(cfg, "train", train=False)
    targets = torch.cat([t for _, t in build_loader(ds, cfg, train=False)])
    assert torch.equal(targets, ds.targets)
    first = [t for _, t in build_loader(ds, cfg, train=True, seed=1)]
    again = [t for _, t in build_loader(ds, cfg, train=True, seed=1)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert sum(len(t) for t in first) == 6  # drop_last: two full batches of 3 out of 8
    images, _ = next(iter(build_loader(ds, cfg, train=True)))
    assert images.shape == (3, 3, 16, 16)


def test_label_stats_hand_worked(seq_root: Path) -> None:
    stats = label_stats(
        SeqDeepFake(seq_root, "components", "train").targets.numpy(), ("nose", "eye", "eyebrow", "lip", "hair")
    )
    # sequences: (), (1), (2,1), (5,3,1), (4,2,5,1), (1..5), (3,5), ()
    assert stats.num_images == 8
    assert stats.counts.tolist() == [5, 3, 3, 2, 4]
    assert stats.length_histogram.tolist() == [2, 1, 2, 1, 1, 1]
    assert stats.cooccurrence[0].tolist() == [0, 3, 2, 2, 3]
    assert stats.cooccurrence[2, 4] == stats.cooccurrence[4, 2] == 3
    assert np.all(np.diag(stats.cooccurrence) == 0)
    np.testing.assert_allclose(stats.conditional()[0], [0, 3 / 5, 2 / 5, 2 / 5, 3 / 5])


def test_seeded_augmentation_depends_on_epoch_and_index_not_on_workers(seq_root: Path) -> None:
    cfg = DataConfig(root=seq_root, image_size=16, batch_size=4, num_workers=0)
    ds = build_dataset(cfg, "train", seed=5)
    first = ds[3][0]
    assert torch.equal(first, ds[3][0])  # same epoch, same sample: same augmentation
    ds.set_epoch(1)
    assert not torch.equal(first, ds[3][0])
    ds.set_epoch(0)
    in_workers = torch.cat([x for x, _ in build_loader(ds, cfg.model_copy(update={"num_workers": 2}), train=False)])
    in_process = torch.cat([x for x, _ in build_loader(ds, cfg, train=False)])
    assert torch.equal(in_workers, in_process) and torch.equal(in_process[3], first)


def test_fraction_keeps_an_evenly_spread_share_of_the_training_split_only(seq_root: Path) -> None:
    full = DataConfig(root=seq_root, image_size=16, num_workers=0)
    half = full.model_copy(update={"fraction": 0.5})
    everything = build_dataset(full, "train").samples
    assert build_dataset(half, "train").samples == [everything[i] for i in (0, 2, 5, 7)]  # 8 rows: first and last kept
    assert build_dataset(half, "val").samples == build_dataset(full, "val").samples
    assert len(build_dataset(full.model_copy(update={"fraction": 0.01}), "train")) == 1


def test_a_fraction_outside_0_1_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data: {root: x, fraction: 1.5}\n")
    with pytest.raises(ConfigError, match=r"data\.fraction"):
        load_config(Config, path)
