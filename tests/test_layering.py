"""The layering contract (pyproject's import-linter contracts) holds, and it does fail on a violating import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``root/src`` with ``root/pyproject.toml``'s contracts."""
    command = [str(Path(sys.executable).with_name("lint-imports")), "--config", str(root / "pyproject.toml")]
    env = {"PYTHONPATH": str(root / "src"), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(command, capture_output=True, text=True, cwd=root, env=env, check=False)


def test_the_package_keeps_its_layers() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_a_lower_package_importing_a_higher_one_is_caught(tmp_path: Path) -> None:
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    artifacts = tmp_path / "src" / "deepfake_mlc" / "artifacts" / "files.py"
    artifacts.write_text(artifacts.read_text() + "\nfrom deepfake_mlc.engine import trainer  # deliberate\n")
    runtime = tmp_path / "src" / "deepfake_mlc" / "runtime" / "base.py"
    runtime.write_text(runtime.read_text() + "\nfrom deepfake_mlc.engine import evaluate  # deliberate\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "deepfake_mlc.artifacts.files -> deepfake_mlc.engine.trainer" in result.stdout
    assert "deepfake_mlc.runtime.base -> deepfake_mlc.engine.evaluate" in result.stdout
