"""Training building blocks checked against hand-computed values: metrics, temporal sampling,
batching, the epoch sampler and clip averaging."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy

from video_eleatt.training.data import (
    EpochSampler,
    FeatureSequenceDataset,
    clip_positions,
    collate_sequences,
    segment_steps,
    window_start,
)
from video_eleatt.training.errors import TrainingError
from video_eleatt.training.metrics import (
    ClassificationMetrics,
    mean_class_accuracy,
    per_class_accuracy,
    save_confusion_matrix,
    topk_accuracy,
    warn_if_no_top5,
)
from video_eleatt.training.module import ActionClassifier, check_checkpoint_compatible

# Four videos, six classes, no ties. Row by row:
#   target 0, predicted 0                      -> top-1 right, top-5 right
#   target 1, predicted 2, class 1 second      -> top-1 wrong, top-5 right
#   target 0, predicted 5, class 0 last        -> top-1 wrong, top-5 wrong
#   target 3, predicted 3                      -> top-1 right, top-5 right
LOGITS = [
    [5.0, 1.0, 0.5, 0.2, 0.1, 0.0],
    [0.1, 4.0, 5.0, 0.3, 0.2, 0.0],
    [0.0, 0.5, 0.4, 0.3, 2.0, 9.0],
    [0.2, 0.1, 0.3, 6.0, 0.4, 0.5],
]
TARGETS = [0, 1, 0, 3]


def _reference_loss() -> float:
    losses = []
    for row, target in zip(LOGITS, TARGETS):
        log_sum = math.log(sum(math.exp(value) for value in row))
        losses.append(log_sum - row[target])
    return sum(losses) / len(losses)


def test_metrics_on_hand_computed_case():
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    target = torch.tensor(TARGETS)
    assert topk_accuracy(logits, target, 1) == 0.5
    assert topk_accuracy(logits, target, 5) == 0.75

    metrics = ClassificationMetrics(num_classes=6)
    probs = logits.float().softmax(dim=1)
    # Two batches: the states accumulate.
    metrics.update(probs[:3], target[:3], logits[:3].float().log_softmax(dim=1))
    metrics.update(probs[3:], target[3:], logits[3:].float().log_softmax(dim=1))
    values = metrics.compute()
    assert values["top1"] == pytest.approx(0.5, abs=1e-12)
    assert values["top5"] == pytest.approx(0.75, abs=1e-7)
    # Recall: class 0 1/2, class 1 0/1, class 3 1/1; classes 2, 4, 5 have no video.
    assert values["mean_class_accuracy"] == pytest.approx((0.5 + 0.0 + 1.0) / 3, abs=1e-12)
    assert values["loss"] == pytest.approx(_reference_loss(), rel=1e-6)
    confusion = metrics.confusion_matrix()
    assert confusion.shape == (6, 6) and int(confusion.sum()) == 4
    assert confusion[0, 0] == 1 and confusion[0, 5] == 1 and confusion[1, 2] == 1
    assert per_class_accuracy(confusion) == [0.5, 0.0, None, 1.0, None, None]


def test_mean_class_accuracy_leaves_out_absent_classes_unlike_torchmetrics_macro():
    logits = torch.tensor(LOGITS)
    target = torch.tensor(TARGETS)
    macro = MulticlassAccuracy(6, average="macro")(logits, target).item()
    # torchmetrics counts predicted-but-absent classes 2 and 5 as recall 0: 1.5 / 5.
    assert macro == pytest.approx(0.3)
    metrics = ClassificationMetrics(6)
    metrics.update(logits.softmax(dim=1), target)
    assert metrics.compute()["mean_class_accuracy"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no videos"):
        mean_class_accuracy(torch.zeros(3, 3))


def test_top5_with_fewer_than_5_classes_is_rejected_or_left_out():
    scores = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    target = torch.tensor([0, 0])
    with pytest.raises(ValueError, match="top-5 accuracy needs 1 <= k <= number of classes"):
        topk_accuracy(scores, target, 5)
    assert topk_accuracy(scores, target, 3) == 1.0
    metrics = ClassificationMetrics(num_classes=3)
    metrics.update(scores, target)
    values = metrics.compute()
    assert values["top5"] is None
    assert values["top1"] == 0.5
    with pytest.warns(UserWarning, match="top-5 accuracy is not computed: only 3 classes"):
        warn_if_no_top5(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_no_top5(5)  # defined from 5 classes on: no warning


def test_confusion_matrix_files(tmp_path):
    confusion = torch.tensor([[2, 1, 0], [0, 0, 0], [1, 0, 3]])
    paths = save_confusion_matrix(confusion, ["walk", "run", "jump"], tmp_path)
    lines = paths["csv"].read_text().splitlines()
    assert lines[0] == "true \\ predicted,walk,run,jump"
    assert lines[1:] == ["walk,2,1,0", "run,0,0,0", "jump,1,0,3"]
    per_class = paths["per_class"].read_text().splitlines()
    assert per_class[1] == "0,walk,3,2,0.666667"
    assert per_class[2] == "1,run,0,0,"  # no video: no accuracy
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_segment_steps_evaluation_and_training():
    assert segment_steps(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert segment_steps(10, 5, position=0.0).tolist() == [0, 2, 4, 6, 8]
    assert segment_steps(3, 5).tolist() == [0, 0, 1, 1, 2]  # shorter than K: steps repeat
    rng = np.random.default_rng(0)
    draws = np.stack([segment_steps(100, 4, rng) for _ in range(200)])  # (200, 4)
    for k in range(4):
        assert draws[:, k].min() >= 25 * k and draws[:, k].max() < 25 * (k + 1)
        assert len(set(draws[:, k].tolist())) > 10  # really random inside the segment


def test_window_start_and_clip_positions():
    assert window_start(10, 4, position=0.0) == 0
    assert window_start(10, 4, position=1.0) == 6
    assert window_start(3, 4, position=0.5) == 0  # shorter than the window: all of it
    rng = np.random.default_rng(1)
    starts = {window_start(10, 4, rng) for _ in range(200)}
    assert starts == set(range(7))
    assert clip_positions(4, "segments") == [0.125, 0.375, 0.625, 0.875]
    assert clip_positions(3, "window") == [0.0, 0.5, 1.0]


class _ArrayCache:
    """Stands in for a feature cache: ``load`` gives step t the value t in every feature."""

    def __init__(self, lengths: dict[str, int], feature_dim: int = 2):
        self.lengths = lengths
        self.feature_dim = feature_dim
        self.cache_dir = "<memory>"

    def load(self, rel_path: str):
        steps = torch.arange(self.lengths[rel_path], dtype=torch.float32)
        return type("Features", (), {"features": steps[:, None].repeat(1, self.feature_dim)})


def test_dataset_randomness_is_a_function_of_seed_epoch_and_index():
    cache = _ArrayCache({"a": 40, "b": 7})
    make = lambda seed: FeatureSequenceDataset(  # noqa: E731
        cache, ["a", "b"], [0, 1], train=True, num_steps=4, seed=seed
    )
    first = make(0)[(0, 3)]["features"][:, 0]
    assert np.array_equal(first, make(0)[(0, 3)]["features"][:, 0])  # new instance, same draw
    epochs = {tuple(make(0)[(0, epoch)]["features"][:, 0].tolist()) for epoch in range(6)}
    assert len(epochs) > 1  # another epoch, other offsets
    assert not np.array_equal(first, make(1)[(0, 3)]["features"][:, 0])
    assert first.tolist() == sorted(first.tolist())  # one step per segment, in order

    evaluation = FeatureSequenceDataset(
        cache,
        ["a", "b"],
        [0, 1],
        train=False,
        num_steps=4,
        eval_sampling="clips",
        num_eval_clips=2,
    )
    item = evaluation[0]
    assert item["features"].shape == (2, 4, 2)  # (N, t, D)
    # Segment width 10, offsets at 1/4 and 3/4 of each segment.
    assert item["features"][:, :, 0].tolist() == [[2, 12, 22, 32], [7, 17, 27, 37]]
    full = FeatureSequenceDataset(cache, ["a", "b"], [0, 1], train=False)
    assert full[1]["features"].shape == (7, 2) and full[1]["length"] == 7


def test_collate_pads_and_keeps_lengths():
    cache = _ArrayCache({"a": 5, "b": 3})
    dataset = FeatureSequenceDataset(cache, ["a", "b"], [2, -1], train=False)
    batch = collate_sequences([dataset[0], dataset[1]])
    assert batch["features"].shape == (2, 5, 2)
    assert batch["lengths"].tolist() == [5, 3]
    assert batch["labels"].tolist() == [2, -1]
    assert batch["rel_paths"] == ["a", "b"]
    assert batch["features"][1, 3:].abs().sum() == 0  # padding is zero
    clips = FeatureSequenceDataset(
        cache,
        ["a", "b"],
        [0, 1],
        train=False,
        train_sampling="window",
        num_steps=4,
        eval_sampling="clips",
        num_eval_clips=3,
    )
    batch = collate_sequences([clips[0], clips[1]])
    assert batch["features"].shape == (2, 3, 4, 2)  # (B, N, T, D)
    assert batch["lengths"].tolist() == [4, 3]
    # Windows of 4 in 5 steps start at 0, 0.5 (rounded up), 1.
    assert batch["features"][0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]


def test_epoch_sampler_yields_epoch_and_is_seeded():
    data = list(range(10))

    def order(seed, epoch, rank=0, replicas=1):
        sampler = EpochSampler(data, num_replicas=replicas, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    first = order(0, 0)
    assert all(epoch == 0 for _, epoch in first)
    assert sorted(index for index, _ in first) == data
    assert first == order(0, 0)
    assert [i for i, _ in order(0, 1)] != [i for i, _ in first]
    assert all(epoch == 1 for _, epoch in order(0, 1))
    halves = [i for i, _ in order(0, 0, 0, 2)] + [i for i, _ in order(0, 0, 1, 2)]
    assert sorted(halves) == data


def test_clip_scores_are_the_log_of_the_mean_softmax():
    torch.manual_seed(0)
    model = ActionClassifier(input_size=4, num_classes=3, hidden_size=5, dropout=0.0).eval()
    features = torch.randn(2, 3, 6, 4)  # (B, N, T, D)
    lengths = torch.tensor([6, 4])
    with torch.no_grad():
        log_probs = model.video_log_probs({"features": features, "lengths": lengths})
        per_clip = [model(features[:, j], lengths).double().softmax(dim=1) for j in range(3)]
    reference = torch.stack(per_clip).mean(dim=0).log()  # (B, C) float64
    assert log_probs.shape == (2, 3)
    torch.testing.assert_close(log_probs.double(), reference, atol=1e-6, rtol=0)


def test_checkpoint_compatibility_names_every_difference():
    saved = {
        "input_size": 2048,
        "num_classes": 60,
        "cell": "gru",
        "hidden_size": 512,
        "num_eleatt_layers": 3,
        "num_plain_layers": 0,
    }
    current = dict(saved, input_size=1024, num_eleatt_layers=0, num_plain_layers=3)
    with pytest.raises(TrainingError) as info:
        check_checkpoint_compatible(saved, current, {"data": {"cache_dir": "features/x"}})
    message = str(info.value)
    assert "input_size: checkpoint 2048, config 1024" in message
    assert "num_eleatt_layers: checkpoint 3, config 0" in message
    assert "num_plain_layers: checkpoint 0, config 3" in message
    assert "features/x" in message and "config.yaml" in message
    check_checkpoint_compatible(saved, dict(saved, lr=0.5))  # optimiser options may differ
