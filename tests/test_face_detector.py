"""The face detector: facenet-pytorch's MTCNN without torch, checked against facenet-pytorch itself.

facenet runs here (torch is allowed in tests) as the reference; the detector must match its weights bit
for bit, its networks to float rounding, and its boxes and landmarks to within a couple of pixels.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
from PIL import Image
from skimage import data

import deepfake_mlc.faces.detector as detector_module
from conftest import run_without
from deepfake_mlc.errors import DetectorUnavailable, WeightsError
from deepfake_mlc.faces import legacy_weights, mtcnn_graphs
from deepfake_mlc.faces.detector import Face, FaceDetector

ASTRONAUT_FACE = (181.1, 62.2, 267.7, 172.1)  # facenet-pytorch 2.5.3's box for skimage's astronaut
FACE_CROP = (160, 40, 290, 200)  # the astronaut's head, pasted into scenes (left, top, right, bottom)
TOLERANCE = 2.0  # pixels


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(threads=2)


@pytest.fixture(scope="module")
def facenet() -> MTCNN:
    torch.set_num_threads(2)
    return MTCNN(keep_all=True, device="cpu")


def facenet_faces(mtcnn: MTCNN, image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """facenet's boxes (n, 4), scores (n,) and landmarks (n, 5, 2), highest score first."""
    boxes, scores, points = mtcnn.detect(image, landmarks=True)
    if boxes is None:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
    boxes, scores, points = (np.asarray(np.asarray(a).tolist(), dtype=np.float64) for a in (boxes, scores, points))
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order], points[order]


def assert_like_facenet(ours: list[Face], mtcnn: MTCNN, image: Image.Image) -> None:
    boxes, scores, points = facenet_faces(mtcnn, image)
    assert len(ours) == len(boxes), f"facenet finds {len(boxes)} faces, the detector {len(ours)}"
    for face, box, score, landmarks in zip(ours, boxes, scores, points, strict=True):
        assert np.abs(np.array(face.box) - box).max() <= TOLERANCE, (face.box, box)
        assert np.abs(np.array(face.landmarks) - landmarks).max() <= TOLERANCE, (face.landmarks, landmarks)
        assert face.score == pytest.approx(score, abs=1e-3)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    across = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    down = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = across * down
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def scene(size: tuple[int, int], placements: list[tuple[int, int, float]]) -> tuple[Image.Image, list[tuple]]:
    """coffee() resized to ``size`` with the astronaut's head pasted at (x, y), scaled; and where its face lands."""
    canvas = Image.fromarray(data.coffee()).resize(size, Image.Resampling.BILINEAR)
    head = Image.fromarray(data.astronaut()).crop(FACE_CROP)
    expected = []
    for x, y, scale in placements:
        pasted = head.resize((round(head.width * scale), round(head.height * scale)), Image.Resampling.BILINEAR)
        canvas.paste(pasted, (x, y))
        fx, fy = pasted.width / head.width, pasted.height / head.height
        x0, y0, x1, y1 = ASTRONAUT_FACE
        left, top = FACE_CROP[:2]
        expected.append((x + (x0 - left) * fx, y + (y0 - top) * fy, x + (x1 - left) * fx, y + (y1 - top) * fy))
    return canvas, expected


def test_weights_equal_torch_load() -> None:
    folder = legacy_weights.facenet_weights_dir()
    for name in legacy_weights.NETWORKS:
        ours = legacy_weights.load_legacy_state_dict(folder / f"{name}.pt")
        reference = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        assert list(ours) == list(reference)
        for key, tensor in reference.items():
            expected = tensor.contiguous().numpy()
            assert ours[key].dtype == expected.dtype and ours[key].shape == expected.shape, key
            assert ours[key].tobytes() == expected.tobytes(), key


def test_reader_refuses_other_globals(tmp_path: Path) -> None:
    """A tampered file that names any other global is refused before anything runs."""

    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"conv1.weight": Payload()}, f, protocol=2)
    with pytest.raises(WeightsError, match=r"may not name (__builtin__|builtins)\.print"):
        legacy_weights.load_legacy_state_dict(path)


