"""``deepfake-mlc report``: our results as the paper's Tables I/II, beside the paper's, plus Fig. 2/3.

Results come from run folders (their best checkpoint's metadata) or from an MLflow store (the
``best/*`` metrics every run logs at its end). Each run is matched to a paper row by subset, method,
loss and embedding; the paper's numbers are read from a ``tables.csv`` given by path.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_mlc.artifacts import RunFolder, read_checkpoint_meta
from deepfake_mlc.config import Config, validate
from deepfake_mlc.errors import InputNotFoundError
from deepfake_mlc.metrics import METRIC_NAMES
from deepfake_mlc.metrics.plots import plot_grouped_bars
from deepfake_mlc.models import model_entry

PAPER_TABLES = {
    "components": ("seq_comp", "Table II: Seq-Comp-Deepfake"),
    "attributes": ("seq_attr", "Table I: Seq-Attr-Deepfake"),
}
CSV_COLUMNS = ("subset", "category", "method", "loss", "embedding", "source", "params_m", *METRIC_NAMES)


@dataclass(frozen=True)
class Result:
    """One trained run, described like a paper row."""

    name: str
    subset: str  # components | attributes
    model: str
    loss: str
    params: int
    metrics: Mapping[str, float]

    @property
    def row(self) -> tuple[str, str, str]:
        """(category, paper method, embedding), as the model registry has them; a model without a paper row
        is its own method (an unregistered timm name, a direct one)."""
        entry = model_entry(self.model)
        if entry is None:
            return ("direct", self.model, "")
        return (entry.category, entry.paper.method if entry.paper else entry.name, entry.embedding)


def from_run_dirs(run_dirs: Iterable[Path]) -> list[Result]:
    """Results of finished runs: their summary's best metrics and their best checkpoint's config."""
    results = []
    for path in run_dirs:
        run = RunFolder(Path(path))
        summary, meta = run.read_summary(), read_checkpoint_meta(run.checkpoint())
        cfg = validate(Config, meta.config, source=str(run.checkpoint()))
        results.append(
            Result(run.name, cfg.data.subset, cfg.model.name, cfg.loss.name, meta.params or 0, summary.best or {})
        )
    return results


def from_mlflow(uri: str, experiment: str) -> list[Result]:
    """Finished runs of an MLflow experiment (their ``best/*`` metrics and config params)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise InputNotFoundError(f"no MLflow experiment {experiment!r} at {uri}")
    results = []
    for run in client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'"):
        metrics, params = run.data.metrics, run.data.params
        if "best/mAP" not in metrics:
            continue
        results.append(
            Result(
                run.info.run_name,
                params["data.subset"],
                params["model.name"],
                params["loss.name"],
                int(metrics.get("best/params", 0)),
                {m: metrics[f"best/{m}"] for m in METRIC_NAMES},
            )
        )
    return results


def read_paper(path: Path) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """The paper's rows keyed by (subset, method, embedding, loss)."""
    with Path(path).open(newline="") as fh:
        return {(r["subset"], r["method"], r["embedding"], r["loss"]): r for r in csv.DictReader(fh)}


def paper_row(paper: Mapping, result: Result) -> Mapping[str, Any] | None:
    """The paper's row for ``result``; rows that do not name a loss match any loss."""
    subset = PAPER_TABLES[result.subset][0]
    _, method, embedding = result.row
    return paper.get((subset, method, embedding, result.loss)) or paper.get((subset, method, embedding, ""))


def write_report(results: list[Result], out: Path, paper_csv: Path | None = None) -> list[Path]:
    """Markdown and CSV tables per subset (ours beside the paper's) and a grouped bar chart each."""
    out.mkdir(parents=True, exist_ok=True)
    paper = read_paper(paper_csv) if paper_csv else {}
    written = []
    rows: list[dict[str, Any]] = []
    for subset, (_, title) in PAPER_TABLES.items():
        mine = sorted((r for r in results if r.subset == subset), key=lambda r: (r.row[0] != "direct", r.name))
        if not mine:
            continue
        lines = [
            f"## {title}",
            "",
            "| Category | Method | Loss | Emb. | # Params (M) | " + " | ".join(METRIC_NAMES) + " |",
            "|" + "---|" * (5 + len(METRIC_NAMES)),
        ]
        for r in mine:
            category, method, embedding = r.row
            ref = paper_row(paper, r)
            cells = [f"{r.metrics[m]:.1f}" + (f" ({float(ref[m]):.1f})" if ref else "") for m in METRIC_NAMES]
            params = f"{r.params / 1e6:.1f}" + (f" ({float(ref['params_m']):.1f})" if ref else "")
            lines.append(
                f"| {category} | {method} | {r.loss} | {embedding or '–'} | {params} | " + " | ".join(cells) + " |"
            )
            common = {"subset": subset, "category": category, "method": method, "loss": r.loss, "embedding": embedding}
            rows.append(
                {
                    **common,
                    "source": "ours",
                    "params_m": round(r.params / 1e6, 2),
                    **{m: round(r.metrics[m], 2) for m in METRIC_NAMES},
                }
            )
            if ref:
                rows.append({**common, "source": "paper", **{k: ref[k] for k in ("params_m", *METRIC_NAMES)}})
        if paper:
            lines += ["", "Ours, with the paper's value in parentheses."]
        markdown = out / f"{subset}.md"
        markdown.write_text("\n".join(lines) + "\n")
        labels = {r.name: f"{r.row[1]} ({r.loss}{', ' + r.row[2] if r.row[2] else ''})" for r in mine}
        groups = {m: {labels[r.name]: r.metrics[m] for r in mine} for m in METRIC_NAMES}
        chart = plot_grouped_bars(
            groups,
            out / f"{subset}.png",
            title=f"{title}: direct (plain) vs indirect (hatched)",
            hatched=[labels[r.name] for r in mine if r.row[0] == "indirect"],
        )
        written += [markdown, chart]
    table = out / "results.csv"
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return [*written, table]
