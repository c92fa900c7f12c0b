"""A photo in, the images a model should see out: each face found, cut as the model's crop policy says.

With no policy (``none``, or faces switched off) the whole photo is the one "face": the model then sees
what it saw before faces existed, and a caller handles both cases alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from deepfake_mlc.config.schema import FaceCropConfig
from deepfake_mlc.faces.align import crop_to_image, cut_face
from deepfake_mlc.faces.detector import FaceDetector

Box = tuple[float, float, float, float]
# Smallest face looked for, in pixels. MTCNN's own default is 20, but a 20 px face enlarged to a 224 px model
# input keeps few manipulation traces, and halving the smallest size halves the search's speed.
MIN_FACE = 40


@dataclass(frozen=True)
class FaceImage:
    """One face of a photo: where it is in the photo's pixels, the detector's confidence, and its crop.

    ``score`` is ``None`` for the whole photo taken as it is (no detection ran). ``to_photo`` is the 2×3
    affine map from the crop's pixels to the photo's (``None`` for the whole photo, only resized): what
    brings anything computed on the crop, a heatmap say, back onto the photo.
    """

    box: Box
    score: float | None
    image: Image.Image
    to_photo: np.ndarray | None = None


class FaceCutter:
    """Finds and cuts faces with one detector, kept for every photo and frame (its networks load once)."""

    def __init__(self, policy: FaceCropConfig | None, threads: int | None = None, min_face: int = MIN_FACE) -> None:
        self.policy = policy if policy is not None and policy.policy != "none" else None
        self.detector = FaceDetector(min_face=min_face, threads=threads) if self.policy is not None else None

    def __call__(self, image: Image.Image) -> list[FaceImage]:
        """The faces of ``image`` by score, highest first; ``[]`` when there is none."""
        if self.policy is None or self.detector is None:
            return [FaceImage((0.0, 0.0, float(image.width), float(image.height)), None, image)]
        return [
            FaceImage(
                face.box,
                face.score,
                cut_face(image, self.policy, face.landmarks),
                crop_to_image(self.policy, face.landmarks),
            )
            for face in self.detector(image)
        ]


def face_crop_for(trained: FaceCropConfig, faces: str) -> tuple[FaceCropConfig | None, str | None]:
    """The crop ``--faces`` (auto, on, off) asks for, and a note to show: the model's own crop (auto), FFHQ's for
    a model trained on whole images (on; the note says so), or none (the whole photo, resized)."""
    if faces == "off" or (faces == "auto" and trained.policy == "none"):
        return None, None
    if trained.policy == "none":
        return (
            FaceCropConfig(),
            "note: the model was trained on whole images (face_crop: none); cutting faces with the ffhq policy",
        )
    return trained, None
