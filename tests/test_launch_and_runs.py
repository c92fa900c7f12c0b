"""What a user on a cluster sees: the launch summary, no empty run folders, report over runs/, offline hints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import REPO, tiny_overrides
from deepfake_mlc.cli import main
from deepfake_mlc.config import Config, load_config
from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.engine import train
from deepfake_mlc.engine.launch import distributed_command, requested_processes
from deepfake_mlc.errors import EmbeddingError, WeightsError
from deepfake_mlc.models import build_model, load_embeddings

ONE_PROCESS_LAUNCH = ["/venv/bin/python", "/venv/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "train"]


def test_a_training_starts_by_saying_what_was_launched(synth_root: Path, tmp_path: Path, capsys) -> None:
    overrides = [*tiny_overrides(synth_root, tmp_path), "train.epochs=1"]
    train(load_config(Config, REPO / "configs" / "quickstart.yaml", overrides), cpu=True, show_progress=False)
    printed = capsys.readouterr().out
    assert "launch: 1 process on 1 machine, CPU" in printed and "mixed precision no" in printed
    assert "batch: 8 per process x 1 process = 8 per optimiser step; 1 CPU threads and 0 loader workers" in printed


def test_a_launch_that_started_fewer_processes_than_asked_names_the_command(tmp_path: Path) -> None:
    assert requested_processes([*ONE_PROCESS_LAUNCH, "--cpu", "--config", "x.yaml"]) == 2
    config = tmp_path / "accelerate.yaml"
    config.write_text("num_processes: 4\n")
    assert requested_processes(["/venv/bin/accelerate", "launch", "--config_file", str(config), "train"]) == 4
    assert requested_processes(["python", "-m", "pytest"]) is None  # not started by accelerate launch
    command = distributed_command(2, [*ONE_PROCESS_LAUNCH, "--cpu", "--config", "x.yaml"])
    assert command == (
        "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 train --cpu --config x.yaml"
    )


def test_a_run_that_cannot_start_leaves_no_folder(synth_root: Path, tmp_path: Path) -> None:
    overrides = [*tiny_overrides(synth_root, tmp_path), "output.name=doomed", "tracking.uri=nosuchstore://x"]
    with pytest.raises(Exception, match="nosuchstore"):  # MLflow's own error, after the folder was made
        train(load_config(Config, REPO / "configs" / "quickstart.yaml", overrides), cpu=True, show_progress=False)
    assert not (tmp_path / "doomed").exists()
    missing = [*tiny_overrides(tmp_path / "missing", tmp_path), "output.name=no-data"]
    assert (
        main(
            ["train", "--config", str(REPO / "configs" / "quickstart.yaml"), "--cpu"]
            + [a for o in missing for a in ("--set", o)]
        )
        == 2
    )
    assert not (tmp_path / "no-data").exists()


def test_report_collects_every_finished_run_beneath_a_folder(synth_root: Path, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        overrides = [
            *tiny_overrides(synth_root, runs),
            "train.epochs=1",
            f"output.name={name}",
            "tracking.enabled=false",
        ]
        train(load_config(Config, REPO / "configs" / "quickstart.yaml", overrides), cpu=True, show_progress=False)
    shutil.copytree(runs / "b", runs / "nested" / "unfinished")
    (runs / "nested" / "unfinished" / "metrics.json").unlink()
    assert main(["report", str(runs), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "skipped 1 unfinished run(s)" in printed and "unfinished" in printed
    table = (tmp_path / "report" / "components.md").read_text()
    assert table.count("| direct | test_resnet |") == 2  # a and b


def test_offline_weights_and_embeddings_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match=r"model\.pretrained_path=FILE .* model\.pretrained=false"):
        build_model(ModelConfig(name="resnet18", pretrained=True), 5)
    word = ModelConfig(name="ml_gcn").graph.embedding.model_copy(update={"path": "data/embeddings/glove.6B.300d.txt"})
    with pytest.raises(EmbeddingError, match=r"download GloVe 6B.*kind=text_model"):
        load_embeddings(word, "word", 300, ["nose", "eye"])
