"""Simple commands of shell scripts (Dockerfile ``RUN`` lines, the README's ```` ```bash ```` blocks) as argv lists.

``bashlex`` parses the shell (lists, pipelines, loops, continuations, comments, quoting); expansions are
filled in from a given environment, since the checks need the words a command would actually receive.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path

import bashlex
from markdown_it import MarkdownIt

from docker_checks import REPO

UNKNOWN = "0"  # what an expansion with no known value ($gpu, $(id -u)) becomes: a valid number, port or UID


class _Commands(bashlex.ast.nodevisitor):
    def __init__(self) -> None:
        self.found: list[bashlex.ast.node] = []

    def visitcommand(self, node: bashlex.ast.node, parts: list) -> None:
        self.found.append(node)


def _expand(script: str, word: bashlex.ast.node, env: Mapping[str, str]) -> str:
    """One word as the command receives it: quotes removed, ``$V`` / ``${V}`` / ``${V:-d}`` / ``$(...)`` filled.

    Each expansion is swapped for a marker before shlex removes the quotes, so values are never re-parsed.
    """
    start = word.pos[0]
    text, values = script[start : word.pos[1]], {}
    for part in sorted(getattr(word, "parts", []), key=lambda p: p.pos, reverse=True):
        name, _, default = (part.value if part.kind == "parameter" else "").partition(":-")
        marker = f"\0{len(values)}\0"
        values[marker] = env.get(name) or default or UNKNOWN
        text = text[: part.pos[0] - start] + marker + text[part.pos[1] - start :]
    expanded = "".join(shlex.split(text))
    for marker, value in values.items():
        expanded = expanded.replace(marker, value)
    return expanded


def commands(script: str, env: Mapping[str, str]) -> Iterator[tuple[int, list[str]]]:
    """Every simple command of ``script`` (``NAME=value`` prefixes kept): (offset in the script, argv)."""
    visitor = _Commands()
    for tree in bashlex.parse(script):
        visitor.visit(tree)
    for node in sorted(visitor.found, key=lambda n: n.pos):
        argv = [_expand(script, p, env) for p in node.parts if p.kind in ("word", "assignment")]
        if argv:
            yield node.pos[0], argv


def markdown_commands(markdown: Path, env: Mapping[str, str]) -> Iterator[tuple[str, list[str]]]:
    """Every simple command of the ```` ```bash ```` blocks of ``markdown``: (``file:line``, argv)."""
    name = markdown.relative_to(REPO)
    for block in MarkdownIt("commonmark").parse(markdown.read_text()):
        if block.type == "fence" and block.info.strip() == "bash":
            first = block.map[0] + 2  # 1-based line of the block's first line, after the ``` line
            for offset, argv in commands(block.content, env):
                line = first + block.content.count("\n", 0, offset)
                yield f"{name}:{line}", argv
