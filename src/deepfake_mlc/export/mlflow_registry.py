"""Log an exported ONNX model with ``mlflow.onnx`` and register it, linked to the run that trained it.

The training run is the one recorded in the checkpoint (``run_id``), else the latest run named after
the run folder in the store that training used (``tracking`` in the config, the folder's parent by
default); with neither, a new run is created for the export. ``mlflow.onnx`` imports pandas, which
the ``mlflow-skinny`` client the package depends on does not bring.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepfake_mlc.artifacts import CheckpointMeta
from deepfake_mlc.config.schema import Config
from deepfake_mlc.errors import RuntimeUnavailable
from deepfake_mlc.runtime.info import read_onnx_info
from deepfake_mlc.tracking.mlflow_tracker import RunTracker

REGISTRY_HINT = "pip install 'deepfake-mlc[registry]' (it adds pandas)"


def _training_run(client: Any, cfg: Config, meta: CheckpointMeta, run_name: str) -> str | None:
    if meta.run_id:
        return meta.run_id
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.run_name = '{run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


@contextmanager
def _fluent_store(mlflow: Any, uri: str, experiment_id: str) -> Iterator[None]:
    """Point MLflow's global (fluent) store at ``uri`` for one call, then put back what the process had.

    ``set_tracking_uri`` and ``set_experiment`` also export ``MLFLOW_TRACKING_URI`` / ``MLFLOW_EXPERIMENT_ID``,
    which would redirect every later run of this process (a notebook, a test session) to this store.
    """
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])  # None unsets it
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def register_onnx(onnx_path: Path, name: str, checkpoint: Path, cfg: Config, meta: CheckpointMeta) -> str:
    """Log ``onnx_path`` to the training run and register it as a new version of ``name``; says which."""
    try:
        import mlflow
        import mlflow.onnx
        import onnx
    except ImportError as err:
        raise RuntimeUnavailable(
            f"registering needs mlflow.onnx, which cannot be imported ({err}): {REGISTRY_HINT}"
        ) from None
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    tracker = RunTracker(cfg.tracking.model_copy(update={"enabled": True}), run_dir.parent)
    uri = tracker.tracking_uri
    client = mlflow.MlflowClient(uri)
    run_id = _training_run(client, cfg, meta, run_dir.name)
    info = read_onnx_info(onnx_path)
    if run_id is None:  # no training run to attach to: the export gets a run of its own
        with tracker:
            run_id = tracker.start(f"export-{run_dir.name}", {}, {"checkpoint": str(checkpoint)})
    assert run_id is not None
    with _fluent_store(mlflow, uri, client.get_run(run_id).info.experiment_id):  # the flavour API is fluent
        logged = mlflow.onnx.log_model(
            onnx.load(str(onnx_path)),
            name=f"onnx-{info.precision}",
            registered_model_name=name,
            run_id=run_id,
            metadata=info.model_dump(mode="json"),
            save_as_external_data=False,
            pip_requirements=mlflow.onnx.get_default_pip_requirements(),  # inferring them costs a subprocess
        )
    version = logged.registered_model_version
    for key in ("precision", "sha256", "source"):
        client.set_model_version_tag(name, version, key, str(getattr(info, key)))
    return f"{name} version {version} (run {run_id}, {uri})"
