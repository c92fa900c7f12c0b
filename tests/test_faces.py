"""Faces in photos and videos: found where they were put, cut as the model's policy says, followed in videos,
and bad files reported without losing the rest. Scenes are built from the photos scikit-image ships."""

from __future__ import annotations

import csv
import json
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

import av
import numpy as np
import onnx
import pytest
from PIL import Image
from skimage import data as photos

from conftest import LABELS, family_files, run_without, write_run
from deepfake_mlc.artifacts import read_checkpoint, write_checkpoint
from deepfake_mlc.cli import main
from deepfake_mlc.config import Config, FaceCropConfig, load_config
from deepfake_mlc.data.annotations import read_manifest
from deepfake_mlc.data.reading import open_rgb
from deepfake_mlc.errors import ConfigError, CorruptImageError, CorruptVideoError
from deepfake_mlc.export import export_onnx
from deepfake_mlc.export.onnx import save_model
from deepfake_mlc.faces.align import crop_to_image, cut_face
from deepfake_mlc.faces.detector import FaceDetector
from deepfake_mlc.faces.tracks import Tracker, iou
from deepfake_mlc.faces.video import read_ahead, sample_frames
from deepfake_mlc.runtime.info import read_onnx_info
from test_docker import missing_from_serving_image

REPO = Path(__file__).resolve().parents[1]

ASTRONAUT_FACE = (181.1, 62.2, 267.7, 172.1)  # facenet-pytorch's MTCNN box in skimage's astronaut photo
# the five-point template of ArcFace's 112 px crops (insightface), as fractions of the side
ARCFACE_112 = tuple(
    (x / 112, y / 112) for x, y in ((38.29, 51.70), (73.53, 51.50), (56.03, 71.74), (41.55, 92.37), (70.73, 92.20))
)
Box = tuple[float, float, float, float]


@cache
def detector() -> FaceDetector:
    return FaceDetector(threads=2)


@cache
def astronaut() -> Image.Image:
    return Image.fromarray(photos.astronaut())


def lfw_face(i: int, side: int = 100) -> Image.Image:
    """One of scikit-image's 25 px LFW face crops, enlarged (the face fills it)."""
    return Image.fromarray((photos.lfw_subset()[i] * 255).astype(np.uint8)).convert("RGB").resize((side, side))


def paste(canvas: Image.Image, face: Image.Image, at: tuple[int, int]) -> Box:
    canvas.paste(face, at)
    return (at[0], at[1], at[0] + face.width, at[1] + face.height)


def rotated(image: Image.Image, angle: float) -> tuple[Image.Image, np.ndarray]:
    """``image`` turned by ``angle`` degrees (counter-clockwise, canvas grown) and the map of its pixels there."""
    out = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    theta = np.deg2rad(angle)
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    old_centre, new_centre = np.array(image.size) / 2, np.array(out.size) / 2
    return out, np.column_stack([rotation, new_centre - rotation @ old_centre])


def moved_box(box: Box, matrix: np.ndarray) -> Box:
    """A face box after ``matrix``: same size, centred where its centre went (a detector boxes the upright face)."""
    cx, cy = matrix[:, :2] @ [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2] + matrix[:, 2]
    w, h = box[2] - box[0], box[3] - box[1]
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def landmarks_in_crop(matrix: np.ndarray, landmarks: Sequence[tuple[float, float]]) -> np.ndarray:
    """Where ``landmarks`` (photo pixels) land in the crop that ``matrix`` (crop -> photo) cuts."""
    return (np.asarray(landmarks, dtype=np.float64) - matrix[:, 2]) @ np.linalg.inv(matrix[:, :2]).T


def assert_found(found: Sequence[Box], expected: Sequence[Box]) -> None:
    assert len(found) == len(expected), (found, expected)
    for box in expected:
        assert max(iou(box, f) for f in found) >= 0.5, (box, found)


