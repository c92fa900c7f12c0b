"""The training loop: one plain loop that Accelerate runs on a CPU, one GPU, many GPUs or many machines.

``accelerate launch train --config X.yaml``, ``deepfake-mlc train --config X.yaml`` and ``python train``
all end in :func:`train` (``--resume RUN`` in :func:`resume`). Accelerate owns devices, DDP, mixed
precision, gradient accumulation and the checkpoint state; :class:`Trainer` owns what the paper's
protocol needs: validation mAP each epoch, best/last checkpoints, early stopping, EMA and exact resume.
"""

from __future__ import annotations

import math
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate.utils import broadcast_object_list, set_seed
from timm.utils import ModelEmaV3

from deepfake_mlc.artifacts import CheckpointMeta, Preprocessing, RunFolder, RunSummary, write_checkpoint
from deepfake_mlc.config import Config, dump_yaml, load_config
from deepfake_mlc.data import build_dataset, build_loader, label_stats
from deepfake_mlc.engine.evaluate import predict
from deepfake_mlc.engine.label_graph import install_label_graph
from deepfake_mlc.engine.launch import launch_summary, make_accelerator
from deepfake_mlc.engine.optim import build_optimizer, build_scheduler
from deepfake_mlc.engine.preemption import StopSignals, TrainingStopped
from deepfake_mlc.engine.progress import TrainingDisplay
from deepfake_mlc.engine.training_state import read_progress, save_training_state, training_state_dir
from deepfake_mlc.errors import InputNotFoundError, OutputNotWritableError
from deepfake_mlc.losses import build_loss
from deepfake_mlc.metrics import summarize
from deepfake_mlc.metrics.plots import plot_pr_curves
from deepfake_mlc.models import build_model, count_parameters, embedding_tag
from deepfake_mlc.tracking import RunTracker, flatten


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
    best_metrics: dict[str, Any] | None = None
    epoch_loss_sums: list[float] | None = None  # mid-epoch: each rank's loss sum and image count so far
    epoch_images: list[int] | None = None
    bad_evals: int = 0
    stopped_by: str | None = None  # "early stopping" or "pruned"; None while every epoch runs
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


def train(cfg: Config, cpu: bool = False, show_progress: bool = True, hook: EvalHook | None = None) -> TrainResult:
    """Train ``cfg`` in a new run folder to the end (or early stop); ``hook`` sees each evaluation."""
    return Trainer(cfg, cpu, show_progress, hook).fit()


def resume(
    run_dir: str | Path, cpu: bool = False, show_progress: bool = True, hook: EvalHook | None = None
) -> TrainResult:
    """Continue a run from its last saved training state, with the run's own config."""
    run = RunFolder(Path(run_dir).expanduser())
    if training_state_dir(run) is None:
        raise InputNotFoundError(f"nothing to resume in {run.path}: no saved training state ({run.state_dir})")
    return Trainer(load_config(Config, run.config_file), cpu, show_progress, hook, run).fit()


def run_name(cfg: Config) -> str:
    if cfg.output.name:
        return cfg.output.name
    source = cfg.data.subset if cfg.data.format == "seqdeepfake" else "manifest"
    return f"{cfg.model.name}-{source}-{cfg.loss.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_tags(cfg: Config) -> dict[str, str]:
    """Tags that let a user filter the paper's table in the MLflow UI."""
    return {
        "subset": cfg.data.subset if cfg.data.format == "seqdeepfake" else "manifest",
        "method": cfg.model.name,
        "loss": cfg.loss.name,
        "embedding": embedding_tag(cfg.model),
    }


