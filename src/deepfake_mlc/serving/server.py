"""``deepfake-mlc serve``: NVIDIA Triton Inference Server's own core, run locally, with our runners inside.

Triton gives what serving means for these models — KServe v2 over HTTP and gRPC, dynamic batching across
concurrent clients, model metadata, health and readiness, Prometheus metrics, per-model statistics — and
the binary ships in PyTriton's wheel (``nvidia-pytriton``), so no Docker and no NVIDIA container are needed.
PyTriton's own Python API is not used (it pins numpy below 2, and it answers every failure of a batch with
a 500): the server runs our Python-backend model (:mod:`deepfake_mlc.serving.triton_model`) from a model
repository written in a temporary workspace, and the model runs through our runners.

The Python-backend stub embeds the shared ``libpython3.X`` the system has and takes its standard library
and packages from the first ``python3`` on ``PATH`` (it ignores ``PYTHONPATH`` and ``PYTHONHOME``). Its
tensors pass through numpy's C API of numpy 1.x (under numpy 2 it misreads inputs and crashes on strings),
so the stub gets an environment of its own (:func:`stub_environment`): a venv of this interpreter holding
numpy 1.26 and, after it, this environment's packages. That works with a Debian ``python3.11`` and with
pyenv's (whose standard library is a patch release newer than Debian's ``libpython``), because nothing in
the served model uses the multiprocessing machinery that differs between them (PyTriton's tensor store
does, and fails there).

SIGTERM or Ctrl-C drains: Triton stops taking new requests, answers those in flight, then exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deepfake_mlc.artifacts import ModelInfo, model_kind
from deepfake_mlc.errors import ConfigError, InputNotFoundError, RuntimeUnavailable, UserError
from deepfake_mlc.runtime import available_runtimes, read_model_info
from deepfake_mlc.serving.repository import MODEL_NAME, TritonModel, read_repository, write_repository

PYTRITON = "nvidia-pytriton==0.7.0"
INSTALL_HINT = f"pip install --no-deps '{PYTRITON}' (its Triton server binary; see docs/serving.md)"
MODEL_PY = b"from deepfake_mlc.serving.triton_model import TritonPythonModel  # noqa: F401\n"
STUB_NUMPY = "numpy>=1.24,<2"  # what the Python backend of PyTriton 0.7's Triton (2.51) reads tensors with
START_TIMEOUT_S = 180.0
DRAIN_TIMEOUT_S = 30
PR_SET_PDEATHSIG = 1  # prctl: the signal a child gets when its parent dies


@dataclass(frozen=True)
class ServeSettings:
    """What ``deepfake-mlc serve`` was asked for; ``None``: the default (the runtime: the first that runs the
    model on this machine's CPU or GPU)."""

    model: Path
    name: str | None = None  # a repository's model (its only one by default); what clients call it: MODEL_NAME
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = 32
    queue_delay_us: int = 100
    runtime: str | None = None
    threads: int | None = None
    instances: int = 1
    min_face: int = 40


def triton_distribution() -> Path:
    """The folder of the Triton server PyTriton's wheel bundles (``bin/tritonserver``, the Python backend)."""
    spec = importlib.util.find_spec("pytriton")  # found, not imported: its Python API is not used
    if spec is None or spec.origin is None:
        raise RuntimeUnavailable(f"serving needs NVIDIA Triton's server: {INSTALL_HINT}")
    folder = Path(spec.origin).parent / "tritonserver"
    if not (folder / "bin" / "tritonserver").is_file():
        raise RuntimeUnavailable(f"{folder} has no bin/tritonserver: reinstall it: {INSTALL_HINT}")
    return folder


def served_file(model: Path, name: str | None) -> tuple[Path, ModelInfo, str]:
    """The model file to serve, its info and the name clients call it by: a run folder, checkpoint, ONNX
    model, engine (``name``, default :data:`MODEL_NAME`), or a Triton model repository written by
    ``export --format triton`` (its model ``name``, or its only model, under its own name)."""
    model = Path(model).expanduser()
    if not model.exists():
        raise InputNotFoundError(f"no such model: {model}")
    if model.is_dir() and not (model / "config.yaml").is_file() and not (model / "checkpoints").is_dir():
        return read_repository(model, name)
    return model, read_model_info(model), name or MODEL_NAME


def _runtime(path: Path, asked: str | None) -> str:
    runtimes = available_runtimes(path)
    if asked is not None:
        if asked not in runtimes:
            raise RuntimeUnavailable(f"--runtime {asked} does not run {path} here (it runs in: {', '.join(runtimes)})")
        return asked
    if not runtimes:
        raise RuntimeUnavailable(f"no runtime on this machine runs {path}")
    return "pytorch" if model_kind(path) == "checkpoint" else runtimes[0]


def check_ports(host: str, ports: tuple[int, ...]) -> None:
    """Each port free on ``host`` and the three distinct: else the readiness check could be answered by another
    server, and Triton would fail with its own message only after starting."""
    if len(set(ports)) != len(ports):
        raise ConfigError(f"--http-port, --grpc-port and --metrics-port must differ (got {', '.join(map(str, ports))})")
    for port in ports:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no obstacle
            try:
                probe.bind((host, port))
            except OSError as err:
                raise ConfigError(f"port {port} on {host} cannot be used: {err.strerror}") from None


def _server_folder(workspace: Path) -> Path:
    """Triton's binaries, with the Python-backend stub built for this interpreter's version."""
    source = triton_distribution()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = source / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise RuntimeUnavailable(f"Triton's Python backend has no stub for Python {version} ({PYTRITON})")
    target = workspace / "tritonserver"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("python_backend_stubs"))
    shutil.copy(stub, target / "backends" / "python" / "triton_python_backend_stub")
    return target