def test_pasted_faces_are_found_at_every_place_scale_and_turn() -> None:
    background = Image.fromarray(photos.coffee()).resize((1280, 860))
    face = astronaut().crop((130, 10, 320, 230))  # the face with hair and shoulders around it
    box_in_face = (ASTRONAUT_FACE[0] - 130, ASTRONAUT_FACE[1] - 10, ASTRONAUT_FACE[2] - 130, ASTRONAUT_FACE[3] - 10)
    for scale, angle, at in ((1.0, 0, (60, 80)), (0.5, 0, (900, 500)), (1.6, 20, (500, 300)), (0.8, -30, (100, 520))):
        scene = background.copy()
        small = face.resize((round(face.width * scale), round(face.height * scale)))
        turned, matrix = rotated(small, angle)
        scene.paste(turned, at)
        expected = moved_box(tuple(v * scale for v in box_in_face), matrix)
        expected = (expected[0] + at[0], expected[1] + at[1], expected[2] + at[0], expected[3] + at[1])
        assert_found([f.box for f in detector()(scene)], [expected])


def test_several_faces_in_one_picture_and_none_in_face_free_ones() -> None:
    scene = Image.new("RGB", (1280, 860), (120, 120, 120))
    boxes = [paste(scene, lfw_face(i, side), at) for i, side, at in ((0, 100, (40, 60)), (5, 160, (600, 80)),
             (9, 120, (300, 600)), (20, 220, (950, 500)))]  # fmt: skip
    faces = detector()(scene)
    assert_found([f.box for f in faces], boxes)
    assert all(f.score > 0.9 for f in faces) and [f.score for f in faces] == sorted(
        (f.score for f in faces), reverse=True
    )
    for photo in (photos.chelsea(), photos.coffee(), photos.rocket()):
        assert detector()(Image.fromarray(photo)) == []


def test_a_turned_face_is_cut_upright_with_its_eyes_where_the_policy_puts_them() -> None:
    """Found again in the FFHQ crop of the turned scene, the eyes are where the upright face's crop has them;
    the template fit puts the detected eyes of every turn within a few pixels of the template's."""
    ffhq, template = FaceCropConfig(), FaceCropConfig(policy="template", size=112, template=ARCFACE_112)
    upright = detector()(astronaut())[0].landmarks
    eyes = landmarks_in_crop(crop_to_image(ffhq, upright), upright)[:2]
    for angle in (-30, -10, 15, 30):
        scene, _ = rotated(astronaut(), angle)
        landmarks = detector()(scene)[0].landmarks
        crop = cut_face(scene, ffhq, landmarks)
        found = detector()(crop)
        assert crop.size == (256, 256) and len(found) == 1
        assert np.abs(np.array(found[0].landmarks[:2]) - eyes).max() < 4, angle
        fitted = landmarks_in_crop(crop_to_image(template, landmarks), landmarks)[:2]
        assert np.abs(fitted - np.array(ARCFACE_112[:2]) * 112).max() < 5, angle
        assert cut_face(scene, template, landmarks).size == (112, 112)


