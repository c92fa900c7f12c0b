"""``deepfake-mlc data synth``, ``data stats`` and ``data faces``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table

from deepfake_mlc.cli.options import add_overrides, positive
from deepfake_mlc.config import Config, load_config
from deepfake_mlc.config.schema import SPLITS
from deepfake_mlc.data.annotations import annotation_path, read_annotations
from deepfake_mlc.data.labels import SUBSET_DIRS, SUBSET_LABELS
from deepfake_mlc.data.stats import LabelStats, label_stats
from deepfake_mlc.errors import DatasetError
from deepfake_mlc.faces.cutter import MIN_FACE

if TYPE_CHECKING:
    from deepfake_mlc.data.base import MultiLabelImageDataset

SYNTH_FLAGS = {  # command-line flag -> config key it overrides
    "seed": "seed",
    "size": "image_size",
    "prior": "prior",
    "train": "splits.train",
    "val": "splits.val",
    "test": "splits.test",
    "workers": "workers",
    "jpeg_quality": "jpeg_quality",
    "masks": "masks",
}


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="generate the embedded data set, inspect any data set")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = sub.add_parser(
        "synth",
        help="write the synthetic stacked-manipulation data set in the Seq-DeepFake layout",
        description="Procedurally drawn faces with 0-5 stacked manipulations per image, written as "
        "ROOT/facial_components and ROOT/facial_attributes exactly like Seq-DeepFake.",
    )
    synth.add_argument("--out", type=Path, required=True, help="output root (the folder of both subsets)")
    synth.add_argument("--config", type=Path, help="YAML generator config (e.g. configs/synth/correlated.yaml)")
    add_overrides(synth, "splits.train=2000")
    synth.add_argument("--subsets", nargs="+", choices=sorted(SUBSET_DIRS), help="subsets to write")
    synth.add_argument("--seed", type=int)
    synth.add_argument("--size", type=int, help="image side in pixels")
    synth.add_argument("--prior", choices=["uniform", "correlated"], help="label prior")
    synth.add_argument("--train", type=int, help="train images per subset")
    synth.add_argument("--val", type=int, help="val images per subset")
    synth.add_argument("--test", type=int, help="test images per subset")
    synth.add_argument("--workers", type=int, help="worker processes (0: in-process)")
    synth.add_argument("--jpeg-quality", type=int)
    synth.add_argument(
        "--masks",
        action="store_true",
        default=None,
        help="also write each image's ground-truth mask: a PNG under <subset>/masks/ (bit i where label i's "
        "manipulation changed the pixel), named in a mask_path column of the CSVs",
    )
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(func=run_synth)

    stats = sub.add_parser(
        "stats",
        help="per-label counts, sequence lengths and label co-occurrence of a data set",
        description="Reads a Seq-DeepFake root (real or synthetic), a run config, or a manifest.",
    )
    source = stats.add_mutually_exclusive_group(required=True)
    source.add_argument("root", nargs="?", type=Path, help="Seq-DeepFake root folder")
    source.add_argument("--config", type=Path, help="a run config: its data section is read")
    source.add_argument("--manifest", type=Path, help="a manifest CSV (with --labels)")
    stats.add_argument("--labels", help="comma-separated label names of --manifest")
    add_overrides(stats, "data.root=DIR")
    stats.add_argument("--subset", choices=sorted(SUBSET_DIRS), help="only this subset")
    stats.add_argument("--split", choices=SPLITS, help="only this split")
    stats.add_argument("--json", type=Path, help="also write the statistics as JSON")
    stats.set_defaults(func=run_stats)

    faces = sub.add_parser(
        "faces",
        help="cut the aligned face of every photo of a folder into a folder + manifest to train on",
        description="Finds each photo's faces (MTCNN), cuts them as --policy says (ffhq: Seq-DeepFake's "
        "alignment) into OUT/images as PNG, and writes OUT/manifest.csv (path, labels, source photo, box, score) "
        "and OUT/faces_report.json (photos with no face, several faces, unreadable).",
    )
    faces.add_argument("source", type=Path, metavar="IN_DIR", help="folder of photos (searched recursively)")
    faces.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    faces.add_argument(
        "--policy",
        choices=("ffhq", "template"),
        help="crop policy (default: ffhq, or --config's); template takes its points from --config",
    )
    faces.add_argument(
        "--config", type=Path, help="take the crop policy from this run config's data.face_crop (e.g. a template)"
    )
    faces.add_argument("--size", type=int, help="crop side in pixels (default: 256)")
    faces.add_argument("--scale", type=float, help="above 1: more context around the face (default: 1)")
    faces.add_argument(
        "--labels-from", type=Path, metavar="CSV", help="manifest of the photos (path, labels): the crops keep them"
    )
    faces.add_argument(
        "--every-face", action="store_true", help="a crop for every face of a photo (default: its largest face)"
    )
    faces.add_argument(
        "--val-share", type=float, default=0.1, metavar="F", help="share of the photos in val.csv (default: 0.1)"
    )
    faces.add_argument(
        "--min-face",
        type=positive(),
        default=MIN_FACE,
        metavar="PX",
        help=f"smallest face looked for (default: {MIN_FACE})",
    )
    faces.add_argument("--threads", type=positive(), help="CPU threads of the detector")
    faces.set_defaults(func=run_faces)


def run_synth(args: argparse.Namespace) -> int:
    from deepfake_mlc.data.synth import SynthConfig, generate

    overrides = list(args.overrides)
    for flag, key in SYNTH_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.subsets:
        overrides.append(f"subsets=[{', '.join(args.subsets)}]")
    cfg = load_config(SynthConfig, args.config, overrides)
    summary = generate(cfg, args.out, progress=not args.no_progress)
    console = Console()
    console.print(
        f"wrote {summary.total_images} images to {args.out.resolve()} "
        f"in {summary.seconds:.1f} s ({summary.images_per_second:.0f} images/s)"
    )
    for subset in cfg.subsets:
        for split in SPLITS:
            _print_stats(console, f"{subset}/{split}", _seqdeepfake_stats(args.out, subset, split))
    return 0


def _seqdeepfake_stats(root: Path, subset: str, split: str) -> LabelStats:
    """From the annotation CSV alone: no torch to import (it would cost seconds of a one-minute job)."""
    samples = read_annotations(root.expanduser().resolve(), subset, split)
    return label_stats(np.asarray([target for _, target in samples]), SUBSET_LABELS[subset])


def _datasets(args: argparse.Namespace) -> list[tuple[str, MultiLabelImageDataset]]:
    """The (name, data set) pairs that ``data stats`` was asked about."""
    from deepfake_mlc.data.manifest import ManifestDataset
    from deepfake_mlc.data.seqdeepfake import SeqDeepFake

    if args.manifest is not None:
        if not args.labels:
            raise DatasetError("--manifest needs --labels (comma-separated label names)")
        labels = [name.strip() for name in args.labels.split(",") if name.strip()]
        return [(str(args.manifest), ManifestDataset(args.manifest, labels))]
    if args.config is not None:
        data = load_config(Config, args.config, args.overrides).data
        splits = [args.split] if args.split else list(SPLITS)
        if data.format == "manifest":
            assert data.manifests is not None and data.labels is not None
            return [
                (split, ManifestDataset(getattr(data.manifests, split), data.labels))
                for split in splits
                if getattr(data.manifests, split) is not None
            ]
        assert data.root is not None
        root, subsets = data.root, [args.subset or data.subset]
    else:
        root = args.root
        subsets = [args.subset] if args.subset else [s for s in SUBSET_DIRS if (root / SUBSET_DIRS[s]).is_dir()]
        splits = [args.split] if args.split else list(SPLITS)
        if not subsets:
            raise DatasetError(f"no Seq-DeepFake subset under {root} (expected {' or '.join(SUBSET_DIRS.values())})")
    found = [
        (f"{subset}/{split}", SeqDeepFake(root, subset, split))
        for subset in subsets
        for split in splits
        if args.split or annotation_path(root, subset, split).is_file()
    ]
    if not found:
        raise DatasetError(f"no annotation CSV under {root}")
    return found


def run_stats(args: argparse.Namespace) -> int:
    console = Console()
    report = {}
    for name, dataset in _datasets(args):
        stats = label_stats(dataset.targets.numpy(), dataset.label_names)
        _print_stats(console, name, stats)
        report[name] = {
            "num_images": stats.num_images,
            "labels": list(stats.label_names),
            "counts": stats.counts.tolist(),
            "length_histogram": stats.length_histogram.tolist(),
            "cooccurrence": stats.cooccurrence.tolist(),
        }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        console.print(f"statistics written to {args.json}")
    return 0


def _print_stats(console: Console, name: str, stats: LabelStats) -> None:
    n = max(stats.num_images, 1)
    labels = Table(title=f"{name}: {stats.num_images} images", title_justify="left")
    labels.add_column("label")
    labels.add_column("images", justify="right")
    labels.add_column("share", justify="right")
    for label, count in zip(stats.label_names, stats.counts, strict=True):
        labels.add_row(label, str(count), f"{100 * count / n:.1f} %")
    lengths = Table(title="labels per image (0 = original)", title_justify="left")
    for k in range(len(stats.length_histogram)):
        lengths.add_column(str(k), justify="right")
    lengths.add_row(*(str(c) for c in stats.length_histogram))
    co = Table(title="co-occurrence (images with both labels)", title_justify="left")
    co.add_column("")
    for label in stats.label_names:
        co.add_column(label, justify="right")
    for label, row in zip(stats.label_names, stats.cooccurrence, strict=True):
        co.add_row(label, *(str(v) for v in row))
    for table in (labels, lengths, co):
        console.print(table)


def run_faces(args: argparse.Namespace) -> int:
    from deepfake_mlc.config import validate
    from deepfake_mlc.config.schema import FaceCropConfig
    from deepfake_mlc.faces.folder import MANIFEST, REPORT, SPLIT_MANIFESTS, crop_folder

    policy = load_config(Config, args.config).data.face_crop if args.config else FaceCropConfig()
    options = (("policy", args.policy), ("size", args.size), ("scale", args.scale))
    changes = {k: v for k, v in options if v is not None}
    policy = validate(FaceCropConfig, {**policy.model_dump(), **changes}, "data faces") if changes else policy
    if not 0 <= args.val_share < 1:
        raise DatasetError(f"--val-share must be in [0, 1), got {args.val_share}")
    report = crop_folder(
        args.source, args.out, policy, args.labels_from, args.every_face, args.threads, args.val_share, args.min_face
    )
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"{args.source}: {report.photos} photos, {report.crops} face crops", title_justify="left")
    table.add_column("photos")
    table.add_column("count", justify="right")
    table.add_column("first few")
    several = [f"{name} ({n})" for name, n in report.several_faces.items()]
    kept = "every face kept" if args.every_face else "the largest kept"
    for what, names in (
        ("with no face", report.no_face),
        (f"with several faces ({kept})", several),
        ("unreadable", [f"{name}: {why}" for name, why in report.unreadable.items()]),
        *([("not in --labels-from (left out)", report.unlabelled)] if args.labels_from else []),
    ):
        table.add_row(what, str(len(names)), "; ".join(names[:3]) + (" ..." if len(names) > 3 else ""))
    console.print(table)
    train, val = (args.out / name for name in SPLIT_MANIFESTS)
    console.print(f"written: {args.out / MANIFEST} (all), {train}, {val}, {args.out / REPORT}")
    crop = " ".join(  # every field of the policy: a model must record the crop its faces really had
        f"--set 'data.face_crop.{key}={json.dumps(value)}'" for key, value in policy.model_dump(mode="json").items()
    )
    console.print(
        f"train on them: --set data.format=manifest --set data.manifests.train={train} "
        f"--set data.manifests.val={val} {crop} --set 'data.labels=[...]'"
    )
    return 0
