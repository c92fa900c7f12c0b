"""The training loop: one plain loop that Accelerate runs on a CPU, one GPU, many GPUs or many machines.

``accelerate launch train --config X.yaml``, ``deepfake-mlc train --config X.yaml`` and ``python train``
all end here. Accelerate owns devices, DDP, mixed precision, gradient accumulation and the checkpoint
state; this module owns what the paper's protocol needs: validation mAP each epoch, best/last
checkpoints, early stopping, EMA and exact resume.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import broadcast_object_list, set_seed
from timm.utils import ModelEmaV3

from deepfake_mlc.config.loader import ConfigError, dump_yaml, load_config
from deepfake_mlc.config.schema import Config
from deepfake_mlc.data import build_dataset, build_loader, label_stats
from deepfake_mlc.engine.checkpoint import (
    PROGRESS_FILE,
    save_training_state,
    training_state_dir,
    write_checkpoint,
)
from deepfake_mlc.engine.evaluate import predict, summarize
from deepfake_mlc.engine.label_graph import install_label_graph
from deepfake_mlc.engine.optim import build_optimizer, build_scheduler
from deepfake_mlc.engine.progress import TrainingDisplay
from deepfake_mlc.losses import build_loss
from deepfake_mlc.metrics.plots import plot_pr_curves
from deepfake_mlc.models import build_model, count_parameters
from deepfake_mlc.tracking import RunTracker, flatten


class LaunchError(ConfigError):
    """The processes started are not the distributed job that was asked for."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite: training cannot go on."""


class EvalHook(Protocol):
    """Someone outside the loop who sees every evaluation and may stop the run (a search's pruner).

    ``should_stop`` is called on the main process only; the loop broadcasts the answer so that every
    rank of a DDP job stops together. ``run_id`` names an MLflow run the training should log into.
    """

    run_id: str | None

    def should_stop(self, epoch: int, metrics: dict[str, Any]) -> bool: ...


@dataclass
class Progress:
    """Where the loop is; saved with the training state so ``--resume`` continues exactly."""

    epoch: int = 0  # next epoch to run
    batches_done: int = 0  # batches of ``epoch`` already trained
    global_step: int = 0  # optimiser steps
    best_map: float = -1.0
    best_epoch: int = -1
    bad_evals: int = 0
    run_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    run_dir: Path
    best_metrics: dict[str, Any]
    best_epoch: int
    history: list[dict[str, Any]]
    run_id: str | None
    params: int
    stopped_by: str | None = None  # "early stopping" or "pruned"; None when all epochs ran


