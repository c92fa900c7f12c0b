"""What a run leaves behind, typed: the run folder, checkpoint metadata, model info, atomic file writes.

The one description of these files that every package reads and writes (training writes them; evaluation,
reports, searches, export, the runtimes and the benchmarks read them), so no package parses another's
JSON by key. Importing it loads neither torch nor ONNX Runtime: the serving image reads model info too.
Versioned by ``schema_version``: a file written by an earlier release is upgraded when read, one from a
newer release is refused with a clear message.
"""

from deepfake_mlc.artifacts.checkpoint import read_checkpoint, read_checkpoint_meta, write_checkpoint
from deepfake_mlc.artifacts.files import file_sha256, replace_atomically, write_json_atomically
from deepfake_mlc.artifacts.model_files import (
    PRECISIONS,
    SUFFIXES,
    Format,
    ModelKind,
    engine_graph_path,
    engine_metadata_path,
    export_name,
    export_precision,
    model_kind,
)
from deepfake_mlc.artifacts.run_folder import RunFolder, RunSummary, find_runs, resolve_checkpoint
from deepfake_mlc.artifacts.schema import (
    SCHEMA_VERSION,
    Calibration,
    CheckpointMeta,
    ModelInfo,
    Preprocessing,
    parse_model_info,
)

__all__ = [
    "PRECISIONS",
    "SCHEMA_VERSION",
    "SUFFIXES",
    "Calibration",
    "CheckpointMeta",
    "Format",
    "ModelInfo",
    "ModelKind",
    "Preprocessing",
    "RunFolder",
    "RunSummary",
    "engine_graph_path",
    "engine_metadata_path",
    "export_name",
    "export_precision",
    "file_sha256",
    "find_runs",
    "model_kind",
    "parse_model_info",
    "read_checkpoint",
    "read_checkpoint_meta",
    "replace_atomically",
    "resolve_checkpoint",
    "write_checkpoint",
    "write_json_atomically",
]
