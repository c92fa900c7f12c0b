"""Experiment tracking: MLflow runs that are no-ops off the main process or when disabled."""

from deepfake_mlc.tracking.mlflow_tracker import RunTracker, flatten, resolve_tracking_uri

__all__ = ["RunTracker", "flatten", "resolve_tracking_uri"]
