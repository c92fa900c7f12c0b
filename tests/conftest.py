"""Shared test fixtures: tiny data sets written on the fly in the official Seq-DeepFake format, tiny runs,
and a Python without chosen packages (the serving image, as the package sees it).
"""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from PIL import Image

from deepfake_mlc.artifacts import CheckpointMeta, ModelInfo, Preprocessing, write_checkpoint
from deepfake_mlc.config import Config, DataConfig
from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.data.labels import SUBSET_DIRS, SUBSET_LABELS, format_step_ids, sequence_folder
from deepfake_mlc.data.synth import SynthConfig, generate
from deepfake_mlc.export import export_onnx
from deepfake_mlc.models import GraphClassifier, build_model
from deepfake_mlc.models.graph import label_adjacency

REPO = Path(__file__).resolve().parents[1]
LABELS = SUBSET_LABELS["components"]


def write_image(path: Path, seed: int = 0, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def write_split(
    root: Path,
    subset: str,
    split: str,
    sequences: Sequence[Sequence[int]],
    extra_columns: bool = True,
    labels: Sequence[str] | None = None,
) -> list[Path]:
    """Write images and ``annotations/<split>.csv`` like the official release; returns image paths.

    ``labels`` overrides the label strings written (to write malformed rows on purpose).
    """
    subset_dir = root / SUBSET_DIRS[subset]
    (subset_dir / "annotations").mkdir(parents=True, exist_ok=True)
    paths = []
    rows = []
    for i, steps in enumerate(sequences):
        image = subset_dir / "images" / split / sequence_folder(steps, subset) / f"{i:06d}.jpg"
        write_image(image, seed=i)
        paths.append(image)
        label = labels[i] if labels is not None else format_step_ids(steps)
        row = {"file_path": image.relative_to(root).as_posix(), "label": label}
        if extra_columns:
            row = {"id": str(i), **row, "note": "extra, ignored"}
        rows.append(row)
    with (subset_dir / "annotations" / f"{split}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return paths


SEQUENCES = [(), (1,), (2, 1), (5, 3, 1), (4, 2, 5, 1), (1, 2, 3, 4, 5), (3, 5), ()]


@pytest.fixture
def seq_root(tmp_path: Path) -> Path:
    """Both subsets, all three splits, originals and a length-5 sequence, with extra CSV columns."""
    root = tmp_path / "seqdeepfake"
    for subset in SUBSET_DIRS:
        for split in ("train", "val", "test"):
            write_split(root, subset, split, SEQUENCES)
    return root


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The components subset, all three splits, in the official layout (shared by the export tests)."""
    root = tmp_path_factory.mktemp("seqdeepfake")
    for split in ("train", "val", "test"):
        write_split(root, "components", split, SEQUENCES)
    return root


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny embedded (synthetic) data set that a model can learn something from in two epochs."""
    root = tmp_path_factory.mktemp("synth")
    generate(
        SynthConfig(image_size=32, subsets=["components"], splits={"train": 32, "val": 12, "test": 8}, workers=0),
        root,
        progress=False,
    )
    return root


@pytest.fixture(autouse=True)
def fresh_accelerator_state() -> None:
    """Each in-process training starts from a clean Accelerate state, as a new process would."""
    AcceleratorState._reset_state(True)


def tiny_overrides(root: Path, out: Path) -> list[str]:
    """The quick-start config shrunk to seconds: a tiny backbone, 32 px, two epochs, one thread."""
    return [
        f"data.root={root}",
        "data.image_size=32",
        "data.face_crop.policy=none",
        "data.batch_size=8",
        "data.num_workers=0",
        "model.name=test_resnet",
        "train.epochs=2",
        "train.num_threads=1",
        f"output.dir={out}",
    ]


def random_graph(model: GraphClassifier, seed: int = 0) -> None:
    """Give a graph model random label embeddings and a random (valid) label graph."""
    rng = np.random.default_rng(seed)
    n, d = model.node_features.shape
    co = rng.integers(0, 50, (n, n))
    co = co + co.T
    model.set_label_graph(rng.normal(size=(n, d)), label_adjacency(co, np.full(n, 60), t=0.4, p=0.25))


def write_run(run_dir: Path, data_root: Path, name: str = "test_resnet") -> Path:
    """A run folder with a tiny checkpoint of ``name`` (random weights, a random label graph)."""
    cfg = Config(
        data=DataConfig(root=data_root, image_size=32, batch_size=8, num_workers=0),
        model=ModelConfig(name=name, backbone=None if name == "test_resnet" else "test_resnet"),
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, len(LABELS)).eval()
    if isinstance(model, GraphClassifier):
        random_graph(model)
    meta = CheckpointMeta(
        config=cfg.model_dump(mode="json"),
        label_names=LABELS,
        preprocessing=Preprocessing(image_size=32, interpolation="bilinear", mean=cfg.data.mean, std=cfg.data.std),
        threshold=0.5,
    )
    write_checkpoint(run_dir / "checkpoints" / "best", model.state_dict(), meta)
    return run_dir


MODEL_IDENTITY = {
    "label_names",
    "preprocessing",
    "threshold",
    "thresholds",
    "threshold_policy",
    "calibration",
    "source",
    "sha256",
    "model",
    "run_id",
}


def same_model(*infos: ModelInfo) -> bool:
    """The infos describe one model (labels, preprocessing, decisions, source checkpoint), whatever its file format."""
    first = infos[0].model_dump(include=MODEL_IDENTITY)
    return all(info.model_dump(include=MODEL_IDENTITY) == first for info in infos[1:])


def launch_ddp(function: Callable[..., None], args: tuple, num_processes: int = 2) -> None:
    """Accelerate's ``debug_launcher`` (CPU DDP over gloo), with spawned rather than forked processes.

    A fork after any earlier test has run autograd's worker threads leaves the children unable to run
    backward; spawned processes start clean, as under ``accelerate launch``.
    """
    from accelerate.utils import PrepareForLaunch, patch_environment
    from torch.multiprocessing import start_processes

    with (
        tempfile.TemporaryDirectory() as rendezvous,  # the file store inside is removed by the group's end
        patch_environment(
            world_size=num_processes,
            master_addr="127.0.0.1",
            master_port=str(free_port()),
            accelerate_mixed_precision="no",
            accelerate_debug_rdv_file=str(Path(rendezvous) / "store"),
            accelerate_use_cpu="yes",
            gloo_socket_ifname="lo",
        ),
    ):
        job = PrepareForLaunch(EndingProcessGroup(function), debug=True)
        start_processes(job, args=args, nprocs=num_processes, start_method="spawn")


@dataclass(frozen=True)
class EndingProcessGroup:
    """A DDP job that destroys its process group when it returns, as a launched script's exit would.

    A rank that exits with gloo's threads still running can abort ("terminate called without an active
    exception") and fail a job that succeeded.
    """

    function: Callable[..., None]

    def __call__(self, *args: object) -> None:
        import torch.distributed as dist

        try:
            self.function(*args)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_without(modules: Collection[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python in which the top-level ``modules`` cannot be imported.

    A meta-path finder placed first refuses them, as if they were not installed: how the package looks
    from an image that leaves them out.
    """
    blocker = f"""
        import importlib.abc, sys
        BLOCKED = {sorted(modules)!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in BLOCKED:
                    raise ModuleNotFoundError(f'No module named {{name!r}} (not in the serving image)', name=name)
        sys.meta_path.insert(0, Block())
    """
    script = textwrap.dedent(blocker) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)


FAMILIES = ["test_resnet", "ml_gcn", "ml_agcn_word"]  # direct, GCN, adaptive GCN (tiny backbones)


def family_files(tmp_path_factory: pytest.TempPathFactory, data_root: Path, name: str) -> tuple[Path, Path]:
    """A run folder of ``name`` and its fp32 ONNX export, made once per session and shared by the test files."""
    folder = tmp_path_factory.getbasetemp() / f"family-{name}"
    run, onnx_path = folder / "run", folder / "model.onnx"
    if not onnx_path.is_file():
        export_onnx(write_run(run, data_root, name), onnx_path)
    return run, onnx_path


@pytest.fixture(scope="session")
def families(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, tuple[Path, Path]]:
    return {name: family_files(tmp_path_factory, data_root, name) for name in FAMILIES}
