"""One trial: the sampled config trained in this process, or under ``accelerate launch`` as a subprocess.

Either way the training loop reports each evaluation to Optuna through
:class:`~deepfake_mlc.tune.handoff.TrialReporter` (on the main rank, which broadcasts the prune decision so
every DDP rank stops together) and logs into an MLflow child run the worker created first, so even a trial
that dies before training shows up failed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import optuna

from deepfake_mlc.artifacts import RunFolder, read_checkpoint_meta
from deepfake_mlc.config.loader import apply_overrides, dump_yaml, validate
from deepfake_mlc.config.schema import Config
from deepfake_mlc.engine.trainer import TrainResult
from deepfake_mlc.metrics.multilabel import METRIC_NAMES
from deepfake_mlc.tune.handoff import TRIAL_ENV, TrialReporter
from deepfake_mlc.tune.space import Objective, PrunerConfig

LOG_TAIL_LINES = 20


class TrialFailed(RuntimeError):
    """A trial's subprocess exited with an error; the message carries its last error line."""


def reported_metric(objectives: list[Objective]) -> str | None:
    """What a trial reports each epoch: the first objective, if it is measured on validation data."""
    first = objectives[0].metric
    return first if first in METRIC_NAMES else None


def trial_config(base: Config, overrides: list[str], run_dir: Path, tracking_uri: str | None) -> Config:
    """The trial's run config: ``base`` + its overrides, written into the study's ``trials/`` folder."""
    placement = [f"output.dir={run_dir.parent}", f"output.name={run_dir.name}"]
    if tracking_uri is not None:  # every trial logs where the study's parent run is, whatever output.dir says
        placement.append(f"tracking.uri={tracking_uri}")
    return validate(Config, apply_overrides(base.model_dump(mode="json"), [*overrides, *placement]), run_dir.name)


def run_in_process(cfg: Config, reporter: TrialReporter, cpu: bool, show_progress: bool) -> TrainResult:
    """Train in this process on one device (the Accelerate state of the previous trial is cleared first)."""
    from accelerate.state import AcceleratorState

    from deepfake_mlc.engine import train

    AcceleratorState._reset_state(reset_partial_state=True)
    return train(cfg, cpu=cpu, show_progress=show_progress, hook=reporter)


def run_subprocess(
    cfg: Config,
    launch: str,
    trial: optuna.Trial,
    storage_url: str,
    pruner: PrunerConfig,
    metric: str | None,
    run_id: str | None,
    cpu: bool,
) -> TrainResult:
    """Train under ``launch`` (e.g. ``accelerate launch --num_processes 4``); output goes to ``trial.log``."""
    run_dir = cfg.output.dir / cfg.output.name  # type: ignore[operator]
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "trial_config.yaml"
    config_file.write_text(dump_yaml(cfg))
    command = [*shlex.split(launch), "-m", "deepfake_mlc", "train", "--config", str(config_file), "--no-progress"]
    if cpu:
        command.append("--cpu")
    handoff = {
        "storage": storage_url,
        "study": trial.study.study_name,
        "trial_id": trial._trial_id,
        "metric": metric,
        "pruner": pruner.model_dump(),
        "epochs": cfg.train.epochs,
    }
    env = {**os.environ, TRIAL_ENV: json.dumps(handoff)}
    if run_id is not None:
        env["MLFLOW_RUN_ID"] = run_id
    log_file = run_dir / "trial.log"
    with log_file.open("w") as log:
        code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        raise TrialFailed(f"{' '.join(command[:3])}... exited with {code}: {_last_error(log_file)} (log: {log_file})")
    return _result_from(run_dir)


def _last_error(log_file: Path) -> str:
    """The line of a trial's log that says what went wrong (the last ``error:``/exception line)."""
    lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    tail = lines[-LOG_TAIL_LINES:]
    for line in reversed(tail):
        if line.startswith("error:") or "Error" in line.split(":")[0]:
            return line
    return tail[-1] if tail else "no output"


def _result_from(run_dir: Path) -> TrainResult:
    """A subprocess trial's result, read back from the files every training run writes."""
    run = RunFolder(run_dir)
    summary, meta = run.read_summary(), read_checkpoint_meta(run.checkpoint())
    return TrainResult(
        run_dir=run_dir,
        best_metrics=summary.best or {},
        best_epoch=summary.best_epoch if summary.best_epoch is not None else meta.epoch or -1,
        history=summary.history,
        run_id=None,
        params=meta.params or 0,
        stopped_by=summary.stopped_by,
    )


def objective_values(result: TrainResult, objectives: list[Objective], device: str) -> list[float]:
    """The trial's value for each objective, from its best epoch."""
    values = []
    for objective in objectives:
        if objective.metric == "params":
            values.append(float(result.params))
        elif objective.metric == "latency_ms":
            values.append(model_latency_ms(RunFolder(result.run_dir).checkpoint(), device))
        else:
            values.append(float(result.best_metrics[objective.metric]))
    return values


def model_latency_ms(checkpoint: Path, device: str, runs: int = 20) -> float:
    """Median batch-1 forward time of the trained model in PyTorch eager mode (a search objective)."""
    import torch

    from deepfake_mlc.models.loading import load_checkpoint

    model, _, meta = load_checkpoint(checkpoint)
    model = model.to(device)
    size = meta.preprocessing.image_size
    image = torch.zeros(1, 3, size, size, device=device)
    times = []
    with torch.inference_mode():
        for i in range(runs + 3):
            start = time.perf_counter()
            model(image)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= 3:  # warm-up runs are not timed
                times.append(time.perf_counter() - start)
    return 1000.0 * sorted(times)[len(times) // 2]
