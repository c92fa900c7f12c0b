"""The photos (and videos) a user points a command at: found in folders, and why one could not be read.

``predict``, ``explain`` and ``data faces`` walk their inputs the same way and report a bad file the same
way: a result with its reason, never the end of the run.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from deepfake_mlc.errors import CorruptImageError, CorruptVideoError, InputNotFoundError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# what makes one input unreadable without stopping the others
UNREADABLE = (CorruptImageError, CorruptVideoError, FileNotFoundError, IsADirectoryError, PermissionError)


def files_under(folder: Path, suffixes: Collection[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The files with one of ``suffixes`` (any case) below ``folder``, recursively, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


def collect_inputs(paths: Sequence[Path], suffixes: Collection[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Files as given (read, or reported, later, whatever they are) and the files with ``suffixes`` under
    folders; absolute paths. Nothing there at all is an error."""
    found: list[Path] = []
    for path in (p.expanduser().resolve() for p in paths):
        found += files_under(path, suffixes) if path.is_dir() else [path]  # a missing file is reported later
    if not any(p.exists() for p in found):
        kinds = "images or videos" if suffixes != IMAGE_SUFFIXES else "images"
        raise InputNotFoundError(f"no {kinds} ({', '.join(sorted(suffixes))}) in {', '.join(map(str, paths))}")
    return found


def unreadable_reason(err: BaseException, path: Path) -> str:
    """Why ``path`` could not be read, without its path (it stands beside the reason)."""
    return "file not found" if isinstance(err, FileNotFoundError) else str(err).replace(f" {path}:", ":")


def file_progress() -> Progress:
    """The progress bar of a walk over files (gone when done)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    )
