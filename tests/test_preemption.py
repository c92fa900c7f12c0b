"""Training survives what clusters do to it: SIGTERM, SIGINT, SIGKILL mid-epoch and mid-save, a killed tune worker.

Every run here is a real process (``python -m deepfake_mlc`` or ``tests/processes/slow_cli.py``, the same
CLI slowed down so that a signal lands mid-epoch); each interrupted run is resumed and must end with
exactly the per-epoch metrics of a straight run, to the last digit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import REPO, tiny_overrides
from deepfake_mlc.artifacts import RunFolder
from deepfake_mlc.engine.training_state import read_progress, training_state_dir
from deepfake_mlc.tune.storage import open_storage, trials_counted

SLOW_CLI = REPO / "tests" / "processes" / "slow_cli.py"
TIMED = ("epoch_time_s", "images_per_s")  # the clock's, not the model's


def train_args(root: Path, out: Path, *extra: str) -> list[str]:
    overrides = [*tiny_overrides(root, out), "data.batch_size=4", "output.name=run", "train.checkpoint_every_steps=3"]
    config = ["--config", str(REPO / "configs" / "quickstart.yaml")]
    return ["train", *config, "--cpu", "--no-progress", *(a for o in [*overrides, *extra] for a in ("--set", o))]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deepfake_mlc", *args], capture_output=True, text=True, timeout=300)


def start_slow(args: list[str], marker: Path, **env: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SLOW_MARKER": str(marker), "SLOW_STEP_SECONDS": "0.25", **env}
    command = [sys.executable, str(SLOW_CLI), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, process: subprocess.Popen[str], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the process ended (status {process.returncode}) before {what}:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def step_at_least(marker: Path, step: int):
    return lambda: marker.is_file() and marker.read_text().strip().isdigit() and int(marker.read_text()) >= step


def history(run: Path) -> list[dict]:
    return [{k: v for k, v in epoch.items() if k not in TIMED} for epoch in RunFolder(run).read_summary().history]


@pytest.fixture(scope="module")
def straight(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The per-epoch records of an uninterrupted run of the same config."""
    out = tmp_path_factory.mktemp("straight")
    done = cli(*train_args(synth_root, out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return history(out / "run")


def resume_and_compare(run: Path, straight: list[dict]) -> None:
    done = cli("train", "--resume", str(run), "--cpu", "--no-progress")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert history(run) == straight  # every metric of every epoch, to the last digit


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_mid_epoch_and_the_resumed_run_equals_a_straight_one(
    signum: int, status: int, synth_root: Path, tmp_path: Path, straight: list[dict]
) -> None:
    marker = tmp_path / "step"
    process = start_slow(train_args(synth_root, tmp_path, "train.checkpoint_every_steps=null"), marker)
    wait_for(step_at_least(marker, 2), process, "step 2")
    sent = time.monotonic()
    process.send_signal(signum)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == status and time.monotonic() - sent < 10, output[-3000:]
    assert f"stopped by {signal.Signals(signum).name} in epoch 1" in output and "--resume" in output
    progress = read_progress(training_state_dir(RunFolder(tmp_path / "run")))
    assert progress["epoch"] == 0 and 0 < progress["batches_done"] < 8  # saved mid-epoch
    resume_and_compare(tmp_path / "run", straight)


def test_sigkill_mid_epoch_loses_at_most_the_steps_since_the_periodic_save(
    synth_root: Path, tmp_path: Path, straight: list[dict]
) -> None:
    marker = tmp_path / "step"
    process = start_slow(train_args(synth_root, tmp_path), marker)
    wait_for(step_at_least(marker, 5), process, "step 5")  # the state saved at step 3, two steps since
    process.kill()
    process.wait()
    progress = read_progress(training_state_dir(RunFolder(tmp_path / "run")))
    assert (progress["epoch"], progress["batches_done"], progress["global_step"]) == (0, 3, 3)
    resume_and_compare(tmp_path / "run", straight)


def test_sigkill_while_the_state_is_written_resumes_from_the_previous_state(
    synth_root: Path, tmp_path: Path, straight: list[dict]
) -> None:
    marker = tmp_path / "step"
    process = start_slow(train_args(synth_root, tmp_path), marker, SLOW_PAUSE_IN_SAVE="2")  # the save at step 6
    wait_for(lambda: marker.with_name("step.saving").is_file(), process, "the second save")
    process.kill()
    process.wait()
    run = RunFolder(tmp_path / "run")
    assert run.state_dir.with_name("state.tmp").is_dir()  # the half-written state the kill left
    assert read_progress(training_state_dir(run))["global_step"] == 3
    resume_and_compare(run.path, straight)


def test_a_killed_tune_worker_leaves_its_trial_failed_and_retried(synth_root: Path, tmp_path: Path) -> None:
    search = tmp_path / "search.yaml"
    search.write_text(
        json.dumps(
            {
                "params": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
                "sampler": {"name": "random", "seed": 0},
                "pruner": {"name": "none"},
                "n_trials": 3,
            }
        )
    )
    overrides = [*tiny_overrides(synth_root, tmp_path), "train.epochs=1"]
    command = ["tune", "--config", str(REPO / "configs" / "quickstart.yaml"), "--search", str(search)]
    command += ["--study-name", "s", "--cpu", "--no-progress", *(a for o in overrides for a in ("--set", o))]
    marker = tmp_path / "step"
    process = start_slow(command, marker)
    trials = tmp_path / "tune" / "s" / "trials"
    wait_for(lambda: (trials / "trial-0001").is_dir() and step_at_least(marker, 2)(), process, "trial 1, step 2")
    process.kill()  # mid-trial: trial 0 done, trial 1 running
    process.wait()
    done = cli(*command)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    storage = open_storage(f"sqlite:///{tmp_path / 'tune' / 's' / 's.db'}", lock=False).storage
    study = optuna.load_study(study_name="s", storage=storage)
    (killed,) = [t for t in study.trials if t.state == TrialState.FAIL]
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert killed.number == 1 and retry.params == killed.params and retry.state == TrialState.COMPLETE
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == trials_counted(study) == 3  # the budget, none lost or run twice
    assert len({t.params["train.lr"] for t in complete}) == 3


def _ddp_job(root: str, out: str, mode: str) -> None:
    """One rank of a 2-process CPU DDP run: ``straight``, ``stopped`` (rank 1 alone gets SIGTERM) or ``resumed``."""
    from accelerate.state import PartialState

    from deepfake_mlc.config import Config, load_config
    from deepfake_mlc.engine import Trainer, TrainingStopped, resume

    run = Path(out) / "run"
    if mode == "resumed":
        resume(run, cpu=True, show_progress=False)
        return
    overrides = [*tiny_overrides(Path(root), Path(out)), "data.batch_size=4", "output.name=run"]
    trainer = Trainer(
        load_config(Config, REPO / "configs" / "quickstart.yaml", overrides), cpu=True, show_progress=False
    )
    if mode == "stopped":
        step = trainer.step

        def step_then_signal(*args: object) -> object:  # only rank 1 hears the signal, after its 2nd step
            loss = step(*args)
            if PartialState().process_index == 1 and trainer.progress.global_step == 2:
                trainer.signals.received = signal.SIGTERM
            return loss

        trainer.step = step_then_signal  # type: ignore[method-assign]
        try:
            trainer.fit()
        except TrainingStopped:
            Path(out, f"stopped-{PartialState().process_index}").write_text(str(trainer.progress.global_step))
        return
    trainer.fit()


def test_ddp_ranks_stop_together_when_one_is_signalled_and_resume_exactly(synth_root: Path, tmp_path: Path) -> None:
    from conftest import launch_ddp

    launch_ddp(_ddp_job, args=(str(synth_root), str(tmp_path / "straight"), "straight"))
    launch_ddp(_ddp_job, args=(str(synth_root), str(tmp_path / "b"), "stopped"))
    assert [(tmp_path / "b" / f"stopped-{rank}").read_text() for rank in (0, 1)] == ["2", "2"]  # the same step
    launch_ddp(_ddp_job, args=(str(synth_root), str(tmp_path / "b"), "resumed"))
    assert history(tmp_path / "b" / "run") == history(tmp_path / "straight" / "run")
