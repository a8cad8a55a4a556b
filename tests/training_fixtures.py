"""A tiny generated dataset and feature cache for the training tests.

Videos are empty files listed in "list"-format lists (the index only needs them to exist);
their features are written with ``write_entry``: class c has a bump in feature c that moves
over time, plus noise, so a few steps of training already beat chance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from video_eleatt.features.cache import create_cache, write_entry, write_failure


def make_tiny_cache(
    root: Path,
    num_classes: int = 3,
    train_per_class: int = 4,
    test_per_class: int = 2,
    feature_dim: int = 8,
    failed: int = 0,
    extract: tuple[str, ...] = ("train", "test"),
    seed: int = 0,
    cache_name: str = "cache",
    data_root: Path | None = None,
) -> dict[str, Any]:
    """Writes ``root/data`` (videos + lists) and ``root/<cache_name>`` (features).

    ``failed`` train videos of class 0 get a "failed" manifest row instead of features; only
    the subsets in ``extract`` get features. An existing ``data_root`` is reused as is.

    Returns:
        ``cache``, ``data_root``, ``class_names``, ``train``, ``test`` (rel_path lists).
    """
    rng = np.random.default_rng(seed)
    data_root = data_root or root / "data"
    class_names = [f"action{c}" for c in range(num_classes)]
    subsets: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for c, name in enumerate(class_names):
        for subset, count in (("train", train_per_class), ("test", test_per_class)):
            for i in range(count):
                rel_path = f"{name}/{subset}_{i:02d}.mp4"
                (data_root / rel_path).parent.mkdir(parents=True, exist_ok=True)
                (data_root / rel_path).write_bytes(b"")
                subsets[subset].append((rel_path, c))
    for subset, items in subsets.items():
        text = "".join(f"{rel_path} {label}\n" for rel_path, label in items)
        (data_root / f"{subset}.txt").write_text(text)
    (data_root / "classes.txt").write_text("".join(f"{name}\n" for name in class_names))
    cache = root / cache_name
    create_cache(
        cache,
        {
            "features": {"backbone": "synthetic", "dtype": "float32", "seed": seed},
            "feature_dim": feature_dim,
            "class_names": class_names,
            "dataset": {"name": "list", "root": str(data_root), "split": None, "annotations": None},
        },
    )
    failed_left = failed
    for rel_path, label in [item for subset in extract for item in subsets[subset]]:
        if failed_left and label == 0 and rel_path.split("/")[1].startswith("train"):
            write_failure(cache, rel_path, label, "decode error: moov atom not found")
            failed_left -= 1
            continue
        steps = int(rng.integers(5, 13))
        features = 0.3 * rng.standard_normal((steps, feature_dim))
        position = np.linspace(0.0, 1.0, steps)
        features[:, label % feature_dim] += 1.0 + position
        write_entry(
            cache,
            rel_path,
            features.astype(np.float32),
            np.arange(steps),
            position,
            25.0,
            steps,
            steps / 25.0,
            label,
        )
    return {
        "cache": cache,
        "data_root": data_root,
        "class_names": class_names,
        "train": [p for p, _ in subsets["train"]],
        "test": [p for p, _ in subsets["test"]],
    }


def tiny_config(cache: Path, **model: Any) -> dict[str, Any]:
    """A config dict (as a YAML file would hold) for a few quick CPU steps."""
    model_options = {
        "hidden_size": 8,
        "num_eleatt_layers": 1,
        "num_plain_layers": 0,
        "dropout": 0.0,
        "lr": 0.01,
    }
    model_options.update(model)
    return {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 2,
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
        },
        "model": model_options,
        "data": {"cache": str(cache), "batch_size": 4, "num_workers": 0, "num_steps": 4},
    }
