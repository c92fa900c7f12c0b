"""argparse models of the CLIs that have no parser to import: ``docker`` (build, run, compose), ``pip install``
and ``curl``.

Each lists the options of the real CLI that the docs and Dockerfiles use, marked as flags or as taking a
value (``docker run --help``, ``docker compose run --help``, ``pip install --help``, ``curl --help all``;
combined short flags such as ``curl -fsS`` parse as argparse combines them). An option missing here
fails the check instead of being misread: add it, with its kind, if the real CLI has it. No abbreviations,
and no ``-h``: ``docker run -h`` is ``--hostname``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Sequence

REMAINDER = argparse.REMAINDER  # a command's own arguments: everything after the image or service


def parse(parser: argparse.ArgumentParser, argv: Sequence[str], where: str) -> argparse.Namespace | None:
    """``parser``'s namespace for ``argv``; None for ``--help``; an AssertionError with argparse's message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(list(argv))
    except SystemExit as exit_:
        assert exit_.code == 0, f"{where}: `{parser.prog} {' '.join(argv)}` is rejected: {err.getvalue().strip()}"
        return None


def _model(
    parser: argparse.ArgumentParser, flags: str, values: str, positionals: Sequence[tuple[str, object]]
) -> argparse.ArgumentParser:
    """Declare ``flags`` (store_true) and ``values`` (repeatable, collected in a list): ``-s/--long`` each."""
    for names in flags.split():
        parser.add_argument(*names.split("/"), action="store_true")
    for names in values.split():
        parser.add_argument(*names.split("/"), action="append", default=[])
    for name, nargs in positionals:
        parser.add_argument(name, nargs=nargs)
    return parser


def _sub(commands, name: str, flags: str, values: str, *positionals: tuple[str, object]) -> argparse.ArgumentParser:
    """A sub-command of ``commands`` (what ``add_subparsers`` returned)."""
    return _model(commands.add_parser(name, add_help=False, allow_abbrev=False), flags, values, positionals)


def docker() -> argparse.ArgumentParser:
    """``docker build``, ``docker run`` and ``docker compose`` (global options, then run, up, logs, ...)."""
    parser = argparse.ArgumentParser(prog="docker", add_help=False, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    _sub(commands, "build", "--no-cache --pull -q/--quiet", "-f/--file -t/--tag --build-arg --target --platform",
         ("context", None))  # fmt: skip
    _sub(commands, "run", "-d/--detach -i/--interactive -t/--tty --rm --init --privileged",
         "-v/--volume -e/--env --env-file --gpus --network --shm-size --name -p/--publish --entrypoint -w/--workdir "
         "-u/--user --mount --ipc --runtime -l/--label --cpus -m/--memory --platform --hostname --add-host",
         ("image", None), ("args", REMAINDER))  # fmt: skip
    compose = _model(commands.add_parser("compose", add_help=False, allow_abbrev=False), "",
                     "-f/--file --env-file -p/--project-name --profile --project-directory", ())  # fmt: skip
    sub = compose.add_subparsers(dest="subcommand", required=True)
    _sub(sub, "run", "-d/--detach --rm --no-deps --service-ports -T/--no-TTY -i/--interactive --build",
         "-e/--env --entrypoint --name -u/--user -w/--workdir -v/--volume -p/--publish -l/--label",
         ("service", None), ("args", REMAINDER))  # fmt: skip
    _sub(sub, "up", "-d/--detach --build --no-build --force-recreate --remove-orphans --wait --no-deps",
         "--scale -t/--timeout --pull", ("services", "*"))  # fmt: skip
    _sub(sub, "logs", "-f/--follow -t/--timestamps --no-color", "--tail --since --until", ("services", "*"))
    _sub(sub, "down", "-v/--volumes --remove-orphans", "--rmi -t/--timeout")
    _sub(sub, "build", "--no-cache --pull -q/--quiet", "--build-arg", ("services", "*"))
    _sub(sub, "config", "-q/--quiet --services --volumes --variables", "--format -o/--output", ("services", "*"))
    for name in ("ps", "stop", "start", "restart", "pull"):
        _sub(sub, name, "", "", ("services", "*"))
    return parser


def pip_install() -> argparse.ArgumentParser:
    """``pip install`` (the words after ``install``)."""
    parser = argparse.ArgumentParser(prog="pip install", add_help=False, allow_abbrev=False)
    return _model(parser, "--no-cache-dir --no-deps --force-reinstall -U/--upgrade --user --pre -q/--quiet",
                  "-c/--constraint -r/--requirement -i/--index-url --extra-index-url -t/--target",
                  [("requirements", "*")])  # fmt: skip


def curl() -> argparse.ArgumentParser:
    """``curl`` (the words after ``curl``)."""
    parser = argparse.ArgumentParser(prog="curl", add_help=False, allow_abbrev=False)
    return _model(parser, "-f/--fail --fail-with-body -s/--silent -S/--show-error -L/--location -i/--include "
                  "-I/--head -v/--verbose", "-o/--output -H/--header -X/--request -d/--data --data-binary "
                  "-w/--write-out -m/--max-time --connect-timeout --retry", [("urls", "+")])  # fmt: skip
