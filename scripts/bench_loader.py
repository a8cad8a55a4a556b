"""Is data loading the bottleneck of training? Loader samples/s vs training samples/s.

Writes a realistic feature cache (default: 2000 videos of 32 steps x 2048-d float16, the
shape of per-frame ResNet-50 features, with ``write_entry``), then measures

1. the training DataLoader of ``video_eleatt.training.data`` (TSN sampling of T steps,
   shuffled, padded batches) for the per-video files and for the packed form, with 0 and N
   worker processes;
2. training steps of ``ActionClassifier`` (forward, backward, clipping, Adam) on one batch
   already on the device, converted to samples/s;

and prints the ratio (> 1: the loader is faster than the model needs). The machine's load
average is printed too: on a shared machine both numbers move.

    python scripts/bench_loader.py                      # CPU, 2000 videos, EleAtt-GRU 3x512
    python scripts/bench_loader.py --device cuda --workers [0,4,8]
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from jsonargparse import CLI
from torch.utils.data import DataLoader

from video_eleatt.features import create_cache, open_features, write_entry
from video_eleatt.features.manifest import ManifestWriter
from video_eleatt.features.packed import PackedFeatureCache, pack_cache
from video_eleatt.training.data import EpochSampler, FeatureSequenceDataset, collate_sequences
from video_eleatt.training.module import ActionClassifier


def write_cache(cache_dir: Path, videos: int, steps: int, dim: int, classes: int) -> None:
    """``videos`` entries of (steps, dim) float16 with random values."""
    rng = np.random.default_rng(0)
    create_cache(
        cache_dir,
        {
            "features": {"backbone": "bench", "dtype": "float16"},
            "feature_dim": dim,
            "class_names": [f"class{c:03d}" for c in range(classes)],
        },
    )
    with ManifestWriter(cache_dir / "manifest.jsonl") as manifest:
        for i in range(videos):
            length = steps
            features = rng.standard_normal((length, dim), dtype=np.float32).astype(np.float16)
            write_entry(
                cache_dir, f"class{i % classes:03d}/video{i:05d}.mp4", features,
                np.arange(length), np.arange(length) / 25.0, 25.0, length, length / 25.0,
                i % classes, manifest=manifest,
            )  # fmt: skip


def loader_rate(cache, batch_size: int, steps: int, workers: int, batches: int) -> float:
    """Samples/s of the training DataLoader over ``batches`` batches (after one warm-up)."""
    keys = cache.ok_keys()
    dataset = FeatureSequenceDataset(
        cache, keys, [0] * len(keys), train=True, num_steps=steps, seed=0
    )
    sampler = EpochSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=0)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        collate_fn=collate_sequences, persistent_workers=False,
    )  # fmt: skip
    iterator = iter(loader)
    next(iterator)  # workers started, first batch out
    started, samples = time.perf_counter(), 0
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            break
        samples += batch["features"].shape[0]
    return samples / (time.perf_counter() - started)


def train_rate(
    dim: int, classes: int, batch_size: int, steps: int, device: str, layers: int,
    hidden: int, eleatt: bool, iterations: int,
) -> float:  # fmt: skip
    """Samples/s of training steps (forward, backward, clip, Adam) on one resident batch."""
    torch.manual_seed(0)
    model = ActionClassifier(
        input_size=dim, num_classes=classes, hidden_size=hidden,
        num_eleatt_layers=layers if eleatt else 0, num_plain_layers=0 if eleatt else layers,
    ).to(device)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    features = torch.randn(batch_size, steps, dim, device=device, dtype=torch.float16)
    lengths = torch.full((batch_size,), steps, device=device)
    labels = torch.randint(0, classes, (batch_size,), device=device)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(features, lengths), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    step()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(iterations):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return iterations * batch_size / (time.perf_counter() - started)


def main(
    videos: int = 2000,
    steps: int = 32,
    dim: int = 2048,
    classes: int = 60,
    batch_size: int = 256,
    workers: list[int] | None = None,
    batches: int = 6,
    device: str = "cpu",
    layers: int = 3,
    hidden: int = 512,
    iterations: int = 3,
    train_batch_size: int | None = None,
    arms: list[str] | None = None,
    cache_dir: str | None = None,
) -> None:
    """Measure loader and training throughput and print their ratio.

    Args:
        videos: videos in the generated cache.
        steps: T, steps cached and sampled per video.
        dim: feature size D.
        classes: classes (labels cycle through them).
        batch_size: videos per batch (paper: 256 on NTU).
        workers: DataLoader worker counts to try; default [0, number of CPUs].
        batches: batches timed per loader setting.
        device: where the model trains ("cpu", "cuda").
        layers: recurrent layers.
        hidden: neurons per layer.
        iterations: training steps timed.
        train_batch_size: batch of the timed training steps; default ``batch_size`` (a
            smaller one keeps CPU runs short; samples/s barely depends on it there).
        arms: which models to time: "gru" (baseline) and/or "eleatt_gru".
        cache_dir: reuse or keep the cache here (default: a temporary directory).
    """
    workers = workers if workers is not None else [0, os.cpu_count() or 1]
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} (1/5/15 min); torch {torch.__version__}, {torch.get_num_threads()} "
          "threads")  # fmt: skip
    temporary = None
    if cache_dir is None:
        temporary = tempfile.mkdtemp(prefix="bench_loader_")
        cache_dir = temporary
    root = Path(cache_dir)
    try:
        if not (root / "manifest.jsonl").exists():
            started = time.perf_counter()
            write_cache(root, videos, steps, dim, classes)
            seconds = time.perf_counter() - started
            print(f"wrote {videos} videos ({steps} steps x {dim} float16) in {seconds:.1f} s")
        if not (root / "packed").exists():
            pack_cache(root)
        forms = {"per-video files": open_features(root, prefer_packed=False)}
        forms["packed (memmap)"] = PackedFeatureCache(root)
        best = 0.0
        for name, cache in forms.items():
            for count in workers:
                rate = loader_rate(cache, batch_size, steps, count, batches)
                best = max(best, rate)
                print(f"loader  {name:16s} workers={count:<2d} {rate:10.0f} samples/s")
        train_batch = train_batch_size or batch_size
        for name in arms or ["gru", "eleatt_gru"]:
            eleatt = {"gru": False, "eleatt_gru": True}[name]
            rate = train_rate(dim, classes, train_batch, steps, device, layers, hidden, eleatt,
                              iterations)  # fmt: skip
            arm = f"{'EleAtt-GRU' if eleatt else 'GRU':10s} {layers}x{hidden} on {device}"
            print(f"train   {arm:29s} {rate:10.1f} samples/s "
                  f"({rate / train_batch:.3f} steps/s of {train_batch})")  # fmt: skip
            print(f"ratio   best loader / training = {best / rate:.1f}"
                  f"{'' if best > rate else '  <- the loader is the bottleneck'}")  # fmt: skip
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


if __name__ == "__main__":
    CLI(main)
