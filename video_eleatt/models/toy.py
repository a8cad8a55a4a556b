"""``video-eleatt toy``: baseline GRU vs EleAtt-GRU on a small generated sequence task.

A toy, not a result: it shows that the layers train end to end and what the output of a
comparison looks like, in well under a minute on a 2-core CPU.

The task: each sequence (variable length) carries two short events, each a pulse on one of two
signal channels, and the class is (channel of the first event, channel of the second), four
classes. Classes 1 and 2 hold the same pulses in opposite order, so a model must keep order.
All other input channels are Gaussian noise, which an attention gate can learn to shut out.
Both models see the same batches in the same order and start from the same seed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from jsonargparse import ActionConfigFile, ArgumentParser
from torch import Tensor, nn

from video_eleatt.models.classifier import ClassifierConfig, SequenceClassifier

NUM_SIGNAL_CHANNELS = 2
NUM_CLASSES = NUM_SIGNAL_CHANNELS**2


@dataclass
class ToyConfig:
    """Options of the toy run.

    Attributes:
        steps: training steps (batches) per model.
        seed: seeds the data and both models' initialisation.
        batch_size: sequences per batch.
        max_steps: T, the longest sequence; lengths vary in [max_steps // 2, max_steps].
        noise_channels: input channels that carry only noise (D = 2 + noise_channels).
        noise_std: standard deviation of the noise (the pulses have height 1).
        hidden_size: N of the single recurrent layer.
        learning_rate: Adam's step size (the paper's skeleton setting is 0.005).
        num_test: held-out sequences for the final accuracy.
        log_every: print the mean training loss of this many steps.
    """

    steps: int = 300
    seed: int = 0
    batch_size: int = 64
    max_steps: int = 20
    noise_channels: int = 30
    noise_std: float = 2.0
    hidden_size: int = 32
    learning_rate: float = 0.005
    num_test: int = 1000
    log_every: int = 25


def make_order_task(
    num_sequences: int, config: ToyConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Generate sequences of the toy task.

    Returns:
        features (B, T, D) float32 (zero after each length), lengths (B,) int64 and
        labels (B,) int64 in [0, 4).
    """
    batch, steps = num_sequences, config.max_steps
    input_size = NUM_SIGNAL_CHANNELS + config.noise_channels
    lengths = torch.randint(steps // 2, steps + 1, (batch,), generator=generator)
    channels = torch.randint(0, NUM_SIGNAL_CHANNELS, (batch, 2), generator=generator)
    labels = channels[:, 0] * NUM_SIGNAL_CHANNELS + channels[:, 1]
    # Event times: the first in the first half of the sequence, the second in the second half.
    half = lengths // 2
    first = (torch.rand(batch, generator=generator) * half).long()
    second = half + (torch.rand(batch, generator=generator) * (lengths - half)).long()
    features = torch.randn(batch, steps, input_size, generator=generator) * config.noise_std
    features[:, :, :NUM_SIGNAL_CHANNELS] = 0.0
    rows = torch.arange(batch)
    features[rows, first, channels[:, 0]] = 1.0
    features[rows, second, channels[:, 1]] = 1.0
    valid = torch.arange(steps) < lengths.unsqueeze(1)  # (B, T)
    features = features * valid.unsqueeze(2)
    return features, lengths, labels


def _model(config: ToyConfig, eleatt: bool) -> SequenceClassifier:
    torch.manual_seed(config.seed)
    return SequenceClassifier(
        ClassifierConfig(
            input_size=NUM_SIGNAL_CHANNELS + config.noise_channels,
            num_classes=NUM_CLASSES,
            cell="gru",
            hidden_size=config.hidden_size,
            num_eleatt_layers=1 if eleatt else 0,
            num_plain_layers=0 if eleatt else 1,
            dropout=0.0,
            pooling="last",
        )
    )


def run_toy(config: ToyConfig) -> dict[str, dict[str, object]]:
    """Train both models on the same batches and evaluate them on held-out sequences.

    Returns:
        Per model name ("baseline GRU", "EleAtt-GRU"): "losses" (mean training loss per
        ``log_every`` steps), "accuracy" on the held-out set, "parameters" and "seconds".
    """
    data_generator = torch.Generator().manual_seed(config.seed)
    batches = [
        make_order_task(config.batch_size, config, data_generator) for _ in range(config.steps)
    ]
    test_generator = torch.Generator().manual_seed(config.seed + 1_000_003)
    test_features, test_lengths, test_labels = make_order_task(
        config.num_test, config, test_generator
    )
    results: dict[str, dict[str, object]] = {}
    for name, eleatt in (("baseline GRU", False), ("EleAtt-GRU", True)):
        model = _model(config, eleatt)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        loss_function = nn.CrossEntropyLoss()
        losses, window = [], []
        start = time.perf_counter()
        model.train()
        for features, lengths, labels in batches:
            loss = loss_function(model(features, lengths), labels)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the paper clips at 1
            optimizer.step()
            window.append(loss.item())
            if len(window) == config.log_every:
                losses.append(sum(window) / len(window))
                window = []
        if window:
            losses.append(sum(window) / len(window))
        model.eval()
        with torch.no_grad():
            predictions = model(test_features, test_lengths).argmax(dim=1)
        results[name] = {
            "losses": losses,
            "accuracy": (predictions == test_labels).float().mean().item(),
            "parameters": model.parameter_counts()["total"],
            "seconds": time.perf_counter() - start,
        }
    return results


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="video-eleatt toy",
        description="Baseline GRU vs EleAtt-GRU on a small generated sequence-order task "
        "(a toy: a check that the layers train, not a result).",
    )
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_class_arguments(ToyConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``video-eleatt toy``; prints both loss curves and held-out accuracies."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.pop("config", None)
    config = ToyConfig(**args.as_dict())
    if config.steps < 1 or config.log_every < 1 or config.batch_size < 1:
        parser.error("--steps, --log_every and --batch_size must be at least 1")
    if config.max_steps < 4:
        # Lengths start at max_steps // 2 and both halves of a sequence need a step.
        parser.error(f"--max_steps must be at least 4 (two events); got {config.max_steps}")
    # The matrices are tiny: extra threads only add synchronisation (10x slower on a busy
    # 2-core machine), so the toy runs on one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    input_size = NUM_SIGNAL_CHANNELS + config.noise_channels
    print(
        "TOY TASK (not a result): 4 classes = order and channel of two pulses among "
        f"{config.noise_channels} noise channels; D={input_size}, T<={config.max_steps}, "
        f"N={config.hidden_size}, {config.steps} steps of batch {config.batch_size}, "
        f"seed {config.seed}"
    )
    try:
        results = run_toy(config)
    finally:
        torch.set_num_threads(threads)
    names = list(results)
    print(f"\nmean training loss (chance = ln 4 = {math.log(NUM_CLASSES):.3f})")
    print(f"{'steps':>9}  " + "  ".join(f"{name:>12}" for name in names))
    num_rows = len(results[names[0]]["losses"])
    for row in range(num_rows):
        last = min((row + 1) * config.log_every, config.steps)
        first = row * config.log_every + 1
        cells = "  ".join(f"{results[name]['losses'][row]:>12.4f}" for name in names)
        print(f"{f'{first}-{last}':>9}  {cells}")
    print(f"\nheld-out accuracy on {config.num_test} sequences (chance 0.25)")
    for name in names:
        result = results[name]
        print(
            f"  {name:<13} {result['accuracy']:.3f}   ({result['parameters']} parameters, "
            f"{result['seconds']:.1f} s)"
        )
    return 0
