"""ML-AGCN: the graph of IML-GCN with learned connectivity (attention + similarity beside the static graph).

The layer is a reconstruction from the paper's description and parameter counts
(``shared/methods/graph-heads.md`` §3): see :class:`~deepfake_mlc.models.graph.AdaptiveGraphConvolution`.
"""

from __future__ import annotations

from functools import partial

from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.models.gcn import LayerFactory, graph_factory
from deepfake_mlc.models.graph import AdaptiveGraphConvolution
from deepfake_mlc.models.registry import register_model


def _adaptive_layer(cfg: ModelConfig) -> LayerFactory:
    return partial(AdaptiveGraphConvolution, negative_slope=cfg.graph.negative_slope, topk=cfg.graph.similarity_topk)


register_model("ml_agcn_word", "indirect", "ML-AGCN: TResNet-M + adaptive GCN on word embeddings", 36.6)(
    graph_factory("tresnet_m", "avg", "word", 300, _adaptive_layer)
)
register_model("ml_agcn_image", "indirect", "ML-AGCN: TResNet-M + adaptive GCN on 200-d image embeddings", 36.3)(
    graph_factory("tresnet_m", "avg", "image", 200, _adaptive_layer)
)
