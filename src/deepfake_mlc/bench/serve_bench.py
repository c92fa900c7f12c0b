"""serve-bench: every runtime this machine has, on the same images — accuracy against PyTorch fp32, latency, throughput.

Modelled on Ultralytics' ``benchmark`` mode: a runtime that cannot run here is a row marked skipped with
the reason, not an error. Trials are interleaved across runtimes (runtime A, B, C, then A, B, C again)
so that a background process slowing the machine for a while hits every runtime alike. With a server
(``--server``), the model it serves gets rows too, by concurrency, in the same table (:mod:`.load`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepfake_mlc.bench.accuracy import accuracy_columns
from deepfake_mlc.bench.artifacts import TARGETS, Artifacts
from deepfake_mlc.bench.load import IMAGES, LoadSettings, image_files, load_server, open_server
from deepfake_mlc.bench.machine import load_average, machine_info
from deepfake_mlc.bench.timing import LatencyStats, TimingPlan, speed_summary, time_trial
from deepfake_mlc.export import CALIBRATION_IMAGES
from deepfake_mlc.metrics.parity import Tolerances, check_parity

if TYPE_CHECKING:
    from deepfake_mlc.artifacts import ModelInfo
    from deepfake_mlc.runtime import Runner


@dataclass(frozen=True)
class BenchSettings:
    runtimes: tuple[str, ...] = tuple(TARGETS)
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    timing: TimingPlan = field(default_factory=TimingPlan)
    threads: int | None = None
    split: str = "test"
    subset: str | None = None
    limit_images: int | None = None
    calibration_images: int = CALIBRATION_IMAGES
    tolerances: Tolerances = field(default_factory=Tolerances)
    export: bool = True
    server: LoadSettings | None = None  # a served model to load as well


@dataclass
class Candidate:
    """A runtime to benchmark: its runner, or the one-line reason it cannot run on this machine."""

    name: str
    runtime: str
    file: Path = Path()
    runner: Runner | None = None
    reason: str | None = None
    failed: bool = False  # it should run here but could not be opened: a release gate fails on it


def open_candidates(model: Path, data: Path, out: Path, info: ModelInfo, settings: BenchSettings) -> list[Candidate]:
    """Export what each requested runtime reads and open it; unavailable runtimes keep their reason."""
    from deepfake_mlc.errors import RuntimeUnavailable
    from deepfake_mlc.runtime import eval_arrays, open_runner

    def calibration() -> np.ndarray:
        return eval_arrays(data, info, "train", limit=settings.calibration_images, subset=settings.subset)[0]

    artifacts = Artifacts(model, out, calibration, settings.export)
    candidates = []
    for name in settings.runtimes:
        target = TARGETS[name]
        candidate = Candidate(name, target.runtime)
        try:
            candidate.file = artifacts.path(target)
            candidate.runner = open_runner(candidate.file, target.runtime, threads=settings.threads)
        except RuntimeUnavailable as why:
            candidate.reason = str(why)
        except Exception as err:  # one runtime that breaks (a failed engine build, a provider error) is its row
            candidate.reason, candidate.failed = f"failed: {type(err).__name__}: {err}".splitlines()[0], True
        candidates.append(candidate)
    return candidates


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not enabled) as bar:
        task = bar.add_task("", total=total)
        yield lambda description: bar.update(task, advance=1, description=description)


def _batch(images: np.ndarray, size: int) -> np.ndarray:
    """``size`` real evaluation images (repeated when the set is smaller), contiguous like a request."""
    return np.ascontiguousarray(np.resize(images, (size, *images.shape[1:])))


def _run_all(
    running: Sequence[Candidate], images: np.ndarray, settings: BenchSettings, show_progress: bool
) -> tuple[dict[str, np.ndarray], dict[str, list[LatencyStats]]]:
    """Every runtime's outputs on the evaluation images, then its timings, trials interleaved across runtimes."""
    from deepfake_mlc.runtime import run_batched

    plan, sizes = settings.timing, settings.batch_sizes
    probs: dict[str, np.ndarray] = {}
    trials: dict[tuple[str, int], list[tuple[float, ...]]] = {(c.name, b): [] for c in running for b in sizes}
    with _progress(show_progress, len(running) * (1 + plan.trials * len(sizes))) as step:
        for c in running:
            probs[c.name] = run_batched(c.runner, images, max(sizes))
            step(f"{c.name}: accuracy")
        for trial in range(plan.trials):
            for c in running:
                for b in sizes:
                    batch = _batch(images, b)
                    trials[c.name, b].append(tuple(time_trial(lambda c=c, batch=batch: c.runner(batch), plan)))
                    step(f"{c.name}: batch {b}, trial {trial + 1}/{plan.trials}")
    return probs, {c.name: [LatencyStats(b, tuple(trials[c.name, b])) for b in sizes] for c in running}


