"""``video-eleatt fit|validate|test|predict`` end to end on a tiny generated feature cache,
through the real entry point ``video_eleatt.cli.main``."""

from __future__ import annotations

import glob
import io
import json
import math
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from disk_faults import STAGES, inject_disk_full, temporary_files
from training_fixtures import make_separable_cache, make_tiny_cache, reevaluate, tiny_config

from video_eleatt import cli as dispatcher
from video_eleatt.training.callbacks import HISTORY_COLUMNS, ProgressLines, read_history
from video_eleatt.training.errors import TrainingError
from video_eleatt.training.run import AtomicCheckpointIO, EleAttCLI, run_cli, run_training

BASELINE = ["--model.num_eleatt_layers=0", "--model.num_plain_layers=1"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    info = make_tiny_cache(root, num_classes=3, failed=1)
    info["root"] = root
    info["config"] = root / "tiny.yaml"
    info["config"].write_text(yaml.safe_dump(tiny_config(info["cache"])))
    return info


@pytest.fixture(scope="module")
def fitted(tiny):
    """Both arms trained for 2 epochs (3 steps each) through the command line."""
    runs = {}
    for arm, options in (("eleatt", []), ("baseline", BASELINE)):
        run_dir = tiny["root"] / arm
        argv = ["fit", "--config", str(tiny["config"]), *options]
        assert dispatcher.main([*argv, f"--trainer.default_root_dir={run_dir}"]) == 0
        runs[arm] = run_dir
    return runs


def test_fit_writes_the_run_directory(fitted, tiny):
    counts = {}
    for arm, run_dir in fitted.items():
        assert (run_dir / "config.yaml").is_file()
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
        assert len(glob.glob(str(run_dir / "checkpoints" / "best-epoch=*.ckpt"))) == 1
        # written through AtomicCheckpointIO: no temporary file left behind
        assert [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")] == []
        assert (run_dir / "tensorboard").is_dir() and (run_dir / "csv_logs").is_dir()
        history = read_history(run_dir / "history.csv")
        assert [row["epoch"] for row in history] == [0, 1]
        assert [row["step"] for row in history] == [3, 6]  # 11 videos (1 failed), batch 4
        assert set(HISTORY_COLUMNS) == set(history[0])
        assert history[0]["val_top5"] is None  # 3 classes: no top-5
        assert history[1]["train_loss"] > 0
        # validation (the test subset here) at the end of epoch 1 saw the weights saved then
        again = reevaluate(run_dir / "checkpoints" / "last.ckpt", tiny["cache"], tiny["test"])
        assert history[1]["val_top1"] == pytest.approx(again["top1"], abs=1e-6)  # float32
        assert history[1]["val_loss"] == pytest.approx(again["loss"], rel=1e-5)
        summary = json.loads((run_dir / "train_summary.json").read_text())
        assert summary["status"] == "finished" and summary["global_step"] == 6
        assert summary["data"]["subsets"]["train"]["excluded_failed"] == 1
        counts[arm] = summary["parameter_counts"]
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert saved["model"]["num_eleatt_layers"] == (1 if arm == "eleatt" else 0)
        assert saved["trainer"]["gradient_clip_val"] == 1.0
        # Plain data only: loads without unpickling arbitrary objects.
        checkpoint = torch.load(
            run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
        )
        record = checkpoint["video_eleatt"]
        assert record["data"]["class_names"] == tiny["class_names"]
        assert record["model"]["input_size"] == 8 and record["model"]["num_classes"] == 3
    # input 8, hidden 8, 3 classes: EleAtt gate 8*8 + 8*8 + 8; GRU 3*8*(8+8) + 2*3*8; head 27.
    assert counts["eleatt"]["total"] == 136 + 432 + 27
    assert counts["baseline"]["total"] == 432 + 27


def test_evaluation_verbs_write_metrics_and_agree_with_predictions(fitted, tiny, capsys):
    run_dir = fitted["eleatt"]
    config = str(run_dir / "config.yaml")
    assert dispatcher.main(["test", "--config", config, "--ckpt_path", "last"]) == 0
    assert dispatcher.main(["predict", "--config", config, "--ckpt_path", "last"]) == 0
    assert dispatcher.main(["validate", "--config", config, "--ckpt_path", "best"]) == 0
    err = capsys.readouterr().err
    assert "top1 (micro accuracy)" in err and "mean class accuracy (macro recall)" in err
    assert "protocol: full sequence" in err

    metrics = json.loads((run_dir / "test_last" / "metrics.json").read_text())
    assert metrics["num_videos"] == 6 and metrics["top5"] is None
    assert metrics["checkpoint"].endswith("last.ckpt")
    assert metrics["protocol"]["eval_sampling"] == "full"
    assert sum(map(sum, metrics["confusion_matrix"])) == 6
    for name in ("confusion_matrix.csv", "confusion_matrix.png", "per_class_accuracy.csv"):
        assert (run_dir / "test_last" / name).is_file()
    assert (run_dir / "validate_best" / "metrics.json").is_file()

    rows = [json.loads(line) for line in (run_dir / "predict_last" / "predictions.jsonl").open()]
    assert [row["rel_path"] for row in rows] == sorted(tiny["test"])
    for row in rows:
        assert math.isclose(sum(row["probs"]), 1.0, rel_tol=1e-5)
        assert len(row["top_k"]) == 3  # min(5, classes)
        assert row["top_k"][0]["prob"] == max(row["probs"])
    # Same checkpoint and protocol: the predictions reproduce the test metrics.
    correct = [row["top_k"][0]["class_id"] == row["label"] for row in rows]
    assert metrics["top1"] == pytest.approx(sum(correct) / len(rows))
    nll = [-math.log(row["probs"][row["label"]]) for row in rows]
    assert metrics["loss"] == pytest.approx(sum(nll) / len(rows), rel=1e-5)


def test_baseline_clip_evaluation_and_prediction_on_train(fitted, tiny, capsys):
    run_dir = fitted["baseline"]
    config = str(run_dir / "config.yaml")
    clips = ["--data.eval_sampling=clips", "--data.num_eval_clips=2"]
    assert dispatcher.main(["test", "--config", config, *clips, "--ckpt_path", "best"]) == 0
    metrics = json.loads((run_dir / "test_best" / "metrics.json").read_text())
    assert metrics["protocol"]["num_eval_clips"] == 2
    assert (
        "mean of softmax scores over 2 clip(s) of 4 segments" in metrics["protocol"]["description"]
    )
    assert metrics["checkpoint"] == str(next((run_dir / "checkpoints").glob("best-*.ckpt")))
    argv = ["predict", "--config", config, "--data.predict_subset=train", "--ckpt_path", "last"]
    assert dispatcher.main(argv) == 0
    lines = (run_dir / "predict_last" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 11
    err = capsys.readouterr().err
    assert "excluded: 1 failed extraction [1x decode error: moov atom not found]" in err


def test_an_easy_task_is_learned_and_the_reported_top1_is_the_checkpoints(tmp_path):
    """Features that carry the label: learned to 100 %, and `test` reports the top-1 and loss
    of the saved checkpoint, recomputed here outside Lightning. The same videos with features
    drawn independently of the label (the control): no better than chance."""
    top1 = {}
    for name, carry in (("easy", True), ("control", False)):
        info = make_separable_cache(tmp_path / name, features_carry_label=carry)
        config = tiny_config(info["cache"], lr=0.05)
        config["trainer"].update(max_epochs=3, logger=False)
        config["data"]["batch_size"] = 6
        run_dir = tmp_path / f"{name}_run"
        assert run_training(config, run_dir=run_dir)["status"] == "finished"
        again = reevaluate(run_dir / "checkpoints" / "last.ckpt", info["cache"], info["test"])
        top1[name] = again["top1"]
        if carry:
            metrics = run_training(
                run_dir / "config.yaml", {}, run_dir, verb="test", ckpt_path="last"
            )
            assert metrics["num_videos"] == len(info["test"]) == 12
            assert metrics["top1"] == pytest.approx(again["top1"], abs=1e-6)
            assert metrics["loss"] == pytest.approx(again["loss"], rel=1e-5)
    assert top1["easy"] == 1.0
    assert top1["control"] <= 0.5  # 4 classes: chance is 0.25


def test_resume_continues_from_the_checkpoint(fitted, tiny, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(fitted["eleatt"], resumed)
    saved = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    argv = ["fit", "--config", str(tiny["config"]), f"--trainer.default_root_dir={resumed}"]
    assert dispatcher.main([*argv, "--trainer.max_epochs=3", "--ckpt_path", "last"]) == 0
    after = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 6 and after["global_step"] == 9
    history = read_history(resumed / "history.csv")
    original = read_history(fitted["eleatt"] / "history.csv")
    # Epochs 0-1 come from the checkpoint (same timings), epoch 2 was trained now.
    assert history[:2] == original and history[2]["epoch"] == 2

    # An uninterrupted 3-epoch run ends with the same weights, learning rate and history.
    summary = run_training(
        tiny_config(tiny["cache"]), {"trainer.max_epochs": 3}, run_dir=tmp_path / "straight"
    )
    assert summary["status"] == "finished" and summary["global_step"] == 9
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    for name, tensor in straight["state_dict"].items():
        assert torch.equal(tensor, after["state_dict"][name]), name
    assert after["video_eleatt"]["plateau"] == straight["video_eleatt"]["plateau"]
    assert [row["train_loss"] for row in summary["history"]] == [
        row["train_loss"] for row in history
    ]


def test_checkpoint_of_another_configuration_is_refused(fitted, tiny, tmp_path, capsys):
    checkpoint = str(fitted["eleatt"] / "checkpoints" / "last.ckpt")
    argv = ["test", "--config", str(tiny["config"]), f"--trainer.default_root_dir={tmp_path}"]
    assert dispatcher.main([*argv, *BASELINE, "--ckpt_path", checkpoint]) == 2
    err = capsys.readouterr().err
    assert "trained with another configuration" in err
    assert "num_eleatt_layers: checkpoint 1, config 0" in err
    assert "num_plain_layers: checkpoint 0, config 1" in err

    other = make_tiny_cache(
        tmp_path, feature_dim=6, cache_name="cache6", data_root=tiny["data_root"]
    )
    cache = f"--data.cache={other['cache']}"
    assert dispatcher.main([*argv, cache, "--ckpt_path", checkpoint]) == 2
    err = capsys.readouterr().err
    assert "input_size: checkpoint 8, config 6" in err and "data.cache" in err


def test_bad_options_and_run_directories(fitted, tiny, tmp_path, capsys):
    config = ["--config", str(tiny["config"])]
    fresh = f"--trainer.default_root_dir={tmp_path / 'fresh'}"
    cases = [
        (
            ["fit", *config, fresh, "--data.cache=/nonexistent/cache"],
            "data.cache '/nonexistent/cache' does not exist",
        ),
        (
            ["fit", *config, fresh, '--data.dataset={"name": "ucf101", "root": "data/ucf101"}'],
            "data.dataset.name is 'ucf101' but the cache",
        ),
        (["fit", *config, fresh, "--model.hiden_size=3"], "hiden_size"),
        (
            ["fit", *config, fresh, "--data.val_subset=holdout", "--data.holdout_fraction=1.5"],
            "holdout_fraction must be in (0, 1)",
        ),
        (
            ["fit", *config, fresh, "--data.train_sampling=full", "--data.eval_sampling=clips"],
            "eval_sampling 'clips' samples clips like training",
        ),
        (["fit", *config, f"--trainer.default_root_dir={fitted['eleatt']}"], "already holds a run"),
        (
            ["test", *config, f"--trainer.default_root_dir={fitted['eleatt']}"],
            "test needs a checkpoint: pass --ckpt_path best",
        ),
        (["test", *config, fresh, "--ckpt_path=best"], "no best checkpoint in"),
        (["validate", *config, fresh, "--ckpt_path=missing.ckpt"], "is not a file"),
    ]
    for argv, message in cases:
        assert dispatcher.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
    assert not (tmp_path / "fresh" / "checkpoints").exists()


def test_split_without_features_and_class_mismatch(tmp_path, capsys):
    info = make_tiny_cache(tmp_path, extract=("train",))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(info["cache"])))
    argv = ["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'run'}"]
    assert dispatcher.main(argv) == 2
    err = capsys.readouterr().err
    assert "has 6 videos but none has features" in err and "video-eleatt extract" in err

    (info["data_root"] / "classes.txt").write_text("action0\naction1\nsomething_else\n")
    assert dispatcher.main(argv) == 2
    err = capsys.readouterr().err
    assert "class mismatch" in err and "2: cache 'action2' vs index 'something_else'" in err


def _parser():
    """The CLI's parser, built once (parsing each config through a fresh CLI is slow)."""

    class Built(Exception):
        pass

    class ParserOnly(EleAttCLI):
        def parse_arguments(self, parser, args):
            raise Built(parser)

    try:
        ParserOnly(["fit"], exit_on_error=False)
    except Built as built:
        return built.args[0]
    raise AssertionError("parser not built")


def test_every_shipped_config_parses(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    experiments = sorted(
        path
        for area in ("ntu60", "jhmdb", "ucf101", "hmdb51", "kinetics400")
        for path in glob.glob(f"configs/{area}/*.yaml")
    )
    models = sorted(glob.glob("configs/models/*.yaml"))
    assert len(experiments) == 16 and len(models) == 6
    parser = _parser()
    for path in experiments:
        config = parser.parse_args(["fit", "--config", path]).fit
        assert config.trainer.gradient_clip_val == 1.0
        assert config.model.lr == 0.001 and config.model.dropout == 0.5
        assert config.trainer.default_root_dir.startswith("runs/")
        if "/ntu60/" in path:
            assert config.data.batch_size == 256 and config.model.hidden_size == 512
            assert config.model.num_eleatt_layers + config.model.num_plain_layers == 3
            assert config.data.split == path.rsplit("_", 1)[1][:2]
        if "/jhmdb/" in path:
            assert config.data.batch_size == 32
            assert config.model.num_eleatt_layers + config.model.num_plain_layers == 1
        assert (config.model.num_eleatt_layers > 0) == ("eleatt" in Path(path).name)
    for path in models:
        config = parser.parse_args(["fit", "--config", experiments[0], "--model", path]).fit
        if "3x100" in path:
            assert config.model.hidden_size == 100 and config.model.lr == 0.005
    # And one through the real --print_config.
    assert (
        dispatcher.main(
            ["fit", "--config", "configs/jhmdb/eleatt_gru_split2.yaml", "--print_config"]
        )
        == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["split"] == "2" and printed["model"]["num_eleatt_layers"] == 1


def test_predict_with_checkpoint_goes_to_raw_video_prediction(monkeypatch, capsys):
    seen = []
    fake = types.SimpleNamespace(main=lambda argv: seen.append(argv) or 0)
    monkeypatch.setitem(__import__("sys").modules, "video_eleatt.inference.cli", fake)
    assert dispatcher.main(["predict", "--checkpoint", "m.ckpt", "a.mp4"]) == 0
    assert seen == [["--checkpoint", "m.ckpt", "a.mp4"]]
    assert dispatcher.main(["predict", "--checkpoint=m.ckpt", "b.mp4"]) == 0
    assert seen[-1] == ["--checkpoint=m.ckpt", "b.mp4"]


def test_validation_subset_choice(tiny, capsys):
    from video_eleatt.training.data import FeatureDataModule

    # data.cache may name the extract config that made the cache.
    extract_config = tiny["root"] / "extract.yaml"
    extract_config.write_text(
        yaml.safe_dump(
            {
                "dataset": {"name": "list", "root": str(tiny["data_root"])},
                "backbone": {"library": "timm", "name": "test_resnet", "weights": "random"},
                "cache_dir": str(tiny["cache"]),
            }
        )
    )
    automatic = FeatureDataModule(str(extract_config), num_workers=0)
    assert automatic.cache.cache_dir == tiny["cache"]
    automatic.setup("fit")
    assert automatic.datasets["val"].keys == sorted(tiny["test"])  # no val subset: test
    assert "the split has no 'val' subset: the test subset validates" in capsys.readouterr().err

    def held_out(seed):
        data = FeatureDataModule(
            str(tiny["cache"]), num_workers=0, val_subset="holdout", holdout_fraction=0.25,
            holdout_seed=seed,
        )  # fmt: skip
        data.setup("fit")
        return data.datasets["train"].keys, data.datasets["val"].keys

    train, val = held_out(0)
    assert held_out(0) == (train, val)
    assert held_out(1) != (train, val)
    assert not set(train) & set(val)
    # 4 training videos per class, 1 of class 0 failed: one per class held out (stratified).
    assert sorted(key.split("/")[0] for key in val) == ["action0", "action1", "action2"]
    assert len(train) == 11 - 3


def test_checkpoints_are_replaced_atomically(tiny, tmp_path, monkeypatch):

    run_dir = tmp_path / "run"
    cli = run_cli(
        ["fit", "--config", str(tiny["config"]), "--trainer.max_epochs=1",
         f"--trainer.default_root_dir={run_dir}"],
        exit_on_error=False,
    )  # fmt: skip
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)

    # The disk fills while the new checkpoint is written, while it is synced, or at the
    # rename: the previous checkpoint stays whole and loadable, and no temporary file is left.
    path = run_dir / "checkpoints" / "last.ckpt"
    before_bytes = path.read_bytes()
    before = torch.load(path, weights_only=True)
    newer = {**before, "global_step": before["global_step"] + 1}
    for stage in STAGES:
        inject_disk_full(monkeypatch, stage)
        with pytest.raises(
            TrainingError, match=re.escape(f"cannot write checkpoint {path}: the disk is full")
        ):
            AtomicCheckpointIO().save_checkpoint(newer, path)
        monkeypatch.undo()
        assert path.read_bytes() == before_bytes, stage
        assert temporary_files(path.parent) == [], stage
    AtomicCheckpointIO().save_checkpoint(newer, path)
    assert torch.load(path, weights_only=True)["global_step"] == before["global_step"] + 1


def test_predict_help_shows_both_forms(capsys):
    assert dispatcher.main(["predict", "--help"]) == 0
    out = capsys.readouterr().out
    raw_video, lightning = out.split("predict without --checkpoint")
    assert "--checkpoint CHECKPOINT" in raw_video and "--attention_overlay" in raw_video
    assert "--trainer.accelerator" in lightning and "--data.cache CACHE" in lightning


def test_progress_follows_the_terminal(tiny, tmp_path, capsys, monkeypatch):
    # pytest captures the output: a log file, not a terminal. Lightning's live bar would write
    # carriage-return updates there; plain lines on standard error replace it.
    run_dir = tmp_path / "lines"
    argv = ["fit", "--config", str(tiny["config"]), "--trainer.enable_progress_bar=true"]
    cli = run_cli([*argv, f"--trainer.default_root_dir={run_dir}"], exit_on_error=False)
    out, err = capsys.readouterr()
    assert "\r" not in out + err and cli.trainer.progress_bar_callback is None
    steps = cli.trainer.global_step
    assert steps == 6  # 11 training videos in batches of 4, 2 epochs
    lines = [line for line in err.splitlines() if re.match(r"fit: \d+/6 steps? \(", line)]
    assert 2 <= len(lines) <= steps + 1
    assert lines[-1].startswith(f"fit: {steps}/{steps} steps (100.0 %)"), lines[-1]
    assert "done in" in lines[-1] and "[epoch 1, train/loss_step " in lines[-1]
    run_cli(
        ["test", "--config", str(run_dir / "config.yaml"), "--ckpt_path=last"],
        exit_on_error=False,
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if re.match(r"test: \d+/6 videos? \(", line)]
    assert lines[-1].startswith("test: 6/6 videos (100.0 %)") and "\r" not in err

    # progress switched off in the config: no lines either
    quiet = ["fit", "--config", str(tiny["config"]), "--trainer.max_epochs=1"]
    cli = run_cli([*quiet, f"--trainer.default_root_dir={tmp_path / 'quiet'}"], False)
    assert not [c for c in cli.trainer.callbacks if isinstance(c, ProgressLines)]
    assert not re.search(r"fit: \d+/\d+ step", capsys.readouterr().err)

    # on a terminal Lightning's own bar stays (it writes to standard output)
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    argv = [*argv, "--trainer.max_epochs=1", f"--trainer.default_root_dir={tmp_path / 'tty'}"]
    cli = run_cli(argv, exit_on_error=False)
    assert cli.trainer.progress_bar_callback is not None
    assert not [c for c in cli.trainer.callbacks if isinstance(c, ProgressLines)]
    assert "\r" in sys.stdout.getvalue()


def test_input_standardisation_uses_the_training_features_and_travels_with_the_checkpoint(
    tiny, tmp_path, capsys
):
    import numpy as np

    run_dir = tmp_path / "standardised"
    argv = ["fit", "--config", str(tiny["config"]), "--model.input_norm=standardize"]
    cli = run_cli(
        [*argv, "--trainer.max_epochs=1", f"--trainer.default_root_dir={run_dir}"],
        exit_on_error=False,
    )
    assert "inputs standardised per dimension" in capsys.readouterr().err
    datamodule = cli.datamodule
    train_keys = datamodule.datasets["train"].keys
    steps = np.concatenate(
        [datamodule.cache.load(key).features.numpy().astype(np.float64) for key in train_keys]
    )  # (all training steps, D)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    state = checkpoint["state_dict"]
    np.testing.assert_allclose(state["classifier.input_mean"].numpy(), steps.mean(0), atol=1e-5)
    np.testing.assert_allclose(state["classifier.input_std"].numpy(), steps.std(0), rtol=1e-5)
    assert bool(state["classifier.input_statistics_set"])
    assert checkpoint["video_eleatt"]["model"]["input_norm"] == "standardize"

    # evaluation uses the checkpoint's statistics; a config without them is refused
    test_argv = ["test", "--config", str(tiny["config"]), "--model.input_norm=standardize"]
    where = [f"--trainer.default_root_dir={run_dir}", "--ckpt_path", "last"]
    assert dispatcher.main([*test_argv, *where]) == 0
    plain = ["test", "--config", str(tiny["config"]), *where]
    assert dispatcher.main(plain) != 0
    assert "input_norm: checkpoint 'standardize', config 'none'" in capsys.readouterr().err


def test_a_run_shows_neither_third_party_line(fitted, tiny, capsys, caplog, recwarn):
    # Lightning's litlogger/litmodels tips and torch's _pytree deprecation give a user nothing
    # to act on: every verb filters them (video_eleatt.quiet); the project's own lines stay
    import logging

    from video_eleatt.quiet import PYTREE_DEPRECATION

    config = str(fitted["baseline"] / "config.yaml")
    with caplog.at_level(logging.INFO):
        assert dispatcher.main(["validate", "--config", config, "--ckpt_path", "last"]) == 0
    shown = caplog.text + capsys.readouterr().err
    assert "Tip:" not in shown and "litlogger" not in shown
    assert "top1 (micro accuracy)" in shown
    assert not [w for w in recwarn if str(w.message) == PYTREE_DEPRECATION]
