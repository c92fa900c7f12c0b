"""Throughput of deepfake-mlc's training loop against a bare PyTorch loop on the same model and data.

Both loops train the same model (same config, data, loader, optimizer and loss) for the same epochs
in one process, alternating (bare, ours, bare, ours, ... for ``--rounds``) so that machine drift hits
both; the first epoch of each run is a warm-up. The loop's own cost
(Accelerate, progress display, seeded augmentation, per-epoch state saving and MLflow logging) is
the difference in training images/s. Run after ``deepfake-mlc data synth --out data/synth``:

    python benchmarks/train_overhead.py --config configs/quickstart.yaml --epochs 3
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
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop (the first is a warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(
            Config,
            args.config,
            [*args.overrides, f"train.epochs={args.epochs}", f"output.dir={out}", "train.eval_every=1000"],
        )
        threads = cfg.train.num_threads or os.cpu_count() or 1
        torch.set_num_threads(threads)
        bare_speeds, our_speeds = [], []
        for round_ in range(args.rounds):
            bare_speeds += bare_loop(cfg)[1:]
            run = cfg.model_copy(update={"output": cfg.output.model_copy(update={"name": f"round{round_}"})})
            our_speeds += [
                h["images_per_s"]
                for h in train(run, cpu=not torch.cuda.is_available(), show_progress=False).history[1:]
            ]
            AcceleratorState._reset_state(True)
        bare, ours = statistics.median(bare_speeds), statistics.median(our_speeds)
    print(
        f"bare PyTorch loop: {bare:.1f} images/s | deepfake-mlc loop: {ours:.1f} images/s | "
        f"overhead {100 * (bare - ours) / bare:+.1f} %"
    )
    print(
        f"model {cfg.model.name}, {cfg.data.image_size} px, batch {cfg.data.batch_size}, "
        f"{cfg.data.num_workers} workers, {threads} threads, median of {len(bare_speeds)} epochs per loop "
        f"({args.rounds} rounds of {args.epochs} epochs, the first of each dropped) | {platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, {Path(args.config).name}"
    )


if __name__ == "__main__":
    main()
