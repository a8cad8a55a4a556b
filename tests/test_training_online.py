"""Online recognition in training and testing: per-step supervision, the unchanged default
loss, and early-recognition curves (video_eleatt.training.online)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from training_fixtures import make_tiny_cache, tiny_config

from video_eleatt.training.callbacks import read_history
from video_eleatt.training.online import EarlyRecognition, curve_area, observed_steps, step_losses
from video_eleatt.training.run import run_training

# Loss per epoch (train, val) of tiny_config's two arms on make_tiny_cache(num_classes=3),
# recorded with the code of commit 148e3b6, before per-step supervision existed.
BEFORE_STEP_SUPERVISION = {
    "eleatt": [[1.1574734449386597, 1.1231516599655151], [1.110787272453308, 1.0593347549438477]],
    "baseline": [
        [1.0111678838729858, 0.9165565371513367],
        [0.9211411476135254, 0.8182308077812195],
    ],
}
BASELINE = {"num_eleatt_layers": 0, "num_plain_layers": 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("online")
    return make_tiny_cache(root, num_classes=3) | {"root": root}


@pytest.mark.parametrize("arm", ["eleatt", "baseline"])
def test_default_training_gives_the_numbers_it_gave_before(tiny, arm):
    config = tiny_config(tiny["cache"], **(BASELINE if arm == "baseline" else {}))
    config["trainer"].update(logger=False)
    run_dir = tiny["root"] / f"default_{arm}"
    assert run_training(config, run_dir=run_dir)["status"] == "finished"
    history = read_history(run_dir / "history.csv")
    losses = [value for row in history for value in (row["train_loss"], row["val_loss"])]
    expected = [value for row in BEFORE_STEP_SUPERVISION[arm] for value in row]
    assert losses == pytest.approx(expected, rel=1e-5)


def test_step_losses_average_the_running_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    running = torch.randn(2, 4, 3, generator=generator)
    labels = torch.tensor([2, 0])
    lengths = torch.tensor([4, 2])
    running[1, 2:] = 0.0  # padding
    per_step = [
        [F.cross_entropy(running[b, t], labels[b]).item() for t in range(4)] for b in (0, 1)
    ]
    uniform = step_losses(running, labels, lengths, "uniform")
    late = step_losses(running, labels, lengths, "late")
    assert uniform.tolist() == pytest.approx([sum(per_step[0]) / 4, sum(per_step[1][:2]) / 2])
    weighted0 = sum((t + 1) * v for t, v in enumerate(per_step[0])) / 10
    weighted1 = (per_step[1][0] + 2 * per_step[1][1]) / 3
    assert late.tolist() == pytest.approx([weighted0, weighted1])


def test_a_model_that_sees_the_label_only_at_the_last_step_is_at_chance_until_the_end():
    """Before its last step the model's guess does not depend on the label (for each class,
    one video guesses each class), at the last step it is right: the curve is exactly chance
    up to 90 % and 1 at 100 %, and its area is (9 / C + 1) / 10."""
    num_classes = 4
    running, lengths, labels = [], [], []
    for length in (3, 7, 10, 13):  # floor(0.9 * 3) = 2 steps: the last one is never seen early
        for label in range(num_classes):
            for guess in range(num_classes):
                scores = torch.zeros(13, num_classes)
                scores[: length - 1, (label + guess) % num_classes] = 1.0
                scores[length - 1, label] = 1.0
                scores[length:] = 0.0
                running.append(scores)
                lengths.append(length)
                labels.append(label)
    metric = EarlyRecognition()
    metric.update(torch.stack(running), torch.tensor(lengths), torch.tensor(labels))
    curve = metric.compute()
    assert curve["percent_observed"] == list(range(10, 101, 10))
    assert curve["top1"] == [1 / num_classes] * 9 + [1.0]
    assert curve["area"] == pytest.approx((9 / num_classes + 1) / 10)
    assert curve["num_videos"] == 64
    assert curve_area([0.0] * 9 + [1.0]) == pytest.approx(0.1)


def test_observed_steps_never_exceed_the_share_and_see_at_least_one_step():
    lengths = torch.tensor([1, 3, 10, 19])
    assert observed_steps(lengths, 10).tolist() == [1, 1, 1, 1]
    assert observed_steps(lengths, 50).tolist() == [1, 1, 5, 9]
    assert observed_steps(lengths, 90).tolist() == [1, 2, 9, 17]
    assert observed_steps(lengths, 100).tolist() == [1, 3, 10, 19]


@pytest.mark.parametrize(("pooling", "eval_sampling"), [("last", "full"), ("mean", "clips")])
def test_step_supervised_training_and_the_test_curve(tiny, pooling, eval_sampling):
    config = tiny_config(tiny["cache"], pooling=pooling, step_supervision="late")
    config["trainer"].update(logger=False)
    config["data"].update(eval_sampling=eval_sampling, num_eval_clips=2)
    run_dir = tiny["root"] / f"steps_{pooling}"
    assert run_training(config, run_dir=run_dir)["status"] == "finished"
    metrics = run_training(run_dir / "config.yaml", {}, run_dir, verb="test", ckpt_path="last")
    early = metrics["early_recognition"]
    assert early["percent_observed"] == list(range(10, 101, 10))
    assert early["num_videos"] == metrics["num_videos"]
    # All of each video seen (with clips: all of each clip, averaged): the ordinary top-1.
    assert metrics["protocol"]["eval_sampling"] == eval_sampling
    assert early["top1"][-1] == pytest.approx(metrics["top1"])
    assert early["area"] == pytest.approx(sum(early["top1"]) / 10)
    written = json.loads((run_dir / "test_last" / "metrics.json").read_text())
    assert written["early_recognition"]["top1"] == pytest.approx(early["top1"])
    with open(run_dir / "test_last" / "early_recognition.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["percent_observed"]) for r in rows] == early["percent_observed"]
    assert (run_dir / "test_last" / "early_recognition.png").stat().st_size > 0


def test_an_unknown_step_supervision_is_refused(tiny):
    config = tiny_config(tiny["cache"], step_supervision="everything")
    with pytest.raises(BaseException, match="step_supervision"):
        run_training(config, run_dir=tiny["root"] / "bad")
