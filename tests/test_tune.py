"""Hyperparameter search: studies on tiny data, MLflow parent/child runs, workers, failures, pruning, resume."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from conftest import REPO, launch_ddp, tiny_overrides
from deepfake_mlc.cli import main
from deepfake_mlc.config import Config, load_config
from deepfake_mlc.engine import TrainResult, train
from deepfake_mlc.errors import ConfigError
from deepfake_mlc.tune import TuneOptions, load_search, run_study
from deepfake_mlc.tune import study as study_module
from deepfake_mlc.tune.storage import SKIPPED_ATTR, WORKER_ATTR, fail_orphaned_trials, open_storage, trials_counted
from deepfake_mlc.tune.trial import TrialFailed, run_subprocess


def write_search(path: Path, **changes: object) -> Path:
    search = {
        "params": {
            "train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
            "loss.name": {"type": "categorical", "choices": ["bce", "asl"]},
        },
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "n_trials": 3,
        **changes,
    }
    path.write_text(yaml.safe_dump(search))
    return path


def options(root: Path, out: Path, search_file: Path, **kwargs: object) -> TuneOptions:
    base = load_config(Config, REPO / "configs" / "quickstart.yaml", tiny_overrides(root, out))
    search = load_search(search_file, base)
    fields = {"study_name": "s", "n_trials": search.n_trials, "cpu": True, "show_progress": False, **kwargs}
    return TuneOptions(base=base, search=search, **fields)  # type: ignore[arg-type]


def child_runs(out: Path) -> list:
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_search_files_are_checked_against_the_run_config(synth_root: Path, tmp_path: Path) -> None:
    base = load_config(Config, REPO / "configs" / "quickstart.yaml", tiny_overrides(synth_root, tmp_path))
    cases = {
        "unknown config key 'optim.lr'": {"params": {"optim.lr": {"type": "float", "low": 0.1, "high": 1}}},
        "params.train.lr=-1": {"params": {"train.lr": {"type": "float", "low": -1.0, "high": 1.0}}},
        "cannot prune a multi-objective": {
            "objectives": [{"metric": "mAP"}, {"metric": "params", "direction": "minimize"}],
            "pruner": {"name": "median"},
        },
        "unknown metric 'accuracy'": {"objectives": [{"metric": "accuracy"}]},
        "params.model.graph.t=2": {"params": {"model.graph.t": {"type": "float", "low": 0.1, "high": 2.0}}},
    }
    for message, change in cases.items():
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as err:
            load_search(write_search(tmp_path / "s.yaml", **change), base)
        assert "\n" not in str(err.value)
    for shipped in sorted((REPO / "configs" / "search").glob("*.yaml")):
        assert load_search(shipped, base).params


def test_three_trial_study_logs_one_child_run_per_trial(synth_root: Path, tmp_path: Path) -> None:
    result = run_study(options(synth_root, tmp_path, write_search(tmp_path / "search.yaml")))
    study = optuna.load_study(study_name="s", storage=result.storage_url)
    assert result.storage_url.startswith("sqlite:///")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    children = {int(r.data.tags["optuna.trial"]): r for r in child_runs(tmp_path)}
    assert sorted(children) == [0, 1, 2]
    for trial in study.trials:
        run = children[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert run.data.tags["optuna.state"] == "COMPLETE" and run.info.status == "FINISHED"
        assert float(run.data.params["train.lr"]) == pytest.approx(trial.params["train.lr"])
        assert run.data.params["loss.name"] == trial.params["loss.name"]
        assert run.data.metrics["objective/mAP"] == pytest.approx(trial.value)
        assert run.data.tags["optuna.best"] == str(trial.number == study.best_trial.number).lower()
    best = load_config(Config, result.best_config)  # ready to train: the base with the best values
    assert best.train.lr == pytest.approx(study.best_params["train.lr"])
    assert best.loss.name == study.best_params["loss.name"] and best.output.dir == tmp_path
    assert {p.name for p in (result.study_dir / "plots").iterdir()} >= {"optimization_history.png"}
    parent = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(result.parent_run_id)
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)
    assert parent.data.metrics["best/mAP"] == pytest.approx(study.best_value)
    # the same command again: the study is complete, so it resumes nothing and keeps its 3 trials
    assert len(run_study(options(synth_root, tmp_path, tmp_path / "search.yaml")).best) == 1
    assert len(optuna.load_study(study_name="s", storage=result.storage_url).trials) == 3


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL server (Debian's postgresql package) on a free local port."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        missing = "PostgreSQL server binaries (initdb, pg_ctl) are not on PATH"
        if os.environ.get("CI"):  # .ci/run installs them: in CI their absence is a failure, not a skip
            pytest.fail(missing)
        pytest.skip(missing)
    as_user: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="pg-")) / "data"
    if os.geteuid() == 0:  # the server refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(data.parent, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = partial(subprocess.run, check=True, capture_output=True)
    run([*as_user, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres"])
    options = f"-p {port} -k {data.parent} -c listen_addresses=127.0.0.1"
    run([*as_user, "pg_ctl", "-D", str(data), "-o", options, "-l", str(data.parent / "log"), "-w", "start"])
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        run([*as_user, "pg_ctl", "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_two_worker_processes_share_one_study_without_duplicates(
    kind: str, synth_root: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """journal: one command with --workers 2; postgresql: the same command started twice (two machines)."""
    name = f"shared-{kind}"
    command = [sys.executable, "-m", "deepfake_mlc", "tune", "--config", str(REPO / "configs" / "quickstart.yaml")]
    command += ["--search", str(write_search(tmp_path / "search.yaml", n_trials=4)), "--study-name", name, "--cpu"]
    command += ["--no-progress", *(arg for o in tiny_overrides(synth_root, tmp_path) for arg in ("--set", o))]
    if kind == "journal":
        url = f"journal:{tmp_path / 'tune' / name / f'{name}.journal'}"
        commands = [[*command, "--workers", "2"]]
    else:
        url = request.getfixturevalue("postgres_url")
        # trials slowed down (tests/processes/slow_cli.py): the second machine joins before the first is done
        slow = [sys.executable, str(REPO / "tests" / "processes" / "slow_cli.py"), *command[3:]]
        commands = [[*slow, "--storage", url]] * 2
    env = {**os.environ, "SLOW_MARKER": str(tmp_path / "step"), "SLOW_STEP_SECONDS": "0.2"}
    workers = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) for c in commands]
    outputs = [w.communicate(timeout=300)[0].decode() for w in workers]
    assert all(w.returncode == 0 for w in workers), "\n".join(out[-3000:] for out in outputs)
    study = optuna.load_study(study_name=name, storage=open_storage(url, lock=False).storage)
    trained = [t for t in study.trials if not t.user_attrs.get(SKIPPED_ATTR)]  # none over the budget
    assert trials_counted(study) == len(trained) == 4 and [t.number for t in trained] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trained)
    assert len({t.user_attrs[WORKER_ATTR] for t in study.trials}) == 2  # both workers took part
    assert len({t.params["train.lr"] for t in trained}) == 4  # seeded workers still draw different values
    numbers = sorted(int(r.data.tags["optuna.trial"]) for r in child_runs(tmp_path))
    assert numbers == [0, 1, 2, 3]  # one run per trial, none twice
    assert sorted(p.name for p in (tmp_path / "tune" / name / "trials").iterdir()) == [
        f"trial-{n:04d}" for n in numbers
    ]
    assert len({r.data.tags["mlflow.parentRunId"] for r in child_runs(tmp_path)}) == 1


def test_a_failing_trial_is_recorded_and_the_study_goes_on(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = study_module.run_in_process

    def flaky(cfg, reporter, cpu, show_progress):  # type: ignore[no-untyped-def]
        if cfg.output.name == "trial-0001":
            raise torch_oom("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(cfg, reporter, cpu, show_progress)

    monkeypatch.setattr(study_module, "run_in_process", flaky)
    result = run_study(options(synth_root, tmp_path, write_search(tmp_path / "search.yaml")))
    study = optuna.load_study(study_name="s", storage=result.storage_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert "out of memory" in study.trials[1].user_attrs["fail_reason"]
    failed = next(r for r in child_runs(tmp_path) if r.data.tags["optuna.trial"] == "1")
    assert failed.info.status == "FAILED" and failed.data.tags["optuna.state"] == "FAIL"
    assert "out of memory" in failed.data.tags["fail_reason"]
    assert result.states == {"COMPLETE": 2, "FAIL": 1}


def torch_oom(message: str) -> Exception:
    import torch

    return torch.OutOfMemoryError(message)


def test_a_subprocess_trial_that_fails_reports_its_error_line(synth_root: Path, tmp_path: Path) -> None:
    opts = options(synth_root, tmp_path, write_search(tmp_path / "search.yaml"))
    cfg = opts.base.model_copy(deep=True)
    cfg.data.root = tmp_path / "missing"
    cfg.output.name = "trial-0000"
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'x.db'}", study_name="x")
    with pytest.raises(TrialFailed, match=r"exited with 2: error: .*missing"):
        run_subprocess(
            cfg, sys.executable, study.ask(), f"sqlite:///{tmp_path / 'x.db'}", opts.search.pruner, None, None, True
        )
    assert (cfg.output.dir / "trial-0000" / "trial.log").is_file()


def test_pruning_stops_a_clearly_worse_trial(synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    curves = {"trial-0000": [80.0, 85.0, 90.0], "trial-0001": [82.0, 86.0, 91.0], "trial-0002": [10.0, 11.0, 12.0]}

    def reporting(cfg, reporter, cpu, show_progress):  # type: ignore[no-untyped-def]
        history = []
        for epoch, value in enumerate(curves[cfg.output.name], start=1):
            history.append({"epoch": epoch})
            if reporter.should_stop(epoch, {"mAP": value}):
                return TrainResult(tmp_path, {"mAP": value}, epoch, history, None, 1, "pruned")
        return TrainResult(tmp_path, {"mAP": max(curves[cfg.output.name])}, 3, history, None, 1)

    monkeypatch.setattr(study_module, "run_in_process", reporting)
    pruner = {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}
    result = run_study(options(synth_root, tmp_path, write_search(tmp_path / "search.yaml", pruner=pruner)))
    study = optuna.load_study(study_name="s", storage=result.storage_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert study.trials[2].intermediate_values == {1: 10.0}  # stopped at its first report
    pruned = next(r for r in child_runs(tmp_path) if r.data.tags["optuna.trial"] == "2")
    assert pruned.data.tags["optuna.state"] == "PRUNED" and pruned.info.status == "KILLED"


class StopAfterFirstEval:
    run_id = None

    def __init__(self) -> None:
        self.calls: list[int] = []

    def should_stop(self, epoch: int, metrics: dict) -> bool:
        self.calls.append(epoch)
        return True


def test_a_prune_after_the_last_epoch_is_ignored_so_the_result_counts(synth_root: Path, tmp_path: Path) -> None:
    overrides = [*tiny_overrides(synth_root, tmp_path), "train.epochs=1", "tracking.enabled=false"]
    hook = StopAfterFirstEval()
    result = train(load_config(Config, REPO / "configs" / "quickstart.yaml", overrides), cpu=True, hook=hook)
    assert hook.calls == [1] and result.stopped_by is None and len(result.history) == 1


def _ddp_pruned_training(root: str, out: str) -> None:
    overrides = [*tiny_overrides(Path(root), Path(out)), "output.name=ddp", "tracking.enabled=false"]
    hook = StopAfterFirstEval()
    result = train(load_config(Config, REPO / "configs" / "quickstart.yaml", overrides), cpu=True, hook=hook)
    assert result.stopped_by == "pruned" and len(result.history) == 1  # every rank stopped after epoch 1
    from accelerate import PartialState

    assert hook.calls == ([1] if PartialState().is_main_process else [])  # only the main rank is asked


def test_the_prune_decision_of_rank_0_stops_every_ddp_rank(synth_root: Path, tmp_path: Path) -> None:
    launch_ddp(_ddp_pruned_training, args=(str(synth_root), str(tmp_path)), num_processes=2)
    assert '"stopped_by": "pruned"' in (tmp_path / "ddp" / "metrics.json").read_text()


def test_trials_of_dead_workers_are_failed_and_retried(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    storage = open_storage(f"journal:{tmp_path / 'j.log'}").storage
    study = optuna.create_study(study_name="k", storage=storage)
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    orphan.set_user_attr(WORKER_ATTR, f"{os.uname().nodename}:{dead.stdout.strip()}")
    alive = study.ask()
    alive.set_user_attr(WORKER_ATTR, f"{os.uname().nodename}:{os.getpid()}")
    assert fail_orphaned_trials(study, exclusive=False) == [orphan.number]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]  # the retry is queued
    assert study.trials[2].system_attrs["failed_trial"] == orphan.number
    assert trials_counted(study) == 2  # the retry replaces the dead trial in the budget


def test_sqlite_studies_take_one_worker_and_refuse_another_search(synth_root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    held = open_storage(url)
    with pytest.raises(ConfigError, match="another worker is running on the SQLite study"):
        open_storage(url)
    held.close()
    open_storage(url).close()
    run_study(options(synth_root, tmp_path, write_search(tmp_path / "a.yaml", n_trials=1), storage=url))
    changed = write_search(tmp_path / "b.yaml", n_trials=1, sampler={"name": "tpe", "seed": 1})
    with pytest.raises(ConfigError, match="started with another base config or search file"):
        run_study(options(synth_root, tmp_path, changed, storage=url))
    with pytest.raises(ConfigError, match="SQLite takes one at a time"):
        run_study(options(synth_root, tmp_path, changed, storage=url, workers=2))


def test_tune_command_errors_are_one_line(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    search = write_search(tmp_path / "s.yaml", params={"optim.lr": {"type": "float", "low": 0.1, "high": 1}})
    code = main(["tune", "--config", str(REPO / "configs" / "quickstart.yaml"), "--search", str(search)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "optim.lr" in err
