"""`python serve_bench ...` / `accelerate launch serve_bench ...`: the same as `deepfake-mlc serve-bench ...`."""

import sys

from deepfake_mlc.cli.main import main

sys.exit(main(["serve-bench", *sys.argv[1:]]))
