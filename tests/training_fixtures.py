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


def reevaluate(checkpoint: Path, cache: Path, rel_paths: list[str]) -> dict[str, Any]:
    """Top-1 and mean NLL of a saved checkpoint, computed here without Lightning, torchmetrics
    or the data module: the checkpoint's classifier weights in a fresh ``SequenceClassifier``
    (eval mode), each video's whole feature sequence read straight from its safetensors file,
    its label from the cache's manifest, accuracy and loss summed by hand in float64.

    Returns:
        ``top1``, ``loss``, and ``predicted`` (rel_path -> class id).
    """
    import torch
    from safetensors.numpy import load_file

    from video_eleatt.features.layout import feature_path
    from video_eleatt.features.manifest import read_manifest
    from video_eleatt.models.classifier import ClassifierConfig, SequenceClassifier

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = SequenceClassifier(ClassifierConfig(**saved["video_eleatt"]["model"]))
    prefix = "classifier."
    state = {k[len(prefix) :]: v for k, v in saved["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(state, strict=True)
    model.eval()
    labels = {key: row["label"] for key, row in read_manifest(cache).items()}
    predicted, correct, nll = {}, 0, 0.0
    with torch.no_grad():
        for key in rel_paths:
            features = torch.from_numpy(load_file(str(feature_path(cache, key)))["features"])
            logits = model(features.float()[None], torch.tensor([len(features)]))[0]  # (C,)
            log_probs = torch.log_softmax(logits.double(), dim=0)
            predicted[key] = int(log_probs.argmax())
            correct += predicted[key] == labels[key]
            nll -= float(log_probs[labels[key]])
    return {"top1": correct / len(rel_paths), "loss": nll / len(rel_paths), "predicted": predicted}


def make_separable_cache(
    root: Path, num_classes: int = 4, train_per_class: int = 6, test_per_class: int = 3,
    feature_dim: int = 8, features_carry_label: bool = True, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """A task built to be easy: every step of a video of class c is the one-hot vector of c
    plus noise of std 0.2, so any working classifier reaches 100 %. With
    ``features_carry_label=False`` (the control) each video gets the one-hot of a class drawn
    at random, independent of its label: nothing to learn, chance level expected.
    """
    info = make_tiny_cache(
        root, num_classes=num_classes, train_per_class=train_per_class,
        test_per_class=test_per_class, feature_dim=feature_dim, seed=seed, extract=(),
        cache_name="separable" if features_carry_label else "label_free",
    )  # fmt: skip
    rng = np.random.default_rng(seed + 1)
    for rel_path in info["train"] + info["test"]:
        label = int(rel_path.split("/")[0].removeprefix("action"))
        shown = label if features_carry_label else int(rng.integers(num_classes))
        steps = 6
        features = 0.2 * rng.standard_normal((steps, feature_dim))
        features[:, shown] += 1.0
        write_entry(
            info["cache"], rel_path, features.astype(np.float32), np.arange(steps),
            np.arange(steps) / 25.0, 25.0, steps, steps / 25.0, label,
        )  # fmt: skip
    return info
