"""File writes that a kill cannot leave half done, and content hashes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a hidden sibling, then rename it over ``path``: a crash leaves the old file, never half a new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomically(path: Path, data: Any) -> Path:
    """``data`` as indented JSON, replacing ``path`` atomically."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    replace_atomically(path, lambda tmp: tmp.write_text(text))
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (checkpoints are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
