"""docker/postgres-init scripts run for real, with a stub ``psql`` that records what it is given."""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import dataclass
from pathlib import Path

import sqlparse

STUB = '#!/bin/sh\nprintf "%s\\n" "$@" > "$STUB_OUT/argv"\ncat > "$STUB_OUT/sql"\n'


@dataclass
class PsqlCall:
    variables: dict[str, str]  # psql's --set NAME=VALUE
    sql: str  # what it read on standard input


def run(script: Path, env: dict[str, str], tmp_path: Path) -> PsqlCall | None:
    """Run ``script`` with only ``env`` set (and a PATH to the stub); None when it fails."""
    stub = tmp_path / "psql"
    stub.write_text(STUB)
    stub.chmod(0o755)
    env = {**env, "PATH": f"{tmp_path}:/usr/bin:/bin", "STUB_OUT": str(tmp_path)}
    if subprocess.run(["bash", str(script)], env=env, capture_output=True).returncode:
        return None
    argv = (tmp_path / "argv").read_text().splitlines()
    variables = dict(value.partition("=")[::2] for flag, value in itertools.pairwise(argv) if flag == "--set")
    return PsqlCall(variables, (tmp_path / "sql").read_text())


def statements(call: PsqlCall) -> list[tuple[str, ...]]:
    """sqlparse's statements as word tuples, keywords upper-cased, psql's ``:"name"`` / ``:'name'`` filled in."""
    found = []
    for statement in sqlparse.parse(call.sql):
        words: list[str] = []
        for token in (t for t in statement.flatten() if not t.is_whitespace and t.value != ";"):
            if words and words[-1] == ":" and token.value[:1] in "\"'":
                words[-1] = call.variables[token.value[1:-1]]
            else:
                words.append(token.value.upper() if token.is_keyword else token.value)
        found.append(tuple(words))
    return found
