"""RunTracker against real SQLite MLflow stores, read back through a separate MlflowClient."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from deepfake_mlc.config.schema import TrackingConfig
from deepfake_mlc.tracking import RunTracker, flatten, resolve_tracking_uri


@pytest.fixture(scope="module", autouse=True)
def _fast_sqlite() -> Iterator[None]:
    """Test speed only: no fsync in SQLite, or creating an MLflow store takes seconds on a slow disk."""

    def no_sync(dbapi_conn: object, _record: object) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            dbapi_conn.execute("PRAGMA synchronous = OFF")

    event.listen(Engine, "connect", no_sync)
    yield
    event.remove(Engine, "connect", no_sync)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)


@pytest.fixture(scope="module")
def shared_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the tests that do not check where it is created (each test uses its own experiment)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def shared_tracker(uri: str, request: pytest.FixtureRequest, output_dir: Path) -> RunTracker:
    return RunTracker(TrackingConfig(uri=uri, experiment=request.node.name), output_dir)


def test_flatten() -> None:
    data = {"train": {"lr": 1e-4, "clip": None, "ema": True}, "model": {"name": "resnet50", "graph": {"t": 0.4}}}
    data["data"] = {"mean": [0.5, 0.25], "extra": {}}
    assert flatten(data) == {
        "train.lr": "0.0001",
        "train.clip": "null",
        "train.ema": "true",
        "model.name": "resnet50",
        "model.graph.t": "0.4",
        "data.mean": "[0.5, 0.25]",
        "data.extra": "{}",
    }
    assert flatten({"a": 1}, prefix="cfg.") == {"cfg.a": "1"}


def test_resolve_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri(TrackingConfig(), Path("out")) == f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert resolve_tracking_uri(TrackingConfig(), Path("out")) == "http://tracker:5000"
    assert resolve_tracking_uri(TrackingConfig(uri="sqlite:///x.db"), Path("out")) == "sqlite:///x.db"


def test_run_logs_everything_under_the_output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (tmp_path / "best.safetensors").write_bytes(b"weights")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "pr.png").write_bytes(b"png")
    params = flatten({"train": {"lr": 0.001, "epochs": 3}, "data": {"mean": [0.5, 0.5, 0.5]}})

    with RunTracker(TrackingConfig(), out) as tracker:
        run_id = tracker.start("resnet50-components", params, {"model": "resnet50"})
        assert run_id is not None and tracker.run_id == run_id
        for step in range(3):
            tracker.log_metrics({"train/loss": 1.0 / (step + 1), "val/mAP": 50.0 + step}, step=step)
        tracker.log_artifact(tmp_path / "best.safetensors", "checkpoints")
        tracker.log_artifact(plots)
        tracker.log_text("seed: 0\n", "config.yaml")
        tracker.set_tags({"best_epoch": "2"})

    assert tracker.tracking_uri == f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(tracker.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "resnet50-components"
    assert run.data.params == {"train.lr": "0.001", "train.epochs": "3", "data.mean": "[0.5, 0.5, 0.5]"}
    assert run.data.tags["model"] == "resnet50" and run.data.tags["best_epoch"] == "2"
    assert run.data.metrics == {"train/loss": pytest.approx(1 / 3), "val/mAP": 52.0}
    history = client.get_metric_history(run_id, "val/mAP")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(0, 50.0), (1, 51.0), (2, 52.0)]
    assert {a.path for a in client.list_artifacts(run_id)} == {"checkpoints", "plots", "config.yaml"}
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/pr.png"]

    artifacts = out / "mlartifacts" / run_id / "artifacts"
    assert run.info.artifact_uri == artifacts.as_uri()
    assert (artifacts / "checkpoints" / "best.safetensors").read_bytes() == b"weights"
    assert (artifacts / "plots" / "pr.png").read_bytes() == b"png"
    assert (artifacts / "config.yaml").read_text() == "seed: 0\n"
    assert list(cwd.iterdir()) == []  # no ./mlruns, no ./mlflow.db


@pytest.mark.parametrize(("active", "enabled"), [(False, True), (True, False)])
def test_inactive_tracker_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, active: bool, enabled: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with RunTracker(TrackingConfig(enabled=enabled), tmp_path / "out", active=active) as tracker:
        assert tracker.start("run", {"a": "1"}, {"b": "2"}) is None
        tracker.log_metrics({"loss": 1.0}, step=0)
        tracker.log_artifact(tmp_path / "file.txt")
        tracker.log_text("text", "a.txt")
        tracker.set_tags({"c": "3"})
    tracker.end("FAILED")
    assert tracker.run_id is None and tracker.tracking_uri is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_resume_continues_the_same_run(
    shared_uri: str, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = shared_tracker(shared_uri, request, tmp_path)
    run_id = first.start("run", {"train.epochs": "2", "seed": "0"}, {})
    first.log_metrics({"val/mAP": 60.0}, step=0)
    first.end("KILLED")

    second = shared_tracker(shared_uri, request, tmp_path)
    with caplog.at_level(logging.WARNING, logger="deepfake_mlc.tracking"), second:
        assert second.start("ignored", {"train.epochs": "4", "seed": "0", "resume": "true"}, {"resumed": "1"}, run_id)
        assert MlflowClient(shared_uri).get_run(run_id).info.status == "RUNNING"
        second.log_metrics({"val/mAP": 70.0}, step=1)

    client = MlflowClient(shared_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params == {"train.epochs": "2", "seed": "0", "resume": "true"}  # MLflow keeps the first values
    assert run.data.tags["resumed"] == "1"
    assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, "val/mAP")) == [(0, 60.0), (1, 70.0)]
    assert "train.epochs ('2' -> '4')" in caplog.text
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_mlflow_run_id_env_joins_that_run(
    shared_uri: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = MlflowClient(shared_uri)
    experiment_id = parent.create_experiment(request.node.name)
    run_id = parent.create_run(experiment_id, run_name="trial-3").info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    with shared_tracker(shared_uri, request, tmp_path) as tracker:
        assert tracker.start("trial", {"lr": "0.1"}, {}) == run_id
        tracker.log_metrics({"val/mAP": 80.0}, step=0)
    run = parent.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"} and run.data.metrics == {"val/mAP": 80.0}


def test_resuming_an_unknown_run_fails_clearly(shared_uri: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot resume MLflow run 0123456789abcdef"):
        shared_tracker(shared_uri, request, tmp_path).start("run", {}, {}, run_id="0123456789abcdef")


def test_env_tracking_uri_is_honoured(
    shared_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared_uri)
    tracker = RunTracker(TrackingConfig(experiment="from-env"), tmp_path / "out")
    assert tracker.tracking_uri == shared_uri
    run_id = tracker.start("run", {}, {})
    tracker.end()
    run = MlflowClient(shared_uri).get_run(run_id)
    assert run.info.artifact_uri == (tmp_path / "out" / "mlartifacts" / run_id / "artifacts").as_uri()
    assert not (tmp_path / "out" / "mlflow.db").exists()

    # the experiment's artifact folder is fixed when it is created: another output dir is told so
    with (
        caplog.at_level(logging.WARNING, logger="deepfake_mlc.tracking"),
        RunTracker(TrackingConfig(experiment="from-env"), tmp_path / "other") as other,
    ):
        other.start("run2", {}, {})
    assert f"keeps its artifacts in {(tmp_path / 'out' / 'mlartifacts').as_uri()}" in caplog.text


@pytest.mark.parametrize(("error", "status"), [(RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")])
def test_exception_inside_with_ends_the_run(
    shared_uri: str, request: pytest.FixtureRequest, tmp_path: Path, error: type[BaseException], status: str
) -> None:
    tracker = shared_tracker(shared_uri, request, tmp_path)
    with pytest.raises(error), tracker:
        tracker.start("run", {}, {})
        raise error("boom")
    assert tracker.run_id is not None
    assert MlflowClient(shared_uri).get_run(tracker.run_id).info.status == status
    tracker.end()  # idempotent: stays as it ended
    assert MlflowClient(shared_uri).get_run(tracker.run_id).info.status == status


def test_non_finite_metric_is_skipped(
    shared_uri: str, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with shared_tracker(shared_uri, request, tmp_path) as tracker:
        run_id = tracker.start("run", {}, {})
        with caplog.at_level(logging.WARNING, logger="deepfake_mlc.tracking"):
            tracker.log_metrics({"loss": float("nan"), "grad_norm": float("inf"), "val/mAP": 55.0}, step=4)
    client = MlflowClient(shared_uri)
    assert client.get_run(run_id).data.metrics == {"val/mAP": 55.0}
    assert client.get_metric_history(run_id, "loss") == []
    assert "metric loss is nan at step 4" in caplog.text and "grad_norm is inf" in caplog.text


def test_long_param_value_is_truncated(shared_uri: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with shared_tracker(shared_uri, request, tmp_path) as tracker:
        run_id = tracker.start("run", {"data.labels": "x" * 10_000, "short": "y"}, {})
    params = MlflowClient(shared_uri).get_run(run_id).data.params
    assert len(params["data.labels"]) == 6000 and params["data.labels"].endswith("x...")
    assert params["short"] == "y"


def test_misuse_is_reported(shared_uri: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    tracker = shared_tracker(shared_uri, request, tmp_path)
    with pytest.raises(RuntimeError, match="call start"):
        tracker.log_metrics({"loss": 1.0}, step=0)
    with pytest.raises(ValueError, match="status must be one of"):
        tracker.end("DONE")
    tracker.start("run", {}, {})
    with pytest.raises(RuntimeError, match="still active"):
        tracker.start("again", {}, {})
    tracker.end()
    with pytest.raises(RuntimeError, match="call start"):
        tracker.set_tags({"late": "1"})
