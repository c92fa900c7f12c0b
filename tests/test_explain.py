"""Explanations: per-label maps that point where the model looks (checked on models whose answer is known), carried
back onto the photo through the face crop, drawn, scored against masks, and the two commands end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from skimage import data as photos
from torch import nn

from conftest import LABELS, random_graph, run_without, write_image, write_run
from deepfake_mlc.artifacts import read_checkpoint, write_checkpoint
from deepfake_mlc.cli import main
from deepfake_mlc.config import FaceCropConfig
from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.data.reading import open_rgb
from deepfake_mlc.data.sources import read_split
from deepfake_mlc.engine import train
from deepfake_mlc.errors import ConfigError
from deepfake_mlc.explain.cam import METHODS, Explainer, default_layer
from deepfake_mlc.explain.heatmaps import combine, normalise, to_photo, write_explanation
from deepfake_mlc.explain.localisation import Localisation, plot_localisation
from deepfake_mlc.models import GraphClassifier, build_model
from deepfake_mlc.models.loading import load_checkpoint
from test_faces import ASTRONAUT_FACE
from test_train import tiny_config


def test_normalise_cuts_negative_evidence_and_scales_each_map_to_its_peak() -> None:
    maps = np.array([[[-1, 2], [1, 0]], [[0, 0], [0, 0]], [[-3, -1], [-2, -1]]], dtype=np.float64)
    out = normalise(maps)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [[0, 1], [0.5, 0]])
    assert not out[1].any() and not out[2].any()
    np.testing.assert_array_equal(combine([out, out[::-1]]), np.maximum(out, out[::-1]))


def centre_of_mass(grid: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(grid.shape)
    return float((grid * xs).sum() / grid.sum()), float((grid * ys).sum() / grid.sum())


def test_maps_land_on_the_photo_where_the_crop_was_cut() -> None:
    maps = np.zeros((2, 4, 4), dtype=np.float32)
    maps[0, 1, 2] = 1  # crop cell x 20..30, y 10..20 of a 40 px crop
    maps[1] = 0.5
    to_photo_matrix = np.array([[2.0, 0.0, 100.0], [0.0, 2.0, 50.0]])  # crop px -> photo px: twice as big, shifted
    placed = to_photo(maps, (300, 200), to_photo_matrix, crop_size=40)
    assert placed.shape == (2, 200, 300) and placed.dtype == np.float32
    assert centre_of_mass(placed[0]) == pytest.approx((2 * 25 + 100 - 0.5, 2 * 15 + 50 - 0.5), abs=0.01)
    inside = np.zeros((200, 300), dtype=bool)
    inside[50:130, 100:180] = True  # the crop's 40 px square on the photo
    assert not placed[:, ~inside].any() and np.allclose(placed[1, 52:128, 102:178], 0.5)
    turned = np.array([[0.0, -2.0, 200.0], [2.0, 0.0, 20.0]])  # turned a quarter: crop x runs down the photo
    assert centre_of_mass(to_photo(maps, (300, 200), turned, 40)[0]) == pytest.approx((200 - 30, 20 + 50), abs=0.6)
    whole = to_photo(maps, (300, 200), None, None)  # the model saw the whole photo, squashed: a resize back
    expected = np.asarray(Image.fromarray(maps[0]).resize((300, 200), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(whole[0], expected)
    assert centre_of_mass(whole[0]) == pytest.approx((2.5 * 300 / 4 - 0.5, 1.5 * 200 / 4 - 0.5), abs=0.01)


def test_heatmaps_draw_without_torch_matplotlib_or_opencv(tmp_path: Path) -> None:
    done = run_without(
        {"torch", "matplotlib", "cv2", "pytorch_grad_cam"},
        f"""
        from pathlib import Path
        import numpy as np
        from PIL import Image
        from deepfake_mlc.explain.heatmaps import normalise, to_photo, write_explanation
        maps = to_photo(normalise(np.ones((2, 4, 4))), (20, 10), None, None)
        write_explanation(Path({str(tmp_path)!r}), "x", Image.new("RGB", (20, 10)), maps, ["a", "b"], [0.9, 0.1], [0])
        """,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz", "x_a.png", "x_panel.png"]


def test_the_overlays_panel_and_maps_are_written_on_the_photos_grid(tmp_path: Path) -> None:
    photo = Image.fromarray(photos.astronaut()).resize((120, 90))
    heatmaps = np.random.default_rng(0).random((len(LABELS), 90, 120)).astype(np.float32)
    probabilities = [0.1, 0.9, 0.2, 0.7, 0.3]
    written = write_explanation(tmp_path, "a", photo, heatmaps, LABELS, probabilities, [3, 1])
    assert [p.name for p in written] == ["a_lip.png", "a_eye.png", "a_panel.png", "a.npz"]
    assert all(Image.open(p).size == (120, 90) for p in written[:2])
    saved = np.load(written[-1])
    assert saved["heatmaps"].dtype == np.float32 and saved["labels"].tolist() == list(LABELS)
    np.testing.assert_array_equal(saved["heatmaps"], heatmaps)
    panel = Image.open(written[2])
    none = write_explanation(tmp_path, "b", photo, heatmaps, LABELS, probabilities, [])
    assert [p.name for p in none] == ["b_panel.png", "b.npz"]
    assert panel.height > 192 and panel.width > Image.open(none[0]).width  # the photo and two maps, captioned
    with pytest.raises(ValueError, match="heatmaps of shape"):
        write_explanation(tmp_path, "c", photo, heatmaps[:, :10], LABELS, probabilities, [])


class Gate(nn.Module):
    """Channel k is kept in quadrant k only: what the conv sees there is all that label k's logit hears of."""

    def __init__(self, side: int) -> None:
        super().__init__()
        gates = torch.zeros(4, side, side)
        half = side // 2
        for k, (y, x) in enumerate(((0, 0), (0, half), (half, 0), (half, half))):
            gates[k, y : y + half, x : x + half] = 1
        self.register_buffer("gates", gates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gates


def quadrant_model() -> nn.Module:
    """32 px in, 8×8 stage, logit k = the mean activation of channel k (nonzero in quadrant k only)."""
    conv = nn.Conv2d(3, 4, kernel_size=4, stride=4)
    head = nn.Linear(4, 4)
    with torch.no_grad():
        conv.weight.fill_(1 / 48)
        conv.bias.zero_()
        head.weight.copy_(torch.eye(4))
        head.bias.zero_()
    stage = nn.Sequential(conv, nn.ReLU(), Gate(8))
    return nn.Sequential(stage, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


@pytest.mark.parametrize("method", list(METHODS))
def test_each_label_is_explained_on_its_own_logit(method: str) -> None:
    images = torch.rand(3, 3, 32, 32)
    model = quadrant_model()
    assert default_layer(model, 32) == "0"  # the one stage, 8×8
    with Explainer(model, 32, method) as explainer:
        maps = explainer(images, [0, 1, 2, 3])
    assert maps.shape == (3, 4, 32, 32) and maps.dtype == np.float32 and maps.min() >= 0
    for k, (y, x) in enumerate(((0, 0), (0, 16), (16, 0), (16, 16))):
        quadrant = maps[:, k, y : y + 16, x : x + 16]
        assert quadrant.sum() / maps[:, k].sum() > 0.9, (method, k)  # the rest: bilinear upsampling's spill
        peaks = [np.unravel_index(m.argmax(), m.shape) for m in maps[:, k]]
        assert all(y <= py < y + 16 and x <= px < x + 16 for py, px in peaks), (method, k)


def test_a_batch_gives_each_image_and_label_its_own_map() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="test_resnet"), len(LABELS)).eval()
    images = torch.randn(2, 3, 32, 32)
    with Explainer(model, 32) as explainer:
        batched = explainer(images, [3, 1])
        alone = [[explainer(images[b : b + 1], [k])[0, 0] for k in (3, 1)] for b in range(2)]
    np.testing.assert_allclose(batched, np.array(alone), atol=1e-5)
    assert np.abs(batched[0, 0] - batched[0, 1]).max() > 0.1 and np.abs(batched[0, 0] - batched[1, 0]).max() > 0.1


