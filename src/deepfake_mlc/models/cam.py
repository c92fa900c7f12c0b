"""Class activation maps that cost nothing: for a head of global pooling + linear, ``W · features``.

Every paper row ends in global pooling and a linear layer once its graph head is folded, so the map of
label ``l`` is the classifier's row ``W[l]`` applied to each cell of the last feature maps (Zhou et al.,
2016). With average pooling, a map's mean plus the bias is exactly the label's logit; with max pooling
(ML-GCN) the map still shows which cells drive the logit. Exported as a second ONNX output, it gives
explanations at serving time from one forward pass, with no gradients and no torch.
"""

from __future__ import annotations

import torch
from torch import nn

from deepfake_mlc.artifacts import Calibration
from deepfake_mlc.errors import ExportError
from deepfake_mlc.models.calibrated import probabilities, temperature_tensor
from deepfake_mlc.models.gcn import FoldedClassifier, GraphClassifier


class ProbabilitiesAndMaps(nn.Module):
    """Normalised images -> (sigmoid probabilities ``[B, L]``, class activation maps ``[B, L, h, w]``).

    The probabilities are computed by the same operations as the model's own forward pass, then calibrated by
    ``calibration``; the maps are the raw logits' (a temperature scales a label's map, not its shape).
    """

    def __init__(self, model: nn.Module, calibration: Calibration | None = None) -> None:
        super().__init__()
        net = model.fold() if isinstance(model, GraphClassifier) else model
        if isinstance(net, FoldedClassifier):  # a timm trunk without its classifier + the folded linear layer
            trunk, classifier = net.backbone, net.classifier
        else:
            trunk, classifier = net, getattr(net, "get_classifier", lambda: None)()
        if not isinstance(classifier, nn.Linear) or not hasattr(trunk, "forward_features"):
            raise ExportError(
                f"{type(net).__name__}: its head is not global pooling + a linear layer, so it has no class "
                "activation maps to export: export it without --with-cam"
            )
        self.trunk, self.classifier = trunk, classifier
        self.temperatures = temperature_tensor(calibration)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk.forward_features(images)
        logits = self.classifier(self.trunk.forward_head(features, pre_logits=True))
        maps = torch.einsum("lc,bchw->blhw", self.classifier.weight, features)
        return probabilities(logits, self.temperatures), maps
