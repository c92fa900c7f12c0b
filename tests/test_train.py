"""Training end to end on a tiny synthetic set: checkpoints, MLflow, exact resume, DDP, precision, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import pytest
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from conftest import REPO, launch_ddp, tiny_overrides
from deepfake_mlc.artifacts import RunFolder, RunSummary, read_checkpoint, read_checkpoint_meta, write_checkpoint
from deepfake_mlc.cli import main
from deepfake_mlc.config import Config, load_config
from deepfake_mlc.data import build_dataset, build_loader
from deepfake_mlc.data.synth import SynthConfig, generate
from deepfake_mlc.engine import predict, resume, train
from deepfake_mlc.engine import training_state as training_state_module
from deepfake_mlc.errors import ConfigError
from deepfake_mlc.metrics import summarize
from deepfake_mlc.models.loading import load_checkpoint


def tiny_config(root: Path, out: Path, *overrides: str) -> Config:
    return load_config(
        Config, REPO / "configs" / "quickstart.yaml", [*tiny_overrides(root, out), "output.name=run", *overrides]
    )


def test_train_writes_checkpoints_metrics_and_an_mlflow_run(synth_root: Path, tmp_path: Path) -> None:
    crop = ("data.face_crop.policy=ffhq", "data.face_crop.size=128")  # recorded, for predict to cut photos so
    cfg = tiny_config(synth_root, tmp_path, "train.ema=true", "train.ema_decay=0.5", *crop)
    result = train(cfg, cpu=True, show_progress=False)
    run = tmp_path / "run"
    assert result.run_dir == run and result.best_epoch in (1, 2)
    assert set(result.best_metrics) >= {"mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "AP/nose"}
    for name in ("best", "last"):
        state, meta = read_checkpoint(run / "checkpoints" / f"{name}.safetensors")
        assert meta.label_names == ("nose", "eye", "eyebrow", "lip", "hair")
        assert meta.preprocessing.model_dump() == {
            "image_size": 32,
            "interpolation": "bilinear",
            "mean": tuple(cfg.data.mean),
            "std": tuple(cfg.data.std),
            "face_crop": {"policy": "ffhq", "size": 128, "scale": 1.0, "interpolation": "bicubic", "template": None},
        }
        assert meta.threshold == 0.5 and meta.weights in ("model", "ema") and state
        assert json.loads((run / "checkpoints" / f"{name}.json").read_text()) == meta.model_dump(mode="json")
    _, loaded_cfg, meta = load_checkpoint(run)
    assert loaded_cfg == cfg and meta.metrics == result.best_metrics and meta.run_id == result.run_id
    summary = RunFolder(run).read_summary()
    assert [h["epoch"] for h in summary.history] == [1, 2] and "val_ema/mAP" in summary.history[0]
    assert summary.best == result.best_metrics and summary.best_epoch == result.best_epoch

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    logged = client.get_run(result.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["train.lr"] == str(cfg.train.lr) and logged.data.params["model.name"] == "test_resnet"
    assert {k: logged.data.tags[k] for k in ("subset", "method", "loss")} == {
        "subset": "components",
        "method": "test_resnet",
        "loss": "bce",
    }
    assert [m.step for m in client.get_metric_history(result.run_id, "val/mAP")] == [1, 2]
    for key in ("train/loss", "lr", "val/CF1", "val/AP/lip", "images_per_s", "epoch_time_s"):
        assert key in logged.data.metrics
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "metrics.json", "pr_curves.png", "checkpoint"} <= artifacts


def test_resume_after_a_kill_reaches_the_same_metrics(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    straight = train(tiny_config(synth_root, tmp_path / "a"), cpu=True, show_progress=False)

    AcceleratorState._reset_state(True)
    real_save = training_state_module.save_training_state

    def save_then_die(accelerator, run_dir, progress):  # the process dies right after epoch 1's state
        real_save(accelerator, run_dir, progress)
        raise KeyboardInterrupt

    monkeypatch.setattr("deepfake_mlc.engine.trainer.save_training_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(synth_root, tmp_path / "b"), cpu=True, show_progress=False)
    monkeypatch.undo()
    AcceleratorState._reset_state(True)
    resumed = resume(tmp_path / "b" / "run", cpu=True, show_progress=False)
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert {k: v for k, v in a.items() if "time" not in k and "per_s" not in k} == pytest.approx(
            {k: v for k, v in b.items() if "time" not in k and "per_s" not in k}, rel=1e-6
        )
    assert resumed.best_metrics == pytest.approx(straight.best_metrics, rel=1e-6)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}")
    assert [m.step for m in client.get_metric_history(resumed.run_id, "val/mAP")] == [1, 2]  # one run, continued


def _evaluate(checkpoint: Path, root: Path) -> dict:
    accelerator = Accelerator(cpu=True)
    model, cfg, meta = load_checkpoint(checkpoint)
    data = cfg.data.model_copy(update={"root": root, "batch_size": 5})  # 12 images: uneven last batch
    loader = build_loader(build_dataset(data, "val", train=False), data, train=False)
    model, loader = accelerator.prepare(model, loader)
    probs, targets = predict(model, loader, accelerator)
    assert len(probs) == 12
    return summarize(probs, targets, meta.label_names, 0.5, "asl")


def _ddp_job(root: str, out: str) -> None:
    cfg = tiny_config(Path(root), Path(out), "train.epochs=1")
    result = train(cfg, cpu=True, show_progress=False)
    metrics = _evaluate(Path(out) / "run", Path(root))
    if result.best_metrics:  # the main process
        Path(out, "ddp_eval.json").write_text(json.dumps(metrics))


def test_two_process_ddp_training_and_evaluation_equal_one_process(synth_root: Path, tmp_path: Path) -> None:
    launch_ddp(_ddp_job, args=(str(synth_root), str(tmp_path)), num_processes=2)
    AcceleratorState._reset_state(True)
    ddp = json.loads((tmp_path / "ddp_eval.json").read_text())
    assert ddp == pytest.approx(_evaluate(tmp_path / "run", synth_root), rel=1e-6)


def test_bf16_autocast_on_cpu(synth_root: Path, tmp_path: Path) -> None:
    result = train(
        tiny_config(synth_root, tmp_path, "train.mixed_precision=bf16", "train.epochs=1"), cpu=True, show_progress=False
    )
    assert result.best_epoch == 1


def test_fp16_on_cpu_is_refused(synth_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        train(tiny_config(synth_root, tmp_path, "train.mixed_precision=fp16"), cpu=True)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "train.optimizer=lamb"], "bad value for 'train.optimizer'"),
        (["--set", "data.root={tmp}/missing"], "Seq-DeepFake root not found"),
        (["--set", "output.dir={tmp}/a_file/runs"], "cannot write the run folder"),
        (["--resume", "{tmp}"], "nothing to resume"),
        (["--resume", "{tmp}", "--set", "train.lr=1"], "--resume continues with the run's own config"),
    ],
)
def test_user_errors_are_one_line(extra: list[str], message: str, synth_root: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "a_file").write_text("")
    argv = [
        "train",
        "--config",
        str(REPO / "configs" / "quickstart.yaml"),
        "--cpu",
        "--no-progress",
        "--set",
        f"data.root={synth_root}",
        "--set",
        f"output.dir={tmp_path}",
        "--set",
        "model.name=test_resnet",
        *[a.replace("{tmp}", str(tmp_path)) for a in extra],
    ]
    if "--resume" in extra:  # a resumed run has its own config
        argv = ["train", "--cpu", "--no-progress", *[a.replace("{tmp}", str(tmp_path)) for a in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_evaluate_command_reports_every_view(synth_root: Path, tmp_path: Path, capsys) -> None:
    train(tiny_config(synth_root, tmp_path, "train.epochs=1"), cpu=True, show_progress=False)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "run"),
                "--data",
                str(synth_root),
                "--split",
                "test",
                "--out",
                str(out),
                "--cpu",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "test split, 8 images" in printed and "real vs fake" in printed
    report = json.loads((out / "evaluation.json").read_text())
    assert report["images"] == 8 and set(report["detection"]) == {"subset_accuracy", "fake_accuracy", "fake_auc"}
    assert sum(report["confusion"]["nose"].values()) == 8 and (out / "pr_curves.png").stat().st_size > 0
    other = tmp_path / "attributes"
    generate(
        SynthConfig(image_size=32, subsets=["attributes"], splits={"train": 4, "val": 4, "test": 4}, workers=0),
        other,
        progress=False,
    )
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(other), "--subset", "attributes", "--cpu"]) == 2
    assert "are not the model's" in capsys.readouterr().err
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(broken), "--data", str(synth_root), "--cpu"]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err


def test_report_tables_beside_the_paper(synth_root: Path, tmp_path: Path, capsys) -> None:
    result = train(tiny_config(synth_root, tmp_path, "train.epochs=1"), cpu=True, show_progress=False)
    paper = tmp_path / "tables.csv"
    paper.write_text(
        "subset,category,method,loss,embedding,params_m,mAP,CP,CR,CF1,OP,OR,OF1\n"
        "seq_comp,direct,ResNet50,asl,,23.8,90.5,80.3,87.7,83.8,80.3,87.9,84.0\n"
        "seq_comp,indirect,ML-GCN,,word,44.9,89.6,87.5,69.4,76.9,87.8,69.8,77.8\n"
    )
    fake = RunFolder(tmp_path / "resnet50-asl")  # a finished paper-row run, as its files read (weights left out)
    metrics = dict(
        zip(["mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"], [91.0, 81.0, 88.0, 84.0, 81.0, 88.0, 84.0], strict=True)
    )
    cfg = load_config(Config, REPO / "configs" / "paper" / "resnet50_asl.yaml")
    meta = read_checkpoint_meta(RunFolder(result.run_dir).checkpoint())
    meta = meta.model_copy(update={"config": cfg.model_dump(mode="json"), "params": 23_518_277, "metrics": metrics})
    write_checkpoint(fake.checkpoints / "best", {}, meta)
    fake.write_summary(RunSummary(best=metrics, best_epoch=1))
    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                str(tmp_path / "resnet50-asl"),
                "--mlflow",
                f"sqlite:///{tmp_path / 'mlflow.db'}",
                "--paper",
                str(paper),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    markdown = (out / "components.md").read_text()
    assert "| direct | ResNet50 | asl | – | 23.5 (23.8) | 91.0 (90.5) | 81.0 (80.3)" in markdown
    assert "| direct | test_resnet | bce |" in markdown  # the MLflow run, no paper row
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["method"], r["source"]) for r in rows] == [
        ("ResNet50", "ours"),
        ("ResNet50", "paper"),
        ("test_resnet", "ours"),
    ]
    assert float(rows[2]["mAP"]) == pytest.approx(result.best_metrics["mAP"], abs=0.01)
    assert (out / "components.png").stat().st_size > 0 and not (out / "attributes.md").exists()
    assert main(["report", "--out", str(out)]) == 2 and "nothing to report" in capsys.readouterr().err
