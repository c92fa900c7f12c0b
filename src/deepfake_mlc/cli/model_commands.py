"""``deepfake-mlc models``: every registered model, its paper row and its parameter count beside the paper's."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="list the registered models, their paper rows and parameter counts")
    models.add_argument("--num-labels", type=int, default=5, help="outputs of each model (default: 5)")
    models.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    models.set_defaults(func=run_models)


def model_rows(num_labels: int) -> list[dict]:
    """One row per registered model; models are built on the meta device (no memory, no weights)."""
    import torch

    from deepfake_mlc.models import build_model, count_parameters, list_models

    rows = []
    for entry in list_models():
        with torch.device("meta"):
            params = count_parameters(build_model(ModelConfig(name=entry.name), num_labels))
        rows.append(
            {
                "name": entry.name,
                "category": entry.category,
                "paper_method": entry.paper.method if entry.paper else None,
                "embedding": entry.embedding,
                "params": params,
                "paper_params_m": entry.paper.params_m if entry.paper else None,
                "description": entry.description,
            }
        )
    return rows


def run_models(args: argparse.Namespace) -> int:
    if args.num_labels < 1:
        raise ConfigError("--num-labels must be positive")
    rows = model_rows(args.num_labels)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"registered models, {args.num_labels} labels (any timm name works too)")
    for column in ("name", "category", "paper row", "params (M)", "paper (M)", "diff"):
        table.add_column(column, justify="right" if column in ("params (M)", "paper (M)", "diff") else "left")
    for row in rows:
        paper = row["paper_params_m"]
        millions = row["params"] / 1e6
        diff = f"{100 * (millions - paper) / paper:+.1f} %" if paper and args.num_labels == 5 else ""
        method = row["paper_method"] or ""
        if method and row["embedding"]:
            method += f" ({row['embedding']})"
        table.add_row(row["name"], row["category"], method, f"{millions:.2f}", f"{paper:.1f}" if paper else "", diff)
    Console().print(table)
    return 0
