"""Cutting a detected face out of a photo exactly as a model's training faces were cut (its crop policy).

Every policy is a similarity transform (rotation, uniform scale, shift) from the five landmarks, so a face
turned in the picture plane comes out upright and the same. ``ffhq`` follows FFHQ's alignment script
(eye centres and mouth corners give an oriented square; CelebA-HQ, and so Seq-DeepFake, was aligned
alike), ``template`` fits the landmarks to fixed points in the least-squares sense (Umeyama, 1991).
Pixels the square takes from outside the photo are mirrored in, as FFHQ pads, not left black.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from deepfake_mlc.config.schema import FaceCropConfig

RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
Landmarks = Sequence[tuple[float, float]]  # eyes, nose tip, mouth corners: the detector's five points


def crop_to_image(policy: FaceCropConfig, landmarks: Landmarks) -> np.ndarray:
    """The 2×3 affine map from crop pixels ``(u, v, 1)`` to image pixels for the face with ``landmarks``."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks (x, y), got an array of shape {points.shape}")
    if policy.policy == "ffhq":
        return _ffhq(points, policy)
    if policy.policy == "template":
        assert policy.template is not None  # the config validator requires it
        target = np.asarray(policy.template, dtype=np.float64) * policy.size
        return _umeyama(target, points, centre=np.full(2, policy.size / 2), scale=policy.scale)
    raise ValueError(f"face crop policy {policy.policy!r} cuts no face out")


def _ffhq(points: np.ndarray, policy: FaceCropConfig) -> np.ndarray:
    """FFHQ's oriented square: x along the eyes (tilted by the eye-to-mouth line), sized by the larger of
    twice the eye distance and 1.8 times the eye-to-mouth distance, centred a tenth of the way to the mouth."""
    eye_avg = (points[0] + points[1]) / 2
    eye_to_eye = points[1] - points[0]
    eye_to_mouth = (points[3] + points[4]) / 2 - eye_avg
    x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])  # plus eye_to_mouth turned 90° back
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) * policy.scale / np.hypot(*x)
    y = np.array([-x[1], x[0]])
    top_left = eye_avg + eye_to_mouth * 0.1 - x - y
    return np.column_stack([2 * x / policy.size, 2 * y / policy.size, top_left])


def _umeyama(target: np.ndarray, points: np.ndarray, centre: np.ndarray, scale: float) -> np.ndarray:
    """The similarity taking ``target`` (crop pixels) closest to ``points`` (image pixels), zoomed out by ``scale``
    about the crop's ``centre``."""
    mu_t, mu_p = target.mean(0), points.mean(0)
    t, p = target - mu_t, points - mu_p
    u, s, vt = np.linalg.svd(p.T @ t / len(t))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    a = rotation * (np.trace(np.diag(s) @ d) / t.var(0).sum()) * scale
    return np.column_stack([a, mu_p - a @ (mu_t + (centre - mu_t) * (1 - 1 / scale))])


def cut_face(image: Image.Image, policy: FaceCropConfig, landmarks: Landmarks) -> Image.Image:
    """The ``policy.size`` square crop of the face with ``landmarks``, upright, in the policy's interpolation.

    A face far larger than the crop is first shrunk by whole factors with a box filter (FFHQ's script does
    too) so that the final resampling does not alias.
    """
    matrix = crop_to_image(policy, landmarks)
    pixels_per_crop_pixel = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    shrink = int(np.floor(pixels_per_crop_pixel / 2))
    if shrink > 1:
        image = image.reduce(shrink)
        matrix = matrix / shrink
    image, offset = _mirror_pad(image, matrix, policy.size)
    matrix = matrix.copy()
    matrix[:, 2] += offset
    return image.transform(
        (policy.size, policy.size), Image.Transform.AFFINE, tuple(matrix.ravel()), RESAMPLE[policy.interpolation]
    )


def _mirror_pad(image: Image.Image, matrix: np.ndarray, size: int) -> tuple[Image.Image, int]:
    """``image`` mirrored outwards as far as the crop reaches beyond it, and the shift of its origin."""
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
    reach = corners @ matrix[:, :2].T + matrix[:, 2]
    width, height = image.size
    pad = int(np.ceil(max(0.0, -reach.min(), reach[:, 0].max() - width, reach[:, 1].max() - height))) + 2
    pad = min(pad, width - 1, height - 1)  # reflect cannot pad past the far edge of a tiny image
    if pad <= 2:
        return image, 0
    pixels = np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    return Image.fromarray(pixels), pad
