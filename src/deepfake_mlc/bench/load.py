"""serve-bench --server: a closed-loop load on a model served over KServe v2 (NVIDIA Triton, ``deepfake-mlc serve``).

Closed loop, as Triton's perf_analyzer does it: ``c`` workers each send one request (one image), wait for the
answer and send the next, so that ``c`` requests are in flight and the throughput is what the server sustains
at that concurrency. Every level is bounded in requests and in seconds, and nothing is retried. Latency is the
client's round trip; queue and compute times are the server's own per-model statistics (Triton's
``inference_stats``), the difference across the level, so another client's requests would be in them. The
load comes from this Python process: at high concurrency its client can be the limit before the server is.

tritonclient is imported when a server is opened: serve-bench without ``--server`` runs where it is missing.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepfake_mlc.bench.accuracy import accuracy_columns
from deepfake_mlc.bench.timing import PERCENTILES
from deepfake_mlc.errors import ConfigError, RuntimeUnavailable
from deepfake_mlc.metrics.parity import Tolerances, check_parity

if TYPE_CHECKING:
    from deepfake_mlc.artifacts import ModelInfo
    from deepfake_mlc.config.schema import Split

SERVER = "server"  # the ``runtime`` of a served row
MODEL = "deepfake-mlc"  # what ``deepfake-mlc serve`` names the model
PROTOCOLS = ("http", "grpc")
CONCURRENCY = (1, 4, 16, 64)
REQUESTS = 500  # per level: enough for a p99 at every concurrency, a few seconds on a GPU server
LEVEL_SECONDS = 60.0  # per level at most, whatever is left of its requests
PARITY_CONCURRENCY = 8
TOKEN_HEADER = "triton-access-token"  # PyTriton's guard on its statistics endpoint
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"  # how Triton's restricted gRPC endpoints expect a header's key
TENSORS, IMAGES = "tensors", "images"  # the two kinds of request: preprocessed arrays, encoded files
INPUTS = {TENSORS: ("image", "FP32"), IMAGES: ("image_bytes", "BYTES")}
OUTPUT = "probabilities"


@dataclass(frozen=True)
class LoadSettings:
    """``--server*``: which model where, how many requests in flight, how many per level and for how long."""

    url: str
    model: str = MODEL
    protocol: str = "http"
    concurrency: tuple[int, ...] = CONCURRENCY
    requests: int = REQUESTS
    seconds: float = LEVEL_SECONDS
    warmup: int = 1  # untimed requests per worker before each level: connections open, server warm
    token: str | None = field(default=None, repr=False)
    precision: str = "fp32"  # the served arithmetic, which the quality gate's bound depends on

    def public(self) -> dict[str, Any]:
        """The settings as the report shows them: whether a token was given, never the token."""
        return {**asdict(self), "token": self.token is not None}


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0]


def client_url(url: str, protocol: str) -> str:
    """``host:port[/path]`` as tritonclient takes it, ``http://`` (or ``grpc://`` for gRPC) stripped."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if scheme not in (("http", "grpc") if protocol == "grpc" else ("http",)):
        raise ConfigError(f"--server {url}: give host:port or http://host:port (no TLS)")
    return rest


