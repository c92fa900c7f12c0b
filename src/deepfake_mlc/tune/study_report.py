"""What a study leaves behind: the best config ready to train, a trials table, plots and MLflow tags."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table

from deepfake_mlc.config.loader import apply_overrides, dump_yaml, validate
from deepfake_mlc.config.schema import Config
from deepfake_mlc.tune.storage import SKIPPED_ATTR

if TYPE_CHECKING:
    from deepfake_mlc.tune.study import TuneOptions

BEST_CONFIG = "best.yaml"
SUMMARY = "summary.md"


@dataclass
class TuneResult:
    study_name: str
    storage_url: str
    study_dir: Path
    states: dict[str, int]
    best: list[dict[str, Any]]  # number, values and params of each best (Pareto-optimal) trial
    best_config: Path | None
    parent_run_id: str | None


def write_study_report(study: optuna.Study, opts: TuneOptions) -> TuneResult:
    """Write ``best.yaml``, ``summary.md`` and ``plots/``, tag the best MLflow runs, print the table."""
    from deepfake_mlc.tune.study import OVERRIDES_ATTR, PARENT_ATTR

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SKIPPED_ATTR)]
    states = dict(Counter(t.state.name for t in trials))
    best = _best_trials(study)
    best_config = None
    if best:
        best_config = opts.study_dir / BEST_CONFIG
        _write_best_config(best[0], opts, best_config, best[0].user_attrs.get(OVERRIDES_ATTR, []))
    plots = _write_plots(study, opts.study_dir / "plots", [o.metric for o in opts.search.objectives])
    summary = opts.study_dir / SUMMARY
    summary.write_text(_markdown(trials, opts, states, best))
    _print_table(trials, opts, best)

    parent_id = study.user_attrs.get(PARENT_ATTR)
    if parent_id is not None:
        _tag_mlflow(opts, parent_id, trials, best, [summary, *plots, *([best_config] if best_config else [])])
    return TuneResult(
        study.study_name,
        opts.storage_url(),
        opts.study_dir,
        states,
        [{"number": t.number, "values": t.values, "params": t.params} for t in best],
        best_config,
        parent_id,
    )


def _best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial, or for several objectives the Pareto front sorted by the first objective."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return sorted(study.best_trials, key=lambda t: t.values[0], reverse=maximize)


def _write_best_config(trial: FrozenTrial, opts: TuneOptions, path: Path, overrides: list[str]) -> None:
    """The base config with the best trial's values: ``accelerate launch train --config best.yaml``."""
    cfg = validate(Config, apply_overrides(opts.base.model_dump(mode="json"), overrides), path.name)
    values = ", ".join(f"{o.metric} {v:.4g}" for o, v in zip(opts.search.objectives, trial.values, strict=True))
    header = (
        f"# Best trial ({trial.number}) of study {opts.study_name!r}: {values}\n"
        f"# Train it: accelerate launch train --config {path}\n"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + dump_yaml(cfg))
    tmp.replace(path)


def _write_plots(study: optuna.Study, folder: Path, metrics: list[str]) -> list[Path]:
    """Optuna's history, importance, intermediate-value and Pareto plots as PNG files."""
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    folder.mkdir(parents=True, exist_ok=True)
    target = (lambda t: t.values[0]) if len(metrics) > 1 else None
    plots = {
        "optimization_history": lambda: vis.plot_optimization_history(study, target=target, target_name=metrics[0]),
        "param_importances": lambda: vis.plot_param_importances(study, target=target, target_name=metrics[0]),
        "intermediate_values": lambda: vis.plot_intermediate_values(study),
    }
    if len(metrics) > 1:
        plots["pareto_front"] = lambda: vis.plot_pareto_front(study, target_names=metrics)
    written = []
    for name, draw in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                axes = draw()
            except (ValueError, RuntimeError):  # too few finished trials for this plot yet
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written


def _row(trial: FrozenTrial) -> list[str]:
    from deepfake_mlc.tune.study import REASON_ATTR

    values = ", ".join(f"{v:.4g}" for v in trial.values) if trial.values else ""
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    seconds = trial.duration.total_seconds() if trial.duration else None
    note = ""
    if trial.state == TrialState.PRUNED:
        note = f"pruned at epoch {trial.last_step}"
    elif trial.state == TrialState.FAIL:
        note = str(trial.user_attrs.get(REASON_ATTR, "failed"))[:120]
    return [str(trial.number), trial.state.name, values, params, f"{seconds:.0f}" if seconds else "", note]


HEADER = ["trial", "state", "value", "params", "seconds", "note"]


def _markdown(trials: list[FrozenTrial], opts: TuneOptions, states: dict[str, int], best: list[FrozenTrial]) -> str:
    objectives = ", ".join(f"{o.direction} {o.metric}" for o in opts.search.objectives)
    lines = [
        f"# Study {opts.study_name}",
        "",
        f"Objective: {objectives}. Trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())) + ".",
        "",
    ]
    if best:
        lines += [
            f"Best trial: {best[0].number} ({', '.join(f'{v:.4g}' for v in best[0].values)}); config: `{BEST_CONFIG}`.",
            "",
        ]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in _row(t)) + " |" for t in trials]
    return "\n".join(lines) + "\n"


def _print_table(trials: list[FrozenTrial], opts: TuneOptions, best: list[FrozenTrial]) -> None:
    table = Table(title=f"study {opts.study_name} ({opts.storage_url()})", title_justify="left")
    for name in HEADER:
        table.add_column(name, overflow="fold")
    best_numbers = {t.number for t in best}
    for trial in trials:
        table.add_row(*_row(trial), style="bold green" if trial.number in best_numbers else None)
    console = Console()
    console.print(table)
    if best:
        console.print(f"best config: {opts.study_dir / BEST_CONFIG}")


def _tag_mlflow(
    opts: TuneOptions, parent_id: str, trials: list[FrozenTrial], best: list[FrozenTrial], files: list[Path]
) -> None:
    """Mark the best trial on the parent run and ``optuna.best`` on each child; log the study's files.

    A plain client is used so that the runs' statuses, which the workers set, stay as they are.
    """
    from mlflow import MlflowClient

    from deepfake_mlc.tune.study import RUN_ID_ATTR, tracking_uri

    client = MlflowClient(tracking_uri(opts))
    for state, count in Counter(t.state.name.lower() for t in trials).items():
        client.log_metric(parent_id, f"trials/{state}", count)
    best_numbers = {t.number for t in best}
    for trial in trials:
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if run_id and trial.state == TrialState.COMPLETE:
            client.set_tag(run_id, "optuna.best", str(trial.number in best_numbers).lower())
    if best:
        top = best[0]
        client.set_tag(parent_id, "best_trial", str(top.number))
        client.set_tag(parent_id, "best_run_id", str(top.user_attrs.get(RUN_ID_ATTR, "")))
        for objective, value in zip(opts.search.objectives, top.values, strict=True):
            client.log_metric(parent_id, f"best/{objective.metric}", value, step=top.number)
    for path in files:
        client.log_artifact(parent_id, str(path), "plots" if path.suffix == ".png" else None)
