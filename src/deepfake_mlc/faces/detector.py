"""Faces and their five landmarks in an RGB image: facenet-pytorch's MTCNN, reproduced without torch.

The cascade is facenet's step for step (image pyramid → PNet proposals → RNet → ONet, the same thresholds,
non-maximum suppressions, box regressions and squaring), so its boxes are facenet's to within a fraction
of a pixel. The networks run under ONNX Runtime, from graphs built out of facenet's own weights
(:mod:`.mtcnn_graphs`, :mod:`.legacy_weights`). Resizing is facenet's 'area' interpolation (torch's
adaptive average pooling), computed exactly from one summed-area table that serves every pyramid level
and every patch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from deepfake_mlc.errors import DetectorUnavailable
from deepfake_mlc.faces import legacy_weights

if TYPE_CHECKING:
    import onnxruntime

PYRAMID_FACTOR = 0.709  # facenet's scale step between pyramid levels
CHUNK = 256  # patches per RNet/ONet run, so that a crowded image does not need all of them in memory at once
_CELL = 12  # PNet's window in pixels of a pyramid level
_STRIDE = 2  # PNet's step between windows (its one max pool)


@dataclass(frozen=True)
class Face:
    """One detected face."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels
    score: float  # detector confidence in [0, 1]
    landmarks: tuple[tuple[float, float], ...]  # 5 (x, y): the two eyes, nose tip, two mouth corners in facenet's order


