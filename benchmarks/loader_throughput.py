"""Input-pipeline throughput: images/s the DataLoader delivers for a config's training split.

Decoding, resizing, augmentation and collation only; no model. Run after generating the data:

    deepfake-mlc data synth --out data/synth
    python benchmarks/loader_throughput.py --config configs/quickstart.yaml --set data.image_size=128
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from deepfake_mlc.config import Config, load_config
from deepfake_mlc.data import build_dataset, build_loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--epochs", type=int, default=2, help="timed passes after one warm-up pass")
    args = parser.parse_args()
    cfg = load_config(Config, args.config, args.overrides)
    dataset = build_dataset(cfg.data, "train")
    loader = build_loader(dataset, cfg.data, train=True, seed=cfg.seed)
    for _ in loader:  # warm-up: starts the persistent workers, fills the page cache
        pass
    start, seen = time.perf_counter(), 0
    for _ in range(args.epochs):
        for images, _targets in loader:
            seen += images.shape[0]
    seconds = time.perf_counter() - start
    print(
        f"{seen / seconds:.0f} images/s ({seen} images in {seconds:.1f} s) | size {cfg.data.image_size} px, "
        f"batch {cfg.data.batch_size}, {cfg.data.num_workers} workers | {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}"
    )


if __name__ == "__main__":
    main()
