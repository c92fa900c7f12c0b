"""What keeping the image-reading convolution in float is worth for an INT8 model: mAP and speed.

Exports the run's checkpoint to ONNX, quantises it twice on the same calibration images (first
convolution in float, by the writer ``deepfake-mlc export --format onnx-int8`` uses, and quantised too) and
evaluates fp32 and both int8 models on the test split with ONNX Runtime on the CPU. Run after training
the quick-start model:

    python benchmarks/int8_image_conv.py --model runs/<run-name> --data data/synth
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from deepfake_mlc.export import CALIBRATION_IMAGES, export_onnx, write_export
from deepfake_mlc.export.quantize import quantize_int8
from deepfake_mlc.metrics import multilabel_metrics
from deepfake_mlc.runtime import eval_arrays, open_runner, read_model_info, run_batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder or .safetensors checkpoint")
    parser.add_argument("--data", type=Path, required=True, help="Seq-DeepFake root, manifest or config")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    args = parser.parse_args()

    info = read_model_info(args.model)
    images, targets = eval_arrays(args.data, info, "test")
    calibration = eval_arrays(args.data, info, "train", limit=args.calibration_images)[0]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(args.model, Path(tmp) / "fp32.onnx")
        models = {
            "fp32": fp32,
            "int8, image conv in float (default)": write_export(
                fp32, Path(tmp) / "float.onnx", "onnx-int8", "int8", calibration
            ),
            "int8, image conv quantised": quantize_int8(
                fp32, calibration, Path(tmp) / "all.onnx", quantize_image_conv=True
            ),
        }
        reference = None
        print(f"{len(images)} test images, {len(calibration)} calibration images, ONNX Runtime CPU")
        print(f"{'model':<38} {'mAP':>6} {'max |dp|':>9} {'b1 ms':>7}")
        for name, path in models.items():
            runner = open_runner(path, "ort-cpu")
            probs = run_batched(runner, images, 64)
            reference = probs if reference is None else reference
            one = images[:1]
            runner(one)
            start = time.perf_counter()
            for _ in range(50):
                runner(one)
            ms = (time.perf_counter() - start) / 50 * 1000
            map_ = multilabel_metrics(probs, targets, 0.5, "asl")["mAP"]
            print(f"{name:<38} {map_:6.2f} {np.abs(probs - reference).max():9.3f} {ms:7.2f}")


if __name__ == "__main__":
    main()