class FaceDetector:
    """MTCNN with facenet-pytorch's defaults; ``threads`` caps ONNX Runtime's threads (its default: one a core).

    Construction fails fast with :class:`~deepfake_mlc.errors.DetectorUnavailable` when the weights are not
    installed; the networks are built on the first call and kept for the detector's life.
    """

    def __init__(
        self,
        min_face: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        threads: int | None = None,
    ) -> None:
        if min_face < 1:
            raise ValueError(f"min_face must be a positive number of pixels, not {min_face}")
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be three probabilities (PNet, RNet, ONet), not {thresholds}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.min_face = min_face
        self.thresholds = tuple(float(t) for t in thresholds)
        self.threads = threads
        self._weights_dir = legacy_weights.facenet_weights_dir()
        self._sessions: dict[str, onnxruntime.InferenceSession] | None = None
        self._lock = threading.Lock()

    def __call__(self, image: Image.Image) -> list[Face]:
        """The faces in an RGB image (other modes are converted), highest score first; ``[]`` when none."""
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        height, width = pixels.shape[:2]
        scales = _pyramid(height, width, self.min_face)
        if not scales:
            return []
        sessions = self._networks()
        table = _SummedArea(pixels)
        candidates = self._propose(sessions["pnet"], table, scales)
        if len(candidates):
            candidates = self._refine(sessions["rnet"], table, candidates)
        if not len(candidates):
            return []
        boxes, landmarks = self._output(sessions["onet"], table, candidates)
        order = np.argsort(-boxes[:, 4], kind="stable")
        return [
            Face(
                box=tuple(float(v) for v in boxes[i, :4]),
                score=float(boxes[i, 4]),
                landmarks=tuple((float(x), float(y)) for x, y in landmarks[i]),
            )
            for i in order
        ]

    def _networks(self) -> dict[str, onnxruntime.InferenceSession]:
        """The three ONNX Runtime sessions, built once from the weights (ONNX graphs made in memory)."""
        with self._lock:
            if self._sessions is None:
                self._sessions = _build_sessions(self._weights_dir, self.threads)
            return self._sessions

    def _propose(self, pnet: Any, table: _SummedArea, scales: list[float]) -> np.ndarray:
        """PNet over the pyramid: squared candidate boxes (n, 5) of x0, y0, x1, y1, score."""
        per_scale = []
        for scale in scales:
            level = table.resize_whole(int(table.height * scale + 1), int(table.width * scale + 1))
            prob, reg = pnet.run(["prob", "reg"], {"image": level})
            face = prob[0, 1]
            rows, cols = np.nonzero(face >= self.thresholds[0])
            if not rows.size:
                continue
            # a cell's window in the image, as facenet floors it (float32, like its tensors)
            cells = np.stack([cols, rows], axis=1).astype(np.float32)
            step = np.float32(scale)
            top_left = np.floor((_STRIDE * cells + 1) / step)
            bottom_right = np.floor((_STRIDE * cells + _CELL) / step)
            found = np.concatenate([top_left, bottom_right, face[rows, cols, None], reg[0][:, rows, cols].T], axis=1)
            per_scale.append(found[_nms(found[:, :4], found[:, 4], 0.5)])
        if not per_scale:
            return np.zeros((0, 5), np.float32)
        found = np.concatenate(per_scale)
        found = found[_nms(found[:, :4], found[:, 4], 0.7)]
        # PNet's corrections scale with the box's size measured without facenet's usual +1
        size = np.stack([found[:, 2] - found[:, 0], found[:, 3] - found[:, 1]] * 2, axis=1)
        boxes = np.concatenate([found[:, :4] + found[:, 5:9] * size, found[:, 4:5]], axis=1)
        return _square(boxes)

    def _refine(self, rnet: Any, table: _SummedArea, boxes: np.ndarray) -> np.ndarray:
        """RNet on 24×24 patches of the candidates: those it keeps, corrected and squared."""
        boxes, out = _run_on_patches(rnet, table, boxes, 24)
        score = out["prob"][:, 1]
        passed = score > self.thresholds[1]
        boxes = np.concatenate([boxes[passed, :4], score[passed, None]], axis=1)
        keep = _nms(boxes[:, :4], boxes[:, 4], 0.7)
        return _square(_regress(boxes[keep], out["reg"][passed][keep]))

    def _output(self, onet: Any, table: _SummedArea, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ONet on 48×48 patches: final boxes (n, 5) and landmarks (n, 5, 2) in image pixels."""
        boxes, out = _run_on_patches(onet, table, boxes, 48)
        score = out["prob"][:, 1]
        passed = score > self.thresholds[2]
        boxes = np.concatenate([boxes[passed, :4], score[passed, None]], axis=1)
        points = out["landmarks"][passed]
        # landmarks are fractions of the patch's box, which facenet sizes with +1 and shifts by -1
        width = boxes[:, 2:3] - boxes[:, 0:1] + 1
        height = boxes[:, 3:4] - boxes[:, 1:2] + 1
        xs = width * points[:, :5] + boxes[:, 0:1] - 1
        ys = height * points[:, 5:] + boxes[:, 1:2] - 1
        landmarks = np.stack([xs, ys], axis=2)
        boxes = _regress(boxes, out["reg"][passed])
        keep = _nms(boxes[:, :4], boxes[:, 4], 0.7, smaller=True)
        return boxes[keep], landmarks[keep]


def _build_sessions(weights_dir: Any, threads: int | None) -> dict[str, onnxruntime.InferenceSession]:
    try:
        import onnxruntime as ort

        from deepfake_mlc.faces import mtcnn_graphs
    except ImportError as err:
        raise DetectorUnavailable(f"the face detector needs {err.name}: pip install {err.name}") from None
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    sessions = {}
    for name in legacy_weights.NETWORKS:
        weights = legacy_weights.load_legacy_state_dict(weights_dir / f"{name}.pt")
        model = mtcnn_graphs.BUILDERS[name](weights)
        sessions[name] = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return sessions


def _pyramid(height: int, width: int, min_face: int) -> list[float]:
    """facenet's scales: the smallest face maps to PNet's 12-pixel window, then steps of 0.709 while ≥ 12 px."""
    scale = 12.0 / min_face
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale *= PYRAMID_FACTOR
        side *= PYRAMID_FACTOR
    return scales


class _SummedArea:
    """The image's summed-area table, one plane a channel: the sum over any pixel rectangle in four look-ups.

    torch's 'area' resize averages, for output row i of n over m input rows, rows floor(i·m/n) up to
    ceil((i+1)·m/n) (likewise columns): with the table that is exact, and one pass over the image serves
    the whole pyramid and every patch. Planes keep both running sums and the look-ups on contiguous rows.
    """

    def __init__(self, pixels: np.ndarray) -> None:
        self.height, self.width = pixels.shape[:2]
        dtype = np.int32 if self.height * self.width * 255 < 2**31 else np.int64
        self.table = np.zeros((3, self.height + 1, self.width + 1), dtype)
        inner = self.table[:, 1:, 1:]
        np.cumsum(pixels.transpose(2, 0, 1), axis=2, dtype=dtype, out=inner)
        np.cumsum(inner, axis=1, out=inner)

    def resize_whole(self, out_height: int, out_width: int) -> np.ndarray:
        """The image area-resized and normalised as facenet does: (1, 3, out_height, out_width) float32."""
        row0, row1 = _windows(np.zeros(1, np.int64), np.array([self.height]), out_height)
        col0, col1 = _windows(np.zeros(1, np.int64), np.array([self.width]), out_width)
        row0, row1, col0, col1 = row0[0], row1[0], col0[0], col1[0]
        rows = self.table[:, row1] - self.table[:, row0]  # separable: whole rows first, then columns
        sums = rows[:, :, col1] - rows[:, :, col0]
        count = (row1 - row0)[:, None] * (col1 - col0)[None, :]
        return _normalise(sums, count)[None]

    def resize(
        self, top: np.ndarray, left: np.ndarray, height: np.ndarray, width: np.ndarray, out_height: int, out_width: int
    ) -> np.ndarray:
        """Rectangles (n,) area-resized and normalised as facenet does: (n, 3, out_height, out_width) float32."""
        row0, row1 = _windows(top, height, out_height)
        col0, col1 = _windows(left, width, out_width)
        r0, r1 = row0[:, :, None], row1[:, :, None]
        c0, c1 = col0[:, None, :], col1[:, None, :]
        sums = self.table[:, r1, c1] - self.table[:, r0, c1]
        sums -= self.table[:, r1, c0]
        sums += self.table[:, r0, c0]
        return np.ascontiguousarray(_normalise(sums, (r1 - r0) * (c1 - c0)).transpose(1, 0, 2, 3))


def _normalise(sums: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Window sums to facenet's network input: the mean, then (x - 127.5) / 128, in float32 as its tensors."""
    values = sums.astype(np.float32)
    values /= count.astype(np.float32)
    values -= np.float32(127.5)
    values *= np.float32(0.0078125)
    return values


def _windows(start: np.ndarray, length: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """The input index ranges [first, stop) that each of ``out`` outputs averages, for n spans: (n, out) each."""
    i = np.arange(out, dtype=np.int64)
    length = length[:, None].astype(np.int64)
    first = start[:, None] + (i * length) // out
    stop = start[:, None] + ((i + 1) * length + out - 1) // out
    return first, stop


def _run_on_patches(session: Any, table: _SummedArea, boxes: np.ndarray, size: int) -> tuple[np.ndarray, dict]:
    """A net over the boxes' patches, cut as facenet cuts them; returns the boxes that had a patch and the outputs.

    facenet truncates the box, clips it to the image (no zero padding) and area-resizes what is left; a
    box entirely outside the image has no patch and is dropped.
    """
    corners = np.trunc(boxes[:, :4]).astype(np.int64)
    top = np.maximum(corners[:, 1], 1) - 1
    left = np.maximum(corners[:, 0], 1) - 1
    height = np.minimum(corners[:, 3], table.height) - top
    width = np.minimum(corners[:, 2], table.width) - left
    inside = (height > 0) & (width > 0)
    boxes, top, left, height, width = boxes[inside], top[inside], left[inside], height[inside], width[inside]
    outputs = {output.name: output.shape[1] for output in session.get_outputs()}
    parts: dict[str, list[np.ndarray]] = {name: [np.zeros((0, n), np.float32)] for name, n in outputs.items()}
    for chunk in _chunks(len(boxes)):
        patches = table.resize(top[chunk], left[chunk], height[chunk], width[chunk], size, size)
        for name, value in zip(outputs, session.run(list(outputs), {"image": patches}), strict=True):
            parts[name].append(value)
    return boxes, {name: np.concatenate(values) for name, values in parts.items()}


def _chunks(total: int) -> Iterator[slice]:
    for begin in range(0, total, CHUNK):
        yield slice(begin, min(begin + CHUNK, total))


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """RNet/ONet's box corrections: fractions of the box's size, which facenet counts with +1."""
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    size = np.stack([width, height, width, height], axis=1)
    return np.concatenate([boxes[:, :4] + reg * size, boxes[:, 4:5]], axis=1)


def _square(boxes: np.ndarray) -> np.ndarray:
    """facenet's ``rerec``: each box grown to a square of its longer side about the same centre."""
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    x0 = boxes[:, 0] + width * 0.5 - side * 0.5
    y0 = boxes[:, 1] + height * 0.5 - side * 0.5
    return np.stack([x0, y0, x0 + side, y0 + side, boxes[:, 4]], axis=1)


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, *, smaller: bool = False) -> np.ndarray:
    """Greedy non-maximum suppression, the two kinds facenet uses; returns the kept indices, best first.

    By default torchvision's: overlap is intersection over union of continuous boxes. ``smaller`` is
    facenet's own final pass: the intersection over the smaller box's area, sizes counted in whole pixels
    (+1), and among equal scores the later box first.
    """
    if not len(boxes):
        return np.zeros(0, np.int64)
    pad = np.float32(1.0 if smaller else 0.0)
    x0, y0, x1, y1 = (boxes[:, k] for k in range(4))
    area = (x1 - x0 + pad) * (y1 - y0 + pad)
    order = np.argsort(scores, kind="stable")[::-1] if smaller else np.argsort(-scores, kind="stable")
    keep = []
    with np.errstate(divide="ignore", invalid="ignore"):
        while order.size:
            best, rest = order[0], order[1:]
            keep.append(best)
            across = np.maximum(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + pad, 0)
            down = np.maximum(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + pad, 0)
            inter = across * down
            base = np.minimum(area[best], area[rest]) if smaller else area[best] + area[rest] - inter
            order = rest[~(inter / base > threshold)]
    return np.asarray(keep, dtype=np.int64)