def test_a_graph_model_is_explained_through_its_folded_head() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="ml_gcn", backbone="test_resnet"), len(LABELS)).eval()
    assert isinstance(model, GraphClassifier)
    random_graph(model)
    images = torch.randn(2, 3, 32, 32)
    with Explainer(model, 32) as explainer:
        assert explainer.layer == "backbone.layer1"
        maps = explainer(images, range(len(LABELS)))
    with Explainer(model.fold(), 32) as explainer:
        np.testing.assert_allclose(explainer(images, range(len(LABELS))), maps, atol=1e-5)
    cam = GradCAM(model=model, target_layers=[model.backbone.layer1])  # the graph itself, left unfolded
    for k in range(len(LABELS)):
        direct = cam(input_tensor=images, targets=[ClassifierOutputTarget(k)] * 2)
        np.testing.assert_allclose(direct, maps[:, k], atol=1e-4)


def test_the_default_layer_is_the_deepest_stage_of_at_least_7x7() -> None:
    resnet = build_model(ModelConfig(name="resnet10t"), 5)
    assert default_layer(resnet, 224) == "layer4"  # 7×7
    assert default_layer(resnet, 64) == "layer2"  # the quick-start's size: layer4 is 2×2, layer3 4×4, layer2 8×8
    assert default_layer(resnet, 8) == "act1"  # nothing is 7×7: the finest stage (4×4 here)
    with pytest.raises(ConfigError, match=r"no layer 'layer9' in the model \(its stages: .*layer4") as err:
        Explainer(resnet, 64, layer="layer9")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="layer 'fc' gives no"):
        Explainer(resnet, 64, layer="fc")
    with pytest.raises(ConfigError, match=r"unknown explanation method 'scorecam' \(known: gradcam, hirescam"):
        Explainer(resnet, 64, method="scorecam")


