"""Degradations: known answers for each kind, parsing and its errors, and the training augmentation built on them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from conftest import run_without
from deepfake_mlc.config import Config, DataConfig, load_config
from deepfake_mlc.config.schema import AugmentConfig
from deepfake_mlc.data.degrade import ALLOWED, Perturbation, parse_perturbations, perturbation_seed
from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.data.transforms import RandomDegradation, ToNormalizedTensor, build_transform
from deepfake_mlc.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RNG = np.random.default_rng(0)  # unused by the deterministic kinds


def photo(width: int = 64, height: int = 48) -> Image.Image:
    """Smooth colour, grey texture: chroma subsampling costs little, so the JPEG error is ordered by quality."""
    y, x = np.mgrid[0:height, 0:width]
    texture = np.random.default_rng(1).integers(-20, 21, (height, width, 1))
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height) + 64], axis=-1)
    return Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8), "RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def test_jpeg_is_pil_encode_decode_and_lower_quality_costs_more() -> None:
    image = photo()
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=50)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    out = Perturbation("jpeg", 50)(image, RNG)
    assert out.mode == "RGB" and out.size == image.size
    np.testing.assert_array_equal(np.asarray(out), expected)
    error = {q: np.abs(pixels(Perturbation("jpeg", q)(image, RNG)) - pixels(image)).mean() for q in (100, 50, 10)}
    assert error[100] < 1 < error[50] < error[10]


def test_resize_returns_the_smaller_image_and_scale_one_is_identity() -> None:
    image = photo(128, 96)
    assert Perturbation("resize", 0.5)(image, RNG).size == (64, 48)
    assert Perturbation("resize", 0.001)(image, RNG).size == (1, 1)  # never below one pixel
    assert Perturbation("resize", 1)(image, RNG) is image
    flat = Image.new("RGB", (128, 96), (10, 200, 90))
    assert (np.asarray(Perturbation("resize", 0.25)(flat, RNG)) == (10, 200, 90)).all()  # averages of equal pixels


def edge_sigma(image: Image.Image) -> float:
    """The standard deviation of the blurred vertical edge's derivative along a row: the blur's sigma."""
    row = pixels(image)[image.height // 2, :, 0]
    slope = np.diff(row)
    x = np.arange(slope.size)
    centre = (slope * x).sum() / slope.sum()
    return float(np.sqrt((slope * (x - centre) ** 2).sum() / slope.sum()))


@pytest.mark.parametrize("sigma", [1.0, 2.0, 4.0])
def test_blur_sigma_is_the_gaussian_standard_deviation(sigma: float) -> None:
    edge = np.zeros((16, 64, 3), np.uint8)
    edge[:, 32:] = 255
    blurred = Perturbation("blur", sigma)(Image.fromarray(edge), RNG)
    assert edge_sigma(blurred) == pytest.approx(sigma, rel=0.15)
    flat = Image.new("RGB", (32, 32), (30, 128, 220))
    assert (np.asarray(Perturbation("blur", sigma)(flat, RNG)) == (30, 128, 220)).all()


def test_blur_spreads_more_with_larger_sigma() -> None:
    impulse = np.zeros((33, 33, 3), np.uint8)
    impulse[16, 16] = 255
    lit = [int((pixels(Perturbation("blur", s)(Image.fromarray(impulse), RNG)) > 0).sum()) for s in (0.5, 1, 2)]
    assert lit[0] < lit[1] < lit[2]


def test_noise_std_in_full_range_units_and_seeded_per_path() -> None:
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    noise = Perturbation("noise", 0.05)
    out = noise(grey, perturbation_seed("a/1.png", noise))
    assert out.mode == "RGB" and out.size == grey.size
    assert (pixels(out) - 128).std() == pytest.approx(0.05 * 255, rel=0.1)
    again = noise(grey, perturbation_seed("a/1.png", noise))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(again))
    assert not np.array_equal(np.asarray(out), np.asarray(noise(grey, perturbation_seed("a/2.png", noise))))
    assert not np.array_equal(np.asarray(out), np.asarray(noise(grey, perturbation_seed("a/1.png", noise, seed=1))))
    other = Perturbation("noise", 0.02)
    assert not np.array_equal(
        perturbation_seed("a/1.png", noise).integers(1 << 30, size=4),
        perturbation_seed("a/1.png", other).integers(1 << 30, size=4),
    )


def test_parse_expands_in_order_with_canonical_names() -> None:
    parsed = parse_perturbations(["jpeg:90,70,50", "resize:0.5,0.25", "blur:1,2", " noise: 0.02 ,0.05"])
    assert [str(p) for p in parsed] == [
        "jpeg:90",
        "jpeg:70",
        "jpeg:50",
        "resize:0.5",
        "resize:0.25",
        "blur:1",
        "blur:2",
        "noise:0.02",
        "noise:0.05",
    ]
    assert parsed[0] == Perturbation("jpeg", 90) and parsed[-1] == Perturbation("noise", 0.05)
    assert parse_perturbations([]) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sharpen:1", f"unknown perturbation 'sharpen' in 'sharpen:1' (one of {ALLOWED})"),
        ("jpeg:150", "jpeg severity 150 out of range in 'jpeg:150' (jpeg:QUALITY, an integer 1..100)"),
        ("jpeg:0", "jpeg severity 0 out of range in 'jpeg:0' (jpeg:QUALITY, an integer 1..100)"),
        ("jpeg:90,50.5", "jpeg severity 50.5 not an integer in 'jpeg:90,50.5' (jpeg:QUALITY, an integer 1..100)"),
        ("resize:0", "resize severity 0 out of range in 'resize:0' (resize:SCALE, a number 0<s<=1)"),
        ("resize:1.5", "(resize:SCALE, a number 0<s<=1)"),
        ("blur:11", "blur severity 11 out of range in 'blur:11' (blur:SIGMA, a number 0<s<=10)"),
        ("noise:-0.1", "noise severity -0.1 out of range in 'noise:-0.1' (noise:STD, a number 0<s<=1)"),
        ("noise:nan", "noise severity nan out of range"),
        ("blur:two", "blur severity 'two' is not a number in 'blur:two' (blur:SIGMA, a number 0<s<=10)"),
        ("jpeg", f"perturbation 'jpeg' is not of the form KIND:V1,V2,... (one of {ALLOWED})"),
        ("jpeg:", "perturbation 'jpeg:' is not of the form KIND:V1,V2,..."),
        ("jpeg:90,,50", "perturbation 'jpeg:90,,50' is not of the form KIND:V1,V2,..."),
        (":90", "perturbation ':90' is not of the form KIND:V1,V2,..."),
    ],
)
def test_bad_specs_give_one_line_with_the_allowed_values(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_perturbations(["jpeg:90", spec])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_allowed_values_are_listed_and_checked_on_construction() -> None:
    assert ALLOWED == "jpeg:QUALITY 1..100, resize:SCALE 0<s<=1, blur:SIGMA 0<s<=10, noise:STD 0<s<=1"
    with pytest.raises(ConfigError, match=r"jpeg severity 101 out of range in 'jpeg:101'"):
        Perturbation("jpeg", 101)
    with pytest.raises(ConfigError, match="unknown perturbation 'sharpen'"):
        Perturbation("sharpen", 1)


def test_degrade_imports_without_torch() -> None:
    code = """
        import numpy as np
        from PIL import Image
        from deepfake_mlc.data.degrade import parse_perturbations, perturbation_seed
        image = Image.new("RGB", (16, 16), (90, 90, 90))
        for p in parse_perturbations(["jpeg:50", "resize:0.5", "blur:1", "noise:0.1"]):
            image = p(image, perturbation_seed("x.png", p))
        print(image.size)
    """
    result = run_without(["torch", "torchvision"], code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(8, 8)"


def data_config(*overrides: str) -> DataConfig:
    return load_config(Config, CONFIGS / "quickstart.yaml", ["data.root=unused", *overrides]).data


def test_degradations_are_off_by_default_and_the_pipeline_is_unchanged() -> None:
    cfg = DataConfig(root=Path("unused"), image_size=32)
    assert AugmentConfig() == cfg.augment
    assert RandomDegradation.of(cfg.augment) is None
    transform = build_transform(cfg, train=True)
    assert not any(isinstance(step, RandomDegradation) for step in transform.transforms)
    preprocessing = Preprocessing.of(cfg)
    before = v2.Compose(  # the training pipeline as it was before degradations existed
        [
            preprocessing.resize,
            v2.ToImage(),
            v2.RandomHorizontalFlip(p=cfg.augment.hflip),
            v2.ColorJitter(**cfg.augment.color_jitter.model_dump()),
            ToNormalizedTensor(preprocessing),
        ]
    )
    image = photo(40, 40)
    torch.manual_seed(3)
    expected = before(image)
    torch.manual_seed(3)
    torch.testing.assert_close(transform(image), expected, rtol=0, atol=0)


def test_jpeg_augmentation_changes_the_image_and_comes_first() -> None:
    cfg = data_config("data.augment.jpeg.p=1", "data.augment.jpeg.quality=[10, 20]", "data.augment.hflip=0")
    transform = build_transform(cfg, train=True)
    assert isinstance(transform.transforms[0], RandomDegradation)
    assert not any(isinstance(step, RandomDegradation) for step in build_transform(cfg, train=False).transforms)
    image = photo(64, 64)
    degraded = transform.transforms[0](image)
    assert degraded.size == image.size and np.abs(pixels(degraded) - pixels(image)).mean() > 2
    assert not torch.equal(transform(image), build_transform(cfg, train=False)(image))


def test_all_degradations_in_order_reproducible_under_a_torch_seed() -> None:
    step = RandomDegradation.of(
        AugmentConfig.model_validate(
            {
                "downscale": {"p": 1, "scale": [0.5, 0.5]},
                "blur": {"p": 1},
                "noise": {"p": 1},
                "jpeg": {"p": 1, "quality": [50, 50]},
            }
        )
    )
    assert step is not None
    assert [p.kind for p in step.draw()] == ["resize", "blur", "noise", "jpeg"]  # JPEG last, as re-sharing
    assert str(step.draw()[-1]) == "jpeg:50"
    image = photo(64, 64)
    assert step(image).size == (32, 32)  # stays small: the model's resize follows
    outputs = []
    for _ in range(2):
        torch.manual_seed(11)
        outputs.append(np.asarray(step(image)))
    np.testing.assert_array_equal(*outputs)
    torch.manual_seed(12)
    assert not np.array_equal(outputs[0], np.asarray(step(image)))


def test_drawn_severities_stay_in_the_configured_ranges() -> None:
    step = RandomDegradation.of(
        AugmentConfig.model_validate(
            {"downscale": {"p": 1, "scale": [0.3, 0.6]}, "jpeg": {"p": 1, "quality": [40, 42]}, "blur": {"p": 0}}
        )
    )
    assert step is not None
    torch.manual_seed(0)
    draws = [step.draw() for _ in range(200)]
    assert all(len(d) == 2 for d in draws)  # blur at p=0 never fires
    assert all(0.3 <= d[0].severity <= 0.6 for d in draws)
    assert {d[1].severity for d in draws} == {40, 41, 42}


def test_robust_quickstart_covers_the_evaluated_severities() -> None:
    plain = load_config(Config, CONFIGS / "quickstart.yaml")
    robust = load_config(Config, CONFIGS / "quickstart_robust.yaml")
    augment = robust.data.augment
    assert augment.jpeg is not None and augment.downscale is not None and augment.blur is not None
    assert augment.noise is None
    assert augment.jpeg.quality[0] <= 50 <= augment.jpeg.quality[1]
    assert augment.downscale.scale[0] <= 0.25 <= augment.downscale.scale[1]
    same = {"downscale": None, "blur": None, "noise": None, "jpeg": None}
    assert robust.data.augment.model_copy(update=same) == plain.data.augment  # nothing else differs
    assert robust.model_copy(update={"data": plain.data}) == plain
