"""serve-bench's result for people: tables on screen and in Markdown, the JSON, a latency/throughput figure.

Every table is built once as text cells from the result dict (what ``serve_bench.json`` holds), then
rendered as rich or Markdown, so the screen and the file never disagree and a JSON can be re-rendered.
A served model's rows (``--server``) sit in the summary beside the in-process runtimes' and have a table of
their own for what only they have: errors, the server's queue and compute times.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfake_mlc.bench.load import SERVER, TENSORS
from deepfake_mlc.metrics import METRIC_NAMES
from deepfake_mlc.metrics.parity import Tolerances

if TYPE_CHECKING:
    from rich.table import Table

log = logging.getLogger(__name__)

Cells = tuple[list[str], list[list[str]]]  # a table as text: header, rows
UNSTABLE = 1.25  # trial medians further apart than this ratio are flagged: the machine was not quiet
LOG_WIDTH = 200  # columns when the output is not a terminal (logs, CI), so the wide tables stay readable


def _in_process(row: Mapping[str, Any]) -> bool:
    return row["runtime"] != SERVER


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _served_cells(row: Mapping[str, Any], server: Mapping[str, Any]) -> list[str]:
    """A served level in the summary's columns: its latency and throughput; the served parity on tensors rows."""
    parity = server["parity"] if row["kind"] == TENSORS and "gate" in server["parity"] else None
    accuracy = ["", "", "", "", ""]
    if parity is not None:
        accuracy = [
            f"{parity['metrics']['mAP']:.2f}",
            f"{parity['map_delta']:+.2f}",
            f"{parity['max_abs_diff']:.1e}",
            f"{parity['identical_label_sets']:.1f}",
            f"{'FAIL' if parity['failures'] else 'pass'} ({parity['gate']})",
        ]
    return [
        row["name"],
        server["precision"],
        SERVER,
        "ok" if not row["errors"] else f"{row['errors']} errors",
        "",
        *accuracy[:4],
        " / ".join(f"{row[f'p{q}_ms']:.2f}" for q in (50, 90, 99)),
        str(row["answers"]),
        f"{row['answers_per_s']:.1f} (c={row['concurrency']})",
        accuracy[4],
    ]


def summary_table(result: Mapping[str, Any]) -> Cells:
    """One row per runtime, like Ultralytics' benchmark: status, size, accuracy, parity, latency, best throughput.

    A served level's latency is one image's round trip at its concurrency, its throughput answers per second.
    """
    b = min(result["settings"]["batch_sizes"])  # single-request latency: batch 1 when it was measured
    header = ["runtime", "precision", "device", "status", "size (MB)", "mAP", "ΔmAP", "max abs Δp", "same labels (%)"]
    header += [f"b{b} p50/p90/p99 ms", "samples", "best img/s (batch)", "parity"]
    rows = []
    for row in result["rows"]:
        if row["status"] != "ok":
            rows.append([row["name"], "", "", row["status"], *[""] * (len(header) - 4)])
            continue
        if not _in_process(row):
            rows.append(_served_cells(row, result["server"]))
            continue
        latency = next(s for s in row["latency"] if s["batch_size"] == b)
        rows.append(
            [
                row["name"] + (" (ref)" if row["reference"] else ""),
                row["precision"],
                row["device"],
                "ok",
                f"{row['size_mb']:.3g}",
                f"{row['metrics']['mAP']:.2f}",
                f"{row['map_delta']:+.2f}",
                f"{row['max_abs_diff']:.1e}",
                f"{row['identical_label_sets']:.1f}",
                " / ".join(f"{latency[f'p{q}_ms']:.2f}" for q in (50, 90, 99)),
                str(latency["samples"]),
                f"{row['best_images_per_s']:.1f} ({row['best_batch_size']})",
                f"{'FAIL' if row['failures'] else 'pass'} ({row['gate']})",
            ]
        )
    return header, rows


def speed_table(result: Mapping[str, Any]) -> Cells:
    """Median latency and throughput of every batch size, per runtime that ran."""
    header = ["runtime", *(f"b{b} {unit}" for b in result["settings"]["batch_sizes"] for unit in ("p50 ms", "img/s"))]
    rows = [
        [row["name"], *(cell for s in row["latency"] for cell in (f"{s['p50_ms']:.2f}", f"{s['images_per_s']:.1f}"))]
        for row in result["rows"]
        if row["status"] == "ok" and _in_process(row)
    ]
    return header, rows


