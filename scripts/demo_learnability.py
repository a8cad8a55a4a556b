"""Is the demo dataset learnable from random-init CNN features, and only with frame order?

Generates a demo dataset (``video_eleatt.demo.synth``), decodes every video with PyAV, samples
``--num-frames`` frames uniformly (segment centres), extracts globally pooled features with a
randomly initialised timm backbone (by default resnet18 with ``zero_init_last=False``: timm's
default zeroes the last BN of every residual branch, which at random init leaves little more
than the stem), then trains, per seed:

- ``mean``: an order-blind model, the mean of the frame features -> a small MLP;
- ``gru``: a one-layer ``nn.GRU`` over the feature sequence -> linear classifier on the
  last hidden state.

It prints test accuracy for both, and the accuracy within the predicted family (telling a
class from the classes that show the same frames in another order): order-blind models can
be right there at most one time in four. Features are standardised with the training set's
per-dimension mean and std (``--no-standardize`` to train on raw features).

Usage (defaults: 8 classes x 80 videos, 112 px, 16 frames; about 5 minutes on 2 idle CPU
cores, 9 minutes with 5 seeds on a busy shared machine)::

    .venv/bin/python scripts/demo_learnability.py --seeds 0 1 2 3 4
    .venv/bin/python scripts/demo_learnability.py --features f.npz  # reuse features
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from video_eleatt.demo.synth import generate_dataset
from video_eleatt.demo.synth_config import CLASSES, DEFAULT_CLASSES, SynthConfig


def decode_sampled(path: Path, num_frames: int) -> np.ndarray:
    """All frames of a video decoded with PyAV, then ``num_frames`` segment centres.

    Returns:
        (num_frames, H, W, 3) uint8.
    """
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    total = len(frames)
    indices = np.minimum(
        ((np.arange(num_frames) + 0.5) * total / num_frames).astype(int), total - 1
    )
    return np.stack([frames[i] for i in indices])


def read_split(root: Path) -> tuple[list[str], list[tuple[str, int, str]]]:
    """Class names and ``(rel_path, label, subset)`` of the dataset's split 1."""
    from video_eleatt.datasets import DatasetSpec, load_index

    index = load_index(DatasetSpec(name="ucf101", root=str(root)))
    return index.class_names, [(r.rel_path, r.label, r.subset) for r in index.records]


@torch.inference_mode()
def extract(
    root: Path,
    records: list[tuple[str, int, str]],
    backbone: str,
    input_size: int,
    num_frames: int,
    model_kwargs: dict | None = None,
    batch_videos: int = 8,
) -> np.ndarray:
    """Pooled features of every record's sampled frames.

    Returns:
        (N, num_frames, D) float32.
    """
    import timm

    torch.manual_seed(0)
    model = timm.create_model(backbone, pretrained=False, num_classes=0, **(model_kwargs or {}))
    model = model.eval()
    model = model.to(memory_format=torch.channels_last)
    data_config = timm.data.resolve_model_data_config(model)
    mean = torch.tensor(data_config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(data_config["std"]).view(1, 3, 1, 1)
    features = []
    for start in range(0, len(records), batch_videos):
        chunk = records[start : start + batch_videos]
        frames = np.concatenate([decode_sampled(root / r[0], num_frames) for r in chunk])
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255)  # (B*K, 3, H, W)
        if x.shape[-1] != input_size or x.shape[-2] != input_size:
            x = nn.functional.interpolate(
                x, size=(input_size, input_size), mode="bilinear", antialias=True
            )
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        pooled = model(x)  # (B*K, D)
        features.append(pooled.view(len(chunk), num_frames, -1).float().numpy())
    return np.concatenate(features)


class MeanPoolClassifier(nn.Module):
    """Order-blind: mean of the frame features, then a one-hidden-layer MLP."""

    def __init__(self, feature_dim: int, num_classes: int, hidden: int = 128, dropout=0.5):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(feature_dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features.mean(dim=1))  # (B, T, D) -> (B, C)