def measure(
    candidates: Sequence[Candidate],
    images: np.ndarray,
    targets: np.ndarray,
    info: ModelInfo,
    settings: BenchSettings,
    show_progress: bool = True,
) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """One result row per candidate: accuracy and parity with the reference (the PyTorch row), then timings.

    Parity is judged by the quality gate (``settings.tolerances``), each runtime against the reference's
    arithmetic as well as its own (a TF32 reference cannot vouch for fp32 to fp32's bound). The reference's
    probabilities come back with the rows (``None`` when nothing ran): a served model is judged against them too.
    """
    skipped = [
        {"name": c.name, "runtime": c.runtime, "status": "failed" if c.failed else "skipped", "reason": c.reason}
        for c in candidates
    ]
    running = [c for c in candidates if c.runner is not None]
    if not running:
        return skipped, None
    probs, speeds = _run_all(running, images, settings, show_progress)
    reference = next((c for c in running if c.runtime == "pytorch"), running[0])
    threshold = np.asarray(info.decision_thresholds())
    rows = []
    for c, skip in zip(candidates, skipped, strict=True):
        if c.runner is None:
            rows.append(skip)
            continue
        parity = check_parity(
            probs[c.name],
            probs[reference.name],
            threshold,
            runtime=c.name,
            precision=c.runner.precision,
            reference_runtime=reference.name,
            reference_precision=reference.runner.precision,
            targets=targets,
            tolerances=settings.tolerances,
        )
        row = {
            "name": c.name,
            "runtime": c.runtime,
            "status": "ok",
            "reference": c is reference,
            "precision": c.runner.precision,
            "device": c.runner.device,
            "file": str(c.file),
            "size_mb": c.file.stat().st_size / 1e6,
            **accuracy_columns(parity, probs[c.name], targets, info.label_names, threshold),
            **speed_summary(speeds[c.name]),
            "details": c.runner.details(),
        }
        rows.append(row)
    return rows, probs[reference.name]


def serve_bench(model: Path, data: Path, out: Path, settings: BenchSettings, show_progress: bool = True) -> dict:
    """Benchmark ``model`` on ``data`` in every requested runtime; the whole result, as written to JSON.

    A data set whose labels are not the model's stops with ``DatasetError`` before anything is timed, and
    so does a server (``settings.server``) that does not answer or serves a model of another shape.
    """
    from deepfake_mlc.runtime import eval_arrays, read_model_info

    load_before = load_average()
    info = read_model_info(model)
    images, targets = eval_arrays(data, info, settings.split, limit=settings.limit_images, subset=settings.subset)
    served: dict[str, Any] | None = None
    with open_server(settings.server, info) if settings.server else nullcontext() as server:
        candidates = open_candidates(model, data, out, info, settings)
        rows, reference_probs = measure(candidates, images, targets, info, settings, show_progress)
        reference = next((r for r in rows if r.get("reference")), None)
        del candidates  # the runtimes' memory and threads, free before a server on this machine is loaded
        if server is not None:
            files = []  # what image-file requests send, if the served model takes them
            if IMAGES in server.kinds:
                files = image_files(data, info, settings.split, settings.limit_images, settings.subset)
            with _progress(show_progress, 1 + len(server.kinds) * len(server.settings.concurrency)) as step:
                served, served_rows = load_server(
                    server, images, files, reference_probs, reference, targets, info, settings.tolerances, step
                )
            rows += served_rows
    failures = [f for r in rows for f in r.get("failures", [])]
    failures += [f"{r['name']}: {r['reason']}" for r in rows if r["status"] == "failed"]
    failures += [] if served is None else served["parity"]["failures"]
    if reference is None:
        failures.append(f"no runtime could run here (asked for: {', '.join(settings.runtimes)})")
    return {
        "model": {"path": str(model), **info.model_dump(mode="json")},
        "data": {"path": str(data), "split": settings.split, "subset": settings.subset, "images": len(images)},
        "settings": {
            "batch_sizes": list(settings.batch_sizes),
            **asdict(settings.timing),
            "interleaved_trials": True,
            "threads": settings.threads,
            "calibration_images": settings.calibration_images,
            "tolerances": asdict(settings.tolerances),
        },
        "machine": {**machine_info(), "load_average_before": load_before, "load_average_after": load_average()},
        "reference": None if reference is None else {k: reference[k] for k in ("name", "precision", "device")},
        "rows": rows,
        **({} if served is None else {"server": served}),
        "failures": failures,
        "passed": not failures,
    }
