"""Class activation maps of a multi-label classifier: one map per image and label, with pytorch-grad-cam.

Each label is explained on its raw logit (pytorch-grad-cam's ``ClassifierOutputTarget``): labels are
independent sigmoids here, and a softmax target would explain "this label rather than the others", which is
not what the model was asked. pytorch-grad-cam takes one target per batch item (``zip(targets, outputs)``
sums ``target(output_i)`` over the batch before one backward pass, and drops items beyond the targets), so
each image is repeated once per label, every copy with its own label's target; the items stay independent
because the model runs in eval mode (batch norm uses its running statistics). pytorch-grad-cam returns each
map clipped at 0, scaled to [0, 1] (minimum to 0, maximum to 1) and resized with OpenCV to the model input.

Graph models are explained through :meth:`~deepfake_mlc.models.GraphClassifier.fold`: the same function, as a
CNN and a linear classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from deepfake_mlc.artifacts import Calibration
from deepfake_mlc.errors import ConfigError
from deepfake_mlc.models.calibrated import probabilities, temperature_tensor
from deepfake_mlc.models.gcn import GraphClassifier

METHODS = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM}
SMALLEST_GRID = 7  # a ResNet's last stage at 224 px: the usual CAM layer, and coarser maps say little about where


def stage_names(model: nn.Module) -> list[str]:
    """The model's stages, shallowest first: those a timm network lists in ``feature_info``, else its children."""
    for prefix, module in model.named_modules():
        info = getattr(module, "feature_info", None)
        if isinstance(info, list) and info and all(isinstance(i, dict) and "module" in i for i in info):
            return [".".join(p for p in (prefix, i["module"]) if p) for i in info if i["module"]]
    return [name for name, _ in model.named_children()]


def output_grids(model: nn.Module, names: Sequence[str], image_size: int) -> dict[str, tuple[int, ...]]:
    """The output shape (without the batch) of each of ``names`` on one ``image_size`` input, in the order the
    forward pass reaches them."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> object:
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if isinstance(output, torch.Tensor):
                shapes.setdefault(name, tuple(output.shape[1:]))

        return hook

    handles = [modules[name].register_forward_hook(record(name)) for name in names]
    training = model.training
    parameter = next(model.parameters())
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=parameter.device, dtype=parameter.dtype))
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return shapes


def default_layer(model: nn.Module, image_size: int) -> str:
    """The deepest stage whose output grid is at least :data:`SMALLEST_GRID` (7×7) for ``image_size`` inputs.

    Deeper layers are more about the labels and less about the image, the reason Grad-CAM uses the last one;
    but at low resolution the last stage is too coarse to point anywhere (the quick-start's resnet10t at 64 px
    ends on 2×2), so the choice steps back to the deepest stage fine enough (there: layer2, 8×8). When no stage
    is that fine, the finest one is taken.
    """
    grids = {name: shape[1:] for name, shape in output_grids(model, stage_names(model), image_size).items()}
    grids = {name: grid for name, grid in grids.items() if len(grid) == 2}
    if not grids:
        raise ConfigError(f"cannot find the convolutional stages of {type(model).__name__}: name a layer (--layer)")
    fine = [name for name, grid in grids.items() if min(grid) >= SMALLEST_GRID]
    return fine[-1] if fine else max(grids, key=lambda name: min(grids[name]))


class Explainer:
    """Maps of ``model`` (a graph model is folded first) for any labels, by ``method`` at ``layer``.

    ``layer`` is a name from ``model.named_modules()`` (None: :func:`default_layer`). The model is moved to
    ``device`` and put in eval mode; call :meth:`close` (or use ``with``) to remove the hooks it gets.
    :meth:`probabilities` are calibrated as ``calibration`` says, like every runtime's.
    """

    def __init__(
        self,
        model: nn.Module,
        image_size: int,
        method: str = "gradcam",
        layer: str | None = None,
        device: str | torch.device = "cpu",
        calibration: Calibration | None = None,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown explanation method {method!r} (known: {', '.join(METHODS)})")
        if isinstance(model, GraphClassifier):
            model = model.fold()
        self.model = model.to(device).eval()
        self.method = method
        self._temperatures = temperature_tensor(calibration)
        self.layer = default_layer(self.model, image_size) if layer is None else layer
        self._check_layer(image_size)
        target = dict(self.model.named_modules())[self.layer]
        self._cam = METHODS[method](model=self.model, target_layers=[target])

    def _check_layer(self, image_size: int) -> None:
        if not self.layer or self.layer not in dict(self.model.named_modules()):
            stages = ", ".join(stage_names(self.model)[-5:])
            raise ConfigError(f"no layer {self.layer!r} in the model (its stages: {stages}; or any module name)")
        shape = output_grids(self.model, [self.layer], image_size).get(self.layer, ())
        if len(shape) != 3:
            raise ConfigError(f"layer {self.layer!r} gives no [C, H, W] map (output {list(shape)}): name a conv stage")

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> np.ndarray:
        """[B, labels] float32: the model's (calibrated) probabilities."""
        logits = self.model(images.to(next(self.model.parameters()).device))
        return probabilities(logits, self._temperatures).cpu().numpy()

    def __call__(self, images: torch.Tensor, labels: Sequence[int]) -> np.ndarray:
        """[B, len(labels), H, W] float32 in [0, 1] at the input size: the map of each image for each of ``labels``."""
        labels = list(labels)
        height, width = images.shape[-2:]
        if not labels or not len(images):
            return np.zeros((len(images), len(labels), height, width), dtype=np.float32)
        # an input that needs gradients gives the layer's output gradients even with every weight frozen
        repeated = images.repeat_interleave(len(labels), dim=0).requires_grad_()
        targets = [ClassifierOutputTarget(label) for _ in range(len(images)) for label in labels]
        with torch.enable_grad():
            maps = self._cam(input_tensor=repeated, targets=targets)
        return maps.reshape(len(images), len(labels), height, width).astype(np.float32)

    def close(self) -> None:
        """Remove the hooks pytorch-grad-cam put on the model."""
        self._cam.activations_and_grads.release()

    def __enter__(self) -> Explainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
