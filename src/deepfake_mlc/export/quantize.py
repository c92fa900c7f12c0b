"""Static INT8 quantisation with ONNX Runtime: explicit Q/DQ nodes calibrated on training images.

Two schemes, because the two consumers want different things:

* ``cpu`` (ONNX Runtime on x86): uint8 activations, int8 weights, per tensor (U8S8). The fastest on
  AVX2 CPUs (measured with resnet50 at batch 1 on a 2-core VM: 25.0 ms, against 40.5 ms for S8S8 per
  channel and 46.1 ms in fp32).
* ``tensorrt``: int8 activations and weights, both symmetric (zero point 0, which TensorRT requires of
  Q/DQ nodes), weights per output channel.

The sigmoid and the classifier's output stay in float: quantised probabilities would tie many images
and cost ranking quality (mAP) for no speed. So does the first convolution, the one reading the image:
quantising its input re-rounds every pixel to a per-tensor 8-bit grid, which wipes out the faint,
pixel-level traces a manipulation leaves. Measured on the quickstart model (resnet10t, 64 px, 500 test
images; ``python benchmarks/int8_image_conv.py``): int8 everywhere 87.5-87.7 mAP against 91.4 in fp32
(max |Δp| 0.99), whatever the calibration (64 to 1024 images, min-max, percentile or entropy); with the
first convolution in float, 91.3.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from deepfake_mlc.export.onnx import INPUT, save_variant

Scheme = Literal["cpu", "tensorrt"]
CALIBRATION_BATCH = 16


class ArrayCalibrationReader(CalibrationDataReader):
    """Feeds preprocessed calibration images to the quantiser, a batch at a time."""

    def __init__(self, images: np.ndarray, batch_size: int = CALIBRATION_BATCH) -> None:
        self._batches: Iterator[np.ndarray] = (
            images[start : start + batch_size] for start in range(0, len(images), batch_size)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT: batch}


def quantize_int8(
    fp32_path: Path,
    calibration: np.ndarray,
    path: Path,
    scheme: Scheme = "cpu",
    per_channel: bool = False,
    quantize_image_conv: bool = False,
) -> Path:
    """Quantise the exported fp32 model at ``fp32_path`` into ``path`` (QDQ), calibrated on ``calibration``.

    ``calibration``: ``(N, 3, H, W)`` training images in the model's preprocessing (a few hundred).
    ``quantize_image_conv`` quantises the first convolution too: only to measure what keeping it in float
    is worth (``benchmarks/int8_image_conv.py``).
    """
    symmetric = scheme == "tensorrt"
    model = onnx.load(str(fp32_path))
    keep_float = [
        node.name
        for node in model.graph.node
        if node.op_type == "Sigmoid" or (node.op_type == "Conv" and INPUT in node.input and not quantize_image_conv)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # onnx shape inference only: ORT's graph optimisation would add its own op domains (TensorRT
        # rejects them), and symbolic shape inference costs seconds and adds nothing for CNNs
        quant_pre_process(str(fp32_path), str(prepared), skip_optimization=True, skip_symbolic_shape=True)
        quantized = Path(tmp) / "quantized.onnx"
        quantize_static(
            str(prepared),
            str(quantized),
            ArrayCalibrationReader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
            extra_options={
                "ActivationSymmetric": symmetric,
                "WeightSymmetric": True,
                "OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"],
            },
        )
        quantization = {"scheme": scheme, "per_channel": per_channel, "calibration_images": len(calibration)}
        return save_variant(onnx.load(str(quantized)), fp32_path, path, "int8", quantization=quantization)
