"""The quality gate: one tolerance table, the looser-arithmetic rule, its verdicts, and the commands built from it."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_without
from deepfake_mlc.cli.main import build_parser
from deepfake_mlc.metrics.parity import MAX_ABS_DIFF, MAX_MAP_DROP, Bound, Tolerances, check_parity

NAMES = {"runtime": "ort-cuda", "reference_runtime": "pytorch"}


@pytest.mark.parametrize(
    ("precision", "reference", "bound"),
    [
        ("fp32", "fp32", Bound("fp32", 1e-4)),
        ("tf32", "fp32", Bound("tf32", 1e-3)),  # TF32 rounds matmul inputs only: tighter than fp16
        ("fp32", "tf32", Bound("tf32", 1e-3)),  # a TF32 reference cannot vouch for fp32 to 1e-4
        ("fp16", "tf32", Bound("fp16", 1e-2)),
        ("bf16", "fp32", Bound("bf16", 1e-2)),
        ("int8", "fp32", Bound("int8", 1.0)),
        ("fp32", "int8", Bound("int8", 1.0)),
        ("fp8", "fp32", None),
    ],
)
def test_a_comparison_is_held_to_the_looser_arithmetics_bound(
    precision: str, reference: str, bound: Bound | None
) -> None:
    assert Tolerances().bound(precision, reference) == bound


def test_the_figures_on_handmade_outputs() -> None:
    reference = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.7], [0.3, 0.3]])
    probs = np.array([[0.9, 0.1], [0.4, 0.4], [0.2, 0.71], [0.3, 0.3]])  # image 2's first label flips
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    parity = check_parity(probs, reference, 0.5, **NAMES, precision="fp16", reference_precision="fp32", targets=targets)
    assert parity.max_abs_diff == pytest.approx(0.2) and parity.identical_label_sets == 75.0
    assert (parity.map, parity.map_reference, parity.map_delta) == (100.0, 100.0, 0.0)  # the ranking holds
    thresholds = np.array([0.5, 0.8])  # 0.71 vs 0.7: both below 0.8
    per_label = check_parity(probs, reference, thresholds, **NAMES, precision="fp16", reference_precision="fp32")
    assert per_label.identical_label_sets == 75.0 and per_label.map is None
    assert parity.failure() == "ort-cuda (fp16) against pytorch (fp32) on 4 images: max |Δp| 2.00e-01 > 0.01"


def test_verdicts() -> None:
    reference = np.full((3, 2), 0.5, dtype=np.float32)
    targets = np.array([[1, 0], [0, 1], [1, 1]])

    def verdict(probs: np.ndarray, precision: str, **options: object) -> str | None:
        names = {**NAMES, "precision": precision, "reference_precision": "fp32"}
        return check_parity(probs, reference, 0.5, **names, **options).failure()  # type: ignore[arg-type]

    assert verdict(reference + 9e-4, "tf32") is None
    failure = "ort-cuda (tf32) against pytorch (fp32) on 3 images: max |Δp| 2.00e-03 > 0.001"
    assert verdict(reference + 2e-3, "tf32") == failure
    assert verdict(reference * np.nan, "fp32") is not None  # NaN never passes
    assert verdict(reference + 0.3, "int8", targets=targets) is None  # int8 is judged by mAP alone
    assert "needs labelled images" in str(verdict(reference, "int8"))
    assert "has no bound" in str(verdict(reference, "fp8"))
    loose = Tolerances({**MAX_ABS_DIFF, "tf32": 5e-3}, MAX_MAP_DROP)
    assert verdict(reference + 2e-3, "tf32", tolerances=loose) is None


def test_the_command_lines_take_their_defaults_from_the_table() -> None:
    parser = build_parser()
    bench = parser.parse_args(["serve-bench", "--model", "m.onnx", "--data", "d"])
    assert {p: getattr(bench, f"tolerance_{p}") for p in MAX_ABS_DIFF} == MAX_ABS_DIFF
    assert bench.max_map_drop == MAX_MAP_DROP
    export_help = parser._subparsers._group_actions[0].choices["export"].format_help()  # type: ignore[union-attr]
    assert " ".join(str(Tolerances()).split()) in " ".join(export_help.split())


def test_the_gate_needs_no_torch() -> None:
    result = run_without({"torch", "onnx"}, "from deepfake_mlc.metrics.parity import check_parity")
    assert result.returncode == 0, result.stderr[-2000:]
