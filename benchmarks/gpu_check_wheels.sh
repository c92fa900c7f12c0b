#!/usr/bin/env bash
# Download the wheels of benchmarks/gpu_check_wheels.txt into .whl/ for the GPU machine (Python 3.12, x86-64),
# which can fetch nothing itself. Run here, in the repository root, before sending the check there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
grep -v '^#' benchmarks/gpu_check_wheels.txt | grep . | while read -r requirement; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$requirement"
done
ls -l .whl
