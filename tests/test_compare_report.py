"""Report generation from fabricated per-run results (no training), and bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from video_eleatt.compare.markdown import describe_protocol
from video_eleatt.compare.pervideo import two_level_interval
from video_eleatt.compare.report import aggregate_curve, write_report
from video_eleatt.compare.results import RunResult, read_result, write_result
from video_eleatt.compare.rows import ReportPlan, compare_variants

CLASS_NAMES = ["approach", "recede", "spin_left", "spin_right"]


def fabricate(variant, split, seed, top1, *, epochs=3, cache="cafe01", classes=CLASS_NAMES):
    """A plausible run: 40 test videos, per-class accuracy around ``top1``."""
    num_classes = len(classes)
    per_class = [min(1.0, max(0.0, top1 + 0.05 * (c - 1.5))) for c in range(num_classes)]
    confusion = np.zeros((num_classes, num_classes), dtype=int)
    for c, accuracy in enumerate(per_class):
        correct = round(10 * accuracy)
        confusion[c, c] = correct
        confusion[c, (c + 1) % num_classes] = 10 - correct
    history = [
        {
            "epoch": e,
            "train_loss": 1.4 - 0.3 * e - 0.01 * seed,
            "val_loss": 1.5 - 0.25 * e,
            "val_top1": 0.3 + 0.1 * e,
            "train_top1": 0.35 + 0.1 * e,
            "epoch_time_s": 2.0,
        }
        for e in range(epochs)
    ]
    return RunResult(
        variant=variant,
        split=split,
        seed=seed,
        test_top1=top1,
        test_top5=1.0,
        test_mean_class_accuracy=float(np.mean(per_class)),
        test_loss=0.9,
        per_class_accuracy=per_class,
        confusion_matrix=confusion.tolist(),
        class_names=list(classes),
        history=history,
        parameter_count=1234 if variant == "baseline_gru" else 1500,
        train_time_per_epoch_s=2.0,
        inference_sequences_per_s=900.0,
        num_test_videos=40,
        cache_dir="cache/demo",
        cache_fingerprint=cache,
        model_config={"cell": "gru", "num_eleatt_layers": int(variant != "baseline_gru")},
        test_protocol={"description": "mean of softmax over 5 clips", "checkpoint": "last"},
        run_dir=f"runs/{variant}/split{split}/seed{seed}",
    )


def plan(**changes):
    values = {
        "name": "demo",
        "baseline": "baseline_gru",
        "variants": ["baseline_gru", "eleatt_gru"],
        "splits": ["1", "2"],
        "seeds": [0, 1, 2],
        "labels": {"baseline_gru": "Baseline GRU", "eleatt_gru": "EleAtt-GRU"},
        "variant_configs": {"eleatt_gru": {"model": {"num_eleatt_layers": 1}}},
        "base_configs": {"configs/demo.yaml": "trainer:\n  max_epochs: 3\n"},
        "num_resamples": 2000,
    }
    values.update(changes)
    return ReportPlan(**values)


def full_grid():
    results = []
    gains = {0: 0.06, 1: 0.04, 2: 0.05}
    for split_offset, split in ((0.0, "1"), (0.02, "2")):
        for seed, gain in gains.items():
            base = 0.60 + split_offset + 0.01 * seed
            results.append(fabricate("baseline_gru", split, seed, base))
            results.append(fabricate("eleatt_gru", split, seed, base + gain))
    return results


def read_csv(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_full_report_writes_every_file(tmp_path):
    outcome = write_report(full_grid(), plan(), tmp_path / "report")
    root = tmp_path / "report"
    for name in ("report.md", "results.csv", "summary.csv", "comparisons.csv", "per_class.csv"):
        assert (root / name).is_file(), name
    figures = sorted(p.name for p in (root / "figures").glob("*.png"))
    assert figures == [
        "accuracy_curves.png",
        "confusion_baseline_gru.png",
        "confusion_eleatt_gru.png",
        "loss_curves.png",
        "per_class_difference_eleatt_gru.png",
        "test_top1.png",
    ]
    assert all((root / "figures" / name).stat().st_size > 5000 for name in figures)
    assert outcome.comparable and not outcome.missing_runs and not outcome.problems

    results_rows = read_csv(root / "results.csv")
    assert len(results_rows) == 12 and {r["status"] for r in results_rows} == {"finished"}

    summary = {(r["variant"], r["split"]): r for r in read_csv(root / "summary.csv")}
    assert set(summary) == {(v, s) for v in ("baseline_gru", "eleatt_gru") for s in "12"} | {
        ("baseline_gru", "all"),
        ("eleatt_gru", "all"),
    }
    # baseline split 1: 0.60, 0.61, 0.62 -> 61.00 ± 1.00 (n = 3)
    row = summary[("baseline_gru", "1")]
    assert float(row["top1_mean_pct"]) == pytest.approx(61.0)
    assert float(row["top1_std_pct"]) == pytest.approx(1.0)
    assert row["top1_n"] == "3"
    # "all": per-seed mean over splits 0.61, 0.62, 0.63 -> 62.00 ± 1.00 over 3 seeds
    row = summary[("baseline_gru", "all")]
    assert float(row["top1_mean_pct"]) == pytest.approx(62.0)
    assert float(row["top1_std_pct"]) == pytest.approx(1.0)
    assert row["top1_n"] == "3" and row["num_runs"] == "6"

    comparisons = read_csv(root / "comparisons.csv")
    pooled = next(r for r in comparisons if r["split"] == "pooled" and r["metric"] == "top1")
    # differences 6, 4, 5 points in both splits: mean 5, n = 6 pairs
    assert pooled["n"] == "6"
    assert float(pooled["mean_difference_pts"]) == pytest.approx(5.0)
    assert pooled["significant"] == "True"
    assert {r["split"] for r in comparisons} == {"pooled", "1", "2"}

    markdown = (root / "report.md").read_text()
    assert "EleAtt-GRU is better than Baseline GRU on top-1 accuracy by 5.00 points" in markdown
    assert "61.00 ± 1.00 (n = 3)" in markdown
    assert "![Training and validation loss per epoch (convergence)](figures/loss_curves.png)" in (
        markdown
    )
    assert "Test protocol: mean of softmax over 5 clips; checkpoint tested: last" in markdown
    assert '"num_eleatt_layers": 1' in markdown and "max_epochs: 3" in markdown
    assert "## Problems" not in markdown


def test_aggregate_curve_mean_and_sample_std():
    runs = [fabricate("baseline_gru", "1", seed, 0.6, epochs=2) for seed in (0, 1, 2)]
    runs.append(fabricate("baseline_gru", "1", 3, 0.6, epochs=3))
    curve = aggregate_curve(runs, "train_loss")
    assert curve.epochs.tolist() == [0, 1, 2]
    assert curve.count.tolist() == [4, 4, 1]
    # epoch 0: 1.40, 1.39, 1.38, 1.37
    assert curve.mean[0] == pytest.approx(1.385)
    assert curve.std[0] == pytest.approx(np.std([1.40, 1.39, 1.38, 1.37], ddof=1))
    assert np.isnan(curve.std[2])


def test_missing_and_unpaired_runs_are_listed(tmp_path):
    results = [
        r
        for r in full_grid()
        if not (r.variant == "baseline_gru" and (r.split, r.seed) == ("2", 2))
    ]
    failures = {("baseline_gru", "2", 2): "RuntimeError: out of memory"}
    outcome = write_report(results, plan(failures=failures), tmp_path)
    assert outcome.missing_runs == [("baseline_gru", "2", 2)]
    markdown = (tmp_path / "report.md").read_text()
    assert "## Problems" in markdown
    assert "`baseline_gru/split-2/seed-2`: failed: RuntimeError: out of memory" in markdown
    assert "1 run(s) without the Baseline GRU run of the same split and seed" in markdown
    rows = read_csv(tmp_path / "results.csv")
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"] == "RuntimeError: out of memory"
    pooled = next(
        r for r in outcome.comparisons if r["split"] == "pooled" and r["metric"] == "top1"
    )
    assert pooled["n"] == 5  # the unpaired EleAtt run is left out


def test_one_seed_reports_no_pvalue(tmp_path):
    results = [fabricate("baseline_gru", "1", 0, 0.6), fabricate("eleatt_gru", "1", 0, 0.65)]
    outcome = write_report(results, plan(splits=["1"], seeds=[0]), tmp_path)
    sentence = outcome.verdicts["eleatt_gru"]
    assert "too few paired runs for a test (n = 1): no p-value reported" in sentence
    row = outcome.comparisons[0]
    assert row["t_pvalue"] is None and not row["significant"]
    assert "0.60 (n = 1, no std)" not in (tmp_path / "report.md").read_text()
    assert "60.00 (n = 1, no std)" in (tmp_path / "report.md").read_text()


def test_different_caches_are_not_compared(tmp_path):
    results = full_grid()
    results[1] = fabricate("eleatt_gru", "1", 0, 0.7, cache="beef02")
    outcome = write_report(results, plan(), tmp_path)
    assert not outcome.comparable and outcome.comparisons == []
    assert "different feature caches" in outcome.problems[0]
    assert "eleatt_gru/split-1/seed-0" in outcome.problems[0]
    # partial results are still written
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "summary.csv").is_file()
    assert "No comparison could be made" in (tmp_path / "report.md").read_text()


def test_different_class_sets_are_not_compared(tmp_path):
    results = full_grid()
    results[0] = fabricate("baseline_gru", "1", 0, 0.6, classes=[*CLASS_NAMES[:3], "other"])
    outcome = write_report(results, plan(), tmp_path)
    assert not outcome.comparable
    assert any("different class sets" in p for p in outcome.problems)


def test_baseline_without_runs(tmp_path):
    results = [r for r in full_grid() if r.variant != "baseline_gru"]
    outcome = write_report(results, plan(), tmp_path)
    assert any("no finished run of the baseline 'Baseline GRU'" in p for p in outcome.problems)
    assert outcome.comparisons == [] and len(outcome.missing_runs) == 6


def test_result_round_trip_and_marker(tmp_path):
    result = fabricate("eleatt_gru", "1", 0, 0.65)
    result.test_loss = float("nan")
    assert read_result(tmp_path) is None
    write_result(tmp_path, result)
    loaded = read_result(tmp_path)
    assert loaded.key == ("eleatt_gru", "1", 0)
    assert loaded.test_loss is None  # NaN is not JSON: stored as null
    assert loaded.confusion_matrix == result.confusion_matrix
    (tmp_path / "result.json").write_text(json.dumps({"variant": "x"}))
    with pytest.raises(ValueError, match="missing \\['split', 'seed'"):
        read_result(tmp_path)


def test_variants_compared_with_their_own_reference():
    results = []
    for seed, noise in enumerate((0.0, 0.01, -0.01)):
        results += [
            fabricate("baseline_gru", "1", seed, 0.60 + noise),
            fabricate("lstm", "1", seed, 0.62 + 2 * noise),  # LSTM - GRU: 2, 3, 1 points
            fabricate("eleatt_lstm", "1", seed, 0.66 + 2 * noise + 0.01 * seed),
        ]
    report_plan = plan(
        variants=["baseline_gru", "lstm", "eleatt_lstm"],
        splits=["1"],
        references={"eleatt_lstm": "lstm"},
        labels={"baseline_gru": "GRU", "lstm": "LSTM", "eleatt_lstm": "EleAtt-LSTM"},
    )
    rows, _ = compare_variants(results, report_plan)
    top1 = {r.variant: r for r in rows if r.metric == "top1"}
    assert top1["lstm"].baseline == "baseline_gru"
    assert top1["lstm"].mean_difference_pts == pytest.approx(2.0)
    # EleAtt-LSTM - LSTM: 4, 5, 6 points
    assert top1["eleatt_lstm"].baseline == "lstm"
    assert top1["eleatt_lstm"].mean_difference_pts == pytest.approx(5.0)
    assert top1["eleatt_lstm"].verdict.startswith(
        "On this test set, EleAtt-LSTM is better than LSTM"
    )
    # Holm over the two pooled top-1 tests: the larger raw p is kept, the smaller doubled
    raw = sorted([top1["lstm"].t_pvalue, top1["eleatt_lstm"].t_pvalue])
    holm = sorted([top1["lstm"].holm_pvalue, top1["eleatt_lstm"].holm_pvalue])
    assert holm == pytest.approx([2 * raw[0], max(2 * raw[0], raw[1])])


def test_protocol_line_is_right_for_every_sampling_mode():
    # "full" uses every cached step whatever num_steps says (the demo's cache has 12 steps
    # per video, and the report once said "full (32 steps)")
    line = describe_protocol({"description": "x", "train_sampling": "full", "num_steps": 32})
    assert line == "x; training sampling: full (every cached step of each video)"
    assert "32" not in line
    segments = describe_protocol({"description": "x", "train_sampling": "segments", "num_steps": 8})
    assert segments.endswith("training sampling: segments (8 segments, one random step in each)")
    window = describe_protocol({"description": "x", "train_sampling": "window", "num_steps": 16})
    assert window.endswith("training sampling: window (16 consecutive steps from a random start)")


def test_per_video_rows_use_the_stored_predictions(tmp_path):
    # 3 seeds x 20 test videos of 2 classes, predictions stored in shuffled video order per
    # run: the report aligns them by video key before the per-video statistics
    generator = np.random.default_rng(4)
    videos = [f"c{v % 2}/video{v:02d}.mp4" for v in range(20)]
    labels = [v % 2 for v in range(20)]
    correct = {}
    results = []
    for seed in range(3):
        for variant, rate in (("baseline_gru", 0.6), ("eleatt_gru", 0.75)):
            hits = generator.random(20) < rate
            correct[(variant, seed)] = hits.astype(int)
            order = generator.permutation(20)
            run = fabricate(variant, "1", seed, float(hits.mean()))
            run.test_predictions = {
                "rel_paths": [videos[i] for i in order],
                "labels": [labels[i] for i in order],
                "predicted": [labels[i] if hits[i] else 1 - labels[i] for i in order],
            }
            results.append(run)
    rows, _ = compare_variants(results, plan(splits=["1"]))
    (top1,) = [r for r in rows if r.metric == "top1"]
    variant = np.stack([correct[("eleatt_gru", s)] for s in range(3)])
    baseline = np.stack([correct[("baseline_gru", s)] for s in range(3)])
    expected = two_level_interval(variant, baseline)
    assert top1.num_test_videos == 20
    assert top1.two_level_low_pts == pytest.approx(expected.low * 100)
    assert top1.two_level_high_pts == pytest.approx(expected.high * 100)
    assert top1.mcnemar_variant_only == int(np.sum(variant & ~baseline.astype(bool)))
    assert top1.new_data_verdict.startswith("On new data from the same distribution")
    # a run without stored predictions: the per-video line says why it is missing
    results[0].test_predictions = {}
    rows, _ = compare_variants(results, plan(splits=["1"]))
    (top1,) = [r for r in rows if r.metric == "top1"]
    assert top1.two_level_low_pts is None and "did not store" in top1.new_data_verdict