class Server:
    """One model on a KServe v2 server: its inputs (from its metadata), its statistics, a client per worker."""

    def __init__(self, settings: LoadSettings, labels: int) -> None:
        if settings.protocol not in PROTOCOLS:
            raise ConfigError(f"--server-protocol {settings.protocol}: one of {', '.join(PROTOCOLS)}")
        try:
            self._module = importlib.import_module(f"tritonclient.{settings.protocol}")
        except ModuleNotFoundError as err:
            raise RuntimeUnavailable(
                f"--server needs {err.name} (pip install 'deepfake-mlc[serve]'), which is not installed here"
            ) from None
        self.settings, self.labels = settings, labels
        self._url = client_url(settings.url, settings.protocol)
        prefix = GRPC_HEADER_PREFIX if settings.protocol == "grpc" else ""
        self._headers = {prefix + TOKEN_HEADER: settings.token} if settings.token else None
        self._admin = self.client()
        try:
            self.metadata = self._ask("get_model_metadata")
        except Exception as err:
            self.close()
            where = f"model {settings.model!r} at {settings.url} ({settings.protocol})"
            raise RuntimeUnavailable(f"{where} did not answer its metadata: {_one_line(err)}") from None
        self.inputs = {i["name"]: [int(d) for d in i.get("shape", [])] for i in self.metadata.get("inputs", [])}
        self.kinds = [kind for kind, (name, _) in INPUTS.items() if name in self.inputs]

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._admin.close()

    def client(self) -> Any:
        """A client of its own for one thread (tritonclient's HTTP client is not thread-safe)."""
        if self.settings.protocol == "http":
            return self._module.InferenceServerClient(
                self._url, connection_timeout=self.settings.seconds, network_timeout=self.settings.seconds
            )
        return self._module.InferenceServerClient(self._url)

    def release(self, client: Any) -> None:
        """Close a worker's client, and its thread's gevent loop (the HTTP client's), which would hold two files."""
        client.close()
        if self.settings.protocol == "http":
            import gevent

            gevent.get_hub().destroy(destroy_loop=True)

    def _ask(self, method: str) -> dict[str, Any]:
        extra = {"as_json": True} if self.settings.protocol == "grpc" else {}
        return getattr(self._admin, method)(self.settings.model, headers=self._headers, **extra)

    def statistics(self) -> Counter[str] | str:
        """The model's cumulative counters, summed over its versions; why not, when the server will not say.

        Some servers guard the endpoint (PyTriton: a ``triton-access-token`` header, ``--server-token``).
        """
        try:
            return counters(self._ask("get_inference_statistics"))
        except Exception as err:
            return f"statistics unavailable: {_one_line(err)}"

    def settled_statistics(self, bound_s: float = 1.0) -> Counter[str] | str:
        """:meth:`statistics` once its request counts stop moving (bounded): Triton counts a request after
        answering it, so a snapshot taken as the last answer arrives can miss it."""
        deadline = time.monotonic() + bound_s
        previous = self.statistics()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            current = self.statistics()
            if isinstance(current, str) or isinstance(previous, str):
                return current
            if (current["success_count"], current["fail_count"]) == (previous["success_count"], previous["fail_count"]):
                return current
            previous = current
        return previous

    def infer(self, client: Any, kind: str, payload: np.ndarray) -> np.ndarray:
        """The probabilities the server answers to one request of ``kind``; a malformed answer raises."""
        name, datatype = INPUTS[kind]
        tensor = self._module.InferInput(name, list(payload.shape), datatype)
        tensor.set_data_from_numpy(payload)
        extra = {"client_timeout": self.settings.seconds} if self.settings.protocol == "grpc" else {}
        outputs = [self._module.InferRequestedOutput(OUTPUT)]
        probs = client.infer(self.settings.model, [tensor], outputs=outputs, **extra).as_numpy(OUTPUT)
        if probs is None or probs.shape != (len(payload), self.labels):
            shape = None if probs is None else probs.shape
            raise ValueError(f"{OUTPUT} of shape {shape}, expected {(len(payload), self.labels)}")
        return probs


def counters(stats: Mapping[str, Any]) -> Counter[str]:
    """A statistics answer's counts and nanoseconds (``queue_ns``, ``success_count``, ...), summed over versions.

    gRPC's JSON leaves zeros out and writes its int64 numbers as text.
    """
    totals: Counter[str] = Counter()
    for model in stats.get("model_stats", []):
        totals["inference_count"] += int(model.get("inference_count", 0))
        totals["execution_count"] += int(model.get("execution_count", 0))
        for phase, figures in model.get("inference_stats", {}).items():
            totals[f"{phase}_count"] += int(figures.get("count", 0))
            totals[f"{phase}_ns"] += int(figures.get("ns", 0))
    return totals


