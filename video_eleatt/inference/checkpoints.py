"""A trained checkpoint and the feature pipeline its training data came from.

A checkpoint written by ``video-eleatt fit`` or ``compare`` holds, besides the weights, a
``video_eleatt`` record (:data:`~video_eleatt.training.module.CHECKPOINT_KEY`): the feature
cache it was trained on, that cache's extraction configuration (``config.json``), the dataset,
split and class names. From that record this module rebuilds what inference needs: the
classifier, the backbone's configuration (from the cache's recorded identity), the
preprocessing and the frame sampling.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from video_eleatt.features.backbones import BackboneConfig, file_sha256
from video_eleatt.features.layout import CacheError, read_config
from video_eleatt.features.preprocess import PreprocessConfig
from video_eleatt.inference.errors import AttentionError, PredictError
from video_eleatt.inference.gates import check_has_attention
from video_eleatt.training.module import CHECKPOINT_KEY, ActionClassifier
from video_eleatt.video.sampling import SamplingConfig


def load_classifier(checkpoint: str | Path, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The trained :class:`SequenceClassifier` (eval mode) and the checkpoint's data record.

    Loaded with ``weights_only=True`` (no pickled code).

    Args:
        checkpoint: A ``.ckpt`` file (a run directory is resolved by
            :func:`video_eleatt.compare.attention_run.resolve_checkpoint`).
        device: Where the model goes.

    Returns:
        ``(classifier, data)`` where ``data`` holds ``cache_dir``, ``dataset``, ``split``,
        ``class_names`` (empty when the checkpoint has no record).

    Raises:
        AttentionError: the file cannot be loaded, or the model has no EleAtt layer.
    """
    path = Path(checkpoint)
    try:
        module = ActionClassifier.load_from_checkpoint(path, map_location=device, weights_only=True)
        record = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise AttentionError(
            f"cannot load checkpoint {path}: {type(err).__name__}: {err}. Expected a checkpoint "
            "written by `video-eleatt fit` (or `compare`)"
        ) from err
    data = dict((record.get(CHECKPOINT_KEY) or {}).get("data") or {})
    classifier = module.classifier.eval()
    check_has_attention(classifier)
    return classifier, data


def checkpoint_cache_config(
    checkpoint: Path, record: dict[str, Any], cache: str | None = None
) -> dict[str, Any]:
    """The extraction configuration of the features a checkpoint was trained on.

    From ``--cache`` when given, else the copy the checkpoint holds, else the ``config.json``
    of the cache directory it names.

    Raises:
        PredictError: none of those is available (with the fix).
    """
    if cache is None:
        data = record.get("data") or {}
        recorded = data.get("cache_config")
        if isinstance(recorded, dict) and "features" in recorded:
            return recorded
        cache = data.get("cache_dir")
        if not cache:
            raise PredictError(
                f"{checkpoint} records no extraction configuration (no feature cache in its "
                "'video_eleatt' entry), so the backbone, preprocessing and frame sampling of its "
                "training features are unknown. Fix: pass --cache <the feature cache directory "
                "it was trained on>, or use a checkpoint written by `video-eleatt fit` / "
                "`compare` on a cache made by `video-eleatt extract`"
            )
    try:
        config = read_config(cache)
    except (CacheError, OSError, ValueError) as err:
        raise PredictError(
            f"cannot read the extraction configuration of {checkpoint} from the cache {cache}: "
            f"{err}. Fix: pass --cache <the feature cache directory it was trained on>"
        ) from err
    if "features" not in config:
        raise PredictError(f"{cache}/config.json has no 'features' section; not an extract cache")
    return config


def sampling_from_cache(features: dict[str, Any]) -> SamplingConfig:
    """The frame sampling the extraction recorded (``features.sampling`` of its config).

    Raises:
        PredictError: none is recorded.
    """
    recorded = features.get("sampling")
    if not isinstance(recorded, dict):
        raise PredictError(
            f"the extraction configuration records no frame sampling (features.sampling = "
            f"{recorded!r}); pass --cache <the cache the model was trained on>"
        )
    return SamplingConfig(**recorded)


def backbone_config_from_cache(
    cache_config: dict, weights_file: str | None = None
) -> BackboneConfig:
    """The :class:`BackboneConfig` that made a cache, from its recorded identity.

    Raises:
        AttentionError: the cache records no backbone, or its weights came from a file that
            is not given (or whose sha256 differs).
    """
    identity = (cache_config.get("features") or {}).get("backbone")
    if not isinstance(identity, dict) or "name" not in identity:
        raise AttentionError(
            f"the cache records no backbone (features.backbone = {identity!r}); the overlay "
            "needs the backbone that made the features (caches made by `video-eleatt extract`)"
        )
    weights = str(identity.get("weights", "pretrained"))
    seed = 0
    match = re.fullmatch(r"random-init seed (\d+)", weights)
    if match:
        weights, seed = "random", int(match.group(1))
    elif weights.startswith("file sha256:"):
        expected = weights.split(":", 1)[1]
        if not weights_file:
            raise AttentionError(
                "the cache's backbone weights came from a file (sha256 "
                f"{expected[:12]}...); pass it as --backbone_weights <file>"
            )
        if file_sha256(weights_file) != expected:
            raise AttentionError(
                f"--backbone_weights {weights_file} is not the file the cache was made with "
                f"(sha256 differs from {expected[:12]}...)"
            )
        weights = weights_file
    elif weights.startswith("torchvision:"):
        member = weights.rsplit(".", 1)[-1]
        weights = "pretrained" if member == "DEFAULT" else member
    else:  # "timm:<arch>.<tag>": the tag is part of the name or the default
        weights = "pretrained"
    return BackboneConfig(
        name=str(identity["name"]),
        library=str(identity.get("library", "timm")),
        weights=weights,
        seed=seed,
        model_kwargs=dict(identity.get("model_kwargs") or {}),
    )


def preprocess_from_cache(cache_config: dict) -> PreprocessConfig:
    """The :class:`PreprocessConfig` recorded by the extraction.

    Raises:
        AttentionError: the cache records none.
    """
    recorded = (cache_config.get("features") or {}).get("preprocess")
    if not isinstance(recorded, dict):
        raise AttentionError("the cache records no preprocessing (features.preprocess)")
    resize = recorded["resize_size"]
    return PreprocessConfig(
        crop_size=tuple(recorded["crop_size"]),
        resize_size=resize if isinstance(resize, int) else tuple(resize),
        interpolation=recorded["interpolation"],
        mean=tuple(recorded["mean"]),
        std=tuple(recorded["std"]),
    )
