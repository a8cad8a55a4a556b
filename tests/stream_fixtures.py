"""A tiny two-class video model for the streaming tests, trained through the real pipeline.

Class 0 ("Red") clips are red-tinted frames, class 1 ("Blue") blue-tinted ones, each with a
bright square moving over seeded noise, so that the untrained ``test_resnet``'s features tell
them apart from any single frame. The clips are written as a "list" dataset, extracted with
``run_extraction`` (``uniform`` sampling, 8 frames per 2-s clip: 4 steps/s) and a one-layer
EleAtt-GRU is fitted on them with ``run_training`` (a few seconds on 2 cores), so the checkpoint
records the backbone, preprocessing and sampling exactly as ``video-eleatt fit`` writes them.
"""

from __future__ import annotations

import fractions
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from video_eleatt.datasets import DatasetSpec
from video_eleatt.features.backbones import BackboneConfig
from video_eleatt.features.config import ExtractConfig
from video_eleatt.features.extract import run_extraction
from video_eleatt.training.run import run_training
from video_eleatt.video.sampling import SamplingConfig

CLASS_NAMES = ("Red", "Blue")
FPS = 12
CLIP_FRAMES = 24  # 2 s
SIZE = (64, 48)  # (width, height)
STEPS_PER_CLIP = 8


def class_frames(label: int, count: int, seed: int) -> list[np.ndarray]:
    """``count`` RGB frames (H, W, 3) uint8 of class ``label`` (0 red, 1 blue)."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    frames = []
    for i in range(count):
        image = rng.integers(0, 60, (height, width, 3)).astype(np.int32)
        image[..., 0 if label == 0 else 2] += 150
        x = (4 * i + 7 * seed) % (width - 12)
        image[10:22, x : x + 12] = 235
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames


def write_video(path: Path, frames: Sequence[np.ndarray], container: str | None = None) -> Path:
    """Encode ``frames`` at ``FPS`` with libx264 (no B-frames: also streamable through a pipe);
    ``container`` forces a format ("mpegts" for a pipe)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    time_base = fractions.Fraction(1, FPS)
    with av.open(str(path), "w", format=container) as output:
        stream = output.add_stream("libx264", rate=FPS, options={"tune": "zerolatency"})
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, time_base
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


def write_segments(path: Path, labels: Sequence[int], seconds: float = 3.0, **kwargs) -> Path:
    """One video of consecutive segments, ``seconds`` each, of the given classes."""
    frames = []
    for number, label in enumerate(labels):
        frames += class_frames(label, int(seconds * FPS), seed=100 + number)
    return write_video(path, frames, **kwargs)


def make_stream_model(root: Path) -> dict[str, Any]:
    """Dataset, feature cache and a trained checkpoint under ``root``.

    Returns:
        ``checkpoint`` (last.ckpt), ``cache`` (its feature cache), ``test_clip`` (a class-0
        test clip), ``data_root``.
    """
    data_root = root / "data"
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for label, name in enumerate(CLASS_NAMES):
        for number in range(6):
            subset = "test" if number >= 5 else "train"
            rel_path = f"{name}/{name}_{number:02d}.mp4"
            write_video(data_root / rel_path, class_frames(label, CLIP_FRAMES, 10 * label + number))
            lines[subset].append(f"{rel_path} {label}")
    for subset, rows in lines.items():
        (data_root / f"{subset}.txt").write_text("\n".join(rows) + "\n")
    (data_root / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    cache = root / "cache"
    summary = run_extraction(
        ExtractConfig(
            dataset=DatasetSpec(name="list", root=str(data_root)),
            backbone=BackboneConfig(
                "test_resnet",
                "timm",
                weights="random",
                model_kwargs={"pretrained_cfg_overlay": {"input_size": [3, 48, 48]}},
            ),
            sampling=SamplingConfig(mode="uniform", num_frames=STEPS_PER_CLIP),
            batch_size=8,
            num_workers=1,
            dtype="float32",
            precision="float32",
            device="cpu",
            progress=False,
            cache_dir=str(cache),
        )
    )
    assert summary.ok == 12, summary
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 6,
            "check_val_every_n_epoch": 6,
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "logger": False,
        },
        "model": {
            "hidden_size": 16,
            "num_eleatt_layers": 1,
            "num_plain_layers": 0,
            "dropout": 0.0,
            "lr": 0.05,
            "pooling": "last",
            "input_norm": "standardize",
        },
        "data": {
            "cache": str(cache),
            "batch_size": 4,
            "num_workers": 0,
            "train_sampling": "full",
            "eval_sampling": "full",
        },
    }
    run_dir = root / "run"
    assert run_training(config, run_dir=run_dir)["status"] == "finished"
    return {
        "checkpoint": run_dir / "checkpoints" / "last.ckpt",
        "cache": cache,
        "test_clip": data_root / "Red" / "Red_05.mp4",
        "data_root": data_root,
    }