def stub_environment() -> Path:
    """The Python environment of Triton's Python-backend stub, made once inside this one (``share/``): numpy 1.x,
    then this environment's packages (a ``.pth`` adds its site-packages, editable installs included).

    Made under a lock, in a sibling folder renamed into place when complete, so two servers starting at once
    neither wipe each other's nor find a half-made one.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    home = Path(sys.prefix) / "share" / "deepfake-mlc"
    folder = home / f"triton-python-{version}"
    marker = folder / "deepfake-mlc-stub.json"
    if marker.is_file():
        return folder
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RuntimeUnavailable(f"cannot make Triton's Python environment in {home}: {err.strerror}") from None
    with (home / f"triton-python-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():  # made by another process while this one waited
            return folder
        building = Path(tempfile.mkdtemp(prefix=f".triton-python-{version}-", dir=home))
        try:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(building)], check=True)
            packages = building / "lib" / f"python{version}" / "site-packages"
            pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:"]
            installed = subprocess.run(
                [*pip, "--target", str(packages), STUB_NUMPY], capture_output=True, text=True, check=False
            )
            if installed.returncode != 0:
                reason = " ".join(installed.stderr.strip().splitlines()[-1:]) or f"pip exited {installed.returncode}"
                raise RuntimeUnavailable(f"could not install {STUB_NUMPY} for Triton's Python backend: {reason}")
            ours = sysconfig.get_paths()["purelib"]  # this environment's site-packages, after numpy 1.x
            (packages / "deepfake_mlc_stub.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
            (building / marker.name).write_text(json.dumps({"python": sys.version.split()[0], "numpy": STUB_NUMPY}))
            shutil.rmtree(folder, ignore_errors=True)  # a half-made one from before the lock existed
            building.replace(folder)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return folder


def _environment(libraries: Path, python: Path) -> dict[str, str]:
    """This process's environment for Triton: the stub's ``python3`` first on PATH, the server's libraries and,
    when this interpreter is built shared (pyenv's, python.org's), its own ``libpython`` first, so the stub
    embeds the very Python whose standard library it reads (else it takes the system's, Debian's)."""
    env = dict(os.environ)
    own = sysconfig.get_config_var("LIBDIR") if sysconfig.get_config_var("Py_ENABLE_SHARED") else None
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [own, env.get("LD_LIBRARY_PATH"), str(libraries)]))
    env["PATH"] = os.pathsep.join([str(python / "bin"), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _die_with_parent() -> None:
    """In the child before exec: Triton gets SIGTERM (and drains) if the process that started it dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class StopRequested(Exception):
    """SIGTERM or Ctrl-C came while the server was still starting: it was stopped instead."""