class Trainer:
    """One training run: built from a config (new run) or a run folder (resume), then :meth:`fit`.

    Each method is one step of the protocol: :meth:`train_epoch`, :meth:`evaluate_and_checkpoint`,
    :meth:`end_epoch`, :meth:`finish`. Everything is built in ``__init__`` before the run folder of a new
    run is created, so a run that cannot start leaves no folder behind.
    """

    def __init__(
        self,
        cfg: Config,
        cpu: bool = False,
        show_progress: bool = True,
        hook: EvalHook | None = None,
        resume_from: RunFolder | None = None,
    ) -> None:
        self.cfg, self.hook = cfg, hook
        self.accelerator = make_accelerator(cfg, cpu)
        self.display = TrainingDisplay(enabled=self.accelerator.is_main_process, bar=show_progress)
        for line in launch_summary(cfg, self.accelerator):
            self.display.note(line)
        self._build(resume_from is None)
        self._open_run(resume_from)
        self.signals = StopSignals(
            self.accelerator, cfg.train.checkpoint_every_minutes, cfg.train.checkpoint_every_steps
        )
        self.best_outputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def _build(self, new_run: bool) -> None:
        """Data, model (with its label graph for a new run), optimiser, loaders, scheduler, EMA and loss."""
        cfg, accelerator = self.cfg, self.accelerator
        set_seed(cfg.seed)
        self.train_set = build_dataset(cfg.data, "train", seed=cfg.seed)
        val_set = build_dataset(cfg.data, "val", train=False)
        self.labels = self.train_set.label_names
        model = build_model(cfg.model, len(self.labels))
        self.params = count_parameters(model)
        if new_run:  # a resumed run's label graph is in its saved weights
            stats = label_stats(self.train_set.targets.numpy(), self.labels)
            install_label_graph(model, cfg, self.train_set, stats, accelerator)
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, cfg.train)
        if cfg.train.compile:
            model = torch.compile(model)
        train_loader = build_loader(self.train_set, cfg.data, train=True, seed=cfg.seed)
        val_loader = build_loader(val_set, cfg.data, train=False)
        self.model, self.optimizer, self.train_loader, self.val_loader = accelerator.prepare(
            model, optimizer, train_loader, val_loader
        )
        self.scheduler = build_scheduler(
            self.optimizer, cfg.train, math.ceil(len(train_loader) / cfg.train.grad_accum_steps)
        )
        accelerator.register_for_checkpointing(self.scheduler)
        self.ema = None
        if cfg.train.ema:
            self.ema = ModelEmaV3(accelerator.unwrap_model(self.model), decay=cfg.train.ema_decay)
            accelerator.register_for_checkpointing(self.ema)
        self.criterion = build_loss(cfg.loss)

    def _open_run(self, resume_from: RunFolder | None) -> None:
        """The run folder (new, or the resumed one with its saved state and position) and its MLflow run."""
        cfg, accelerator, hook = self.cfg, self.accelerator, self.hook
        self.progress, self._created_folder = Progress(), False
        if resume_from is not None:
            self.run = resume_from
            state_dir = training_state_dir(resume_from)
            accelerator.load_state(str(state_dir))
            self.progress = Progress(**read_progress(state_dir))
        else:
            self.run = self._create_run_folder()
        try:
            self.tracker = RunTracker(cfg.tracking, cfg.output.dir, active=accelerator.is_main_process)
            self.progress.run_id = self.tracker.start(
                self.run.name,
                flatten(cfg.model_dump(mode="json")),
                {**run_tags(cfg), "run_dir": str(self.run.path)},
                self.progress.run_id or (hook.run_id if hook is not None else None),
            )
            if resume_from is None:
                self.tracker.log_artifact(self.run.config_file)
        except BaseException:
            self._discard_new_run_folder()
            raise

    def _create_run_folder(self) -> RunFolder:
        """A new run folder with the resolved config (made by the main process, checked writable)."""
        name = [run_name(self.cfg)]
        if self.accelerator.num_processes > 1:  # the main process's clock names the folder every rank writes to
            broadcast_object_list(name, from_process=0)
        run = RunFolder(self.cfg.output.dir / name[0])
        self._created_folder = not run.path.exists()
        if self.accelerator.is_main_process:
            try:
                run.checkpoints.mkdir(parents=True, exist_ok=True)
                run.config_file.write_text(dump_yaml(self.cfg))
            except OSError as err:
                raise OutputNotWritableError(
                    f"cannot write the run folder {run.path} (output.dir): {err.strerror}"
                ) from None
        self.accelerator.wait_for_everyone()
        return run

    def _discard_new_run_folder(self) -> None:
        """A run that failed before training leaves no folder behind (one it did not create is left alone)."""
        if self._created_folder and self.accelerator.is_main_process:
            shutil.rmtree(self.run.path, ignore_errors=True)

    def fit(self) -> TrainResult:
        """Train the remaining epochs, evaluating, checkpointing and saving the state after each."""
        epochs = self.cfg.train.epochs
        with self.tracker, self.display, self.signals:
            for epoch in range(self.progress.epoch, epochs):
                if self.progress.stopped_by is not None:
                    break
                record = self.train_epoch(epoch)
                if (epoch + 1) % self.cfg.train.eval_every == 0 or epoch + 1 == epochs:
                    record.update(self.evaluate_and_checkpoint(epoch))
                self.end_epoch(record)
            self.finish()
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        p = self.progress
        return TrainResult(
            self.run.path, p.best_metrics or {}, p.best_epoch, p.history, p.run_id, self.params, p.stopped_by
        )

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the training split (the rest of it, when resumed mid-epoch): the epoch's record.

        After each optimiser step the loop may save the state mid-epoch (a signal, or the periodic clock)
        and, on a signal, stop: :class:`TrainingStopped` once the state is saved.
        """
        cfg, accelerator, progress = self.cfg, self.accelerator, self.progress
        start = time.perf_counter()
        self.train_set.set_epoch(epoch)
        self.train_loader.set_epoch(epoch)
        batches = self.train_loader
        if progress.batches_done:
            batches = accelerator.skip_first_batches(self.train_loader, progress.batches_done)
        self.model.train()
        rank = accelerator.process_index
        loss_sum = torch.tensor(
            progress.epoch_loss_sums[rank] if progress.epoch_loss_sums else 0.0, device=accelerator.device
        )
        seen = resumed_seen = progress.epoch_images[rank] if progress.epoch_images else 0
        self.display.start_epoch(epoch, cfg.train.epochs, len(self.train_loader), progress.batches_done)
        for batch in batches:
            if batch is None:  # every image of the batch was unreadable and skipped
                continue
            images, targets = batch
            loss = self.step(images, targets, epoch)
            loss_sum += loss.detach() * len(targets)
            seen += len(targets)
            progress.batches_done += 1
            self.display.step(loss.detach(), self.scheduler.get_last_lr()[0], len(targets) * accelerator.num_processes)
            if accelerator.sync_gradients:  # between optimiser steps: nothing half-accumulated to lose
                self._save_or_stop(loss_sum, seen)
        totals = accelerator.reduce(torch.tensor([seen, seen - resumed_seen], device=accelerator.device), "sum")
        seconds = time.perf_counter() - start
        progress.epoch_loss_sums = progress.epoch_images = None
        return {
            "epoch": epoch + 1,
            "train/loss": accelerator.reduce(loss_sum, "sum").item() / max(1, int(totals[0])),
            "lr": self.scheduler.get_last_lr()[0],
            "epoch_time_s": seconds,
            "images_per_s": int(totals[1]) / seconds,  # the images this process trained, after a mid-epoch resume too
        }

    def _save_or_stop(self, loss_sum: torch.Tensor, seen: int) -> None:
        """Save the training state mid-epoch when a signal or the clock asks; stop after saving on a signal."""
        stop, save = self.signals.poll(self.progress.global_step)
        if not save:
            return
        accelerator, progress = self.accelerator, self.progress
        per_rank = accelerator.gather(
            torch.stack([loss_sum.float(), torch.tensor(float(seen), device=loss_sum.device)])
        )
        progress.epoch_loss_sums = per_rank[0::2].tolist()
        progress.epoch_images = [int(n) for n in per_rank[1::2].tolist()]
        save_training_state(self.accelerator, self.run, asdict(progress))
        self.signals.saved()
        if stop:
            self._stop(
                f"in epoch {progress.epoch + 1}, after batch {progress.batches_done} of {len(self.train_loader)}"
            )

    def _stop(self, where: str) -> None:
        raise TrainingStopped(
            self.signals.received or signal.SIGTERM,
            f"stopped by {self.signals.signal_name()} {where}; the training state is saved: "
            f"continue with deepfake-mlc train --resume {self.run.path}",
        )

    def step(self, images: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        """Forward, backward and (at the end of an accumulation) the optimiser, scheduler and EMA steps."""
        if self.cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        accelerator = self.accelerator
        with accelerator.accumulate(self.model):
            loss = self.criterion(self.model(images).float(), targets)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss.item()} at epoch {epoch + 1}, step {self.progress.global_step}"
                )
            accelerator.backward(loss)
            if accelerator.sync_gradients and self.cfg.train.clip_grad_norm:
                accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if accelerator.sync_gradients:
                self.scheduler.step()
                self.progress.global_step += 1
                if self.ema is not None:
                    self.ema.update(accelerator.unwrap_model(self.model), step=self.progress.global_step)
        return loss

    def evaluate_and_checkpoint(self, epoch: int) -> dict[str, Any]:
        """Validate the raw (and EMA) weights, keep the better as ``last`` (and ``best`` if it improved).

        Returns the validation figures for the epoch's record; decides early stopping and pruning.
        """
        cfg, progress = self.cfg, self.progress
        candidates = {"model": self.model} | ({"ema": self.ema.module} if self.ema is not None else {})
        scores, outputs, record = {}, {}, {}
        for name, net in candidates.items():
            probs, targets = predict(net, self.val_loader, self.accelerator)
            outputs[name] = (probs, targets)
            scores[name] = summarize(probs, targets, self.labels, cfg.train.threshold, cfg.train.convention)
            prefix = "val" if name == "model" else "val_ema"
            record.update({f"{prefix}/{k}": v for k, v in scores[name].items()})
        weights = max(scores, key=lambda n: scores[n]["mAP"])
        best = scores[weights]
        net = self.accelerator.unwrap_model(candidates[weights])
        meta = self._checkpoint_meta(epoch + 1, weights, best)
        self._save_checkpoint("last", net, meta)
        if best["mAP"] > progress.best_map:
            progress.best_map, progress.best_epoch, progress.best_metrics = best["mAP"], epoch + 1, best
            progress.bad_evals = 0
            self._save_checkpoint("best", net, meta)
            self.best_outputs = outputs[weights]
        else:
            progress.bad_evals += 1
        patience = cfg.train.early_stopping_patience
        if patience is not None and progress.bad_evals >= patience:
            progress.stopped_by = "early stopping"
        # the hook hears every epoch; a prune after the last one would save nothing and lose the result
        if self.hook is not None and self._hook_says_stop(epoch + 1, best) and epoch + 1 < cfg.train.epochs:
            progress.stopped_by = "pruned"
        self.display.evaluated(epoch, best, weights)
        return record

    def _checkpoint_meta(self, epoch: int, weights: str, metrics: dict[str, Any]) -> CheckpointMeta:
        data = self.cfg.data
        return CheckpointMeta(
            config=self.cfg.model_dump(mode="json"),
            label_names=self.labels,
            preprocessing=Preprocessing(
                image_size=data.image_size,
                interpolation=data.interpolation,
                mean=data.mean,
                std=data.std,
                face_crop=data.face_crop,
            ),
            threshold=self.cfg.train.threshold,
            params=self.params,
            run_id=self.progress.run_id,
            epoch=epoch,
            weights=weights,
            metrics=metrics,
        )

    def _save_checkpoint(self, which: str, net: torch.nn.Module, meta: CheckpointMeta) -> None:
        if self.accelerator.is_main_process:
            write_checkpoint(self.run.checkpoints / which, net.state_dict(), meta)

    def _hook_says_stop(self, epoch: int, metrics: dict[str, Any]) -> bool:
        """Ask the hook on the main process and give every rank the same answer."""
        assert self.hook is not None
        answer = [self.hook.should_stop(epoch, metrics) if self.accelerator.is_main_process else False]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(answer, from_process=0)
        return bool(answer[0])

    def end_epoch(self, record: dict[str, Any]) -> None:
        """Log the epoch, save the training state (so a kill from here on loses nothing) and say why it stops."""
        progress = self.progress
        self.tracker.log_metrics(record, step=record["epoch"])
        progress.history.append(record)
        progress.epoch, progress.batches_done = record["epoch"], 0
        save_training_state(self.accelerator, self.run, asdict(progress))
        self.signals.saved()
        if self.signals.poll(progress.global_step)[0] and progress.epoch < self.cfg.train.epochs:
            self._stop(f"after epoch {progress.epoch}")
        if progress.stopped_by == "early stopping":
            self.display.note(
                f"early stop: no better validation mAP for {self.cfg.train.early_stopping_patience} evaluations"
            )
        elif progress.stopped_by == "pruned":
            self.display.note(f"pruned by the search after epoch {record['epoch']}")

    def finish(self) -> None:
        """The run's summary, PR curves, MLflow artifacts and the final table (main process)."""
        if not self.accelerator.is_main_process:
            return
        cfg, progress, run, tracker = self.cfg, self.progress, self.run, self.tracker
        summary = RunSummary(
            best=progress.best_metrics,
            best_epoch=progress.best_epoch,
            stopped_by=progress.stopped_by,
            history=progress.history,
        )
        tracker.log_artifact(run.write_summary(summary))
        if cfg.tracking.log_checkpoint:
            tracker.log_artifact(run.checkpoint("best"), "checkpoint")
            tracker.log_artifact(run.checkpoint("best").with_suffix(".json"), "checkpoint")
        if self.best_outputs is not None:
            title = f"{run.name}: validation, epoch {progress.best_epoch}"
            tracker.log_artifact(
                plot_pr_curves(*self.best_outputs, self.labels, run.path / "pr_curves.png", title=title)
            )
        best = progress.best_metrics or {}
        tracker.set_tags({"best_epoch": str(progress.best_epoch)})
        tracker.log_metrics(
            {**{f"best/{k}": v for k, v in best.items()}, "best/params": self.params}, progress.best_epoch
        )
        self.display.table(
            {cfg.model.name: best},
            f"best validation metrics (epoch {progress.best_epoch}, threshold {cfg.train.threshold})",
            {cfg.model.name: self.params},
            [f"run folder: {run.path}", f"checkpoint: {run.checkpoint('best')}"],
        )