def open_server(settings: LoadSettings, info: ModelInfo) -> Server:
    """The served model, checked against ``info``: an image input of the model's size, as many outputs as labels."""
    server = Server(settings, len(info.label_names))
    where = f"model {settings.model!r} at {settings.url}"
    size, image = info.preprocessing.image_size, server.inputs.get(INPUTS[TENSORS][0])
    problem = None
    if image is None:
        problem = f"has no input {INPUTS[TENSORS][0]!r} (it has {', '.join(server.inputs) or 'none'})"
    elif len(image) != 4 or any(0 < d != size for d in image[-2:]):
        problem = f"takes images of shape {image}, --model's are [batch, 3, {size}, {size}]"
    outputs = {o["name"]: [int(d) for d in o.get("shape", [])] for o in server.metadata.get("outputs", [])}
    if problem is None and OUTPUT not in outputs:
        problem = f"has no output {OUTPUT!r} (it has {', '.join(outputs) or 'none'})"
    elif problem is None and 0 < outputs[OUTPUT][-1] != server.labels:
        problem = f"answers {outputs[OUTPUT][-1]} probabilities, --model has {server.labels} labels"
    if problem is not None:
        server.close()
        raise RuntimeUnavailable(f"{where} {problem}: is it --model's?")
    return server


def image_files(source: Path, info: ModelInfo, split: Split, limit: int | None, subset: str | None) -> list[Path]:
    """The files ``eval_arrays`` reads, in its order: an ``images`` request sends one of them as it is on disk."""
    from deepfake_mlc.data.reading import evenly_spaced
    from deepfake_mlc.data.sources import data_for, read_split
    from deepfake_mlc.runtime.data import preprocessing_config

    data = data_for(Path(source), preprocessing_config(info, subset), subset)
    samples = read_split(data, split)[0]
    if limit is not None:
        samples = evenly_spaced(samples, limit)
    return [Path(path) for path, _ in samples if Path(path).is_file()]


def payloads(kind: str, images: np.ndarray, files: Sequence[Path]) -> list[np.ndarray]:
    """One request's input per image: a ``[1, 3, S, S]`` array, or a ``[1, 1]`` array of the file's bytes."""
    if kind == TENSORS:
        return [np.ascontiguousarray(images[i : i + 1]) for i in range(len(images))]
    return [np.array([[path.read_bytes()]], dtype=np.object_) for path in files]


class _Requests:
    """A level's requests, handed to the workers one at a time until they are all sent or the time is up."""

    def __init__(self, count: int, seconds: float) -> None:
        self._count, self._seconds, self._next, self._lock = count, seconds, 0, threading.Lock()
        self.started = self.deadline = float("inf")
        self.capped = False

    def start(self) -> None:
        self.started = time.perf_counter()
        self.deadline = self.started + self._seconds

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self._count:
                return None
            if time.perf_counter() >= self.deadline:
                self.capped = True
                return None
            self._next += 1
            return self._next - 1


@dataclass
class _Worker:
    latencies: list[float] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)  # when, what
    answers: dict[int, np.ndarray] = field(default_factory=dict)
    finished: float = 0.0


def _work(
    server: Server,
    kind: str,
    inputs: Sequence[np.ndarray],
    ready: threading.Barrier,
    go: threading.Event,
    requests: _Requests,
    out: _Worker,
    keep: bool,
) -> None:
    client = server.client()
    try:
        for i in range(server.settings.warmup):
            with contextlib.suppress(Exception):  # a server that fails it fails the timed requests too, counted
                server.infer(client, kind, inputs[i % len(inputs)])
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        go.wait()
        while (j := requests.take()) is not None:
            start = time.perf_counter()
            try:
                probs = server.infer(client, kind, inputs[j % len(inputs)])
            except Exception as err:  # the server's error, a timeout, a refused connection: counted, not retried
                out.errors.append((start, _one_line(err)))
                continue
            out.latencies.append(time.perf_counter() - start)
            if keep:
                out.answers[j % len(inputs)] = probs
        out.finished = time.perf_counter()
    finally:
        server.release(client)