def served_table(result: Mapping[str, Any]) -> Cells:
    """Each served level: requests, errors, answers/s, round-trip latency, the server's own times per request."""
    header = ["served", "requests", "errors", "answers/s", "p50 / p90 / p99 ms", "mean ms", "queue ms", "compute ms"]
    header.append("server batch")
    rows = []
    for row in result["rows"]:
        if _in_process(row):
            continue
        stats = row["server_stats"] or {}
        answered = row["status"] == "ok"
        rows.append(
            [
                row["name"],
                str(row["requests"]) + (" (time cap)" if row["time_capped"] else ""),
                str(row["errors"]),
                f"{row['answers_per_s']:.1f}",
                " / ".join(f"{row[f'p{q}_ms']:.2f}" for q in (50, 90, 99)) if answered else "",
                f"{row['mean_ms']:.2f}" if answered else "",
                _ms(stats.get("queue_ms")),
                _ms(stats.get("compute_ms")),
                _ms(stats.get("batch")),
            ]
        )
    return header, rows


def metrics_table(result: Mapping[str, Any]) -> Cells:
    """The seven metrics per runtime, to two decimals: an int8 model's changes are often below 0.1."""
    rows = [
        [row["name"], *(f"{row['metrics'][k]:.2f}" for k in METRIC_NAMES)]
        for row in result["rows"]
        if row["status"] == "ok" and _in_process(row)
    ]
    parity = result.get("server", {}).get("parity", {})
    if "metrics" in parity:
        rows.append(
            [
                f"{SERVER} {result['server']['protocol']} {TENSORS}",
                *(f"{parity['metrics'][k]:.2f}" for k in METRIC_NAMES),
            ]
        )
    return ["runtime", *METRIC_NAMES], rows


def _markdown_table(table: Cells) -> list[str]:
    header, rows = table
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]


def _details(details: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{key} {value if isinstance(value, str) else json.dumps(value)}" for key, value in details.items()
    )


def _decisions(model: Mapping[str, Any]) -> str:
    """How the model decides, from its info: thresholds and their policy, and whether it is calibrated."""
    if model.get("thresholds"):
        thresholds = f"per-label thresholds ({model.get('threshold_policy') or 'fitted'})"
    else:
        thresholds = f"threshold {model['threshold']}"
    return thresholds + ("; calibrated (temperatures)" if model.get("calibration") else "")


def _setup_lines(result: Mapping[str, Any]) -> list[str]:
    model, data, machine, settings = result["model"], result["data"], result["machine"], result["settings"]
    gpu = machine["gpu"]
    on = {True: "on", False: "off", None: "n/a (no torch)"}
    gpu_text = f"{gpu['name']}, TF32 matmul {on[gpu['tf32_matmul']]}, cuDNN {on[gpu['tf32_cudnn']]}" if gpu else "none"
    per_trial = f"≥ {settings['min_time']:g} s of calls" if settings["min_time"] else f"{settings['iters']} calls"
    reference = result["reference"]
    return [
        f"- model: `{model['path']}` ({len(model['label_names'])} labels: {', '.join(model['label_names'])}; "
        f"{model['preprocessing']['image_size']} px; {_decisions(model)}; "
        f"sha256 {model['sha256'] or 'n/a'})",
        f"- data: `{data['path']}`, {data['split']} split, {data['images']} images",
        f"- machine: {machine['cpu']} ({' '.join(machine['simd']) or 'no x86 SIMD flags'}), "
        f"{machine['usable_cores']} of {machine['logical_cores']} cores usable, {machine['platform']}; GPU: {gpu_text}",
        f"- threads: {settings['threads'] or 'each runtime its default'}; "
        f"torch default {machine['torch_threads'] or 'n/a (no torch)'}",
        f"- load average (1/5/15 min): before {machine['load_average_before']}, after {machine['load_average_after']}",
        "- versions: " + ", ".join(f"{name} {version}" for name, version in machine["versions"].items()),
        f"- timing: per trial {settings['warmup']} untimed warm-up calls, then {per_trial}; {settings['trials']} "
        "trials interleaved across runtimes; percentiles over all timed calls of all trials (samples column)",
        "- reference: "
        + (f"{reference['name']} {reference['precision']} on {reference['device']}" if reference else "none ran")
        + f"; quality gate, each runtime held to the looser of its and the reference's bound: "
        f"{Tolerances(**settings['tolerances'])}",
        *_server_lines(result),
    ]


