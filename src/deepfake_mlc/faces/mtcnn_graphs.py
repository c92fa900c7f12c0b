"""MTCNN's three networks (PNet, RNet, ONet) as ONNX models, written layer by layer from their state dicts.

No torch and no export step: the graphs are spelled out with ``onnx.helper`` in the order facenet-pytorch's
modules run their layers, and ONNX Runtime runs them. Two details decide whether the numbers match
facenet's: its max pools round their output size up (``ceil_mode``), and RNet and ONet flatten their last
feature map in (N, W, H, C) order (facenet permutes before the dense layers, the layout of the original
Caffe weights), so these graphs transpose before flattening.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deepfake_mlc.errors import WeightsError

OPSET = 17
IR_VERSION = 8  # the IR of opset 17: any ONNX Runtime that runs opset 17 loads it


class _GraphBuilder:
    """Appends nodes to one graph; each layer names its initializers after the state dict's keys."""

    def __init__(self, network: str, weights: Mapping[str, np.ndarray]) -> None:
        self.network = network
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def _array(self, key: str) -> np.ndarray:
        if key not in self.weights:
            raise WeightsError(f"{self.network}: the weights have no {key}")
        return np.asarray(self.weights[key], dtype=np.float32)

    def _param(self, key: str, shape: tuple[int, ...] | None = None) -> str:
        array = self._array(key)
        if shape is not None:
            array = array.reshape(shape)
        self.initializers.append(numpy_helper.from_array(array, name=key))
        return key

    def _node(self, op: str, inputs: list[str], output: str, **attributes: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def conv(self, x: str, layer: str, output: str | None = None) -> str:
        weight = self._param(f"{layer}.weight")
        return self._node("Conv", [x, weight, self._param(f"{layer}.bias")], output or layer)

    def prelu(self, x: str, layer: str, *, spatial: bool) -> str:
        """PReLU with one slope a channel: over (N, C, H, W) the slopes broadcast as (C, 1, 1)."""
        slope = self._array(f"{layer}.weight")
        shape = (slope.size, 1, 1) if spatial else (slope.size,)
        return self._node("PRelu", [x, self._param(f"{layer}.weight", shape)], layer)

    def max_pool(self, x: str, name: str, kernel: int, stride: int) -> str:
        return self._node("MaxPool", [x], name, kernel_shape=[kernel, kernel], strides=[stride, stride], ceil_mode=1)

    def flatten_like_facenet(self, x: str) -> str:
        """(N, C, H, W) → (N, W·H·C): facenet's ``permute(0, 3, 2, 1)`` and ``view`` before its dense layers."""
        transposed = self._node("Transpose", [x], "permute", perm=[0, 3, 2, 1])
        return self._node("Flatten", [transposed], "flatten", axis=1)

    def dense(self, x: str, layer: str, output: str | None = None) -> str:
        weight = self._param(f"{layer}.weight")
        return self._node("Gemm", [x, weight, self._param(f"{layer}.bias")], output or layer, transB=1)

    def softmax(self, x: str, output: str) -> str:
        """Over axis 1, the two classes (not face, face), as facenet's ``Softmax(dim=1)``."""
        return self._node("Softmax", [x], output, axis=1)

    def serialise(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]) -> bytes:
        graph = helper.make_graph(self.nodes, self.network, inputs, outputs, initializer=self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="deepfake-mlc",
            doc_string=f"MTCNN {self.network}, weights from facenet-pytorch (MIT)",
        )
        return model.SerializeToString()


def _value(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def pnet(weights: Mapping[str, np.ndarray]) -> bytes:
    """The proposal net, fully convolutional: any batch and image size of at least 12×12.

    Outputs ``prob`` (N, 2, h, w), the softmax over (not face, face) per 12-pixel cell at stride 2, and
    ``reg`` (N, 4, h, w), the cells' box corrections.
    """
    g = _GraphBuilder("pnet", weights)
    x = g.prelu(g.conv("image", "conv1"), "prelu1", spatial=True)
    x = g.max_pool(x, "pool1", 2, 2)
    x = g.prelu(g.conv(x, "conv2"), "prelu2", spatial=True)
    x = g.prelu(g.conv(x, "conv3"), "prelu3", spatial=True)
    g.softmax(g.conv(x, "conv4_1"), "prob")
    g.conv(x, "conv4_2", "reg")
    return g.serialise(
        [_value("image", ["batch", 3, "height", "width"])],
        [_value("prob", ["batch", 2, "rows", "cols"]), _value("reg", ["batch", 4, "rows", "cols"])],
    )


def rnet(weights: Mapping[str, np.ndarray]) -> bytes:
    """The refine net over 24×24 patches: ``prob`` (N, 2) and ``reg`` (N, 4)."""
    g = _GraphBuilder("rnet", weights)
    x = g.prelu(g.conv("image", "conv1"), "prelu1", spatial=True)
    x = g.max_pool(x, "pool1", 3, 2)
    x = g.prelu(g.conv(x, "conv2"), "prelu2", spatial=True)
    x = g.max_pool(x, "pool2", 3, 2)
    x = g.prelu(g.conv(x, "conv3"), "prelu3", spatial=True)
    x = g.prelu(g.dense(g.flatten_like_facenet(x), "dense4"), "prelu4", spatial=False)
    g.softmax(g.dense(x, "dense5_1"), "prob")
    g.dense(x, "dense5_2", "reg")
    return g.serialise(
        [_value("image", ["batch", 3, 24, 24])],
        [_value("prob", ["batch", 2]), _value("reg", ["batch", 4])],
    )


def onet(weights: Mapping[str, np.ndarray]) -> bytes:
    """The output net over 48×48 patches: ``prob`` (N, 2), ``reg`` (N, 4) and ``landmarks`` (N, 10).

    The landmarks are five x then five y, as fractions of the patch's box.
    """
    g = _GraphBuilder("onet", weights)
    x = g.prelu(g.conv("image", "conv1"), "prelu1", spatial=True)
    x = g.max_pool(x, "pool1", 3, 2)
    x = g.prelu(g.conv(x, "conv2"), "prelu2", spatial=True)
    x = g.max_pool(x, "pool2", 3, 2)
    x = g.prelu(g.conv(x, "conv3"), "prelu3", spatial=True)
    x = g.max_pool(x, "pool3", 2, 2)
    x = g.prelu(g.conv(x, "conv4"), "prelu4", spatial=True)
    x = g.prelu(g.dense(g.flatten_like_facenet(x), "dense5"), "prelu5", spatial=False)
    g.softmax(g.dense(x, "dense6_1"), "prob")
    g.dense(x, "dense6_2", "reg")
    g.dense(x, "dense6_3", "landmarks")
    return g.serialise(
        [_value("image", ["batch", 3, 48, 48])],
        [_value("prob", ["batch", 2]), _value("reg", ["batch", 4]), _value("landmarks", ["batch", 10])],
    )


BUILDERS = {"pnet": pnet, "rnet": rnet, "onet": onet}