def test_graphs_match_facenet_networks() -> None:
    folder = legacy_weights.facenet_weights_dir()
    rng = np.random.default_rng(0)
    cases = [
        ("pnet", PNet, (2, 3, 37, 51), ["reg", "prob"]),  # an odd size: the ceil-mode pool's last window
        ("rnet", RNet, (3, 3, 24, 24), ["reg", "prob"]),
        ("onet", ONet, (3, 3, 48, 48), ["reg", "landmarks", "prob"]),
    ]
    for name, network, shape, names in cases:
        model = mtcnn_graphs.BUILDERS[name](legacy_weights.load_legacy_state_dict(folder / f"{name}.pt"))
        onnx.checker.check_model(onnx.load_from_string(model), full_check=True)
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        image = rng.uniform(-1, 1, shape).astype(np.float32)
        ours = session.run(names, {"image": image})
        with torch.no_grad():
            reference = network().eval()(torch.from_numpy(image))
        for output, ours_out, theirs in zip(names, ours, reference, strict=True):
            np.testing.assert_allclose(ours_out, theirs.numpy(), atol=1e-5, err_msg=f"{name} {output}")


def test_astronaut_like_facenet(detector: FaceDetector, facenet: MTCNN) -> None:
    image = Image.fromarray(data.astronaut())
    faces = detector(image)
    assert len(faces) == 1
    (face,) = faces
    assert np.abs(np.array(face.box) - ASTRONAUT_FACE).max() <= TOLERANCE
    assert face.score > 0.999
    assert len(face.landmarks) == 5 and all(len(point) == 2 for point in face.landmarks)
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # facenet's order
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert_like_facenet(faces, facenet, image)


def test_two_faces_in_a_scene(detector: FaceDetector, facenet: MTCNN) -> None:
    image, expected = scene((1024, 768), [(80, 120, 1.0), (560, 300, 1.6)])
    faces = detector(image)
    assert len(faces) == 2
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    for box in expected:
        assert max(iou(face.box, box) for face in faces) >= 0.5, (box, [face.box for face in faces])
    assert_like_facenet(faces, facenet, image)


def test_patches_in_chunks_change_nothing(detector: FaceDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    """RNet and ONet run on bounded chunks of patches; a tiny chunk gives the same faces."""
    image, _ = scene((800, 600), [(80, 120, 1.0), (420, 200, 1.4)])
    whole = detector(image)
    monkeypatch.setattr(detector_module, "CHUNK", 7)
    chunked = detector(image)
    assert len(chunked) == len(whole) == 2
    for a, b in zip(chunked, whole, strict=True):
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)


def test_other_image_modes(detector: FaceDetector) -> None:
    """Grayscale and RGBA images are converted; an image too small for a 20-pixel face has none."""
    astronaut = Image.fromarray(data.astronaut())
    assert len(detector(astronaut.convert("RGBA"))) == 1
    assert len(detector(astronaut.convert("L"))) == 1
    assert detector(Image.new("RGB", (19, 300))) == []


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_no_face_where_facenet_finds_none(detector: FaceDetector, facenet: MTCNN, name: str) -> None:
    image = Image.fromarray(getattr(data, name)())
    assert len(facenet_faces(facenet, image)[0]) == 0, f"facenet finds a face in {name}()"
    assert detector(image) == []


def test_runs_without_torch(tmp_path: Path) -> None:
    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    code = f"""
        import sys
        sys.modules["torch"] = None
        from PIL import Image
        from deepfake_mlc.faces.detector import FaceDetector
        faces = FaceDetector()(Image.open({str(path)!r}).convert("RGB"))
        assert len(faces) == 1, faces
        assert not any(name.split(".")[0] in ("torch", "torchvision") for name in sys.modules if sys.modules[name])
        print("ok", faces[0].box)
    """
    result = run_without(["torch", "torchvision"], code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


@pytest.mark.parametrize("package", ["no_such_package_for_the_test", "PIL"])
def test_missing_weights(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Not installed, or installed without the data folder: one line that says what to install."""
    monkeypatch.setattr(legacy_weights, "PACKAGE", package)
    with pytest.raises(DetectorUnavailable) as caught:
        FaceDetector()
    message = str(caught.value)
    assert "\n" not in message
    assert 'pip install "facenet-pytorch>=2.5.3,<2.6" --no-deps' in message


def test_speed(detector: FaceDetector) -> None:
    """Prints the time per call (run with -s to see it); nothing is asserted, machines differ."""
    for size in ((640, 480), (1920, 1080)):
        image, _ = scene(size, [(size[0] // 5, size[1] // 5, size[1] / 720)])
        detector(image)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            faces = detector(image)
            times.append(time.perf_counter() - start)
        print(f"face detector {size[0]}×{size[1]}: {1000 * min(times):.0f} ms a call, {len(faces)} face(s)")