def _server_lines(result: Mapping[str, Any]) -> list[str]:
    """Where the served rows come from and how they were measured; nothing without a server."""
    server = result.get("server")
    if server is None:
        return []
    parity = server["parity"]
    answered = f"{parity['answered']} of {parity['images']} evaluation images answered in {parity['seconds']:.3g} s"
    return [
        f"- server: {server['url']} ({server['protocol']}), model `{server['model']}` "
        f"(platform {server['platform'] or 'n/a'}, inputs {', '.join(server['inputs'])}; "
        f"served arithmetic taken as {server['precision']}); statistics: {server['statistics']}",
        f"- served load: closed loop, one image per request, c requests in flight, no retries; per level "
        f"{server['requests']} requests or {server['seconds']:g} s, whichever ends first, after {server['warmup']} "
        "untimed request(s) per worker; latency: the client's round trip (this Python process sends); "
        "queue and compute: the server's statistics per request over the level",
        f"- served parity ({TENSORS}): {answered}" + (f"; n/a: {parity['reason']}" if "reason" in parity else ""),
    ]


def _runtime_lines(result: Mapping[str, Any]) -> list[str]:
    """Each runtime's threads and providers, why a runtime was skipped, and timings the machine disturbed."""
    ran = [row for row in result["rows"] if row["status"] == "ok" and _in_process(row)]
    lines = [f"- `{row['name']}`: {_details(row['details'])}" for row in ran]
    lines += [f"- {row['status']} `{row['name']}`: {row['reason']}" for row in result["rows"] if row["status"] != "ok"]
    lines += [
        f"- unstable timing, `{row['name']}` batch {s['batch_size']}: trial medians "
        + ", ".join(f"{t:.2f}" for t in s["trial_p50_ms"])
        + " ms (another process on the cores?)"
        for row in ran
        for s in row["latency"]
        if max(s["trial_p50_ms"]) > UNSTABLE * min(s["trial_p50_ms"])
    ]
    return lines


def header_lines(result: Mapping[str, Any]) -> list[str]:
    """Everything the figures depend on besides the model: machine, threads, load, versions, timing plan."""
    verdict = "PASSED" if result["passed"] else "FAILED: " + "; ".join(result["failures"])
    return [*_setup_lines(result), *_runtime_lines(result), f"- result: {verdict}"]


def markdown(result: Mapping[str, Any]) -> str:
    lines = [f"# serve-bench: {Path(result['model']['path']).name}", "", *header_lines(result), ""]
    lines += _markdown_table(summary_table(result))
    if "server" in result:
        lines += ["", "## Served: closed loop, one image per request", "", *_markdown_table(served_table(result))]
    lines += ["", "## Latency and throughput by batch size", "", *_markdown_table(speed_table(result))]
    lines += ["", "## Accuracy (%)", "", *_markdown_table(metrics_table(result))]
    return "\n".join(lines) + "\n"


def rich_table(table: Cells, title: str) -> Table:
    from rich.table import Table

    header, rows = table
    rendered = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        rendered.add_column(name, justify="left" if i == 0 else "right", overflow="fold")
    for cells in rows:
        rendered.add_row(*cells)
    return rendered


def write_report(result: Mapping[str, Any], out: Path) -> list[Path]:
    """``serve_bench.md``, ``serve_bench.json`` and ``serve_bench.png`` in ``out``.

    Without matplotlib (the serving image) the figure is left out: the tables and the JSON hold its numbers.
    """
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "serve_bench.md", out / "serve_bench.json"
    md.write_text(markdown(result))
    js.write_text(json.dumps(result, indent=2, default=str) + "\n")
    try:
        from deepfake_mlc.bench.figure import plot
    except ImportError as err:
        log.info("serve_bench.png not drawn: %s", err)
        return [md, js]
    return [md, js, plot(result, out / "serve_bench.png")]


def print_report(result: Mapping[str, Any], written: Sequence[Path]) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=LOG_WIDTH)
    for line in header_lines(result):
        console.print(line, highlight=False, markup=False)
    console.print(rich_table(summary_table(result), "serve-bench"))
    if "server" in result:
        console.print(rich_table(served_table(result), "served: closed loop, one image per request"))
    console.print(rich_table(speed_table(result), "latency and throughput by batch size"))
    console.print(rich_table(metrics_table(result), "accuracy (%)"))
    for path in written:
        console.print(f"written: {path}", highlight=False)
