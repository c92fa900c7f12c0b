"""Throughput of deepfake-mlc's training loop against a bare PyTorch loop on the same model and data.

Both loops train the same model (same config, data, loader, optimizer and loss) for the same epochs
in one process, alternating for ``--rounds`` (bare first in even rounds, ours first in odd ones) so that
machine drift and warm caches hit both; the first epoch of each run is a warm-up. Each round gives one
overhead figure; the median over rounds and their spread (min..max) are reported, since single runs on
a shared VM vary by several percent. The loop's own cost
(Accelerate, progress display, seeded augmentation, per-epoch state saving and MLflow logging) is
the difference in training images/s. Run after ``deepfake-mlc data synth --out data/synth``:

    python benchmarks/train_overhead.py --config configs/quickstart.yaml --rounds 5
    python benchmarks/train_overhead.py --config configs/quickstart.yaml --profile

``--profile`` runs each loop once under cProfile instead (2 epochs, the second profiled) and splits the
main process's time into what both loops must do (waiting for the loader's next batch, forward, backward,
optimiser step) and the rest, the loop's own cost: where an overhead too small for the noise of
``--rounds`` goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import torch
from accelerate.state import AcceleratorState

from deepfake_mlc.config import Config, load_config
from deepfake_mlc.data import build_dataset, build_loader
from deepfake_mlc.engine import Trainer, train
from deepfake_mlc.engine.optim import build_optimizer, build_scheduler
from deepfake_mlc.losses import build_loss
from deepfake_mlc.models import build_model


class BareLoop:
    """The plainest loop over the same model, data, optimiser, loss and schedule: no Accelerate, no logging.

    The same schedule matters: weights then evolve alike, and so does the arithmetic's cost.
    """

    def __init__(self, cfg: Config) -> None:
        torch.manual_seed(cfg.seed)
        self.dataset = build_dataset(cfg.data, "train")
        self.loader = build_loader(self.dataset, cfg.data, train=True, seed=cfg.seed)
        self.model = build_model(cfg.model, self.dataset.num_labels).train()
        self.optimizer, self.criterion = build_optimizer(self.model, cfg.train), build_loss(cfg.loss)
        self.scheduler = build_scheduler(self.optimizer, cfg.train, len(self.loader))

    def epoch(self) -> None:
        for images, targets in self.loader:
            loss = self.criterion(self.model(images), targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()


def bare_loop(cfg: Config) -> list[float]:
    """Images/s of each epoch of the bare loop but the first."""
    loop, speeds = BareLoop(cfg), []
    for _ in range(cfg.train.epochs):
        start = time.perf_counter()
        loop.epoch()
        speeds.append(len(loop.dataset) / (time.perf_counter() - start))
    return speeds[1:]


CATEGORIES = (  # (name, test on a profiled function's file and name); the first that matches takes its own time
    (
        "waiting for the loader's next batch",
        lambda f, n: (
            "/torch/utils/data/" in f
            or n.startswith(
                ("<method 'acquire'", "<built-in method posix.read", "<method 'poll'", "<built-in method select")
            )
        ),
    ),
    ("PyTorch: forward, backward, optimiser", lambda f, n: "/torch/" in f or "torch" in n),
    ("Accelerate (wrappers, state save)", lambda f, n: "/accelerate/" in f),
    ("deepfake-mlc (loop, display, checks)", lambda f, n: "deepfake_mlc" in f),
    (
        "MLflow, safetensors, rich",
        lambda f, n: any(m in f for m in ("/mlflow/", "/safetensors/", "/rich/", "/sqlalchemy/")),
    ),
    ("Python, other libraries", lambda f, n: True),
)


def profiled(epoch) -> dict[str, float]:
    """Seconds of the main process per category while ``epoch()`` runs (each function's own time, so they add up)."""
    profiler = cProfile.Profile()
    profiler.runcall(epoch)
    shares = dict.fromkeys((name for name, _ in CATEGORIES), 0.0)
    for (file, _, name), (_, _, own, _, _) in pstats.Stats(profiler).stats.items():
        shares[next(category for category, test in CATEGORIES if test(file, name))] += own
    shares["total"] = sum(shares.values())
    return shares


def print_profiles(cfg: Config) -> None:
    """The second epoch of each loop, profiled (the first warms up): where the difference goes."""
    loop = BareLoop(cfg)
    loop.epoch()
    bare = profiled(loop.epoch)
    trainer = Trainer(cfg, cpu=not torch.cuda.is_available(), show_progress=False)
    trainer.end_epoch(trainer.train_epoch(0))
    ours = profiled(lambda: trainer.end_epoch(trainer.train_epoch(1)))  # the epoch, its state save and logging
    print(f"{'main process, seconds per epoch':40} {'bare':>7} {'ours':>7} {'difference':>11}")
    for category in bare:
        print(f"{category:40} {bare[category]:7.2f} {ours[category]:7.2f} {ours[category] - bare[category]:+11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop (the first is a warm-up)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of each loop")
    parser.add_argument("--profile", action="store_true", help="profile one epoch of each loop instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(
            Config,
            args.config,
            [*args.overrides, f"train.epochs={args.epochs}", f"output.dir={out}", "train.eval_every=1000"],
        )
        threads = cfg.train.num_threads or os.cpu_count() or 1
        torch.set_num_threads(threads)
        if args.profile:
            return print_profiles(cfg)
        bare_speeds, our_speeds, overheads = [], [], []
        for round_ in range(args.rounds):
            run = cfg.model_copy(update={"output": cfg.output.model_copy(update={"name": f"round{round_}"})})
            loops = [lambda: bare_loop(cfg), lambda run=run: our_loop(run)]
            first, second = (loop() for loop in (loops if round_ % 2 == 0 else loops[::-1]))
            bare, ours = (first, second) if round_ % 2 == 0 else (second, first)
            bare_speeds += bare
            our_speeds += ours
            overheads.append(100 * (1 - statistics.median(ours) / statistics.median(bare)))
            print(
                f"round {round_ + 1}: bare {statistics.median(bare):.1f}, ours {statistics.median(ours):.1f} "
                f"images/s, overhead {overheads[-1]:+.1f} %",
                flush=True,
            )
    print(
        f"bare PyTorch loop: {statistics.median(bare_speeds):.1f} images/s | deepfake-mlc loop: "
        f"{statistics.median(our_speeds):.1f} images/s | overhead: median {statistics.median(overheads):+.1f} % "
        f"over {args.rounds} rounds, spread {min(overheads):+.1f} .. {max(overheads):+.1f} %"
    )
    print(
        f"model {cfg.model.name}, {cfg.data.image_size} px, batch {cfg.data.batch_size}, "
        f"{cfg.data.num_workers} workers, {threads} threads, {args.rounds} rounds of {args.epochs} epochs per loop, "
        f"the first of each dropped | {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{Path(args.config).name}"
    )


def our_loop(cfg: Config) -> list[float]:
    """Images/s of each epoch but the first of deepfake-mlc's loop (as its history records them)."""
    history = train(cfg, cpu=not torch.cuda.is_available(), show_progress=False).history
    AcceleratorState._reset_state(True)
    return [h["images_per_s"] for h in history[1:]]


if __name__ == "__main__":
    main()
