"""``deepfake-mlc data faces``: a folder of raw photos -> aligned face crops and a manifest to train on.

Crops are PNG (a lossy re-encoding would add compression traces the classifier could learn). A photo with
several faces gives its largest (the subject, as in Seq-DeepFake's one-face images) unless every face is
asked for; photos with no face, several faces or unreadable bytes are listed in the report, and nothing
stops at a bad file. Labels come from the raw photos' manifest when one is given; a photo it does not list
is left out (and listed), not taken for an original. Besides the manifest of
every crop, ``train.csv`` and ``val.csv`` split them by photo (the validation photos spread evenly), so that
training can start at once.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.progress import track

from deepfake_mlc.artifacts import replace_atomically, write_json_atomically
from deepfake_mlc.config.schema import FaceCropConfig
from deepfake_mlc.data.annotations import MANIFEST_COLUMNS
from deepfake_mlc.data.inputs import UNREADABLE, files_under, unreadable_reason
from deepfake_mlc.data.reading import evenly_spaced, open_rgb, read_rows
from deepfake_mlc.errors import DatasetError, InputNotFoundError, OutputExistsError
from deepfake_mlc.faces.cutter import MIN_FACE, FaceCutter

MANIFEST = "manifest.csv"
SPLIT_MANIFESTS = ("train.csv", "val.csv")
REPORT = "faces_report.json"


@dataclass
class CropReport:
    """What became of each photo: crops written, and the photos to look at."""

    policy: dict
    photos: int = 0
    crops: int = 0
    no_face: list[str] = field(default_factory=list)
    several_faces: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    unlabelled: list[str] = field(default_factory=list)  # with --labels-from: photos it does not list (skipped)


def crop_folder(
    source: Path,
    out: Path,
    policy: FaceCropConfig,
    labels_from: Path | None = None,
    every_face: bool = False,
    threads: int | None = None,
    val_share: float = 0.1,
    min_face: int = MIN_FACE,
) -> CropReport:
    """Cut the faces of every photo under ``source`` into ``out/images``, list them in ``out/manifest.csv``."""
    if not source.is_dir():
        raise InputNotFoundError(f"not a folder of photos: {source}")
    if (out / MANIFEST).exists():
        raise OutputExistsError(f"{out / MANIFEST} exists: choose another --out, or remove it to crop again")
    if policy.policy == "none":
        raise DatasetError("--policy none cuts no face: choose ffhq or template")
    labels = _labels(labels_from, source) if labels_from is not None else None
    photos = files_under(source)
    report = CropReport(policy=policy.model_dump(mode="json"), photos=len(photos))
    cutter = FaceCutter(policy, threads=threads, min_face=min_face)
    stems = [photo.with_suffix("") for photo in photos]
    rows = []
    for photo in track(photos, description=f"cutting faces of {len(photos)} photos", transient=True):
        name = photo.relative_to(source).as_posix()
        if labels is not None and name not in labels:  # unlabelled is not "original": leave it out, say so
            report.unlabelled.append(name)
            continue
        try:
            faces = cutter(open_rgb(photo))
        except UNREADABLE as err:
            report.unreadable[name] = unreadable_reason(err, photo)
            continue
        if not faces:
            report.no_face.append(name)
            continue
        if len(faces) > 1:
            report.several_faces[name] = len(faces)
            if not every_face:
                faces = [max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))]
        # a.jpg and a.png side by side keep their suffix apart: a_jpg.png, a_png.png
        stem = Path(name).with_suffix("")
        stem = (
            stem.with_name(f"{stem.name}_{photo.suffix.lstrip('.')}")
            if stems.count(photo.with_suffix("")) > 1
            else stem
        )
        for i, face in enumerate(faces):
            crop = Path("images") / (stem / f"face{i}.png" if every_face else stem.with_name(stem.name + ".png"))
            (out / crop).parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(out / crop, lambda tmp, image=face.image: image.save(tmp, "PNG"))
            label = labels[name] if labels is not None else ""
            rows.append([crop.as_posix(), label, name, *(f"{v:.1f}" for v in face.box), face.score])
    report.crops = len(rows)
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted({row[2] for row in rows})
    val_photos = max(1, round(len(sources) * val_share)) if val_share > 0 and len(sources) > 1 else 0
    val = set(evenly_spaced(sources, val_photos))
    for name, part in zip(
        SPLIT_MANIFESTS, ([r for r in rows if r[2] not in val], [r for r in rows if r[2] in val]), strict=True
    ):
        replace_atomically(out / name, lambda tmp, part=part: _write_manifest(tmp, part))
    write_json_atomically(out / REPORT, asdict(report))
    replace_atomically(out / MANIFEST, lambda tmp: _write_manifest(tmp, rows))  # last: its presence means done
    return report


def _labels(manifest: Path, source: Path) -> dict[str, str]:
    """The raw photos' labels by their path below ``source`` (the manifest's paths are relative to itself)."""
    if not manifest.is_file():
        raise InputNotFoundError(f"manifest not found: {manifest}")
    found = {}
    for _, row in read_rows(manifest, MANIFEST_COLUMNS):
        path = (manifest.parent / row["path"]).resolve()
        if path.is_relative_to(source.resolve()):
            found[path.relative_to(source.resolve()).as_posix()] = row["labels"] or ""
    return found


def _write_manifest(path: Path, rows: Sequence[list]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*MANIFEST_COLUMNS, "source", "x0", "y0", "x1", "y1", "score"])
        writer.writerows(rows)
