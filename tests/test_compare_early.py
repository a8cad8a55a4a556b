"""The early-recognition section of the comparison report (video_eleatt.compare.early)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from test_compare_report import fabricate, plan

from video_eleatt.compare.early import write_early_recognition
from video_eleatt.compare.report import write_report

PERCENTS = list(range(10, 101, 10))


def curve(top1: list[float]) -> dict:
    return {"percent_observed": PERCENTS, "top1": top1, "area": sum(top1) / 10, "num_videos": 40}


def late(final: float, seed: int) -> list[float]:
    """At chance (1/4) until 80 % seen, then up: an order-defined class."""
    return [0.25] * 8 + [0.5 + 0.01 * seed, final]


def early(final: float, seed: int) -> list[float]:
    return [final - 0.02 * seed] * 10


def results_with_curves():
    results = []
    for seed in range(3):
        for variant, shape in (("baseline_gru", late), ("eleatt_gru", early)):
            result = fabricate(variant, "1", seed, 0.7)
            result.extra["early_recognition"] = curve(shape(0.7, seed))
            results.append(result)
    return results


def test_each_point_and_the_area_are_the_mean_over_runs_with_a_t_interval(tmp_path):
    results = results_with_curves()
    files, lines = write_early_recognition(results, plan(splits=["1"]), tmp_path, tmp_path)
    with open(tmp_path / "early_recognition.csv") as handle:
        rows = {(r["variant"], r["percent_observed"]): r for r in csv.DictReader(handle)}
    areas = [sum(late(0.7, seed)) / 10 for seed in range(3)]
    half = scipy_stats.t.ppf(0.975, 2) * np.std(areas, ddof=1) / math.sqrt(3)
    area = rows[("baseline_gru", "area")]
    assert float(area["mean_top1"]) == pytest.approx(np.mean(areas), abs=1e-6)
    assert float(area["ci_low"]) == pytest.approx(np.mean(areas) - half, abs=1e-6)
    assert float(area["ci_high"]) == pytest.approx(np.mean(areas) + half, abs=1e-6)
    assert float(rows[("baseline_gru", "50")]["mean_top1"]) == pytest.approx(0.25)
    assert rows[("baseline_gru", "50")]["runs"] == "3"
    text = "\n".join(lines)
    assert "## Early recognition" in text
    # the late curve reaches 90 % of its end only with all of the video; the flat one at once
    assert "| Baseline GRU (n = 3) | 25.0 | 25.0 | 25.0 | 25.0 | 25.0 |" in text
    rows_by_label = {line.split(" (n")[0]: line for line in lines if line.startswith("| ")}
    assert rows_by_label["| Baseline GRU"].endswith("| 100 % |")
    assert rows_by_label["| EleAtt-GRU"].endswith("| 10 % |")
    assert all(path.is_file() for path in files)


def test_runs_without_a_curve_are_left_out_and_counted(tmp_path):
    results = results_with_curves()
    results[0].extra.pop("early_recognition")
    _, lines = write_early_recognition(results, plan(splits=["1"]), tmp_path, tmp_path)
    assert "| Baseline GRU (n = 2) |" in "\n".join(lines)
    assert "1 run(s) recorded no curve" in "\n".join(lines)
    for result in results:
        result.extra.pop("early_recognition", None)
    assert write_early_recognition(results, plan(splits=["1"]), tmp_path, tmp_path) == ([], [])


def test_the_curve_is_read_from_the_tested_metrics_when_the_result_has_none(tmp_path):
    results = results_with_curves()
    for result in results:
        result.run_dir = str(tmp_path / result.variant / str(result.seed))
        test_dir = tmp_path / result.variant / str(result.seed) / "test_last"
        test_dir.mkdir(parents=True)
        metrics = {
            "checkpoint": "last.ckpt",
            "early_recognition": result.extra.pop("early_recognition"),
        }
        (test_dir / "metrics.json").write_text(json.dumps(metrics))
        result.extra["tested_checkpoint"] = "last.ckpt"
    outcome = write_report(results, plan(splits=["1"]), tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Early recognition" in report and "| EleAtt-GRU (n = 3) |" in report
    assert (tmp_path / "report" / "figures" / "early_recognition.png").is_file()
    assert tmp_path / "report" / "early_recognition.csv" in outcome.files
