"""Every paper row builds, trains (forward + backward), exports to ONNX and has the paper's size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import timm
import torch
from safetensors.torch import save_file

from conftest import random_graph
from deepfake_mlc.artifacts import ModelInfo, Preprocessing
from deepfake_mlc.cli import main
from deepfake_mlc.config.schema import EmbeddingConfig, GraphConfig, ModelConfig
from deepfake_mlc.errors import ConfigError, WeightsError
from deepfake_mlc.export.onnx import DEFAULT_OPSET, export_model
from deepfake_mlc.models import (
    GraphClassifier,
    build_model,
    count_parameters,
    embedding_tag,
    label_adjacency,
    list_models,
    model_entry,
    normalize_adjacency,
)
from deepfake_mlc.models.graph import AdaptiveGraphConvolution

PAPER_ROWS = [entry.name for entry in list_models() if entry.paper is not None]
DIRECT_ROWS = [name for name in PAPER_ROWS if model_entry(name).category == "direct"]
GRAPH_ROWS = [name for name in PAPER_ROWS if model_entry(name).category == "indirect"]


def test_registry_is_the_papers_table_direct_methods_first() -> None:
    entries = list_models()
    categories = [e.category for e in entries]
    assert categories == ["direct"] * categories.count("direct") + ["indirect"] * categories.count("indirect")
    assert (len(DIRECT_ROWS), len(GRAPH_ROWS)) == (3, 5)
    rows = {(e.paper.method, e.embedding) for e in entries if e.paper}
    assert len(rows) == len(PAPER_ROWS)  # the report finds each run's paper row by (method, embedding)
    assert {e.embedding for e in entries if e.category == "direct"} == {""}
    assert {e.embedding for e in entries if e.category == "indirect"} == {"word", "image"}


@pytest.mark.parametrize("name", GRAPH_ROWS)
def test_graph_models_are_built_with_the_registered_embedding(name: str) -> None:
    with torch.device("meta"):
        assert build_model(ModelConfig(name=name), 5).embedding_kind == model_entry(name).embedding


def test_embedding_tag_is_what_the_model_uses() -> None:
    word = GraphConfig(embedding=EmbeddingConfig(kind="word"))
    assert embedding_tag(ModelConfig(name="iml_gcn_image")) == "image"  # the model's default
    assert embedding_tag(ModelConfig(name="ml_gcn", graph=GraphConfig())) == "word"
    assert embedding_tag(ModelConfig(name="iml_gcn_image", graph=word)) == "word"  # the config wins
    assert embedding_tag(ModelConfig(name="resnet50", graph=word)) == "none"  # no graph head to use it
    assert embedding_tag(ModelConfig(name="convnext_tiny")) == "none"


@pytest.mark.parametrize("name", PAPER_ROWS)
def test_parameter_count_within_2_percent_of_the_paper(name: str) -> None:
    paper_params_m = model_entry(name).paper.params_m
    with torch.device("meta"):
        params = count_parameters(build_model(ModelConfig(name=name), 5))
    assert abs(params / 1e6 - paper_params_m) / paper_params_m < 0.02


def test_exact_graph_head_sizes_from_the_method_notes() -> None:
    with torch.device("meta"):
        counts = {n: count_parameters(build_model(ModelConfig(name=n), 5)) for n in GRAPH_ROWS}
    assert counts == {
        "ml_gcn": 44_904_512,
        "iml_gcn_word": 31_744_384,
        "iml_gcn_image": 31_641_984,
        "ml_agcn_word": 36_559_232,
        "ml_agcn_image": 36_252_032,
    }


@pytest.mark.parametrize("name", PAPER_ROWS)
def test_forward_and_backward_on_a_tiny_input(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name), 5)
    if isinstance(model, GraphClassifier):
        random_graph(model)
    logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones(2, 5)).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if isinstance(model, GraphClassifier):
        assert model.gc1.state_dict() and next(model.gc1.parameters()).grad.abs().sum() > 0


def _export_and_run(model: torch.nn.Module, path: Path, size: int) -> None:
    """Export with the shipped exporter (graph heads folded, sigmoid in the graph); ORT equals eager PyTorch."""
    model.eval()
    info = ModelInfo(
        label_names=tuple(f"label{i}" for i in range(5)),
        preprocessing=Preprocessing(image_size=size, interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3),
        threshold=0.5,
        source="in memory",
    )
    export_model(model, path, info, DEFAULT_OPSET)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, size, size)
    for batch in (1, 3):  # a dynamic batch axis
        xb = x[:batch]
        (onnx_out,) = session.run(None, {"image": xb.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(onnx_out, torch.sigmoid(model(xb)).numpy(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", DIRECT_ROWS)
def test_direct_models_export_to_onnx_with_dynamic_batch(name: str, tmp_path: Path) -> None:
    _export_and_run(build_model(ModelConfig(name=name), 5), tmp_path / f"{name}.onnx", 64)


@pytest.mark.parametrize("name", GRAPH_ROWS)
def test_graph_models_export_folded_with_the_same_probabilities(name: str, tmp_path: Path) -> None:
    """The graph heads with a tiny backbone (the backbones' export is covered above): the exported,
    folded model gives the probabilities of the graph model itself."""
    model = build_model(ModelConfig(name=name, backbone="test_resnet"), 5)
    random_graph(model)
    _export_and_run(model, tmp_path / "graph.onnx", 32)


@pytest.mark.parametrize("name", GRAPH_ROWS)
def test_fold_gives_the_same_logits(name: str) -> None:
    model = build_model(ModelConfig(name=name, backbone="test_resnet"), 5).eval()
    random_graph(model, seed=3)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.fold()(x), model(x), rtol=1e-5, atol=1e-5)
    state = model.state_dict()
    assert "node_features" in state and "adjacency" in state  # the graph travels with checkpoints
    with pytest.raises(ValueError, match="node_features must have shape"):
        model.set_label_graph(np.zeros((5, 7)), np.eye(5))


def test_label_adjacency_hand_worked_three_labels() -> None:
    # 10 images with label 0, 5 with 1, 4 with 2; pairs: (0,1) 6, (0,2) 2, (1,2) 2
    co = np.array([[10, 6, 2], [6, 5, 2], [2, 2, 4]])
    counts = np.array([10, 5, 4])
    # P(j|i): row 0: [., .6, .2]; row 1: [1.2, ., .4]; row 2: [.5, .5, .]  -> binary at t=0.4:
    binary = np.array([[0, 1, 0], [1, 0, 1], [1, 1, 0]], dtype=float)
    code = label_adjacency(co, counts, t=0.4, p=0.25)
    expected = binary * 0.25 / (binary.sum(0) + 1e-6) + np.eye(3)
    np.testing.assert_allclose(code, expected)
    np.testing.assert_allclose(code[:, 0], [1.0, 0.125, 0.125], atol=1e-6)  # column 0 has 2 neighbours
    np.testing.assert_allclose(code[:, 2], [0.0, 0.25, 1.0], atol=1e-6)
    paper = label_adjacency(co, counts, t=0.4, p=0.25, reweight="paper")
    np.testing.assert_allclose(paper, binary * 0.25 / binary.sum(0) + 0.75 * np.eye(3))
    unseen = label_adjacency(co, np.array([10, 0, 4]), t=0.4)  # label 1 never seen: no edges out of it
    np.testing.assert_allclose(unseen[1], [0.0, 1.0, 0.0], atol=1e-6)
    assert np.isfinite(unseen).all()


def test_normalize_adjacency_is_d_at_d() -> None:
    a = torch.tensor([[1.0, 0.5, 0.0], [0.25, 1.0, 0.25], [0.0, 0.5, 1.0]])
    d = torch.diag(a.sum(1) ** -0.5)
    torch.testing.assert_close(normalize_adjacency(a), d @ a.t() @ d)
    row_sums = torch.tensor([1.5, 1.5, 1.5])
    torch.testing.assert_close(normalize_adjacency(a)[0, 1], 0.25 / row_sums[0])


def test_adaptive_layer_graphs() -> None:
    torch.manual_seed(0)
    layer = AdaptiveGraphConvolution(6, 4, topk=2)
    h = torch.randn(5, 6)
    att = layer.attention_matrix(h)
    torch.testing.assert_close(att.sum(1), torch.ones(5))
    sim = layer.similarity_matrix(h)
    assert (sim >= 0).all() and ((sim > 0).sum(1) <= 2).all()
    assert layer(h, torch.eye(5)).shape == (5, 4)


def test_unknown_name_and_timm_fallback() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'resnet5' \(registered: resnet50, .*any timm model"):
        build_model(ModelConfig(name="resnet5"))
    model = build_model(ModelConfig(name="test_resnet"), 7)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_graph_options_come_from_the_config() -> None:
    cfg = ModelConfig(
        name="ml_gcn",
        backbone="test_resnet",
        pool="avg",
        graph=GraphConfig(hidden=16, embedding=EmbeddingConfig(kind="onehot")),
    )
    model = build_model(cfg, 4)
    assert model.node_features.shape == (4, 4) and model.gc1.weight.shape == (4, 16)
    assert model.backbone.global_pool.pool_type == "avg"


def _imagenet_like_checkpoint(tmp_path: Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    source = timm.create_model("test_resnet", num_classes=1000)
    return source, {k: v.clone() for k, v in source.state_dict().items()}


def test_pretrained_path_safetensors_and_checkpoint(tmp_path: Path) -> None:
    source, state = _imagenet_like_checkpoint(tmp_path)
    save_file(state, tmp_path / "w.safetensors")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pth")
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pth"):
        model = build_model(ModelConfig(name="test_resnet", pretrained_path=path), 5)
        loaded = model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    graph = build_model(ModelConfig(name="iml_gcn_word", backbone="test_resnet", pretrained_path=tmp_path / "w.pth"))
    assert torch.equal(graph.backbone.conv1[0].weight, source.conv1[0].weight)


def test_pretrained_path_errors_name_the_problem(tmp_path: Path) -> None:
    _, state = _imagenet_like_checkpoint(tmp_path)
    broken = dict(state)
    broken.pop(next(k for k in state if k.startswith("conv1")))
    broken["extra.weight"] = torch.zeros(1)
    save_file(broken, tmp_path / "broken.safetensors")
    with pytest.raises(WeightsError, match=r"missing keys: conv1.*unexpected keys: extra\.weight"):
        build_model(ModelConfig(name="test_resnet", pretrained_path=tmp_path / "broken.safetensors"))
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model(ModelConfig(name="test_resnet", pretrained_path=tmp_path / "none.safetensors"))
    torch.save({"model": object()}, tmp_path / "pickled.pth")  # arbitrary objects are never unpickled
    with pytest.raises(WeightsError, match="not a PyTorch/timm checkpoint of tensors"):
        build_model(ModelConfig(name="test_resnet", pretrained_path=tmp_path / "pickled.pth"))


def test_models_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(PAPER_ROWS) <= set(rows)
    ml_gcn = {key: rows["ml_gcn"][key] for key in ("category", "paper_method", "embedding", "params", "paper_params_m")}
    assert ml_gcn == {
        "category": "indirect",
        "paper_method": "ML-GCN",
        "embedding": "word",
        "params": 44_904_512,
        "paper_params_m": 44.9,
    }
    assert main(["models", "--num-labels", "3"]) == 0
    assert "IML-GCN (image)" in capsys.readouterr().out