@pytest.mark.parametrize(
    "policy",
    [FaceCropConfig(), FaceCropConfig(policy="template", size=112, template=ARCFACE_112)],
    ids=["ffhq", "template"],
)
def test_the_crop_is_the_same_whether_the_scene_was_turned_or_not(policy: FaceCropConfig) -> None:
    """Same landmarks (carried through the turn exactly): same crop, up to the extra interpolation."""
    landmarks = np.array(detector()(astronaut())[0].landmarks)
    upright = np.asarray(cut_face(astronaut(), policy, landmarks), dtype=np.float64)
    for angle in (-30, 25):
        scene, matrix = rotated(astronaut(), angle)
        turned_landmarks = landmarks @ matrix[:, :2].T + matrix[:, 2]
        turned = np.asarray(cut_face(scene, policy, turned_landmarks), dtype=np.float64)
        inner = slice(policy.size // 8, policy.size * 7 // 8)  # the face; the border may reach the scene's edge
        assert np.abs(turned[inner, inner] - upright[inner, inner]).mean() < 4.0


def test_the_ffhq_crop_of_a_big_face_is_shrunk_without_aliasing_and_the_edge_mirrored() -> None:
    big = astronaut().resize((2048, 2048), Image.Resampling.BICUBIC)  # a 4x larger face, close to the edge
    landmarks = np.array(detector()(astronaut())[0].landmarks) * 4
    small = np.asarray(cut_face(astronaut(), FaceCropConfig(), landmarks / 4), dtype=np.float64)
    large = np.asarray(cut_face(big, FaceCropConfig(), landmarks), dtype=np.float64)
    assert np.abs(small - large).mean() < 6.0
    edge = FaceCropConfig(scale=2.5)  # reaches past the photo's top: mirrored pixels, not black
    assert np.asarray(cut_face(astronaut(), edge, landmarks / 4))[:20].mean() > 40


def test_crop_policies_are_validated_with_the_key_named() -> None:
    with pytest.raises(ValueError, match=r"face_crop\.template is required"):
        FaceCropConfig(policy="template")
    for argv, message in (
        (["--set", "data.face_crop.policy=oval"], "data.face_crop.policy"),
        (["--set", "data.face_crop.size=8"], "data.face_crop.size"),
    ):
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            load_config(Config, REPO / "configs" / "quickstart.yaml", argv[1:])


def test_tracks_keep_identity_when_faces_cross_paths() -> None:
    tracker = Tracker(min_iou=0.3, patience=2)
    a, b = [0.0, 0, 100, 100], [400.0, 0, 500, 100]
    ids = []
    for _ in range(6):
        ids.append(tracker.update([tuple(b), tuple(a)]))
        a[0] += 30
        a[2] += 30
        b[0] -= 30
        b[2] -= 30
    assert ids == [[0, 1]] * 6
    assert tracker.update([]) == [] and tracker.update([]) == [] and tracker.update([]) == []
    assert tracker.update([(0.0, 0, 100, 100)]) == [2]  # closed tracks are not reused


# ---- predict on photos and videos


@pytest.fixture(scope="module")
def face_model(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The tiny ONNX model, recorded as trained on 64 px FFHQ-aligned faces."""
    _, onnx_path = family_files(tmp_path_factory, data_root, "test_resnet")
    info = read_onnx_info(onnx_path)
    preprocessing = info.preprocessing.model_copy(update={"face_crop": FaceCropConfig(size=64)})
    out = tmp_path_factory.mktemp("face-model") / "faces.onnx"
    return save_model(onnx.load(str(onnx_path)), out, info.model_copy(update={"preprocessing": preprocessing}))


def two_face_scene() -> tuple[Image.Image, list[Box]]:
    scene = Image.new("RGB", (640, 480), (90, 110, 130))
    return scene, [paste(scene, lfw_face(0, 120), (60, 150)), paste(scene, lfw_face(7, 150), (400, 120))]


def write_video(path: Path, seconds: float = 3.0, fps: int = 10) -> list[list[Box]]:
    """Two faces sliding towards each other on a 320x240 clip; the boxes they were pasted at, per frame."""
    first, second = lfw_face(3, 80), lfw_face(11, 80)
    boxes = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(round(seconds * fps)):
            frame = Image.new("RGB", (320, 240), (100, 100, 100))
            boxes.append([paste(frame, first, (10 + 4 * i, 40)), paste(frame, second, (230 - 4 * i, 120))])
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())
    return boxes


def run_predict(model: Path, inputs: Sequence[Path], out: Path, *options: str) -> tuple[int, dict]:
    code = main(["predict", *map(str, inputs), "--model", str(model), "--out", str(out), "--threads", "2", *options])
    return code, json.loads(out.read_text()) if out.suffix == ".json" else {}


def test_predict_gives_every_face_of_a_photo_its_box_score_and_labels(face_model: Path, tmp_path: Path) -> None:
    scene, boxes = two_face_scene()
    scene.save(tmp_path / "two.png")
    Image.fromarray(photos.chelsea()).save(tmp_path / "cat.jpg")
    code, report = run_predict(face_model, [tmp_path], tmp_path / "p.json")
    assert code == 0 and report["faces"]["policy"] == "ffhq" and report["faces"]["size"] == 64
    by_name = {Path(e["path"]).name: e for e in report["predictions"]}
    assert by_name["cat.jpg"] == {"path": str(tmp_path / "cat.jpg"), "kind": "image", "error": None, "faces": []}
    faces = by_name["two.png"]["faces"]
    assert_found([tuple(f["box"]) for f in faces], boxes)
    labels = read_onnx_info(face_model).label_names
    for face in faces:
        assert 0.9 < face["score"] <= 1 and list(face["probabilities"]) == list(labels)
        assert face["labels"] == [n for n in labels if face["probabilities"][n] > 0.5]
    code, _ = run_predict(face_model, [tmp_path], tmp_path / "p.csv")
    with (tmp_path / "p.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["path"]).name for r in rows] == ["cat.jpg", "two.png", "two.png"]
    assert rows[0]["error"] == "no face found" and rows[0]["x0"] == ""
    assert [float(r["x0"]) for r in rows[1:]] == pytest.approx([f["box"][0] for f in faces], abs=0.01)
    code, report = run_predict(face_model, [tmp_path / "two.png"], tmp_path / "off.json", "--faces", "off")
    assert report["faces"] is None and [f["box"] for f in report["predictions"][0]["faces"]] == [[0, 0, 640, 480]]


def test_the_crop_policy_travels_from_checkpoint_to_export_to_predict(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", data_root)
    stem = run / "checkpoints" / "best"
    state, meta = read_checkpoint(stem.with_suffix(".safetensors"))
    policy = FaceCropConfig(policy="template", size=96, template=ARCFACE_112, scale=1.2)
    preprocessing = meta.preprocessing.model_copy(update={"face_crop": policy})
    write_checkpoint(stem, state, meta.model_copy(update={"preprocessing": preprocessing}))
    exported = export_onnx(run, tmp_path / "model.onnx")
    assert read_onnx_info(exported).preprocessing.face_crop == policy
    two_face_scene()[0].save(tmp_path / "two.png")
    code, report = run_predict(exported, [tmp_path / "two.png"], tmp_path / "p.json")
    assert code == 0 and report["faces"] == policy.model_dump(mode="json")
    assert len(report["predictions"][0]["faces"]) == 2
    whole = write_run(tmp_path / "whole", data_root)  # trained on whole images: --faces on cuts with ffhq
    code, report = run_predict(whole, [tmp_path / "two.png"], tmp_path / "on.json", "--faces", "on")
    assert report["faces"]["policy"] == "ffhq" and len(report["predictions"][0]["faces"]) == 2
    assert "trained on whole images (face_crop: none); cutting faces with the ffhq policy" in capsys.readouterr().out


def test_a_video_gives_per_frame_faces_and_a_summary_per_track(face_model: Path, tmp_path: Path) -> None:
    pasted = write_video(tmp_path / "clip.mp4", seconds=3.0, fps=10)
    code, report = run_predict(face_model, [tmp_path / "clip.mp4"], tmp_path / "v.json", "--fps", "5")
    entry = report["predictions"][0]
    assert code == 0 and entry["kind"] == "video" and entry["error"] is None
    frames = entry["frames"]
    assert [f["t"] for f in frames] == pytest.approx([i / 5 for i in range(15)], abs=0.01)
    by_track: dict[int, list[tuple[float, Box]]] = {}
    for frame in frames:
        truth = pasted[round(frame["t"] * 10)]
        assert_found([tuple(f["box"]) for f in frame["faces"]], truth)
        for face in frame["faces"]:
            by_track.setdefault(face["track"], []).append((frame["t"], tuple(face["box"])))
    assert len(by_track) == 2 and all(len(seen) == 15 for seen in by_track.values())  # identity kept throughout
    shifts = sorted(float(np.mean(np.diff([b[0] for _, b in seen]))) for seen in by_track.values())
    assert shifts == pytest.approx([-8, 8], abs=2)  # 4 px a frame, every other frame sampled: the boxes follow
    tracks = entry["tracks"]
    assert [t["id"] for t in tracks] == sorted(by_track) and all(t["frames"] == 15 for t in tracks)
    for track in tracks:
        probabilities = [
            [f["probabilities"][n] for n in track["probabilities"]]
            for frame in frames
            for f in frame["faces"]
            if f["track"] == track["id"]
        ]
        assert list(track["probabilities"].values()) == pytest.approx(np.mean(probabilities, 0).tolist(), abs=1e-6)
        share = (np.asarray(probabilities) > 0.5).mean(0)
        assert list(track["share_over_threshold"].values()) == pytest.approx(share.tolist())


def bomb_png(path: Path, side: int = 40_000) -> None:
    """A small valid PNG whose header claims ``side`` x ``side`` pixels (1.6 gigapixels)."""
    Image.new("RGB", (8, 8)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", side, side)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns, then we refuse
def test_bad_files_are_reported_and_the_rest_predicted(
    face_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene, boxes = two_face_scene()
    scene.save(tmp_path / "good.jpg", quality=95)
    (tmp_path / "truncated.jpg").write_bytes((tmp_path / "good.jpg").read_bytes()[:3000])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("a text file named like a photo")
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "empty.mov").write_bytes(b"")
    bomb_png(tmp_path / "bomb.png")
    write_video(tmp_path / "clip.mp4", seconds=1.0)
    out = tmp_path / "out" / "p.json"
    code, report = run_predict(face_model, [tmp_path, tmp_path / "missing.jpg"], out)
    assert code == 1
    errors = {Path(e["path"]).name: e["error"] for e in report["predictions"]}
    assert errors.pop("good.jpg") is None and errors.pop("clip.mp4") is None
    assert sorted(errors) == [
        "bomb.png",
        "empty.mov",
        "empty.png",
        "garbage.mp4",
        "missing.jpg",
        "notes.jpg",
        "truncated.jpg",
    ]
    assert errors["missing.jpg"] == "file not found"
    assert errors["bomb.png"] == (
        "cannot read image: refused, Image size (1600000000 pixels) is more than 89 megapixels "
        "(a decompression bomb, or a scan to shrink first)"
    )
    for name in ("empty.png", "notes.jpg", "truncated.jpg"):
        assert errors[name].startswith("cannot read image: ")
    assert errors["garbage.mp4"].startswith("cannot read video: ") and errors["empty.mov"].startswith(
        "cannot read video"
    )
    good = next(e for e in report["predictions"] if e["path"].endswith("good.jpg"))
    assert_found([tuple(f["box"]) for f in good["faces"]], boxes)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 8 and err[-1] == "7 of 9 inputs could not be read (the others were predicted)"
    assert all(line.startswith("error: ") for line in err[:-1])
    bomb_png(tmp_path / "large.png", side=10_000)  # 100 megapixels: below PIL's own refusal, above ours
    with pytest.raises(CorruptImageError, match=r"large\.png: refused, 10000×10000 is more than 89 megapixels"):
        open_rgb(tmp_path / "large.png")


def test_data_faces_cuts_a_folder_into_a_manifest_to_train_on(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "people").mkdir(parents=True)
    one = Image.new("RGB", (400, 300), (80, 80, 80))
    one_box = paste(one, lfw_face(2, 140), (130, 80))
    one.save(raw / "people" / "one.png")
    one.save(raw / "people" / "one.jpg", quality=95)  # the same stem: the crops must not overwrite each other
    two_face_scene()[0].save(raw / "people" / "two.png")
    Image.fromarray(photos.chelsea()).save(raw / "cat.jpg")
    (raw / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    one.save(raw / "forgotten.png")  # not in the labels file: left out, not taken for an original
    labels = "people/one.png,nose|lip\npeople/one.jpg,eye\npeople/two.png,\ncat.jpg,eye\nbroken.jpg,\n"
    (raw / "labels.csv").write_text("path,labels\n" + labels)
    out = tmp_path / "faces"
    argv = ["data", "faces", str(raw), "--out", str(out), "--labels-from", str(raw / "labels.csv"), "--threads", "2"]
    assert main(argv) == 0
    report = json.loads((out / "faces_report.json").read_text())
    assert (report["photos"], report["crops"], report["no_face"]) == (6, 3, ["cat.jpg"])
    assert report["several_faces"] == {"people/two.png": 2} and list(report["unreadable"]) == ["broken.jpg"]
    assert report["unlabelled"] == ["forgotten.png"]
    samples = read_manifest(out / "manifest.csv", LABELS)
    assert [(Path(p).relative_to(out).as_posix(), t) for p, t in samples] == [
        ("images/people/one_jpg.png", (0, 1, 0, 0, 0)),
        ("images/people/one_png.png", (1, 0, 0, 1, 0)),
        ("images/people/two.png", (0, 0, 0, 0, 0)),
    ]
    assert all(Image.open(p).size == (256, 256) for p, _ in samples)
    with (out / "manifest.csv").open() as fh:
        first = next(csv.DictReader(fh))
    assert iou(one_box, [float(first[k]) for k in ("x0", "y0", "x1", "y1")]) >= 0.5
    train, val = (read_manifest(out / name, LABELS) for name in ("train.csv", "val.csv"))
    assert sorted(train + val) == sorted(samples) and len(val) == 1  # split by photo, ready to train on
    assert main(argv) == 2  # an existing manifest is not overwritten
    template = ["data", "faces", str(raw), "--out", str(tmp_path / "t"), "--policy", "template"]
    assert main(template) == 2  # its points come from --config: without them, one line says so
    big_only = ["data", "faces", str(raw / "people"), "--out", str(tmp_path / "big"), "--min-face", "200"]
    big_only += ["--policy", "ffhq"]
    assert main(big_only) == 0  # the 140 px faces are smaller than asked for
    assert json.loads((tmp_path / "big" / "faces_report.json").read_text())["no_face"] == ["one.jpg", "one.png"]


def test_faces_are_found_in_the_serving_image_without_torch(face_model: Path, tmp_path: Path) -> None:
    """The detector runs under ONNX Runtime: the same faces and probabilities with torch, timm, ... blocked."""
    two_face_scene()[0].save(tmp_path / "two.png")
    argv = ["predict", str(tmp_path / "two.png"), "--model", str(face_model), "--threads", "1"]
    assert main([*argv, "--out", str(tmp_path / "full.json")]) == 0
    code = f"""
        from deepfake_mlc.cli.main import main
        raise SystemExit(main({[*argv, "--out", str(tmp_path / "serving.json")]!r}))
    """
    result = run_without(missing_from_serving_image(), code)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads((tmp_path / "serving.json").read_text())
    assert len(served["predictions"][0]["faces"]) == 2
    assert served == json.loads((tmp_path / "full.json").read_text())


def test_photos_are_read_upright_and_16_bit_greys_kept(tmp_path: Path) -> None:
    """A phone's sideways JPEG with its EXIF orientation finds the face of the upright photo, where it is shown."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter counter-clockwise: show it turned clockwise
    astronaut().rotate(90, expand=True).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    faces = detector()(open_rgb(tmp_path / "phone.jpg"))
    assert len(faces) == 1 and iou(faces[0].box, ASTRONAUT_FACE) > 0.8
    grey = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    pixels = np.asarray(open_rgb(tmp_path / "grey16.png"))
    assert pixels.min() == 0 and pixels.max() == 255 and 120 < pixels.mean() < 135  # scaled, not clipped


def test_a_video_reader_stopped_early_stops_its_thread_and_closes_the_file() -> None:
    closed = []

    def frames(n: int, fail: bool) -> Iterator[int]:
        try:
            yield from range(n)
            if fail:
                raise CorruptVideoError("cannot decode video: broken")
        finally:
            closed.append(n)

    for n, fail in ((30, False), (9, False), (9, True)):  # 9: the queue of 8 full when the reader stops
        reader = read_ahead(frames(n, fail))
        assert next(reader) == 0
        time.sleep(0.2)
        stopper = threading.Thread(target=reader.close)
        stopper.start()
        stopper.join(5)
        assert not stopper.is_alive() and closed[-1] == n
    with pytest.raises(CorruptVideoError, match="broken"):
        list(read_ahead(frames(3, True)))


def test_duplicate_inputs_keep_their_order(face_model: Path, tmp_path: Path) -> None:
    two_face_scene()[0].save(tmp_path / "two.png")
    Image.fromarray(photos.chelsea()).save(tmp_path / "cat.jpg")
    inputs = [tmp_path / "two.png", tmp_path / "cat.jpg", tmp_path / "two.png"]
    code, report = run_predict(face_model, inputs, tmp_path / "p.json")
    assert code == 0 and [Path(e["path"]).name for e in report["predictions"]] == ["two.png", "cat.jpg", "two.png"]


def test_a_portrait_video_recorded_sideways_is_turned_as_it_is_shown(tmp_path: Path) -> None:
    """Phones store portrait video sideways with a rotation in the track header (tkhd matrix)."""
    head = astronaut().resize((320, 320))
    with av.open(str(tmp_path / "sideways.mp4"), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 320, "yuv420p"
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_image(head.transpose(Image.Transpose.ROTATE_90))))
        container.mux(stream.encode())
    raw = (tmp_path / "sideways.mp4").read_bytes()
    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    turn = struct.pack(">9I", 0, 0x10000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000)  # shown turned clockwise
    at = raw.rindex(identity)  # the track header's matrix (the movie header's comes first)
    (tmp_path / "sideways.mp4").write_bytes(raw[:at] + turn + raw[at + len(turn) :])
    frames = list(sample_frames(tmp_path / "sideways.mp4", fps=10))
    upright = detector()(head)[0].landmarks
    for _, frame in frames:
        landmarks = detector()(frame)[0].landmarks
        assert np.abs(np.array(landmarks) - np.array(upright)).max() < 4  # eyes above the mouth, where shown
