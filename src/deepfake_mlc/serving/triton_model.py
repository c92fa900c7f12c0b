"""The model Triton's Python backend runs for ``deepfake-mlc serve``: our runners behind KServe v2.

Triton batches concurrent requests (dynamic batching) and hands them over together; each request carries
either preprocessed tensors (``image``) or an encoded photo (``image_bytes``), which is decoded, cut to its
largest face by the model's crop policy and preprocessed here. Every request is answered on its own: a bad
one (undecodable, empty, too large, no face, not finite) gets a 400 with a one-line reason, and the others
of its batch are still run, together, in one call of the runner. Triton imports this module inside its
Python-backend stub process, where ``triton_python_backend_utils`` exists; nothing else imports it.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.data.reading import open_rgb
from deepfake_mlc.errors import CorruptImageError
from deepfake_mlc.faces.cutter import FaceCutter, face_crop_for
from deepfake_mlc.runtime import open_runner

MAX_IMAGE_BYTES = 32 * 2**20  # an encoded photo larger than this is refused before decoding


class BadRequest(ValueError):
    """A request that cannot be answered; its message goes back to the client with a 400."""


def _parameters(model_config: dict[str, Any]) -> dict[str, str]:
    return {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}


def _largest(faces: list) -> Any:
    return max(faces, key=lambda face: (face.box[2] - face.box[0]) * (face.box[3] - face.box[1]))


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize``, ``execute`` (a list of requests), ``finalize``."""

    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils  # exists only inside Triton's stub

        if int(np.__version__.split(".")[0]) >= 2:  # the stub's tensor I/O misreads numpy 2 arrays: refuse to load
            raise RuntimeError(f"Triton's Python backend needs numpy 1.x here, not {np.__version__} (see server.py)")
        self.pb = pb_utils
        parameters = _parameters(json.loads(args["model_config"]))
        threads = int(parameters["threads"]) if parameters.get("threads") else None
        self.runner = open_runner(parameters["model_path"], parameters["runtime"], threads=threads)
        info = self.runner.info
        self.preprocessing = Preprocessing.of(info.preprocessing)
        self.size = info.preprocessing.image_size
        crop, _ = face_crop_for(info.preprocessing.face_crop, "auto")
        self.cutter = FaceCutter(crop, threads=threads, min_face=int(parameters.get("min_face", "40")))

    def _tensors(self, request: Any) -> tuple[np.ndarray, np.ndarray]:
        """The request's preprocessed images ``[n, 3, S, S]`` and its face counts ``[n, 1]``."""
        image = self.pb.get_input_tensor_by_name(request, "image")
        encoded = self.pb.get_input_tensor_by_name(request, "image_bytes")
        if (image is None) == (encoded is None):
            raise BadRequest("a request carries one input: 'image' (preprocessed tensors) or 'image_bytes'")
        if image is not None:
            images = image.as_numpy()
            if not np.isfinite(images).all():
                raise BadRequest("'image' holds NaN or infinite values")
            return images, np.ones((len(images), 1), np.int32)
        crops, counts = [], []
        for index, blob in enumerate(encoded.as_numpy().reshape(-1)):
            crop, faces = self._decode(bytes(blob), f"image_bytes[{index}]")
            crops.append(crop)
            counts.append(faces)
        return np.stack(crops), np.asarray(counts, np.int32).reshape(-1, 1)

    def _decode(self, data: bytes, name: str) -> tuple[np.ndarray, int]:
        """One encoded photo: its largest face, preprocessed, and how many faces it has."""
        if not data:
            raise BadRequest(f"{name} is empty")
        if len(data) > MAX_IMAGE_BYTES:
            raise BadRequest(f"{name} is {len(data) / 2**20:.0f} MiB, more than {MAX_IMAGE_BYTES // 2**20} MiB")
        try:
            photo = open_rgb(io.BytesIO(data), name=name)
        except CorruptImageError as err:
            raise BadRequest(str(err)) from None
        faces = self.cutter(photo)
        if not faces:
            raise BadRequest(f"{name}: no face found (a {photo.width}×{photo.height} photo)")
        return self.preprocessing(_largest(faces).image), len(faces)

    def execute(self, requests: list[Any]) -> list[Any]:
        answers: list[Any] = [None] * len(requests)
        ready: list[tuple[int, np.ndarray, np.ndarray]] = []
        for index, request in enumerate(requests):
            try:
                ready.append((index, *self._tensors(request)))
            except BadRequest as err:
                error = self.pb.TritonError(" ".join(str(err).split()), self.pb.TritonError.INVALID_ARG)
                answers[index] = self.pb.InferenceResponse(error=error)
        if ready:
            probabilities = self.runner(np.concatenate([images for _, images, _ in ready]).astype(np.float32))
            start = 0
            for index, images, faces in ready:
                outputs = [
                    self.pb.Tensor("probabilities", probabilities[start : start + len(images)].astype(np.float32)),
                    self.pb.Tensor("faces", faces),
                ]
                answers[index] = self.pb.InferenceResponse(outputs)
                start += len(images)
        return answers