@dataclass(frozen=True)
class Level:
    """One concurrency level's outcome: what the client saw and what the server's statistics say."""

    kind: str
    concurrency: int
    latencies: np.ndarray  # seconds of each answered request
    errors: int
    first_error: str | None
    seconds: float  # from the first request sent to the last answer
    capped: bool  # the time ran out before every request was sent
    server: dict[str, Any] | None  # the server's figures over the level; None when it has no statistics
    answers: dict[int, np.ndarray]  # by image, when kept

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.errors

    @property
    def answers_per_s(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0


def server_figures(before: Counter[str] | str, after: Counter[str] | str) -> dict[str, Any] | None:
    """Requests, mean queue and compute (input + infer + output) ms per request, and mean batch, between two counts."""
    if isinstance(before, str) or isinstance(after, str):
        return None
    d = after.copy()
    d.subtract(before)

    def mean_ms(*phases: str) -> float | None:
        if not all(d[f"{p}_count"] for p in phases):
            return None
        return sum(d[f"{p}_ns"] / d[f"{p}_count"] for p in phases) / 1e6

    return {
        "success": d["success_count"],
        "fail": d["fail_count"],
        "queue_ms": mean_ms("queue"),
        "compute_ms": mean_ms("compute_input", "compute_infer", "compute_output"),
        "batch": d["inference_count"] / d["execution_count"] if d["execution_count"] else None,
    }


def run_level(
    server: Server, kind: str, inputs: Sequence[np.ndarray], concurrency: int, count: int, keep: bool = False
) -> Level:
    """``count`` requests (cycling over ``inputs``), ``concurrency`` at a time; ``keep``: the answers too."""
    requests, limit = _Requests(count, server.settings.seconds), 2 * server.settings.seconds
    ready, go = threading.Barrier(concurrency + 1, timeout=limit), threading.Event()
    workers = [_Worker() for _ in range(concurrency)]
    threads = [
        threading.Thread(target=_work, args=(server, kind, inputs, ready, go, requests, w, keep), daemon=True)
        for w in workers
    ]
    for thread in threads:
        thread.start()
    before: Counter[str] | str = "no level"
    hung = None
    try:
        ready.wait()
        before = server.settled_statistics()  # here, not in a worker: a client stays in its thread
        requests.start()
    except threading.BrokenBarrierError:
        hung = f"warm-up requests unanswered after {limit:g} s"
    go.set()
    for thread in threads:
        thread.join()
    after = server.settled_statistics()
    errors = sorted(e for w in workers for e in w.errors)
    latencies = np.asarray([s for w in workers for s in w.latencies], dtype=np.float64)
    return Level(
        kind=kind,
        concurrency=concurrency,
        latencies=latencies,
        errors=len(errors),
        first_error=errors[0][1] if errors else hung,
        seconds=max((w.finished for w in workers), default=0.0) - requests.started if len(latencies) else 0.0,
        capped=requests.capped,
        server=server_figures(before, after),
        answers={i: p for w in workers for i, p in w.answers.items()},
    )


def level_row(level: Level, settings: LoadSettings) -> dict[str, Any]:
    """A served row of the report: the level's requests, errors, throughput, latency and server-side times."""
    name = f"{SERVER} {settings.protocol} {level.kind} c={level.concurrency}"
    row: dict[str, Any] = {
        "name": name,
        "runtime": SERVER,
        "status": "ok" if len(level.latencies) else "failed",
        "reference": False,
        "protocol": settings.protocol,
        "kind": level.kind,
        "concurrency": level.concurrency,
        "requests": level.requests,
        "answers": len(level.latencies),
        "errors": level.errors,
        "first_error": level.first_error,
        "time_capped": level.capped,
        "seconds": level.seconds,
        "answers_per_s": level.answers_per_s,
        "server_stats": level.server,
        "failures": [],
    }
    if not len(level.latencies):
        row["reason"] = f"none of {level.requests} requests answered: {level.first_error}"
        return row
    p = np.percentile(level.latencies, PERCENTILES) * 1e3
    row |= {f"p{q}_ms": float(v) for q, v in zip(PERCENTILES, p, strict=True)}
    row["mean_ms"] = float(level.latencies.mean() * 1e3)
    if level.errors:
        row["failures"] = [f"{name}: {level.errors} of {level.requests} requests failed, first: {level.first_error}"]
    return row


def served_parity(
    server: Server,
    images: np.ndarray,
    reference: np.ndarray | None,
    reference_row: Mapping[str, Any] | None,
    targets: np.ndarray,
    info: ModelInfo,
    tolerances: Tolerances,
) -> dict[str, Any]:
    """The served probabilities of every evaluation image (tensors) against the reference's, by the quality gate."""
    settings = server.settings
    count = len(images)
    level = run_level(server, TENSORS, payloads(TENSORS, images, ()), min(PARITY_CONCURRENCY, count), count, True)
    figures: dict[str, Any] = {
        "images": count,
        "answered": len(level.answers),
        "errors": level.errors,
        "first_error": level.first_error,
        "seconds": level.seconds,
        "failures": [],
    }
    where = f"{SERVER} {settings.protocol} {TENSORS}"
    if reference is None or reference_row is None:
        return {**figures, "reason": "no runtime ran here to compare with"}
    if level.errors or level.capped:
        figures["failures"].append(
            f"{where}: {count - len(level.answers)} of {count} evaluation images unanswered"
            + (f", first error: {level.first_error}" if level.first_error else f" in {settings.seconds:g} s")
        )
    if not level.answers:
        return {**figures, "reason": "no image answered"}
    index = sorted(level.answers)
    probs = np.concatenate([level.answers[i] for i in index])
    threshold = np.asarray(info.decision_thresholds())
    parity = check_parity(
        probs,
        reference[index],
        threshold,
        runtime=where,
        precision=settings.precision,
        reference_runtime=reference_row["name"],
        reference_precision=reference_row["precision"],
        targets=targets[index],
        tolerances=tolerances,
    )
    columns = accuracy_columns(parity, probs, targets[index], info.label_names, threshold)
    return {**figures, **columns, "failures": figures["failures"] + columns["failures"]}


def load_server(
    server: Server,
    images: np.ndarray,
    files: Sequence[Path],
    reference: np.ndarray | None,
    reference_row: Mapping[str, Any] | None,
    targets: np.ndarray,
    info: ModelInfo,
    tolerances: Tolerances,
    step: Callable[[str], None] = lambda description: None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The server's section of the report (settings, metadata, parity) and one row per kind and concurrency.

    Parity first: it also warms the server up. ``files`` are what ``images`` requests send (their bytes).
    """
    settings = server.settings
    parity = served_parity(server, images, reference, reference_row, targets, info, tolerances)
    step(f"{SERVER}: parity")
    rows = []
    for kind in server.kinds:
        inputs = payloads(kind, images, files)
        for concurrency in settings.concurrency:
            if inputs:
                rows.append(level_row(run_level(server, kind, inputs, concurrency, settings.requests), settings))
            step(f"{SERVER} {kind}: c={concurrency}")
    stats = server.statistics()
    section = {
        **settings.public(),
        "platform": server.metadata.get("platform"),
        "versions": server.metadata.get("versions"),
        "inputs": list(server.inputs),
        "kinds": server.kinds,
        "statistics": stats if isinstance(stats, str) else "available",
        "parity": parity,
    }
    return section, rows