class GRUClassifier(nn.Module):
    """One GRU layer over the feature sequence; classifies the last hidden state."""

    def __init__(self, feature_dim: int, num_classes: int, hidden: int = 128, dropout=0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(feature_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(self.dropout(features))  # (1, B, N)
        return self.head(self.dropout(last[0]))


def train_eval(
    model: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    epochs: int,
    seed: int,
    lr: float = 1e-3,
    batch_size: int = 32,
) -> np.ndarray:
    """Adam with gradient clipping; returns test predictions (N_test,)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return model(test_x).argmax(dim=1).numpy()


def family_accuracy(predicted: np.ndarray, labels: np.ndarray, class_names: list[str]) -> float:
    """Accuracy among the videos whose family was predicted right (order within family)."""
    families = np.array([CLASSES[name][0] for name in class_names])
    right_family = families[predicted] == families[labels]
    if not right_family.any():
        return float("nan")
    return float((predicted[right_family] == labels[right_family]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="dataset folder (default: temp)")
    parser.add_argument("--videos-per-class", type=int, default=80)
    parser.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES))
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--input-size", type=int, default=112)
    parser.add_argument(
        "--model-kwargs",
        type=json.loads,
        default={"zero_init_last": False},
        help="timm constructor arguments, JSON (default keeps every residual branch alive)",
    )
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--no-standardize", action="store_true")
    parser.add_argument("--features", type=Path, default=None, help="cache .npz of features")
    parser.add_argument("--workers", type=int, default=2, help="generation processes")
    args = parser.parse_args()
    torch.set_num_threads(2)

    with tempfile.TemporaryDirectory() as temp:
        root = args.root or Path(temp) / "demo"
        config = SynthConfig(
            videos_per_class=args.videos_per_class, seed=args.data_seed, classes=args.classes
        )
        if args.features and args.features.is_file():
            cached = np.load(args.features, allow_pickle=False)
            features, labels = cached["features"], cached["labels"]
            subsets, class_names = cached["subsets"], list(cached["class_names"])
            print(f"features from {args.features}: {features.shape}")
        else:
            start = time.perf_counter()
            dataset = generate_dataset(root, config, num_workers=args.workers)
            print(
                f"generate: {dataset.num_train} train + {dataset.num_test} test videos, "
                f"{time.perf_counter() - start:.1f} s ({'new' if dataset.created else 'found'})"
            )
            class_names, records = read_split(root)
            start = time.perf_counter()
            features = extract(
                root, records, args.backbone, args.input_size, args.num_frames, args.model_kwargs
            )
            seconds = time.perf_counter() - start
            frame_count = features.shape[0] * features.shape[1]
            print(
                f"extract: {args.backbone} @ {args.input_size}, {features.shape} in "
                f"{seconds:.1f} s ({frame_count / seconds:.0f} frames/s incl. decoding)"
            )
            labels = np.array([r[1] for r in records])
            subsets = np.array([r[2] for r in records])
            if args.features:
                np.savez(
                    args.features,
                    features=features,
                    labels=labels,
                    subsets=subsets,
                    class_names=np.array(class_names),
                )

    torch.set_num_threads(1)  # tiny models: one thread is faster than two on a busy machine
    train, test = subsets == "train", subsets == "test"
    x = torch.from_numpy(features).float()
    if not args.no_standardize:
        mean = x[torch.from_numpy(train)].mean(dim=(0, 1))
        std = x[torch.from_numpy(train)].std(dim=(0, 1)).clamp_min(1e-6)
        x = (x - mean) / std
    y = torch.from_numpy(labels).long()
    train_x, train_y, test_x = x[train], y[train], x[test]
    test_y = labels[test]
    num_classes, feature_dim = len(class_names), x.shape[-1]
    results: dict[str, list] = {"mean": [], "gru": []}
    for seed in args.seeds:
        for name, build in (
            (
                "mean",
                lambda: MeanPoolClassifier(feature_dim, num_classes, args.hidden, args.dropout),
            ),
            ("gru", lambda: GRUClassifier(feature_dim, num_classes, args.hidden, args.dropout)),
        ):
            torch.manual_seed(seed)
            start = time.perf_counter()
            predicted = train_eval(build(), train_x, train_y, test_x, args.epochs, seed)
            accuracy = float((predicted == test_y).mean())
            within = family_accuracy(predicted, test_y, class_names)
            results[name].append((accuracy, within))
            print(
                f"seed {seed} {name:4s}: test acc {accuracy:.3f}  within-family {within:.3f}  "
                f"({time.perf_counter() - start:.1f} s)",
                flush=True,
            )
    summary = {
        name: {
            "acc_mean": float(np.mean([r[0] for r in rows])),
            "acc_std": float(np.std([r[0] for r in rows], ddof=1)) if len(rows) > 1 else 0.0,
            "within_family_mean": float(np.nanmean([r[1] for r in rows])),
        }
        for name, rows in results.items()
    }
    family_sizes = Counter(CLASSES[name][0] for name in class_names)
    ceiling = sum(1 / family_sizes[CLASSES[name][0]] for name in class_names) / num_classes
    print(f"chance {1 / num_classes:.3f}; best possible order-blind accuracy {ceiling:.3f}")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
