"""docker/*.Dockerfile through ``dockerfile-parse``: instructions by stage, exec forms, ``RUN`` commands."""

from __future__ import annotations

import json
import posixpath
import shlex
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from string import Template
from typing import Any

from dockerfile_parse import DockerfileParser

from docker_checks.shell import commands

# dockerfile-parse's instruction, startline (0-based), value, content; plus env: the ARG and ENV values in force
Instruction = dict[str, Any]


@dataclass(frozen=True)
class Image:
    """One Dockerfile as built with ``build_args``; get it from ``image()``, which parses each one once."""

    path: Path
    build_args: tuple[tuple[str, str], ...] = ()  # --build-arg NAME=VALUE, as a hashable tuple

    @cached_property
    def parsed(self) -> DockerfileParser:
        return DockerfileParser(str(self.path), build_args=dict(self.build_args))

    @cached_property
    def stages(self) -> list[list[Instruction]]:
        """The instructions from each ``FROM`` on (the global ``ARG`` lines before the first are left out)."""
        stages: list[list[Instruction]] = []
        for instruction, context in zip(self.parsed.structure, self.parsed.context_structure, strict=True):
            if instruction["instruction"] == "FROM":
                stages.append([])
            if stages and instruction["instruction"] != "COMMENT":
                stages[-1].append({**instruction, "env": {**context.envs, **context.args}})
        return stages

    def where(self, instruction: Instruction) -> str:
        return f"{self.path.name}:{instruction['startline'] + 1}"

    def final(self, keyword: str) -> list[Instruction]:
        """The final stage's ``keyword`` instructions."""
        return [i for i in self.stages[-1] if i["instruction"] == keyword]

    def all(self, keyword: str) -> list[Instruction]:
        """Every stage's ``keyword`` instructions."""
        return [i for stage in self.stages for i in stage if i["instruction"] == keyword]

    def exec_form(self, keyword: str) -> list[str]:
        """The last ``keyword`` (``ENTRYPOINT``, ``CMD``, ``VOLUME``) of the final stage, which must be JSON."""
        found = self.final(keyword)
        if not found:
            return []
        value = json.loads(found[-1]["value"])
        assert isinstance(value, list), f"{self.where(found[-1])}: {keyword} must be in exec (JSON) form"
        return value

    def arg_names(self) -> set[str]:
        """Every ``ARG`` the file declares, global or in a stage: what ``--build-arg`` may set."""
        return {keys(i)[0] for i in self.parsed.structure if i["instruction"] == "ARG"}

    def run_commands(self) -> list[tuple[str, list[str]]]:
        """The simple commands of every ``RUN`` line, its ARGs and ENVs filled in: (``file:line``, argv)."""
        return [(self.where(i), argv) for i in self.all("RUN") for _, argv in commands(i["value"], i["env"])]

    def copied_into_workdir(self) -> set[str]:
        """Absolute destinations of the final stage's ``COPY`` from the build context (``--from`` left out)."""
        workdir, copied = "/", set()
        for instruction in self.stages[-1]:
            if instruction["instruction"] == "WORKDIR":
                workdir = posixpath.join(workdir, instruction["value"])
            elif instruction["instruction"] == "COPY" and "--from" not in instruction["value"]:
                copied.add(posixpath.normpath(posixpath.join(workdir, words(instruction)[-1])))
        return copied

    def command(self, entrypoint: list[str] | None = None, command: list[str] | None = None) -> list[str]:
        """What a container runs: Docker's ENTRYPOINT + CMD rules (an entrypoint override drops the image's CMD)."""
        if entrypoint is not None:
            return [*entrypoint, *(command or [])]
        return [*self.exec_form("ENTRYPOINT"), *(command or self.exec_form("CMD"))]


@cache
def image(path: Path, **build_args: str) -> Image:
    return Image(Path(path).resolve(), tuple(sorted(build_args.items())))


def substitute(instruction: Instruction) -> str:
    """The instruction's value with ``$NAME`` / ``${NAME}`` replaced by the ``ARG`` and ``ENV`` values in force."""
    return Template(instruction["value"]).safe_substitute(instruction["env"])


def words(instruction: Instruction) -> list[str]:
    """The words of an instruction's value, shell-style (``COPY --chown=a src dst``) or JSON (``["a", "b"]``)."""
    value = instruction["value"]
    return json.loads(value) if value.startswith("[") else shlex.split(value)


def keys(instruction: Instruction) -> list[str]:
    """The names an ``ARG``, ``ENV`` or ``LABEL`` instruction sets (``A=1 B=2``, or the legacy ``ENV A 1``)."""
    if instruction["instruction"] == "ARG" or "=" not in instruction["value"].split()[0]:
        return [instruction["value"].split()[0].partition("=")[0]]
    return [word.partition("=")[0] for word in shlex.split(instruction["value"])]
