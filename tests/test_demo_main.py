"""``video-eleatt demo`` at smoke-test size, through the same stages as the full demo.

One reduced demo (2 clips per class, a tiny random backbone, 2 seeds, 1 epoch) is run once per
session into the session's temporary folder; the rerun, the files and the predict tests
(tests/test_predict_video.py) use it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from video_eleatt.demo.cli import demo_main, parse_options
from video_eleatt.demo.main import plan_demo
from video_eleatt.demo.options import DemoOptions

QUICK_ARGS = ["--quick", "--videos_per_class", "2", "--epochs", "1", "--parallel", "1"]


def run_quick_demo(base: Path) -> tuple[int, Path, Path]:
    """Runs (or reruns) the reduced demo under ``base``; returns (exit code, data folder,
    comparison folder)."""
    args = [*QUICK_ARGS, "--data_dir", str(base / "data"), "--output_dir", str(base / "runs")]
    code = demo_main(args)
    plan = plan_demo(parse_options(args))
    return code, plan.data_dir, plan.output_dir


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import contextlib
    import io

    base = tmp_path_factory.getbasetemp() / "quick_demo"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code, data_dir, output_dir = run_quick_demo(base)
    return {"code": code, "data": data_dir, "runs": output_dir, "stdout": stdout.getvalue()}


def test_reduced_demo_writes_report_summary_and_says_features_are_untrained(quick_demo):
    assert quick_demo["code"] == 0, quick_demo["stdout"][-3000:]
    runs = quick_demo["runs"]
    stdout = quick_demo["stdout"]
    assert "UNTRAINED" in stdout
    for name in ("report.md", "summary.csv", "comparisons.csv", "figures/loss_curves.png"):
        assert (runs / name).is_file(), name
    summary = json.loads((runs / "demo_summary.json").read_text())
    assert summary["complete"] is True
    assert {row["variant"]: row["runs"] for row in summary["variants"]} == {
        "baseline_gru": 2,
        "eleatt_gru": 2,
    }
    for row in summary["variants"]:
        assert 0.0 <= row["top1_mean_pct"] <= 100.0
        assert row["top1_std_pct"] is not None  # two seeds: a spread is reported
    # the machine and the precision the figures were made with (for the README's table)
    assert summary["extraction_precision"] == "float32"
    assert {"cpu", "avx2", "avx512", "native_bf16", "cpu_capability"} <= set(summary["machine"])
    # every run stored its per-video predictions; the pooled top-1 interval is the paired
    # t-interval of the per-seed results, and the report states power
    assert len(list(runs.glob("runs/*/split-default/seed-*/test_predictions.csv"))) == 4
    (pooled,) = [
        row
        for row in csv.DictReader((runs / "comparisons.csv").open())
        if row["metric"] == "top1" and row["split"] == "pooled"
    ]
    results = {
        (row["variant"], row["seed"]): float(row["test_top1"]) * 100
        for row in csv.DictReader((runs / "results.csv").open())
    }
    differences = [results[("eleatt_gru", s)] - results[("baseline_gru", s)] for s in ("0", "1")]
    if np.ptp(differences) > 0:
        interval = stats.ttest_1samp(differences, 0.0).confidence_interval()
        assert float(pooled["ci_low_pts"]) == pytest.approx(interval.low, abs=0.01)
        assert float(pooled["ci_high_pts"]) == pytest.approx(interval.high, abs=0.01)
    assert "power" in (runs / "report.md").read_text().lower()
    # The printed table names both arms with mean ± std over the 2 seeds, and the verdict.
    assert "Baseline-GRU (128)" in stdout and "EleAtt-GRU (128)" in stdout
    assert "(n = 2)" in stdout
    # the verdict's wording depends on the outcome (better / worse / no significant
    # difference / no test): it names both arms and the number of pairs whatever it says
    (verdict,) = [line for line in stdout.splitlines() if "on top-1 accuracy" in line]
    assert "EleAtt-GRU (128)" in verdict and "Baseline-GRU (128)" in verdict
    assert "n = 2" in verdict
    assert f"report:     {runs / 'report.md'}" in stdout
    # The dataset is the generator's, in UCF101 layout, with 8 classes x 2 clips.
    videos = sorted((quick_demo["data"] / "motion_quick_v2" / "UCF-101").rglob("*.mp4"))
    assert len(videos) == 16
    # Attention of the first EleAtt run, with a frame overlay.
    assert list((runs / "attention").glob("overlay_*.png"))


def test_rerun_reuses_dataset_features_and_runs(quick_demo, tmp_path_factory, capsys):
    assert quick_demo["code"] == 0
    runs = quick_demo["runs"]
    results = sorted(runs.glob("runs/*/split-*/seed-*/result.json"))
    assert len(results) == 4
    before = {path: path.stat().st_mtime_ns for path in results}
    videos = sorted(quick_demo["data"].rglob("*.mp4"))
    video_times = {path: path.stat().st_mtime_ns for path in videos}

    code, _, _ = run_quick_demo(tmp_path_factory.getbasetemp() / "quick_demo")
    out = capsys.readouterr()
    assert code == 0
    assert "already complete: reusing 16 videos" in out.out
    assert "0 ok, 0 failed, 16 skipped (already done)" in out.out
    assert "4 of 4 runs already finished: not repeated" in out.err
    assert {path: path.stat().st_mtime_ns for path in results} == before
    assert {path: path.stat().st_mtime_ns for path in videos} == video_times


def test_options_that_change_results_get_their_own_folders():
    default = plan_demo(DemoOptions())
    assert default.dataset_root == Path("data/demo/motion")
    assert default.output_dir == Path("runs/demo")
    assert default.tag == ""
    other = plan_demo(DemoOptions(videos_per_class=20, epochs=5, device="cuda"))
    assert other.dataset_root == Path("data/demo/motion_v20")
    assert other.output_dir == Path("runs/demo_v20_e5_cuda")
    assert other.synth.videos_per_class == 20
    assert "--device=cuda" in other.extract_args
    assert any('"max_epochs": 5' in arg for arg in other.compare_args)


def test_unwritable_data_dir_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = demo_main(
        [*QUICK_ARGS, "--data_dir", str(blocker / "data"), "--output_dir", str(tmp_path / "runs")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot write to" in err and "--data_dir" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_foreign_folder_at_the_dataset_place_is_left_alone(tmp_path, capsys):
    dataset_root = tmp_path / "data" / "motion_quick_v2"
    dataset_root.mkdir(parents=True)
    (dataset_root / "holiday.mp4").write_bytes(b"mine")
    code = demo_main(
        [*QUICK_ARGS, "--data_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "runs")]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "the generate stage failed" in err and "does not look like a demo dataset" in err
    assert [p.name for p in dataset_root.iterdir()] == ["holiday.mp4"]
    assert not (tmp_path / "data" / "features").exists()
    assert not list((tmp_path / "runs").glob("*.json"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--videos_per_class", "1"], "at least 2"),
        (["--pretrained", "--backbone_weights", "w.pth"], "not both"),
        (["--no_such_option", "1"], "no_such_option"),
    ],
)
def test_bad_options_exit_2_with_the_reason(tmp_path, capsys, args, message):
    code = demo_main(
        [*args, "--data_dir", str(tmp_path / "d"), "--output_dir", str(tmp_path / "r")]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
