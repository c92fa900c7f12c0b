"""Heatmaps for people: scaled to [0, 1], carried from the model's input back onto the photo, drawn over it.

numpy and PIL only: the serving image (no torch, matplotlib or OpenCV) draws the maps ``predict`` is given.
Maps are resampled by PIL with pixel centres at half-integers, the convention of the face crop's affine
(:func:`~deepfake_mlc.faces.align.crop_to_image`), so a map lands on the photo where its crop was cut.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from deepfake_mlc.artifacts import replace_atomically
from deepfake_mlc.faces.cutter import FaceImage

# matplotlib's 'inferno' at 17 evenly spaced points: perceptually uniform, lightness rising with the value (so it
# reads in grey too); linear interpolation between them stays within 7/255 of the full map
INFERNO = (
    *("000004", "0b0724", "210c4a", "3d0965", "57106e", "71196e", "8a226a", "a32c61", "bc3754"),
    *("d24644", "e45a31", "f1731d", "f98e09", "fcac11", "f9cb35", "f2ea69", "fcffa4"),
)
PANEL_TILE = 192  # height of each picture in a panel, in pixels
PANEL_COLUMNS = 4
OPACITY = (0.25, 0.75)  # the map's opacity at value 0 and 1: cold parts dimmed, hot parts glow, the photo shows


def _colour_table(anchors: Sequence[str]) -> np.ndarray:
    """256×3 uint8: ``anchors`` (hex RGB, evenly spaced over [0, 1]) linearly interpolated."""
    rgb = np.array([[int(a[i : i + 2], 16) for i in (0, 2, 4)] for a in anchors], dtype=np.float64)
    at, steps = np.linspace(0, 1, len(anchors)), np.linspace(0, 1, 256)
    return np.round(np.stack([np.interp(steps, at, rgb[:, c]) for c in range(3)], axis=1)).astype(np.uint8)


Shown = Literal["fired", "all"]  # the labels drawn: those over threshold, or every one
PNG_SPEED = 1  # zlib level: PIL's default (6) made PNG encoding 80 % of predict --explain's time

COLOURS = _colour_table(INFERNO)


def normalise(maps: np.ndarray) -> np.ndarray:
    """[L, h, w] any float -> float32 in [0, 1]: negative parts cut (ReLU), each map divided by its max (an
    all-zero map stays zero). Negative evidence is evidence *against* a label: it is not where it is."""
    maps = np.maximum(np.asarray(maps, dtype=np.float32), 0)
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def combine(faces_maps: Iterable[np.ndarray]) -> np.ndarray:
    """Several faces' [L, H, W] maps of one photo as one: the element-wise max (faces seldom overlap; where
    they do, the stronger evidence shows). A running maximum: a group photo costs two maps of memory, not one
    per face."""
    combined = None
    for maps in faces_maps:
        maps = np.asarray(maps, dtype=np.float32)
        combined = maps.copy() if combined is None else np.maximum(combined, maps, out=combined)
    if combined is None:
        raise ValueError("no maps to combine")
    return combined


def faces_on_photo(
    photo_size: tuple[int, int], faces: Sequence[FaceImage], maps: np.ndarray, crop_size: int | None
) -> np.ndarray:
    """The ``[F, L, h, w]`` maps of a photo's faces, each normalised and carried back through its crop onto the
    photo (:func:`to_photo`), combined (:func:`combine`): what ``explain`` and ``predict --explain`` draw."""
    return combine(
        to_photo(normalise(m), photo_size, face.to_photo, crop_size) for face, m in zip(faces, maps, strict=True)
    )


def _resize(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One float map to ``size`` (W, H), bilinear."""
    image = Image.fromarray(np.ascontiguousarray(grid, dtype=np.float32))
    return np.asarray(image if image.size == size else image.resize(size, Image.Resampling.BILINEAR))


