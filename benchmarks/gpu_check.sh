#!/usr/bin/env bash
# The GPU check: what no CPU machine can run, as one command of at most 8 minutes on one NVIDIA GPU.
#
#   bash benchmarks/gpu_check_wheels.sh      # here, once: the wheels the GPU machine lacks, into .whl/
#   bash benchmarks/gpu_check.sh             # there (the device tool carries .whl/): report in $OUT
#   DRY_RUN=1 bash benchmarks/gpu_check.sh   # on a CPU machine: every step that needs no GPU, small and in fp32/bf16
#
# Steps: the GPU-marked tests; a quick-start training epoch in bf16 and in fp16, channels_last and
# torch.compile; a 1-GPU `accelerate launch`; evaluation parity GPU vs CPU on one checkpoint (predict
# --check: PyTorch on the GPU against IEEE float32 on the CPU, judged by the quality gate); serve-bench's
# PyTorch rows on the GPU. Each step is timed and its status kept; one failing step does not stop the
# others. The report is $OUT/gpu_check.md (with each step's log in $OUT/logs.txt and serve_bench.md).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check}
WORK=${WORK:-/tmp/gpu_check}
DRY_RUN=${DRY_RUN:-0}
mkdir -p "$OUT" "$WORK"
: >"$OUT/logs.txt"
REPORT=$OUT/gpu_check.md

if ! python3 -c "import pydantic" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then  # the GPU machine's image
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "cannot install the carried wheels" >&2; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=(python3)
DFM=("${PY[@]}" -m deepfake_mlc)

if [ "$DRY_RUN" = 1 ]; then
  SIZE=32 TRAIN=64 EVAL=16 DEVICE=(--cpu) BATCHES=(1 8) COMPILE=false
else
  SIZE=64 TRAIN=2000 EVAL=300 DEVICE=() BATCHES=(1 32 256) COMPILE=true
fi
TRAIN_SET=(--set "data.root=$WORK/synth" --set train.epochs=1 --set tracking.enabled=false --set "output.dir=$WORK/runs"
  --set train.channels_last=true --set "train.compile=$COMPILE" --set data.num_workers=4)

declare -a ROWS=()
step() {  # step NAME COMMAND...: run, time, keep the log, record a row
  local name=$1 start tenths status
  shift
  echo "== $name: $*" | tee -a "$OUT/logs.txt"
  start=$(date +%s%N)
  "$@" >>"$OUT/logs.txt" 2>&1
  status=$?
  tenths=$((($(date +%s%N) - start) / 100000000))
  ROWS+=("| $name | $([ $status = 0 ] && echo ok || echo "FAILED ($status)") | $((tenths / 10)).$((tenths % 10)) s |")
  echo "   -> status $status" | tee -a "$OUT/logs.txt"
}
skip() { ROWS+=("| $1 | skipped: $2 | |"); echo "== $1: skipped ($2)" | tee -a "$OUT/logs.txt"; }

{
  echo "# GPU check"
  echo
  echo "- date: $(date -u +%FT%TZ); dry run: $DRY_RUN; commit: $(git rev-parse --short HEAD 2>/dev/null || echo n/a)"
  echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
  "${PY[@]}" - <<'EOF'
import platform, torch, accelerate, timm, onnxruntime
cuda = torch.cuda.is_available()
print(f"- python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}, available: {cuda}), "
      f"accelerate {accelerate.__version__}, timm {timm.__version__}, onnxruntime {onnxruntime.__version__} "
      f"({', '.join(onnxruntime.get_available_providers())})")
if cuda:
    major, minor = torch.cuda.get_device_capability()
    print(f"- device: {torch.cuda.get_device_name()}, compute capability {major}.{minor}, bf16 supported: "
          f"{torch.cuda.is_bf16_supported()}, TF32 matmul: {torch.backends.cuda.matmul.fp32_precision}")
EOF
} >"$REPORT" 2>&1

step "synthetic data ($TRAIN train images, ${SIZE} px)" "${DFM[@]}" data synth --out "$WORK/synth" --subsets components \
  --size "$SIZE" --train "$TRAIN" --val "$EVAL" --test "$EVAL" --workers 8 --no-progress
step "GPU-marked tests" "${PY[@]}" -m pytest -m gpu -q -rs tests/test_gpu.py
step "train 1 epoch, bf16, channels_last, compile=$COMPILE" "${DFM[@]}" train --config configs/quickstart.yaml \
  "${DEVICE[@]}" --no-progress "${TRAIN_SET[@]}" --set train.mixed_precision=bf16 --set output.name=bf16
if [ "$DRY_RUN" = 1 ]; then
  skip "train 1 epoch, fp16, channels_last, compile" "fp16 needs a CUDA GPU"
  skip "accelerate launch, 1 GPU" "no GPU"
else
  step "train 1 epoch, fp16, channels_last, compile" "${DFM[@]}" train --config configs/quickstart.yaml --no-progress \
    "${TRAIN_SET[@]}" --set train.mixed_precision=fp16 --set output.name=fp16
  step "accelerate launch, 1 GPU" "${PY[@]}" -m accelerate.commands.launch --config_file configs/accelerate/single_gpu.yaml \
    train --config configs/quickstart.yaml --no-progress "${TRAIN_SET[@]}" --set output.name=launch
fi
TEST_IMAGES=$WORK/synth/facial_components/images/test
step "evaluation parity: PyTorch GPU vs IEEE fp32 CPU (predict --check)" "${DFM[@]}" predict "$TEST_IMAGES" \
  --model "$WORK/runs/bf16" --runtime pytorch --check "$EVAL" --out "$OUT/predict_check.json"
step "evaluate on the test split" "${DFM[@]}" evaluate "$WORK/runs/bf16" --data "$WORK/synth" "${DEVICE[@]}" \
  --out "$WORK/evaluation"
step "serve-bench, PyTorch rows (and ONNX Runtime CPU)" "${DFM[@]}" serve-bench --model "$WORK/runs/bf16" \
  --data "$WORK/synth" --runtimes pytorch pytorch-compile ort-cpu --batch-sizes "${BATCHES[@]}" --trials 2 \
  --limit-images "$EVAL" --out "$WORK/serve_bench" --no-progress
cp "$WORK/serve_bench/serve_bench.md" "$OUT/" 2>/dev/null

{
  echo
  echo "| step | status | time |"
  echo "|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Details: logs.txt (every step's output), serve_bench.md, predict_check.json."
  grep -h "check passed\|check failed\|launch:\|batch:\|warning:" "$OUT/logs.txt" | sed 's/^/    /' | head -20
} >>"$REPORT"
cat "$REPORT"
! grep -q "FAILED" "$REPORT"