def test_localisation_scores_against_hand_computed_values(tmp_path: Path) -> None:
    mask = np.zeros((2, 4, 4), dtype=bool)
    mask[:, :2, :2] = True  # a quarter of the image, both labels
    inside, flat, missed = np.zeros((4, 4)), np.full((4, 4), 0.3), np.zeros((4, 4))
    inside[:2, :2] = [[1, 0.5], [0.2, 0]]
    missed[:2, :2] = 0.5
    missed[3, 3] = 1.0  # two thirds of its energy in the mask, its peak outside
    scores = Localisation(["a", "b"])
    scores.add(np.stack([inside, missed]), mask, np.array([True, True]))
    scores.add(np.stack([flat, inside]), mask, np.array([True, False]))  # b absent: not scored
    scores.add(np.stack([inside, inside]), np.zeros_like(mask), np.array([True, True]))  # no mask pixels: not scored
    report = scores.report()
    assert report["per_label"]["a"] == pytest.approx(
        {"energy_game": (1 + 0.25) / 2, "pointing_game": (1 + 0.25) / 2, "uniform_baseline": 0.25, "images": 2}
    )
    assert report["per_label"]["b"] == pytest.approx(
        {"energy_game": 2 / 3, "pointing_game": 0.0, "uniform_baseline": 0.25, "images": 1}
    )
    assert report["mean_over_labels"] == pytest.approx(
        {"energy_game": (0.625 + 2 / 3) / 2, "pointing_game": 0.3125, "uniform_baseline": 0.25, "labels": 2}
    )
    assert report["mean_over_instances"] == pytest.approx(
        {"energy_game": (1 + 0.25 + 2 / 3) / 3, "pointing_game": 1.25 / 3, "uniform_baseline": 0.25, "instances": 3}
    )
    empty = Localisation(["a"]).report()
    assert empty["per_label"]["a"]["energy_game"] is None and empty["mean_over_labels"]["labels"] == 0
    assert plot_localisation(report, tmp_path / "l.png").stat().st_size > 0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(x.ravel())) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def test_maps_depend_on_the_trained_weights(synth_root: Path, tmp_path: Path) -> None:
    """Adebayo et al. (2018): a map that survives re-initialising the weights explains the image, not the model."""
    train(tiny_config(synth_root, tmp_path), cpu=True, show_progress=False)
    model, cfg, meta = load_checkpoint(tmp_path / "run")
    samples, _ = read_split(cfg.data.model_copy(update={"root": synth_root}), "test")
    preprocessing = Preprocessing.of(meta.preprocessing)
    images = torch.from_numpy(np.stack([preprocessing(open_rgb(path)) for path, _ in samples]))
    torch.manual_seed(1)
    randomised = build_model(cfg.model, len(LABELS))
    for method in ("gradcam", "hirescam"):
        with Explainer(model, 32, method) as trained, Explainer(randomised, 32, method) as untrained:
            maps = [explainer(images, range(5)).reshape(-1, 32, 32) for explainer in (trained, untrained)]
            pairs = zip(*maps, strict=True)
            correlations = [spearman(a, b) for a, b in pairs if a.std() > 0 and b.std() > 0]
        assert len(correlations) >= 20 and np.mean(correlations) < 0.5, (method, np.mean(correlations))


