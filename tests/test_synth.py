"""The embedded data set: official format, deterministic, and its labels are what was applied."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from deepfake_mlc.config import load_config
from deepfake_mlc.data import SeqDeepFake
from deepfake_mlc.data.labels import SUBSET_DIRS, parse_step_ids, sequence_folder, steps_of
from deepfake_mlc.data.synth import StepPrior, SynthConfig, draw, generate, render_sample
from deepfake_mlc.data.synth.canvas import Canvas
from deepfake_mlc.data.synth.faces import sample_face
from deepfake_mlc.data.synth.manipulations import _feather, to_uint8
from deepfake_mlc.data.synth.writer import PIXEL_STREAM, image_seed, plan
from deepfake_mlc.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "synth"


def tiny(**overrides: object) -> SynthConfig:
    values = {"image_size": 48, "splits": {"train": 10, "val": 4, "test": 4}, "workers": 0, **overrides}
    return SynthConfig.model_validate(values)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_config_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    generate(tiny(), tmp_path / "a", progress=False)
    generate(tiny(workers=2), tmp_path / "b", progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 2 * (18 + 3) and a == b
    generate(tiny(seed=1), tmp_path / "c", progress=False)
    assert _files(tmp_path / "c") != a


def test_official_layout_and_csv_format(tmp_path: Path) -> None:
    summary = generate(tiny(splits={"train": 40, "val": 2, "test": 2}), tmp_path, progress=False)
    assert summary.counts == {s: {"train": 40, "val": 2, "test": 2} for s in ("components", "attributes")}
    assert summary.total_images == 88
    for subset, folder in SUBSET_DIRS.items():
        text = (tmp_path / folder / "annotations" / "train.csv").read_text()
        lines = text.splitlines()
        assert lines[0] == "file_path,label"
        assert all(line.endswith('"') and ',"[' in line for line in lines[1:])  # the label is quoted
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 40
        lengths = set()
        for i, row in enumerate(rows):
            steps = steps_of(parse_step_ids(row["label"]))
            lengths.add(len(steps))
            path = Path(row["file_path"])
            assert path.parts[:3] == (folder, "images", "train")
            assert path.parent.name == sequence_folder(steps, subset)
            assert path.name == f"{i:06d}.jpg"
            assert Image.open(tmp_path / path).size == (48, 48)
        assert 0 in lengths and len(lengths) >= 4  # originals and several sequence lengths
        assert len(SeqDeepFake(tmp_path, subset, "train")) == 40  # the project's reader loads it


def test_each_file_holds_the_image_its_label_describes(tmp_path: Path) -> None:
    cfg = tiny(splits={"train": 6, "val": 0, "test": 0}, subsets=["attributes"])
    generate(cfg, tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "facial_attributes" / "annotations" / "train.csv").open()))
    for (subset, split, index, steps), row in zip(plan(cfg), rows, strict=True):
        assert row["label"] == str(list(steps) + [0] * (5 - len(steps)))
        sample = render_sample(
            subset,
            steps,
            image_seed(cfg.seed, subset, split, index, PIXEL_STREAM),
            cfg.image_size,
            cfg.natural_attribute_rate,
            cfg.trace_strength,
        )
        encoded = io.BytesIO()
        Image.fromarray(sample.image).save(encoded, "JPEG", quality=cfg.jpeg_quality)
        assert (tmp_path / row["file_path"]).read_bytes() == encoded.getvalue()


@pytest.mark.parametrize("subset", ["components", "attributes"])
@pytest.mark.parametrize("steps", [(), (1,), (2, 4), (5, 3, 1), (4, 1, 5, 2, 3)])
def test_pixels_change_only_in_the_regions_of_the_applied_steps(subset: str, steps: tuple[int, ...]) -> None:
    for seed in range(3):
        sample = render_sample(subset, steps, seed, 64)
        assert len(sample.stages) == len(sample.masks) == len(steps)
        if not steps:
            assert np.array_equal(sample.image, sample.base)
            continue
        before = sample.base
        for stage, mask in zip(sample.stages, sample.masks, strict=True):
            changed = np.abs(stage.astype(int) - before.astype(int)).max(axis=2) > 0
            assert changed.any(), f"step of {steps} changed nothing"
            assert not (changed & (mask == 0)).any(), "a step changed pixels outside its region"
            assert changed[mask > 0.5].mean() > 0.5  # and most of its region
            before = stage
        union = np.max(sample.masks, axis=0)
        total = np.abs(sample.image.astype(int) - sample.base.astype(int)).max(axis=2) > 0
        assert not (total & (union == 0)).any()


@pytest.mark.parametrize("size", [32, 57, 128])
def test_drawing_only_a_box_gives_the_pixels_of_the_whole_image(size: int) -> None:
    """The speed-ups (a clipped drawing, a blur of the region's box) must not change a single pixel."""
    for seed in range(4):
        face = sample_face(np.random.default_rng(seed), 1.0)
        box = (slice(size // 5, size // 2), slice(size // 3, size - 2))
        for texture in (0.0, 0.7):
            whole = draw.render(face, size, np.random.default_rng(seed), texture)
            clipped = draw.render(face, size, np.random.default_rng(seed), texture, clip=box)
            assert np.array_equal(clipped[box], whole[box]) and not clipped[: box[0].start].any()
        for region in (draw.region_glasses(Canvas(size), face), draw.region_hair(Canvas(size), face)):
            radius = np.random.default_rng(seed).uniform(1.5, 3.0) * size / 128  # _feather's first draw
            blurred = Image.fromarray(to_uint8(region * 255.0)).filter(ImageFilter.GaussianBlur(radius))
            whole_blur = np.minimum(np.asarray(blurred, dtype=np.float32) / 127.5, 1.0)
            assert np.array_equal(_feather(region, np.random.default_rng(seed)), whole_blur)


def test_render_is_a_function_of_its_arguments() -> None:
    a, b = render_sample("components", (3, 1), 7, 48), render_sample("components", (3, 1), 7, 48)
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, render_sample("components", (3, 1), 8, 48).image)
    with pytest.raises(ValueError, match="subset must be one of"):
        render_sample("faces", (), 0, 48)


def _cooccurrence(prior: StepPrior, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    targets = np.zeros((n, 5), dtype=int)
    for i in range(n):
        steps = prior.sample(rng)
        assert len(set(steps)) == len(steps) and all(1 <= s <= 5 for s in steps)
        targets[i, [s - 1 for s in steps]] = 1
    return targets.T @ targets, np.bincount(targets.sum(axis=1), minlength=6)


def test_uniform_prior_gives_every_length_about_equally() -> None:
    _, lengths = _cooccurrence(StepPrior("uniform"), 3000)
    assert (np.abs(lengths / 3000 - 1 / 6) < 0.03).all()


def test_correlated_prior_follows_the_configured_affinities() -> None:
    cfg = load_config(SynthConfig, CONFIGS / "correlated.yaml")
    co, _ = _cooccurrence(StepPrior(cfg.prior, cfg.correlated), 3000)
    assert co[0, 3] > 1.5 * co[0, 1] and co[1, 2] > 1.5 * co[1, 3]  # affinity 6 pairs vs 0.2 pairs
    no_pair = cfg.correlated.model_copy(
        update={"affinity": [[0.0 if {i, j} == {0, 1} else 1.0 for j in range(5)] for i in range(5)]}
    )
    co, _ = _cooccurrence(StepPrior("correlated", no_pair), 1000)
    assert co[0, 1] == 0 and co[0, 2] > 0


def test_shipped_configs_and_bad_values(tmp_path: Path) -> None:
    assert load_config(SynthConfig, CONFIGS / "default.yaml") == SynthConfig()
    with pytest.raises(ConfigError, match=r"bad value for 'prior': Input should be 'uniform' or 'correlated'"):
        load_config(SynthConfig, None, ["prior=zipf"])
    with pytest.raises(ConfigError, match=r"'splits\.train': Input should be greater than or equal to 0"):
        load_config(SynthConfig, None, ["splits.train=-1"])
    with pytest.raises(ConfigError, match=r"'correlated\.affinity\.0': List should have at least 5 items"):
        load_config(SynthConfig, None, ["correlated.affinity=[[1, 1], [1, 1]]"])
    bad = tmp_path / "asym.yaml"
    bad.write_text(
        "inherit: "
        + str(CONFIGS / "correlated.yaml")
        + "\ncorrelated:\n  affinity:\n"
        + "".join(f"    - {[2.0 if (i, j) == (0, 1) else 1.0 for j in range(5)]}\n" for i in range(5))
    )
    with pytest.raises(ConfigError, match=r"must be symmetric: \[0\]\[1\] = 2.0 but \[1\]\[0\] = 1.0"):
        load_config(SynthConfig, bad)


def test_refuses_to_mix_with_an_existing_subset(tmp_path: Path) -> None:
    generate(tiny(subsets=["components"]), tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="facial_components already exists and is not empty"):
        generate(tiny(subsets=["components"], seed=5), tmp_path, progress=False)
    generate(tiny(subsets=["attributes"]), tmp_path, progress=False)  # another subset may join
    assert (tmp_path / "facial_attributes" / "annotations" / "test.csv").is_file()