def make_accelerator(cfg: Config, cpu: bool) -> Accelerator:
    """An Accelerator for ``cfg``, after checking that the launch matches what the user asked for."""
    precision = cfg.train.mixed_precision
    if precision == "fp16" and (cpu or not torch.cuda.is_available()):
        raise ConfigError(
            "bad value for 'train.mixed_precision': fp16 needs a CUDA GPU (on a CPU Accelerate would silently "
            "train in fp32); use bf16 or no"
        )
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=precision,
        gradient_accumulation_steps=cfg.train.grad_accum_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.seed),
        step_scheduler_with_optimizer=False,
    )
    expected = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != expected:
        hint = (
            " On a CPU machine, start real CPU DDP with ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu "
            "--num_processes N train --cpu ..."
            if not torch.cuda.is_available()
            else ""
        )
        raise LaunchError(
            f"launched as {expected} processes but the process group has {accelerator.num_processes}: each process "
            f"would train alone and overwrite the same run folder.{hint}"
        )
    threads = cfg.train.num_threads or max(1, (os.cpu_count() or 1) // accelerator.num_processes)
    torch.set_num_threads(threads)
    return accelerator


def run_name(cfg: Config) -> str:
    if cfg.output.name:
        return cfg.output.name
    source = cfg.data.subset if cfg.data.format == "seqdeepfake" else "manifest"
    return f"{cfg.model.name}-{source}-{cfg.loss.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(cfg: Config, accelerator: Accelerator, resume: str | Path | None) -> Path:
    """The run folder: the one to resume, or a new one (created by the main process, checked writable)."""
    if resume is not None:
        return Path(resume)
    run_dir = cfg.output.dir / run_name(cfg)
    if accelerator.is_main_process:
        try:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            probe = run_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise PermissionError(f"cannot write the run folder {run_dir} (output.dir): {err.strerror}") from None
    accelerator.wait_for_everyone()
    return run_dir


def run_tags(cfg: Config) -> dict[str, str]:
    """Tags that let a user filter the paper's table in the MLflow UI."""
    kind = cfg.model.graph.embedding.kind
    return {
        "subset": cfg.data.subset if cfg.data.format == "seqdeepfake" else "manifest",
        "method": cfg.model.name,
        "loss": cfg.loss.name,
        "embedding": kind or ("word" if "gcn" in cfg.model.name and "image" not in cfg.model.name else "none"),
    }


def train(
    cfg: Config | None,
    cpu: bool = False,
    resume: str | Path | None = None,
    show_progress: bool = True,
    hook: EvalHook | None = None,
) -> TrainResult:
    """Train ``cfg`` to the end (or early stop); returns the best validation metrics and the run folder.

    With ``resume`` (a run folder) the run's own saved config is used and training continues from its
    last saved state; ``cfg`` is then ignored. ``hook`` sees each evaluation and may stop the run.
    """
    if resume is not None:
        resume = Path(resume).expanduser()
        if training_state_dir(resume) is None:
            raise FileNotFoundError(f"nothing to resume in {resume}: no saved training state ({resume / 'state'})")
        cfg = load_config(Config, resume / "config.yaml")
    assert cfg is not None
    accelerator = make_accelerator(cfg, cpu)
    set_seed(cfg.seed)
    run_dir = prepare_run_dir(cfg, accelerator, resume)

    train_set = build_dataset(cfg.data, "train", seed=cfg.seed)
    val_set = build_dataset(cfg.data, "val", train=False)
    labels = train_set.label_names
    model = build_model(cfg.model, len(labels))
    params = count_parameters(model)
    if resume is None:
        install_label_graph(model, cfg, train_set, label_stats(train_set.targets.numpy(), labels), accelerator)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg.train)
    if cfg.train.compile:
        model = torch.compile(model)
    train_loader = build_loader(train_set, cfg.data, train=True, seed=cfg.seed)
    val_loader = build_loader(val_set, cfg.data, train=False)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.train.grad_accum_steps)
    scheduler = build_scheduler(optimizer, cfg.train, steps_per_epoch)
    accelerator.register_for_checkpointing(scheduler)
    ema = None
    if cfg.train.ema:
        ema = ModelEmaV3(accelerator.unwrap_model(model), decay=cfg.train.ema_decay)
        accelerator.register_for_checkpointing(ema)
    criterion = build_loss(cfg.loss)

    progress = Progress()
    if resume is not None:
        state_dir = training_state_dir(run_dir)
        accelerator.load_state(str(state_dir))
        progress = Progress(**json.loads((state_dir / PROGRESS_FILE).read_text()))
    elif accelerator.is_main_process:
        (run_dir / "config.yaml").write_text(dump_yaml(cfg))

    tracker = RunTracker(cfg.tracking, cfg.output.dir, active=accelerator.is_main_process)
    progress.run_id = tracker.start(
        run_dir.name,
        flatten(cfg.model_dump(mode="json")),
        {**run_tags(cfg), "run_dir": str(run_dir)},
        progress.run_id or (hook.run_id if hook is not None else None),
    )
    if resume is None:
        tracker.log_artifact(run_dir / "config.yaml")
    meta_base = {
        "config": cfg.model_dump(mode="json"),
        "label_names": list(labels),
        "preprocessing": {
            "image_size": cfg.data.image_size,
            "interpolation": cfg.data.interpolation,
            "mean": list(cfg.data.mean),
            "std": list(cfg.data.std),
        },
        "threshold": cfg.train.threshold,
        "params": params,
        "run_id": progress.run_id,  # the MLflow run, so an export can be registered against it
    }
    display = TrainingDisplay(enabled=accelerator.is_main_process, bar=show_progress)
    best_outputs = None
    stopped_by = None
    with tracker, display:
        for epoch in range(progress.epoch, cfg.train.epochs):
            epoch_start = time.perf_counter()
            train_set.set_epoch(epoch)
            train_loader.set_epoch(epoch)
            batches = train_loader
            if progress.batches_done:
                batches = accelerator.skip_first_batches(train_loader, progress.batches_done)
            model.train()
            loss_sum = torch.zeros((), device=accelerator.device)
            seen = 0
            display.start_epoch(epoch, cfg.train.epochs, len(train_loader), progress.batches_done)
            for batch in batches:
                if batch is None:
                    continue
                images, targets = batch
                if cfg.train.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                with accelerator.accumulate(model):
                    loss = criterion(model(images).float(), targets)
                    if not torch.isfinite(loss):
                        raise NonFiniteLossError(
                            f"loss is {loss.item()} at epoch {epoch + 1}, step {progress.global_step}"
                        )
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.train.clip_grad_norm:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.train.clip_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    if accelerator.sync_gradients:
                        scheduler.step()
                        progress.global_step += 1
                        if ema is not None:
                            ema.update(accelerator.unwrap_model(model), step=progress.global_step)
                loss_sum += loss.detach() * len(targets)
                seen += len(targets)
                progress.batches_done += 1
                display.step(loss.item(), scheduler.get_last_lr()[0], len(targets) * accelerator.num_processes)
            train_loss = accelerator.reduce(loss_sum, "sum").item() / max(
                1, accelerator.reduce(torch.tensor(seen, device=accelerator.device), "sum").item()
            )
            epoch_seconds = time.perf_counter() - epoch_start
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "train/loss": train_loss,
                "lr": scheduler.get_last_lr()[0],
                "epoch_time_s": epoch_seconds,
                "images_per_s": len(train_set) / epoch_seconds,
            }
            last_epoch = epoch + 1 == cfg.train.epochs
            if (epoch + 1) % cfg.train.eval_every == 0 or last_epoch:
                candidates = {"model": model} | ({"ema": ema.module} if ema is not None else {})
                scores, outputs = {}, {}
                for name, net in candidates.items():
                    probs, targets = predict(net, val_loader, accelerator)
                    outputs[name] = (probs, targets)
                    scores[name] = summarize(probs, targets, labels, cfg.train.threshold, cfg.train.convention)
                    prefix = "val" if name == "model" else "val_ema"
                    record.update({f"{prefix}/{k}": v for k, v in scores[name].items()})
                weights = max(scores, key=lambda n: scores[n]["mAP"])
                best = scores[weights]
                meta = {**meta_base, "epoch": epoch + 1, "weights": weights, "metrics": best}
                net = accelerator.unwrap_model(candidates[weights])
                if accelerator.is_main_process:
                    write_checkpoint(run_dir / "checkpoints" / "last", net, meta)
                if best["mAP"] > progress.best_map:
                    progress.best_map, progress.best_epoch, progress.bad_evals = best["mAP"], epoch + 1, 0
                    if accelerator.is_main_process:
                        write_checkpoint(run_dir / "checkpoints" / "best", net, meta)
                        best_outputs = outputs[weights]
                else:
                    progress.bad_evals += 1
                patience = cfg.train.early_stopping_patience
                if patience is not None and progress.bad_evals >= patience:
                    stopped_by = "early stopping"
                # the hook hears every epoch; a prune after the last one would save nothing and lose the result
                if (
                    hook is not None
                    and _hook_says_stop(hook, accelerator, epoch + 1, best)
                    and epoch + 1 < cfg.train.epochs
                ):
                    stopped_by = "pruned"
                display.evaluated(epoch, best, weights)
            tracker.log_metrics(record, step=epoch + 1)
            progress.history.append(record)
            progress.epoch, progress.batches_done = epoch + 1, 0
            save_training_state(accelerator, run_dir, progress.__dict__)
            if stopped_by == "early stopping":
                display.note(
                    f"early stop: no better validation mAP for {cfg.train.early_stopping_patience} evaluations"
                )
                break
            if stopped_by == "pruned":
                display.note(f"pruned by the search after epoch {epoch + 1}")
                break
        best_meta = (
            json.loads((run_dir / "checkpoints" / "best.json").read_text()) if accelerator.is_main_process else {}
        )
        if accelerator.is_main_process:
            (run_dir / "metrics.json").write_text(
                json.dumps(
                    {"best": best_meta.get("metrics"), "stopped_by": stopped_by, "history": progress.history}, indent=2
                )
            )
            tracker.log_artifact(run_dir / "metrics.json")
            if cfg.tracking.log_checkpoint:
                tracker.log_artifact(run_dir / "checkpoints" / "best.safetensors", "checkpoint")
                tracker.log_artifact(run_dir / "checkpoints" / "best.json", "checkpoint")
            if best_outputs is not None:
                curves = plot_pr_curves(
                    *best_outputs,
                    labels,
                    run_dir / "pr_curves.png",
                    title=f"{run_dir.name}: validation, epoch {progress.best_epoch}",
                )
                tracker.log_artifact(curves)
            tracker.set_tags({"best_epoch": str(progress.best_epoch)})
            summary = {f"best/{k}": v for k, v in best_meta.get("metrics", {}).items()}
            tracker.log_metrics({**summary, "best/params": params}, step=progress.best_epoch)
            display.table(
                {cfg.model.name: best_meta.get("metrics", {})},
                f"best validation metrics (epoch {progress.best_epoch}, threshold {cfg.train.threshold})",
                {cfg.model.name: params},
                [f"run folder: {run_dir}", f"checkpoint: {run_dir / 'checkpoints' / 'best.safetensors'}"],
            )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(
        run_dir,
        best_meta.get("metrics", {}),
        progress.best_epoch,
        progress.history,
        progress.run_id,
        params,
        stopped_by,
    )


def _hook_says_stop(hook: EvalHook, accelerator: Accelerator, epoch: int, metrics: dict[str, Any]) -> bool:
    """Ask the hook on the main process and give every rank the same answer."""
    answer = [hook.should_stop(epoch, metrics) if accelerator.is_main_process else False]
    if accelerator.num_processes > 1:
        broadcast_object_list(answer, from_process=0)
    return bool(answer[0])
