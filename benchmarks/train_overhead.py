"""Throughput of deepfake-mlc's training loop against a bare PyTorch loop on the same model and data.

Both loops train the same model (same config, data, loader, optimizer and loss) for the same epochs
in one process, alternating for ``--rounds`` (bare first in even rounds, ours first in odd ones) so that
machine drift and warm caches hit both; the first epoch of each run is a warm-up. Each round gives one
overhead figure; the median over rounds and their spread (min..max) are reported, since single runs on
a shared VM vary by several percent. The loop's own cost
(Accelerate, progress display, seeded augmentation, per-epoch state saving and MLflow logging) is
the difference in training images/s. Run after ``deepfake-mlc data synth --out data/synth``:

    python benchmarks/train_overhead.py --config configs/quickstart.yaml --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from accelerate.state import AcceleratorState

from deepfake_mlc.config import Config, load_config
from deepfake_mlc.data import build_dataset, build_loader
from deepfake_mlc.engine import train
from deepfake_mlc.engine.optim import build_optimizer
from deepfake_mlc.losses import build_loss
from deepfake_mlc.models import build_model


def bare_loop(cfg: Config) -> list[float]:
    """Images/s of each epoch of the plainest loop: no Accelerate, no logging, no checkpoints."""
    torch.manual_seed(cfg.seed)
    dataset = build_dataset(cfg.data, "train")
    loader = build_loader(dataset, cfg.data, train=True, seed=cfg.seed)
    model = build_model(cfg.model, dataset.num_labels).train()
    optimizer, criterion = build_optimizer(model, cfg.train), build_loss(cfg.loss)
    speeds = []
    for _ in range(cfg.train.epochs):
        start, seen = time.perf_counter(), 0
        for images, targets in loader:
            loss = criterion(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(targets)
        speeds.append(len(dataset) / (time.perf_counter() - start))
    return speeds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop (the first is a warm-up)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of each loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(
            Config,
            args.config,
            [*args.overrides, f"train.epochs={args.epochs}", f"output.dir={out}", "train.eval_every=1000"],
        )
        threads = cfg.train.num_threads or os.cpu_count() or 1
        torch.set_num_threads(threads)
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
