"""The command line as a user runs it: the main job on the embedded data set, one-line errors, entries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_mlc.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--size", "48", "--train", "12", "--val", "6", "--test", "6", "--workers", "0", "--no-progress"]


def test_synth_then_stats_reads_back_through_the_official_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "wrote 48 images" in printed
    assert "components/train: 12 images" in printed and "attributes/test: 6 images" in printed
    report = tmp_path / "stats.json"
    assert main(["data", "stats", str(out), "--subset", "attributes", "--json", str(report)]) == 0
    stats = json.loads(report.read_text())
    assert sorted(stats) == ["attributes/test", "attributes/train", "attributes/val"]
    train = stats["attributes/train"]
    assert train["labels"] == ["Bangs", "Eyeglasses", "Beard", "Smiling", "Young"]
    assert train["num_images"] == 12 == sum(train["length_histogram"])
    assert "Eyeglasses" in capsys.readouterr().out


def test_stats_of_a_config_and_a_manifest(tmp_path: Path, seq_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = REPO / "configs" / "quickstart.yaml"
    assert main(["data", "stats", "--config", str(config), "--set", f"data.root={seq_root}", "--split", "val"]) == 0
    assert "components/val: 8 images" in capsys.readouterr().out
    manifest = tmp_path / "m.csv"
    image = next((seq_root / "facial_components" / "images" / "train" / "original").iterdir())
    manifest.write_text(f"path,labels\n{image},a|b\n{image},\n")
    assert main(["data", "stats", "--manifest", str(manifest), "--labels", "a,b,c"]) == 0
    assert "2 images" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "synth", "--out", "{tmp}/x", "--set", "prior=zipf"], "bad value for 'prior'"),
        (["data", "synth", "--out", "{tmp}/x", "--set", "colour=1"], "unknown config key 'colour'"),
        (["data", "stats", "{tmp}/nowhere"], "no Seq-DeepFake subset under"),
        (["data", "stats", "--config", "{tmp}/missing.yaml"], "config file not found"),
        (["data", "stats", "--manifest", "{tmp}/m.csv"], "--manifest needs --labels"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_synth_refuses_to_mix_with_existing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--subsets", "components", *TINY]) == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["data", "synth", "--out", str(out), "--subsets", "components", *TINY, "--seed", "3"]) == 2
    assert "facial_components" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.parametrize("entry", ["train", "export", "serve_bench"])
def test_top_level_entries_run_the_cli(entry: str) -> None:
    done = subprocess.run([sys.executable, entry, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "deepfake-mlc" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
