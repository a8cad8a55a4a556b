"""Two-process DDP training on CPU (gloo), launched the way a user launches it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from training_fixtures import make_tiny_cache, tiny_config

from video_eleatt.training.callbacks import read_history
from video_eleatt.training.run import run_training


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_device(tmp_path):
    # 6 classes (top-5 defined), 12 train and 12 test videos: each process gets 6 of each,
    # so the DistributedSampler repeats none and the synced metrics must be exact.
    info = make_tiny_cache(tmp_path, num_classes=6, train_per_class=2, test_per_class=2)
    config = tiny_config(info["cache"])
    config["trainer"]["max_epochs"] = 1
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "video_eleatt", "fit", "--config", str(config_path),
        "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={run_dir}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stderr + result.stdout
    history = read_history(run_dir / "history.csv")
    assert len(history) == 1
    assert history[0]["step"] == 2  # 6 videos per process, batch 4: the data was sharded

    # The same weights evaluated on one device give the values DDP synced over processes.
    single = run_training(
        run_dir / "config.yaml",
        {"trainer.strategy": "auto", "trainer.devices": 1},
        verb="validate",
        ckpt_path="last",
    )
    assert single["num_videos"] == 12 and single["world_size"] == 1
    for name in ("top1", "top5", "mean_class_accuracy", "loss"):
        assert history[0][f"val_{name}"] == pytest.approx(single[name], rel=1e-6, abs=1e-7)