def to_photo(
    maps: np.ndarray, photo_size: tuple[int, int], to_photo: np.ndarray | None, crop_size: int | None
) -> np.ndarray:
    """[L, h, w] maps on the model-input grid -> [L, H, W] float32 on the photo's pixel grid (photo_size = (W, H)).

    ``to_photo`` None: the model saw the whole photo resized, so the maps are resized back to (W, H).
    Otherwise the maps are resized to the ``crop_size`` square the face was cut as, then placed on the photo
    with ``to_photo`` (the 2×3 affine from crop pixels to photo pixels; each photo pixel samples the crop at
    the inverse map). Photo pixels outside the crop are 0.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if to_photo is None:
        return np.stack([_resize(m, photo_size) for m in maps]) if len(maps) else _empty(photo_size)
    if crop_size is None:
        raise ValueError("a face crop's maps need the crop's size")
    inverse = np.linalg.inv(np.vstack([np.asarray(to_photo, dtype=np.float64), [0.0, 0.0, 1.0]]))[:2]
    placed = [
        Image.fromarray(_resize(m, (crop_size, crop_size))).transform(
            photo_size, Image.Transform.AFFINE, tuple(inverse.ravel()), Image.Resampling.BILINEAR
        )
        for m in maps
    ]
    return np.stack([np.asarray(p) for p in placed]) if placed else _empty(photo_size)


def _empty(photo_size: tuple[int, int]) -> np.ndarray:
    return np.zeros((0, photo_size[1], photo_size[0]), dtype=np.float32)


def overlay(photo: Image.Image, heatmap: np.ndarray) -> Image.Image:
    """``heatmap`` ([H, W] in [0, 1]) colour-mapped and blended over ``photo``, more opaque where it is hotter."""
    heat = np.clip(heatmap, 0, 1)[..., None]
    colours = COLOURS[np.round(heat[..., 0] * 255).astype(np.uint8)].astype(np.float32)
    alpha = OPACITY[0] + (OPACITY[1] - OPACITY[0]) * heat
    pixels = np.asarray(photo.convert("RGB"), dtype=np.float32)
    return Image.fromarray(np.round(pixels * (1 - alpha) + colours * alpha).astype(np.uint8))


def _font(height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(12, height))


def _caption(image: Image.Image, text: str) -> Image.Image:
    """``image`` with ``text`` in its top-left corner, white on a dark box, sized to the picture."""
    image = image.copy()
    draw = ImageDraw.Draw(image)
    font = _font(round(min(image.size) / 18))
    margin = max(2, round(font.size / 4)) if isinstance(font, ImageFont.FreeTypeFont) else 2
    left, top, right, bottom = draw.textbbox((2 * margin, 2 * margin), text, font=font)
    draw.rectangle((left - margin, top - margin, right + margin, bottom + margin), fill=(0, 0, 0))
    draw.text((2 * margin, 2 * margin), text, fill=(255, 255, 255), font=font)
    return image


def _panel(photo: Image.Image, tiles: Sequence[tuple[Image.Image, str]], empty: str) -> Image.Image:
    """The photo, then one small picture per label, each captioned below, in rows of :data:`PANEL_COLUMNS`."""
    width = max(1, round(photo.width * PANEL_TILE / photo.height))
    captioned = [(photo, "photo" if tiles else f"photo: {empty}"), *tiles]
    font = _font(15)
    line = font.getbbox("Ag")[3] + 8
    columns = min(len(captioned), PANEL_COLUMNS)
    rows = -(-len(captioned) // columns)
    gap = 8
    cell_w = max(width, *(round(font.getlength(text)) for _, text in captioned)) + gap
    cell_h = PANEL_TILE + line + gap
    panel = Image.new("RGB", (columns * cell_w + gap, rows * cell_h + gap), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for i, (picture, text) in enumerate(captioned):
        x, y = gap + (i % columns) * cell_w, gap + (i // columns) * cell_h
        panel.paste(picture.resize((width, PANEL_TILE), Image.Resampling.LANCZOS), (x, y))
        draw.text((x, y + PANEL_TILE + 4), text, fill=(0, 0, 0), font=font)
    return panel


def _file_name(label: str) -> str:
    return re.sub(r"[^\w.-]+", "_", label)


def write_explanation(
    out_dir: Path,
    stem: str,
    photo: Image.Image,
    heatmaps: np.ndarray,
    label_names: Sequence[str],
    probabilities: Sequence[float],
    shown: Sequence[int],
) -> list[Path]:
    """Draw a photo's maps: one overlay per shown label, a panel of all, and the maps themselves.

    ``heatmaps``: [L, H, W] in [0, 1] on the photo's grid. Writes ``<stem>_<label>.png`` per shown label index
    (the map blended over the photo, the label and its probability in a corner), ``<stem>_panel.png`` (the
    photo and a small overlay per shown label, "no label over threshold" when none is shown) and
    ``<stem>.npz`` (``heatmaps``: float32 [L, H, W], every label; ``labels``: their names, same order).
    Returns the paths written.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if heatmaps.shape != (len(label_names), photo.height, photo.width):
        raise ValueError(
            f"heatmaps of shape {heatmaps.shape} for {len(label_names)} labels on a {photo.width}×{photo.height} photo"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    photo = photo.convert("RGB")
    written, tiles = [], []
    for i in shown:
        text = f"{label_names[i]} {probabilities[i]:.2f}"
        drawn = overlay(photo, heatmaps[i])
        path = out_dir / f"{stem}_{_file_name(label_names[i])}.png"
        _save_png(_caption(drawn, text), path)
        written.append(path)
        tiles.append((drawn, text))
    panel = out_dir / f"{stem}_panel.png"
    _save_png(_panel(photo, tiles, "no label over threshold"), panel)
    maps = out_dir / f"{stem}.npz"
    labels = np.asarray(label_names, dtype=str)
    replace_atomically(maps, lambda tmp: _save_npz(tmp, heatmaps=heatmaps, labels=labels))
    return [*written, panel, maps]


def _save_png(picture: Image.Image, path: Path) -> None:
    """Atomically: an interrupted run leaves the previous file or none, never half a picture."""
    replace_atomically(path, lambda tmp: picture.save(tmp, "PNG", compress_level=PNG_SPEED))


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with path.open("wb") as fh:  # a file object: numpy would append ".npz" to a temporary file's name
        np.savez_compressed(fh, **arrays)
