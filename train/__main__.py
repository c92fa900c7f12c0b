"""`python train ...` / `accelerate launch train ...`: the same as `deepfake-mlc train ...`."""

import sys

from deepfake_mlc.cli.main import main

sys.exit(main(["train", *sys.argv[1:]]))
