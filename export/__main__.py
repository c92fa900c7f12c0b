"""`python export ...` / `accelerate launch export ...`: the same as `deepfake-mlc export ...`."""

import sys

from deepfake_mlc.cli.main import main

sys.exit(main(["export", *sys.argv[1:]]))
