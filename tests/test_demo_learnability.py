"""The demo task needs frame order: an order-blind model is at chance, recurrent models are not.

Uses the generator's own frames (no encoding, no CNN) reduced to 8 x 8 colour thumbnails, one
family of four classes whose clips, for the same nuisance draw, show the same object states in
a different order. Mean pooling over time then sees identical inputs across the four classes.
"""

import numpy as np
import pytest
import torch
from torch import nn

from video_eleatt.demo.render import render_video
from video_eleatt.demo.synth_config import SynthConfig
from video_eleatt.models import ClassifierConfig, SequenceClassifier

FAMILY = ("Grow", "Shrink", "GrowShrink", "ShrinkGrow")
NUM_STEPS = 12
THUMB = 8


def _thumbnail_sequence(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (NUM_STEPS, THUMB * THUMB * 3) float32 in [0, 1]."""
    steps = np.linspace(0, len(frames) - 1, NUM_STEPS).round().astype(int)
    picked = frames[steps].astype(np.float32) / 255.0  # (S, H, W, 3)
    s, h, w, c = picked.shape
    blocks = picked.reshape(s, THUMB, h // THUMB, THUMB, w // THUMB, c).mean(axis=(2, 4))
    return blocks.reshape(s, -1)


@pytest.fixture(scope="module")
def family_task():
    config = SynthConfig(videos_per_class=24, width=64, height=64, classes=FAMILY, seed=3)
    train, test = [], []
    for label, class_name in enumerate(FAMILY):
        for group, clip in config.clips():
            sequence = _thumbnail_sequence(render_video(class_name, config, group, clip))
            (test if group <= config.test_groups else train).append((sequence, label))

    def stack(items):
        features = torch.from_numpy(np.stack([seq for seq, _ in items]))  # (N, S, D)
        labels = torch.tensor([label for _, label in items])
        return features, labels

    return stack(train), stack(test)


def _fit(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, steps: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()


def _accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(inputs).argmax(dim=1) == labels).float().mean().item()


def test_mean_pooled_inputs_are_identical_across_the_family(family_task):
    (train_x, train_y), _ = family_task
    per_class_means = [train_x[train_y == label].mean(dim=1) for label in range(len(FAMILY))]
    # Same nuisance draw per (group, clip) for every class: the time-averaged thumbnails agree
    # up to the resampling of NUM_STEPS frames out of each clip.
    for other in per_class_means[1:]:
        assert (per_class_means[0] - other).abs().max() < 0.05


@pytest.mark.parametrize("num_eleatt_layers", [0, 1], ids=["gru", "eleatt_gru"])
def test_recurrent_model_beats_an_order_blind_one(family_task, num_eleatt_layers):
    torch.manual_seed(0)
    (train_x, train_y), (test_x, test_y) = family_task
    feature_dim = train_x.shape[-1]

    order_blind = nn.Sequential(nn.Linear(feature_dim, 64), nn.ReLU(), nn.Linear(64, 4))
    _fit(order_blind, train_x.mean(dim=1), train_y, steps=200)
    order_blind_accuracy = _accuracy(order_blind, test_x.mean(dim=1), test_y)

    recurrent = SequenceClassifier(
        ClassifierConfig(
            input_size=feature_dim,
            num_classes=len(FAMILY),
            hidden_size=32,
            num_eleatt_layers=num_eleatt_layers,
            num_plain_layers=1 - num_eleatt_layers,
            dropout=0.0,
            pooling="last",
        )
    )
    _fit(recurrent, train_x, train_y, steps=150)
    recurrent_accuracy = _accuracy(recurrent, test_x, test_y)

    print(f"order-blind {order_blind_accuracy:.2f}, recurrent {recurrent_accuracy:.2f}")
    assert order_blind_accuracy <= 0.45, order_blind_accuracy  # chance is 0.25
    assert recurrent_accuracy >= order_blind_accuracy + 0.35, (
        recurrent_accuracy,
        order_blind_accuracy,
    )
