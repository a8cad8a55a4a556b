"""The comparison runner end to end on a tiny generated cache (2 variants x 2 seeds)."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats
from training_fixtures import reevaluate, tiny_config

from video_eleatt.compare.cli import attention_main, main
from video_eleatt.compare.plan import (
    CompareConfig,
    ComparisonError,
    RunSpec,
    VariantSpec,
    check_run_spec,
    plan_runs,
)
from video_eleatt.compare.runner import choose_test_checkpoint, run_comparison
from video_eleatt.features.cache import create_cache, write_entry

CLASSES = ["rise", "fall", "flat"]


def make_dataset(root: Path, feature_dim: int = 8) -> Path:
    """List-format dataset (empty video files) + a cache whose class c has a moving bump."""
    rng = np.random.default_rng(0)
    data_root = root / "data"
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for label, name in enumerate(CLASSES):
        for subset, count in (("train", 4), ("test", 2)):
            for i in range(count):
                rel_path = f"{name}/{subset}{i}.mp4"
                (data_root / name).mkdir(parents=True, exist_ok=True)
                (data_root / rel_path).write_bytes(b"")
                lists[subset].append(f"{rel_path} {label}")
    for subset, lines in lists.items():
        (data_root / f"{subset}.txt").write_text("\n".join(lines) + "\n")
    (data_root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    cache = root / "cache"
    create_cache(
        cache,
        {
            "features": {"backbone": "synthetic", "dtype": "float32"},
            "feature_dim": feature_dim,
            "class_names": CLASSES,
            "dataset": {"name": "list", "root": str(data_root), "split": None},
        },
    )
    for lines in lists.values():
        for line in lines:
            rel_path, label = line.rsplit(" ", 1)
            steps = 6
            features = 0.2 * rng.standard_normal((steps, feature_dim))
            features[:, int(label)] += np.linspace(0.0, 1.5, steps)
            write_entry(
                cache, rel_path, features.astype(np.float32), np.arange(steps),
                np.arange(steps) / 4.0, 4.0, steps, steps / 4.0, int(label),
            )  # fmt: skip
    return cache


def training_config(root: Path, cache: Path) -> Path:
    config = tiny_config(cache, hidden_size=6, lr=0.02)
    config["trainer"]["logger"] = False
    config["data"]["batch_size"] = 6
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    cache = make_dataset(root)
    return root, training_config(root, cache)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_grid_report_and_resume(tiny, capsys):
    root, base = tiny
    output = root / "grid"
    compare_yaml = root / "compare.yaml"
    compare_yaml.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "base_config": [str(base)],
                "seeds": [0, 1],
                "output_dir": str(output),
                "num_resamples": 500,
                "variants": {
                    "baseline_gru": {
                        "label": "Baseline GRU",
                        "model": {"num_eleatt_layers": 0, "num_plain_layers": 1},
                    },
                    "eleatt_gru": {
                        "label": "EleAtt-GRU",
                        "model": {"num_eleatt_layers": 1, "num_plain_layers": 0},
                    },
                },
            }
        )
    )
    assert main(["--config", str(compare_yaml)]) == 0
    printed = capsys.readouterr().out
    assert "4 run(s) done now, 0 already finished, 0 failed, 0 missing" in printed

    for name in ("report.md", "results.csv", "summary.csv", "comparisons.csv", "per_class.csv"):
        assert (output / name).is_file(), name
    assert (output / "compare_config.yaml").is_file()
    figures = {p.name for p in (output / "figures").glob("*.png")}
    assert {
        "loss_curves.png",
        "accuracy_curves.png",
        "test_top1.png",
        "per_class_difference_eleatt_gru.png",
        "confusion_baseline_gru.png",
        "confusion_eleatt_gru.png",
    } <= figures
    rows = read_csv(output / "results.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    assert {(r["variant"], r["seed"]) for r in rows} == {
        (v, s) for v in ("baseline_gru", "eleatt_gru") for s in ("0", "1")
    }
    # every reported top-1 is its run's last checkpoint re-evaluated outside Lightning, and
    # the summary and the paired comparison are those numbers' mean, std and differences
    cache = root / "cache"
    test_videos = [
        line.rsplit(" ", 1)[0] for line in (root / "data/test.txt").read_text().split("\n") if line
    ]
    top1 = {}
    for row in rows:
        assert row["num_epochs"] == "2" and row["num_test_videos"] == "6"
        assert float(row["inference_sequences_per_s"]) > 0
        run_dir = output / "runs" / row["variant"] / "split-default" / f"seed-{row['seed']}"
        again = reevaluate(run_dir / "checkpoints" / "last.ckpt", cache, test_videos)
        assert float(row["test_top1"]) == pytest.approx(again["top1"], abs=1e-6), row
        top1[(row["variant"], int(row["seed"]))] = again["top1"]
    summary = {r["variant"]: r for r in read_csv(output / "summary.csv") if r["split"] == "default"}
    for variant in ("baseline_gru", "eleatt_gru"):
        values = [top1[(variant, seed)] for seed in (0, 1)]
        assert float(summary[variant]["top1_mean_pct"]) == pytest.approx(
            100 * np.mean(values), abs=1e-3
        )
        assert float(summary[variant]["top1_std_pct"]) == pytest.approx(
            100 * np.std(values, ddof=1), abs=1e-3
        )
    (pooled,) = [
        r
        for r in read_csv(output / "comparisons.csv")
        if r["metric"] == "top1" and r["split"] == "pooled"
    ]
    difference = np.mean([top1[("eleatt_gru", s)] - top1[("baseline_gru", s)] for s in (0, 1)])
    assert float(pooled["mean_difference_pts"]) == pytest.approx(100 * difference, abs=1e-3)
    # the EleAtt arm has the gate: D (D + N + 1) = 8 * 15 more weights in its first layer
    counts = {r["variant"]: int(r["parameter_count"]) for r in rows}
    assert counts["eleatt_gru"] - counts["baseline_gru"] == 8 * (8 + 6 + 1)
    result = json.loads((output / "runs/eleatt_gru/split-default/seed-1/result.json").read_text())
    assert len(result["history"]) == 2 and "val_loss" in result["history"][0]
    assert result["test_protocol"]["checkpoint"] == "last"  # val subset is the test subset
    assert len(result["confusion_matrix"]) == 3 and result["cache_fingerprint"]
    markdown = (output / "report.md").read_text()
    assert "too few paired runs" not in markdown and "n = 2" in markdown
    assert "full sequence" in markdown  # the test protocol is recorded

    # every run stores its per-video test predictions: they add up to its confusion matrix
    # and to its top-1, and they are also in test_predictions.csv
    for row in rows:
        run_dir = output / "runs" / row["variant"] / "split-default" / f"seed-{row['seed']}"
        stored = json.loads((run_dir / "result.json").read_text())
        predictions = stored["test_predictions"]
        assert sorted(predictions["rel_paths"]) == sorted(test_videos)
        counts = np.zeros((3, 3), dtype=int)
        for label, guess in zip(predictions["labels"], predictions["predicted"]):
            counts[label, guess] += 1
        assert counts.tolist() == stored["confusion_matrix"]
        table = read_csv(run_dir / "test_predictions.csv")
        assert [r["rel_path"] for r in table] == predictions["rel_paths"]
        correct = np.mean([int(r["correct"]) for r in table])
        assert correct == pytest.approx(float(row["test_top1"]), abs=1e-6)
    # the interval is the paired t-interval of the per-seed results, the per-video columns
    # are filled, and the report states power and which inference each line makes
    differences = [100 * (top1[("eleatt_gru", s)] - top1[("baseline_gru", s)]) for s in (0, 1)]
    if np.ptp(differences) > 0:
        reference = scipy_stats.ttest_1samp(differences, 0.0).confidence_interval()
        assert float(pooled["ci_low_pts"]) == pytest.approx(reference.low, abs=1e-3)
        assert float(pooled["ci_high_pts"]) == pytest.approx(reference.high, abs=1e-3)
        assert (pooled["significant"] == "True") == (reference.low > 0 or reference.high < 0)
    assert pooled["num_test_videos"] == "6"
    assert "Power" in markdown and "on new data from the same distribution" in markdown.lower()
    assert "On this test set" in markdown

    # attention of a trained EleAtt run: statistics and time heatmaps; the overlay needs the
    # backbone that made the cache, which a synthetic cache does not record: listed, not fatal
    run_dir = output / "runs/eleatt_gru/split-default/seed-0"
    assert attention_main(["--checkpoint", str(run_dir), "--num_videos", "2"]) == 1
    printed = capsys.readouterr().out
    assert "6 videos, 36 steps analysed" in printed
    assert "overlay failed for rise/test0.mp4: AttentionError: the cache records no backbone" in (
        printed
    )
    written = {p.name for p in (run_dir / "attention-test").iterdir()}
    assert {"attention.md", "attention_per_dim.csv", "attention_per_dim.png"} <= written
    assert {"time_rise_test0.png", "time_fall_test0.png"} <= written
    assert (
        attention_main(["--checkpoint", str(output / "runs/baseline_gru/split-default/seed-0")])
        == 2
    )
    assert "no EleAtt layer" in capsys.readouterr().err

    # rerun: nothing is repeated; a run whose result was lost is tested again from its
    # checkpoints without retraining
    marker = output / "runs/baseline_gru/split-default/seed-0/result.json"
    marker.unlink()
    summary_before = (marker.parent / "train_summary.json").stat().st_mtime_ns
    config = CompareConfig(
        name="tiny",
        base_config=[str(base)],
        seeds=[0, 1],
        output_dir=str(output),
        num_resamples=500,
        variants={
            "baseline_gru": VariantSpec(
                model={"num_eleatt_layers": 0, "num_plain_layers": 1}, label="Baseline GRU"
            ),
            "eleatt_gru": VariantSpec(
                model={"num_eleatt_layers": 1, "num_plain_layers": 0}, label="EleAtt-GRU"
            ),
        },
    )
    outcome = run_comparison(config, log=lambda message: None)
    assert outcome.trained == [("baseline_gru", "default", 0)]
    assert len(outcome.skipped) == 3 and not outcome.failed
    assert (marker.parent / "train_summary.json").stat().st_mtime_ns == summary_before
    assert marker.is_file()

    # a run recorded before predictions were stored gets them from its checkpoint
    older = output / "runs/eleatt_gru/split-default/seed-0/result.json"
    payload = json.loads(older.read_text())
    expected = payload.pop("test_predictions")
    older.write_text(json.dumps(payload))
    run_comparison(config, log=lambda message: None)
    assert json.loads(older.read_text())["test_predictions"] == expected

    # a changed config is not silently mixed with finished runs
    config.trainer = {"max_epochs": 3}
    with pytest.raises(
        ComparisonError,
        match=r"made with other options \(overrides\.trainer\.max_epochs: '\(unset\)' -> 3\)",
    ):
        run_comparison(config, log=lambda message: None)


@pytest.mark.slow
def test_devices_give_each_worker_process_its_own_device(tiny):
    """``devices: [0, 1]``: one worker process per device at a time, each seeing only its own
    device (CUDA_VISIBLE_DEVICES), as the first line of its run's log records. The runs train
    on the CPU (the base config's accelerator), so this runs without GPUs."""
    root, base = tiny
    output = root / "devices"
    messages: list[str] = []
    config = CompareConfig(
        name="devices",
        base_config=[str(base)],
        seeds=[0],
        output_dir=str(output),
        trainer={"max_epochs": 1},
        devices=[0, 1],
        measure_inference=False,
        variants={
            "baseline_gru": VariantSpec(model={"num_eleatt_layers": 0, "num_plain_layers": 1}),
            "eleatt_gru": VariantSpec(model={"num_eleatt_layers": 1, "num_plain_layers": 0}),
        },
    )
    outcome = run_comparison(config, log=messages.append)
    assert sorted(outcome.trained) == [("baseline_gru", "default", 0), ("eleatt_gru", "default", 0)]
    assert not outcome.failed and config.parallel == 2
    threads = max(1, (os.cpu_count() or 1) // 2)  # the cores shared between the 2 workers
    seen = {}
    for variant in ("baseline_gru", "eleatt_gru"):
        run_dir = output / "runs" / variant / "split-default" / "seed-0"
        first_line = (run_dir / "log.txt").read_text().splitlines()[0]
        match = re.fullmatch(
            rf"compare worker: {variant} split default seed 0, CUDA_VISIBLE_DEVICES=(\d), "
            rf"{threads} threads",
            first_line,
        )
        assert match, first_line
        seen[variant] = match.group(1)
        assert f"] {variant} split default seed 0 on cuda:{seen[variant]} (log: " in "\n".join(
            messages
        )
        assert len(json.loads((run_dir / "result.json").read_text())["history"]) == 1  # 1 epoch
    assert sorted(seen.values()) == ["0", "1"]  # each device ran one of the two runs


def test_bad_variant_option_stops_with_partial_report(tiny):
    root, base = tiny
    config = CompareConfig(
        base_config=[str(base)],
        seeds=[0],
        output_dir=str(root / "bad"),
        baseline="baseline_gru",
        variants={  # the broken variant runs first: the comparison stops after it
            "eleatt_gru": VariantSpec(model={"num_eleat_layers": 1}),
            "baseline_gru": VariantSpec(model={"num_eleatt_layers": 0, "num_plain_layers": 1}),
        },
    )
    with pytest.raises(ComparisonError, match="failed because of its configuration"):
        run_comparison(config, log=lambda message: None)
    # the report is still written: the broken run is listed as failed, the other as missing
    rows = {r["variant"]: r for r in read_csv(root / "bad" / "results.csv")}
    assert rows["eleatt_gru"]["status"] == "failed"
    assert "num_eleat_layers" in rows["eleatt_gru"]["error"]
    assert rows["baseline_gru"]["status"] == "missing"
    markdown = (root / "bad" / "report.md").read_text()
    assert "`eleatt_gru/split-default/seed-0`: failed: " in markdown


def test_plan_checks(tiny):
    _, base = tiny
    config = CompareConfig(base_config=[str(base)], seeds=[0, 1], splits=["1", 2])
    runs, variants = plan_runs(config)
    # default variants follow the base config's one-layer GRU
    assert sorted(variants) == ["baseline_gru", "eleatt_gru"]
    assert variants["baseline_gru"].model == {"num_eleatt_layers": 0, "num_plain_layers": 1}
    assert len(runs) == 8 and [r.seed for r in runs[:4]] == [0, 0, 0, 0]
    assert runs[0].overrides["data.split"] == "1" and runs[0].overrides["seed_everything"] == 0
    assert runs[0].overrides["trainer.devices"] == 1
    assert runs[0].run_dir.endswith("runs/baseline_gru/split-1/seed-0")

    def plan(**changes):
        values = {"base_config": [str(base)], "seeds": [0]}
        values.update(changes)
        return plan_runs(CompareConfig(**values))

    with pytest.raises(ComparisonError, match="baseline 'gru' is not one of the variants"):
        plan(baseline="gru", variants={"a": VariantSpec(), "b": VariantSpec()})
    with pytest.raises(ComparisonError, match="only one variant"):
        plan(baseline="a", variants={"a": VariantSpec()})
    with pytest.raises(ComparisonError, match="sets \\['data'\\] under `model`"):
        plan(
            baseline="a",
            variants={"a": VariantSpec(), "b": VariantSpec(model={"data": {"cache": "x"}})},
        )
    with pytest.raises(ComparisonError, match=r"base_config 'missing\.yaml' does not exist"):
        plan(base_config=["missing.yaml"])
    with pytest.raises(ComparisonError, match="listed twice"):
        plan(splits=["1", 1])
    with pytest.raises(ComparisonError, match="duplicates"):
        plan(seeds=[0, 0])
    with pytest.raises(ComparisonError, match=r"trainer\.devices 2: each comparison run"):
        plan(trainer={"devices": 2})


def test_editing_an_included_config_changes_a_run_identity(tmp_path, monkeypatch):
    """A sub-config (``model: ../models/x.yaml``, relative to the config) or an extract config
    (``data.cache: extract/x.yaml``, relative to the working folder) is part of a run's
    identity: editing it refuses the finished run instead of reusing it."""
    monkeypatch.chdir(tmp_path)
    for folder in ("models", "exp", "extract"):
        (tmp_path / folder).mkdir()
    model = tmp_path / "models" / "gru.yaml"
    model.write_text("hidden_size: 8\n")
    (tmp_path / "extract" / "x.yaml").write_text("backbone: {name: resnet18}\n")
    base = tmp_path / "exp" / "train.yaml"
    base.write_text("model: ../models/gru.yaml\ndata:\n  cache: extract/x.yaml\n")
    spec = RunSpec(
        variant="v", split="default", seed=0, run_dir=str(tmp_path / "run"),
        configs=[str(base)], overrides={},
    )  # fmt: skip
    includes = spec.identity()["configs"][0]["includes"]
    assert includes == [
        ["../models/gru.yaml", {"hidden_size": 8}],
        ["extract/x.yaml", {"backbone": {"name": "resnet18"}}],
    ]
    check_run_spec(spec)  # records it
    check_run_spec(spec)  # unchanged: resumes
    model.write_text("hidden_size: 16\n")
    with pytest.raises(
        ComparisonError, match=r"other options \(configs\.0\.includes\.0\.1\.hidden_size: 8 -> 16\)"
    ):
        check_run_spec(spec)
    model.write_text("hidden_size: 8  # a comment changes nothing\n")
    check_run_spec(spec)
    # a run recorded before included configs counted still resumes, and records them now
    record = tmp_path / "run" / "run_spec.json"
    old = json.loads(record.read_text())
    del old["configs"][0]["includes"]
    record.write_text(json.dumps(old))
    check_run_spec(spec)
    assert json.loads(record.read_text())["configs"][0]["includes"] == includes


def test_choose_test_checkpoint():
    val_is_test = {"data": {"subsets": {"val": {"subset": "'test' (the split has no 'val')"}}}}
    holdout = {
        "best_model_path": "x.ckpt",
        "data": {"subsets": {"val": {"subset": "held-out 0.1 of 'train' (seed 0)"}}},
    }
    assert choose_test_checkpoint("auto", val_is_test) == "last"
    assert choose_test_checkpoint("auto", holdout) == "best"
    assert choose_test_checkpoint("best", val_is_test) == "best"
