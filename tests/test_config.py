"""Configs: YAML with inheritance, dotted overrides, one-line errors naming the key, YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepfake_mlc.config import Config, apply_overrides, dump_yaml, load_config
from deepfake_mlc.errors import ConfigError
from deepfake_mlc.models import build_model, embedding_tag, list_models, model_entry

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_shipped_configs_load() -> None:
    cfg = load_config(Config, CONFIGS / "quickstart.yaml")
    assert cfg.data.image_size == 64
    assert cfg.data.batch_size == 64
    assert cfg.data.augment.color_jitter is None  # the quick start keeps the synthetic colour traces
    assert cfg.data.augment.hflip == 0.5 and cfg.data.on_corrupt == "error"  # inherited from defaults.yaml
    defaults = load_config(Config, CONFIGS / "defaults.yaml")
    assert defaults.data.augment.color_jitter is not None and defaults.data.augment.color_jitter.brightness == (
        0.5,
        1.3,
    )
    assert str(cfg.data.root) == "data/synth"


def test_dotted_overrides_parse_values() -> None:
    cfg = load_config(
        Config,
        CONFIGS / "quickstart.yaml",
        ["data.image_size=96", "data.augment.color_jitter=null", "data.mean=[0.5, 0.5, 0.5]", "seed=7"],
    )
    assert (cfg.data.image_size, cfg.seed, cfg.data.mean) == (96, 7, (0.5, 0.5, 0.5))
    assert cfg.data.augment.color_jitter is None
    assert apply_overrides({"a": {"b": 1}}, ["a.c.d=3e-4"]) == {"a": {"b": 1, "c": {"d": "3e-4"}}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.subset=faces",
            "bad value for 'data.subset': Input should be 'components' or 'attributes' (got 'faces')",
        ),
        ("data.imagesize=64", "unknown config key 'data.imagesize'; allowed keys here: augment, batch_size,"),
        ("data.augment.hflip=1.5", "bad value for 'data.augment.hflip': Input should be less than or equal to 1"),
        ("data.batch_size=zero", "bad value for 'data.batch_size': Input should be a valid integer"),
        ("data.on_corrupt=ignore", "'data.on_corrupt': Input should be 'error' or 'skip'"),
        ("data.format=manifest", "data.manifests.train is required when data.format is 'manifest'"),
        ("optim.lr=3e-4", "unknown config key 'optim'"),
        ("data.augment.jpeg.quality=[95, 30]", "bad value for 'data.augment.jpeg.quality': [95, 30] is not a range"),
        ("data.augment.jpeg.quality=[0, 30]", "'data.augment.jpeg.quality': [0, 30] is not a range [a, b] with 1 <="),
        ("data.augment.jpeg.quality=[40.5, 90]", "bad value for 'data.augment.jpeg.quality.0'"),
        ("data.augment.jpeg.p=1.5", "bad value for 'data.augment.jpeg.p': Input should be less than or equal to 1"),
        (
            "data.augment.downscale.scale=[0, 1]",
            "'data.augment.downscale.scale': [0, 1] is not a range [a, b] with 0 <",
        ),
        ("data.augment.downscale.scale=[0.5, 1.5]", "bad value for 'data.augment.downscale.scale'"),
        ("data.augment.blur.sigma=[1, 11]", "'data.augment.blur.sigma': [1, 11] is not a range [a, b] with 0 < a"),
        ("data.augment.noise.std=[0.01, 2]", "bad value for 'data.augment.noise.std': [0.01, 2] is not a range"),
        ("data.augment.noise.std=0.1", "bad value for 'data.augment.noise.std': Input should be a valid tuple"),
        ("data.augment.noise.sigma=[1, 2]", "unknown config key 'data.augment.noise.sigma'; allowed keys here: p, std"),
    ],
)
def test_bad_values_give_one_line_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(Config, CONFIGS / "quickstart.yaml", [override])
    text = str(err.value)
    assert message in text
    assert "\n" not in text
    assert text.startswith(str(CONFIGS / "quickstart.yaml"))


def test_yaml_errors_missing_files_and_cycles(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:\d+: invalid YAML"):
        load_config(Config, tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Config, tmp_path / "absent.yaml")
    (tmp_path / "a.yaml").write_text("inherit: b.yaml\n")
    (tmp_path / "b.yaml").write_text("inherit: a.yaml\n")
    with pytest.raises(ConfigError, match="inheritance cycle"):
        load_config(Config, tmp_path / "a.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Config, tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match=r"not of the form key\.sub=value"):
        load_config(Config, CONFIGS / "quickstart.yaml", ["data.image_size"])


def test_resolved_config_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = load_config(Config, CONFIGS / "quickstart.yaml", ["data.augment.hflip=0.25"])
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(dump_yaml(cfg))
    assert load_config(Config, dumped) == cfg
    assert "inherit" not in dumped.read_text()


PAPER_CONFIGS = {  # row file in configs/paper -> (model, loss): the 12 rows of Tables I and II
    "resnet50_bce": ("resnet50", "bce"),
    "resnet50_asl": ("resnet50", "asl"),
    "resnet101_bce": ("resnet101", "bce"),
    "resnet101_asl": ("resnet101", "asl"),
    "tresnet_m_bce": ("tresnet_m", "bce"),
    "tresnet_m_asl": ("tresnet_m", "asl"),
    "ml_gcn_word": ("ml_gcn", "multilabel_soft_margin"),
    "iml_gcn_word": ("iml_gcn_word", "asl"),
    "iml_gcn_image": ("iml_gcn_image", "asl"),
    "ml_agcn_image": ("ml_agcn_image", "asl"),
    "ml_agcn_word_asl": ("ml_agcn_word", "asl"),
    "ml_agcn_word_bce": ("ml_agcn_word", "bce"),
}


def test_one_config_per_paper_row_of_the_registry() -> None:
    assert sorted(p.stem for p in (CONFIGS / "paper").glob("*.yaml")) == sorted(PAPER_CONFIGS)
    paper_models = {entry.name for entry in list_models() if entry.paper is not None}
    assert {model for model, _ in PAPER_CONFIGS.values()} == paper_models


@pytest.mark.parametrize("stem", sorted(PAPER_CONFIGS))
def test_paper_config_runs_both_subsets_with_the_paper_settings(stem: str) -> None:
    """Components by default (Table II), attributes with one override (Table I); the rest is the paper's."""
    for subset, overrides in (("components", []), ("attributes", ["data.subset=attributes"])):
        cfg = load_config(Config, CONFIGS / "paper" / f"{stem}.yaml", overrides)
        assert (cfg.data.subset, cfg.model.name, cfg.loss.name) == (subset, *PAPER_CONFIGS[stem])
        assert (cfg.data.image_size, cfg.data.batch_size, cfg.train.epochs, cfg.model.pretrained) == (
            224,
            128,
            40,
            True,
        )
    assert embedding_tag(cfg.model) == (model_entry(cfg.model.name).embedding or "none")
    with torch.device("meta"):
        model = build_model(cfg.model.model_copy(update={"pretrained": False}), 5)
    weights = getattr(model, "backbone", model).pretrained_cfg  # the ImageNet weights it would start from
    assert (cfg.data.mean, cfg.data.std) == (weights["mean"], weights["std"])
