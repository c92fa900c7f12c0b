"""ML-AGCN: the graph of IML-GCN with learned connectivity (attention + similarity beside the static graph).

The layer is a reconstruction from the paper's description and parameter counts
(``docs/methods/graph-heads.md``, "ML-AGCN"): see :class:`~deepfake_mlc.models.graph.AdaptiveGraphConvolution`.
"""

from __future__ import annotations

from functools import partial

from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.models.gcn import LayerFactory, register_graph_model
from deepfake_mlc.models.graph import AdaptiveGraphConvolution
from deepfake_mlc.models.registry import PaperRow


def _adaptive_layer(cfg: ModelConfig) -> LayerFactory:
    return partial(AdaptiveGraphConvolution, negative_slope=cfg.graph.negative_slope, topk=cfg.graph.similarity_topk)


register_graph_model(
    "ml_agcn_word",
    "ML-AGCN: TResNet-M + adaptive GCN on word embeddings",
    PaperRow("ML-AGCN", 36.6),
    backbone="tresnet_m",
    pool="avg",
    embedding="word",
    dim=300,
    make_layer=_adaptive_layer,
)
register_graph_model(
    "ml_agcn_image",
    "ML-AGCN: TResNet-M + adaptive GCN on 200-d image embeddings",
    PaperRow("ML-AGCN", 36.3),
    backbone="tresnet_m",
    pool="avg",
    embedding="image",
    dim=200,
    make_layer=_adaptive_layer,
)