class LocalTriton:
    """A Triton server process serving one model, in a workspace of its own; ``start``, then ``stop``.

    ``request_stop`` (from a signal handler) is honoured at any point: before Triton runs, start gives up;
    once it runs, Triton drains.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.path, self.info, self.name = served_file(settings.model, settings.name)
        self.runtime = _runtime(self.path, settings.runtime)
        self.process: subprocess.Popen | None = None
        self.workspace: Path | None = None
        self.failure: str | None = None  # the last error Triton logged, when it exited with a failure
        self.open_connections = False  # stopped after its drain timeout, on idle client connections only
        self.stop_requested = False

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.settings.host}:{self.settings.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.metrics_port}/metrics"

    @property
    def log(self) -> Path:
        assert self.workspace is not None
        return self.workspace / "tritonserver.log"

    def _command(self, server: Path, repository: Path) -> list[str]:
        s = self.settings
        return [
            str(server / "bin" / "tritonserver"),
            f"--model-repository={repository}",
            f"--backend-directory={server / 'backends'}",
            f"--cache-directory={server / 'caches'}",
            f"--http-address={s.host}",
            f"--http-port={s.http_port}",
            f"--grpc-address={s.host}",
            f"--grpc-port={s.grpc_port}",
            f"--metrics-address={s.host}",
            f"--metrics-port={s.metrics_port}",
            f"--exit-timeout-secs={DRAIN_TIMEOUT_S}",
            "--strict-readiness=true",
            "--log-verbose=0",
        ]

    def request_stop(self) -> None:
        """Ask for a drained stop (signal-safe): now if Triton runs, else as soon as start reaches a step."""
        self.stop_requested = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def _check_stop(self) -> None:
        if self.stop_requested:
            raise StopRequested

    def start(self) -> None:
        """Write the workspace, start Triton and wait until the model is ready; on any failure (or a stop
        request) nothing is left running and the workspace is gone."""
        s = self.settings
        check_ports(s.host, (s.http_port, s.grpc_port, s.metrics_port))
        python = stub_environment()
        try:
            self._check_stop()
            self.workspace = Path(tempfile.mkdtemp(prefix="deepfake-mlc-serve-"))
            server = _server_folder(self.workspace)
            model = TritonModel(
                name=self.name,
                backend="python",
                info=self.info,
                max_batch_size=s.max_batch,
                queue_delay_us=s.queue_delay_us,
                instance_kind="cpu",
                instance_count=s.instances,
                parameters={
                    "model_path": str(self.path.resolve()),
                    "runtime": self.runtime,
                    "threads": "" if s.threads is None else str(s.threads),
                    "min_face": str(s.min_face),
                },
            )
            repository = self.workspace / "repository"
            write_repository(repository, model, {"model.py": MODEL_PY})
            self._check_stop()
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    self._command(server, repository),
                    env=_environment(triton_distribution().parent.parent / "nvidia_pytriton.libs", python),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        ready = f"{self.http_url}/v2/models/{self.name}/ready"
        while time.monotonic() < deadline:
            self._check_stop()
            if self.process.poll() is not None:
                raise UserError(f"Triton exited with status {self.process.returncode} while starting: {self.reason()}")
            try:
                with urllib.request.urlopen(ready, timeout=2) as answer:
                    if answer.status == 200 and self.process.poll() is None:
                        return
            except Exception:
                pass
            time.sleep(0.25)
        raise UserError(f"Triton did not get {self.name} ready in {START_TIMEOUT_S:.0f} s: {self.reason()}")

    def reason(self) -> str:
        """Why Triton failed, in one line: the model's load error if it logged one (its exception's first line),
        else its last error line; and where its log is kept."""
        text = self.log.read_text(errors="replace")
        kept = Path(tempfile.gettempdir()) / f"{self.workspace.name}.log" if self.workspace else self.log
        shutil.copyfile(self.log, kept)
        lines = [line for line in text.splitlines() if line.strip()]
        loads = [line for line in lines if "failed to load" in line or "Failed to create instance" in line]
        errors = [line for line in lines if line.startswith("E") and "CudaDriverHelper" not in line]
        line = (loads or errors or lines or ["(no output)"])[0 if loads else -1]
        line = line.split("\\n")[0]  # a Python exception logged as one line with escaped newlines
        return " ".join(line.split())[:400] + f" (Triton's log: {kept})"

    def stop(self, timeout: float = DRAIN_TIMEOUT_S + 10) -> int:
        """SIGTERM: Triton refuses new requests, answers those in flight, exits; then the workspace goes."""
        status = 0
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                status = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                status = self.process.wait()
        elif self.process is not None:
            status = self.process.returncode
        if status != 0 and self.workspace is not None and self._drained():
            status = 0
        if status not in (0, None) and self.workspace is not None:  # the workspace goes next: its log stays
            self.failure = self.reason()
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)
            self.workspace = None
        return status

    def _drained(self) -> bool:
        """Whether Triton exited on its drain timeout with every inference answered: only clients' idle
        keep-alive connections were still open (Triton waits for them, then exits with status 1)."""
        text = self.log.read_text(errors="replace")
        answered = "Found 0 model versions that have in-flight inferences" in text
        self.open_connections = "Exit timeout expired" in text and answered
        return self.open_connections

    def wait(self) -> int:
        """Until Triton exits (it does on SIGTERM or SIGINT)."""
        assert self.process is not None
        return self.process.wait()


@contextmanager
def serving(settings: ServeSettings) -> Iterator[LocalTriton]:
    """A started server for the ``with`` block, drained and stopped after it."""
    server = LocalTriton(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()