def test_explain_draws_every_readable_photo_and_names_the_bad_one(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", data_root)
    photos_dir = tmp_path / "in"
    write_image(photos_dir / "a.png", seed=1, size=48)
    write_image(photos_dir / "sub" / "b.jpg", seed=2, size=40)
    (photos_dir / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(["explain", str(photos_dir), "--model", str(run), "--out", str(out), "--labels", "all"]) == 1
    captured = capsys.readouterr()
    assert f"error: {photos_dir / 'bad.png'}: cannot read image" in captured.err
    assert "gradcam at layer1, whole images" in captured.out and "s per image" in captured.out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["a.npz", "a_panel.png", *(f"a_{label}.png" for label in LABELS), "sub"]
    )
    maps = np.load(out / "sub" / "b.npz")
    assert maps["heatmaps"].shape == (5, 40, 40) and maps["labels"].tolist() == list(LABELS)
    assert main(["explain", str(photos_dir / "a.png"), "--model", str(run), "--out", str(out / "none"),
                 "--threshold", "1", "--method", "hirescam"]) == 0  # fmt: skip
    assert sorted(p.name for p in (out / "none").iterdir()) == ["a.npz", "a_panel.png"]
    assert "no label over threshold" in capsys.readouterr().out
    for option, message in (("--layer=layer9", "no layer 'layer9'"), ("--method=cam", "unknown explanation method")):
        assert main(["explain", str(photos_dir / "a.png"), "--model", str(run), "--out", str(out), option]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_explain_maps_a_face_crops_maps_back_onto_the_photo(data_root: Path, tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", data_root)
    stem = run / "checkpoints" / "best"
    state, meta = read_checkpoint(stem.with_suffix(".safetensors"))
    preprocessing = meta.preprocessing.model_copy(update={"face_crop": FaceCropConfig(policy="ffhq", size=64)})
    write_checkpoint(stem, state, meta.model_copy(update={"preprocessing": preprocessing}))
    Image.fromarray(photos.astronaut()).save(tmp_path / "astronaut.png")
    out = tmp_path / "out"
    assert main(["explain", str(tmp_path / "astronaut.png"), "--model", str(run), "--out", str(out)]) == 0
    heatmaps = np.load(out / "astronaut.npz")["heatmaps"]
    assert heatmaps.shape == (5, 512, 512) and heatmaps.max() > 0.5
    left, top, right, bottom = ASTRONAUT_FACE
    width, height = right - left, bottom - top
    near = np.zeros((512, 512), dtype=bool)  # the face box grown by its size on every side
    near[max(0, round(top - height)) : round(bottom + height), max(0, round(left - width)) : round(right + width)] = (
        True
    )
    assert not heatmaps[:, ~near].any()


def write_masked_manifest(folder: Path) -> tuple[Path, dict[str, float]]:
    """Six 32 px images, labels in known rectangles of their 64 px bit masks (bit k: label k); the manifest lists
    ``mask_path``. Returns it and each label's expected uniform baseline."""
    rows, areas = [], {}
    boxes = {"nose": (24, 28, 40, 44), "eye": (8, 16, 56, 28), "lip": (20, 44, 44, 56)}  # x0, y0, x1, y1
    for i in range(6):
        write_image(folder / f"{i}.png", seed=10 + i, size=32)
        present = [name for j, name in enumerate(boxes) if (i + j) % 2 == 0]
        bits = np.zeros((64, 64), dtype=np.uint8)
        for name in present:
            x0, y0, x1, y1 = boxes[name]
            bits[y0:y1, x0:x1] |= np.uint8(1 << LABELS.index(name))
            areas[name] = (x1 - x0) * (y1 - y0) / 64**2
        Image.fromarray(bits).save(folder / f"{i}_mask.png")
        rows.append({"path": f"{i}.png", "labels": "|".join(present), "mask_path": f"{i}_mask.png"})
    manifest = folder / "test.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest, areas


def test_evaluate_explain_scores_the_maps_against_the_masks(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", data_root)
    manifest, areas = write_masked_manifest(tmp_path / "data")
    out = tmp_path / "eval"
    evaluate = ["evaluate", str(run), "--data", str(manifest), "--cpu", "--out", str(out), "--explain"]
    assert main([*evaluate, "--explain-method", "gradcam++"]) == 0
    printed = capsys.readouterr().out
    assert "localisation: gradcam++ at layer1, 6 images" in printed and "mean over labels" in printed
    localisation = json.loads((out / "evaluation.json").read_text())["localisation"]
    assert localisation["method"] == "gradcam++" and localisation["layer"] == "layer1"
    for name, row in localisation["per_label"].items():
        if name in areas:
            assert row["images"] == 3 and row["uniform_baseline"] == pytest.approx(areas[name])
            assert 0 <= row["energy_game"] <= 1 and 0 <= row["pointing_game"] <= 1
        else:
            assert row == {"energy_game": None, "pointing_game": None, "uniform_baseline": None, "images": 0}
    assert localisation["mean_over_instances"]["instances"] == 9 and (out / "localisation.png").stat().st_size > 0
    assert main([*evaluate, "--explain-limit", "2", "--explain-layer", "layer2"]) == 0
    localisation = json.loads((out / "evaluation.json").read_text())["localisation"]
    assert localisation["images"] == 2 and localisation["layer"] == "layer2"
    plain = tmp_path / "plain.csv"
    plain.write_text("path,labels\n" + "".join(f"data/{i}.png,nose\n" for i in range(2)))
    assert main(["evaluate", str(run), "--data", str(plain), "--cpu", "--explain"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
