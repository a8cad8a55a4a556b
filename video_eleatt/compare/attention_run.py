"""``video-eleatt attention``: the attention analyses of :mod:`video_eleatt.compare.attention`
for a trained checkpoint, a subset of its split, and chosen videos.

What it reads: the checkpoint (model weights and, recorded by training, the feature cache,
dataset spec, split and class names), the feature cache (per-video features and the sampled
frame indices), and, for the overlay only, the video files and the cache's recorded backbone.

Output folder (default ``<run_dir>/attention-<subset>``)::

    attention.md                      what was analysed, most / least attended dimensions
    attention_per_dim.csv|.png        mean and spread per feature dimension
    attention_per_class.csv|.png      mean per class
    time_<video>.png                  dims x time heatmap per chosen video
    overlay_<video>.png|.gif          spatial overlay (our extension, not the paper's method)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from video_eleatt.compare.attention import (
    OVERLAY_NOTE,
    AttentionError,
    AttentionStats,
    attention_overlay_maps,
    check_has_attention,
    collect_attention,
    draw_overlay_grid,
    first_layer_attention,
    plot_attention_over_time,
    save_overlay_gif,
    spatial_feature_maps,
    write_attention_stats,
)

# Recomputed features farther than this (relative) from the cached ones: warn that the
# backbone or preprocessing differs from the extraction.
FEATURE_MISMATCH_TOLERANCE = 0.05
MAX_GIF_STEPS = 64


@dataclass
class AttentionConfig:
    """Options of ``video-eleatt attention``.

    Attributes:
        checkpoint: A training checkpoint (.ckpt) or a run directory (a comparison run: the
            checkpoint the report tested; else the best checkpoint).
        output_dir: Output folder; default ``<run_dir>/attention-<subset>``.
        subset: Videos of the checkpoint's split to analyse: "test", "val", "train" or "all".
        cache: Feature cache; default: the one recorded in the checkpoint.
        videos: rel_paths of videos for the time heatmaps and overlays.
        num_videos: Without ``videos``: one video from each of the first ``num_videos``
            classes of the subset.
        max_videos: Use at most this many videos for the statistics (None: all).
        layer: EleAtt layer to analyse (0: the first, on the CNN features).
        top_k: Time heatmaps show the ``top_k`` most variable dimensions (0: all).
        overlay: Draw the spatial overlay (needs the video files and the cache's backbone).
        gif: Also write an animated GIF of the overlay.
        video_root: Folder the rel_paths are relative to; default: the dataset root recorded
            in the cache.
        backbone_weights: The weights file, when the cache's backbone was loaded from a file
            (the cache records only its sha256).
        max_frames: Frames shown in the overlay grid.
        batch_size: Videos per forward pass.
        device: "cpu" or "cuda[:N]".
    """

    checkpoint: str
    output_dir: str | None = None
    subset: Literal["test", "val", "train", "all"] = "test"
    cache: str | None = None
    videos: list[str] = field(default_factory=list)
    num_videos: int = 3
    max_videos: int | None = None
    layer: int = 0
    top_k: int = 64
    overlay: bool = True
    gif: bool = False
    video_root: str | None = None
    backbone_weights: str | None = None
    max_frames: int = 8
    batch_size: int = 32
    device: str = "cpu"


@dataclass
class AttentionOutcome:
    """What :func:`run_attention` / :func:`analyse_attention` wrote.

    Attributes:
        output_dir: The output folder.
        files: Every file written.
        stats: The per-dimension statistics.
        failures: Video -> why its overlay could not be drawn.
        warnings: Things the user should know (e.g. recomputed features differ).
    """

    output_dir: Path
    files: list[Path]
    stats: AttentionStats
    failures: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Lines printed by the command."""
        lines = [
            f"attention: {self.stats.num_videos} videos, {self.stats.num_steps} steps analysed; "
            f"{len(self.files)} files in {self.output_dir}"
        ]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        lines += [f"  overlay failed for {key}: {reason}" for key, reason in self.failures.items()]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- inputs


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file for ``path``: a .ckpt file, or a run directory (for a comparison run
    the checkpoint its report tested, else the run's best checkpoint).

    Raises:
        AttentionError: nothing usable at ``path``.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        from video_eleatt.compare.results import read_result
        from video_eleatt.training.run import find_best_checkpoint

        result = read_result(path)  # a comparison run: the checkpoint its report tested
        tested = (result.extra.get("tested_checkpoint") if result else None) or ""
        if tested and Path(tested).is_file():
            return Path(tested)
        from video_eleatt.training.errors import TrainingError

        try:
            return find_best_checkpoint(path / "checkpoints")
        except TrainingError as err:
            raise AttentionError(f"no checkpoint for run directory {path}: {err}") from err
    raise AttentionError(
        f"checkpoint {str(path)!r} does not exist; give a .ckpt file or a run directory "
        "(e.g. <compare output>/runs/eleatt_gru/split-1/seed-0)"
    )


def load_classifier(checkpoint: str | Path, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The trained :class:`SequenceClassifier` (eval mode) and the checkpoint's data record.

    Loaded with ``weights_only=True`` (no pickled code).

    Returns:
        ``(classifier, data)`` where ``data`` holds ``cache_dir``, ``dataset``, ``split``,
        ``class_names`` (empty when the checkpoint has no record).
    """
    from video_eleatt.training.module import CHECKPOINT_KEY, ActionClassifier

    path = resolve_checkpoint(checkpoint)
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


def subset_videos(data: dict, cache: Any, subset: str) -> tuple[list[tuple[str, int | None]], str]:
    """(rel_path, label) of the subset's videos that have features, and a description.

    Uses the dataset index of the checkpoint's split; when it cannot be read (dataset moved),
    falls back to every video of the cache and says so.
    """
    from video_eleatt.datasets import DatasetSpec, load_index

    ok = set(cache.ok_keys())
    spec_values = data.get("dataset")
    if spec_values:
        try:
            index = load_index(DatasetSpec(**spec_values))
            records = index.records if subset == "all" else index.subset(subset)
            videos = [(r.rel_path, r.label) for r in records if r.rel_path in ok]
            split = f" of split {index.split}" if index.split else ""
            return videos, f"subset '{subset}'{split} of {index.name} ({len(videos)} videos)"
        except Exception as err:  # the analysis still works on the cache alone
            note = f"dataset index unreadable ({err}); "
    else:
        note = "no dataset recorded; "
    videos = [(key, cache.label(key)) for key in sorted(ok)]
    return videos, f"{note}every cached video ({len(videos)})"


def default_videos(videos: Sequence[tuple[str, int | None]], num_videos: int) -> list[str]:
    """The first video of each of the first ``num_videos`` classes (in label order)."""
    first: dict[int | None, str] = {}
    for rel_path, label in videos:
        first.setdefault(label, rel_path)
    labels = sorted(first, key=lambda label: -1 if label is None else label)
    return [first[label] for label in labels[:num_videos]]


def backbone_config_from_cache(cache_config: dict, weights_file: str | None = None) -> Any:
    """The :class:`BackboneConfig` that made a cache, from its recorded identity.

    Raises:
        AttentionError: the cache records no backbone, or its weights came from a file that
            is not given (or whose sha256 differs).
    """
    from video_eleatt.features.backbones import BackboneConfig, file_sha256

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


def preprocess_from_cache(cache_config: dict) -> Any:
    """The :class:`PreprocessConfig` recorded by the extraction."""
    from video_eleatt.features.preprocess import PreprocessConfig

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


# ----------------------------------------------------------------------------- the analyses


def analyse_attention(
    classifier: nn.Module,
    cache: Any,
    videos: Sequence[tuple[str, int | None]],
    output_dir: str | Path,
    chosen: Sequence[str] = (),
    class_names: Sequence[str] = (),
    description: str = "",
    layer: int = 0,
    top_k: int = 64,
    batch_size: int = 32,
    device: str = "cpu",
) -> AttentionOutcome:
    """Per-dimension statistics and time heatmaps of a classifier's first-layer attention.

    Args:
        classifier: A trained EleAtt :class:`SequenceClassifier`.
        cache: The feature cache (``load(rel_path)`` gives the features).
        videos: ``(rel_path, label)`` of the videos to analyse.
        output_dir: Output folder.
        chosen: rel_paths to draw over time.
        class_names: Class id -> name.
        description: What the videos are (for attention.md).
        layer: EleAtt layer.
        top_k: Dimensions shown in the time heatmaps.
        batch_size: Videos per forward pass.
        device: Where the model runs.

    Returns:
        The outcome (files, statistics).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(chosen) - {rel_path for rel_path, _ in videos})
    if unknown:
        raise AttentionError(
            f"videos {unknown} are not among the {len(videos)} analysed videos ({description}); "
            "pick rel_paths of that subset (see the cache's manifest.jsonl)"
        )
    stream = ((key, cache.load(key).features, label) for key, label in videos)
    stats, kept = collect_attention(
        classifier,
        stream,
        num_classes=len(class_names),
        keep=chosen,
        batch_size=batch_size,
        layer=layer,
        device=device,
    )
    files = write_attention_stats(stats, output_dir, class_names)
    labels = dict(videos)
    for rel_path in chosen:
        label = labels.get(rel_path)
        name = class_names[label] if label is not None and label < len(class_names) else label
        timestamps = cache.load(rel_path).timestamps.numpy()
        files.append(
            plot_attention_over_time(
                kept[rel_path],
                output_dir / f"time_{safe_name(rel_path)}.png",
                f"{rel_path} (class {name})",
                timestamps,
                top_k,
            )
        )
    files.insert(0, _write_summary(stats, output_dir, description, chosen, layer))
    return AttentionOutcome(output_dir=output_dir, files=files, stats=stats)


def safe_name(rel_path: str) -> str:
    """A file-name-safe form of a rel_path (``a/b c.avi`` -> ``a_b_c``)."""
    stem = rel_path.rsplit(".", 1)[0] if "." in rel_path.rsplit("/", 1)[-1] else rel_path
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_") or "video"


def _write_summary(
    stats: AttentionStats, output_dir: Path, description: str, chosen: Sequence[str], layer: int
) -> Path:
    order = np.argsort(stats.mean)
    lines = [
        "# First-layer attention",
        "",
        f"- Videos: {description or stats.num_videos} ({stats.num_steps} valid steps); "
        f"EleAtt layer {layer}.",
        f"- Mean attention over all dimensions: {stats.mean.mean():.4f}; spread of the "
        f"per-dimension means (std): {stats.mean.std():.4f}.",
        "- Most attended dimensions (mean a_t): "
        + ", ".join(f"{d} ({stats.mean[d]:.3f})" for d in order[::-1][:10]),
        "- Least attended dimensions: "
        + ", ".join(f"{d} ({stats.mean[d]:.3f})" for d in order[:10]),
        f"- Time heatmaps: {', '.join(chosen) or 'none'}.",
        "",
        "Files: `attention_per_dim.csv` (mean, std over steps, std over videos per dimension), "
        "`attention_per_class.csv` (class x dimension means), their figures, `time_*.png` "
        "(dims x time per video), `overlay_*.png` (spatial overlay).",
        "",
        OVERLAY_NOTE,
        "",
    ]
    path = output_dir / "attention.md"
    path.write_text("\n".join(lines))
    return path


@torch.no_grad()
def overlay_video(
    classifier: nn.Module,
    backbone: nn.Module,
    preprocess: Any,
    cache: Any,
    rel_path: str,
    video_path: str | Path,
    output_dir: str | Path,
    max_frames: int = 8,
    gif: bool = False,
    layer: int = 0,
    device: str = "cpu",
) -> tuple[list[Path], str | None]:
    """Spatial overlay of one video (our extension, see :mod:`video_eleatt.compare.attention`).

    Decodes the frames the cache sampled (its ``frame_indices``), preprocesses them as the
    extraction did, runs the backbone to its last spatial maps, weights the channels by the
    first-layer attention of the cached features and draws the result over the frames.

    Returns:
        ``(files, warning)``; the warning says when the recomputed features differ from the
        cached ones (another backbone, weights or preprocessing than the extraction's).
    """
    from video_eleatt.features.preprocess import FramePreprocess, normalize_frames
    from video_eleatt.video.decode import read_frames

    entry = cache.load(rel_path)
    features = entry.features.float()  # (T, D)
    attention = first_layer_attention(classifier, features.unsqueeze(0).to(device), layer=layer)[
        0
    ]  # (T, D)
    num_steps = features.shape[0]
    limit = num_steps if gif else max_frames
    steps = np.unique(np.linspace(0, num_steps - 1, min(num_steps, limit, MAX_GIF_STEPS)).round())
    steps = steps.astype(np.int64)
    frame_indices = entry.frame_indices.numpy()[steps]
    _, _, _, decoded = read_frames(video_path, lambda info, timestamps: frame_indices)
    # decoded: (S, H, W, 3) uint8, in sorted index order == step order
    if decoded.shape[0] != len(steps):
        raise AttentionError(
            f"{video_path}: decoded {decoded.shape[0]} frames for {len(steps)} cached steps"
        )
    cropped = FramePreprocess(preprocess, output="uint8")(decoded)  # (S, 3, h, w) uint8
    images = normalize_frames(cropped.to(device), preprocess)  # (S, 3, h, w) float
    maps = spatial_feature_maps(backbone.to(device), images).cpu()  # (S, C, H', W')
    recomputed = maps.mean(dim=(2, 3))  # (S, C)
    warning = None
    if recomputed.shape[1] == features.shape[1]:
        difference = (recomputed - features[steps]).norm() / features[steps].norm().clamp_min(1e-8)
        if difference > FEATURE_MISMATCH_TOLERANCE:
            warning = (
                f"{rel_path}: the backbone's pooled maps differ from the cached features by "
                f"{float(difference):.1%} (relative); the backbone, its weights or the "
                "preprocessing are not the extraction's, so the overlay may not show what the "
                "model saw"
            )
    frame_size = (int(cropped.shape[2]), int(cropped.shape[3]))
    attended, unweighted = attention_overlay_maps(maps, attention[steps], frame_size)
    frames = cropped.permute(0, 2, 3, 1).numpy()  # (S, h, w, 3)
    timestamps = entry.timestamps.numpy()[steps]
    output_dir = Path(output_dir)
    name = safe_name(rel_path)
    shown = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), max_frames)).round())
    shown = shown.astype(np.int64)
    files = [
        draw_overlay_grid(
            frames[shown],
            attended[shown],
            unweighted[shown],
            output_dir / f"overlay_{name}.png",
            f"{rel_path}: first-layer attention over the frames",
            timestamps[shown],
            max_frames,
        )
    ]
    if gif:
        files.append(save_overlay_gif(frames, attended, output_dir / f"overlay_{name}.gif"))
    return files, warning


def run_attention(config: AttentionConfig) -> AttentionOutcome:
    """The whole ``video-eleatt attention`` command.

    Raises:
        AttentionError: unusable checkpoint, cache, subset or video names.
    """
    from video_eleatt.features import CacheError, open_features

    checkpoint = resolve_checkpoint(config.checkpoint)
    classifier, data = load_classifier(checkpoint, config.device)
    cache_path = config.cache or data.get("cache_dir")
    if not cache_path:
        raise AttentionError(f"{checkpoint} records no feature cache; pass --cache <cache dir>")
    try:
        cache = open_features(cache_path)
    except (CacheError, OSError) as err:
        raise AttentionError(
            f"cannot open the feature cache {cache_path}: {err}; pass --cache"
        ) from err
    videos, description = subset_videos(data, cache, config.subset)
    if config.max_videos is not None:
        chosen_set = set(config.videos)
        videos = [v for v in videos if v[0] in chosen_set] + [
            v for v in videos if v[0] not in chosen_set
        ][: max(0, config.max_videos - len(chosen_set))]
    chosen = list(config.videos) or default_videos(videos, config.num_videos)
    class_names = list(data.get("class_names") or cache.class_names or [])
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None
    output_dir = Path(
        config.output_dir or (run_dir or checkpoint.parent) / f"attention-{config.subset}"
    )
    outcome = analyse_attention(
        classifier,
        cache,
        videos,
        output_dir,
        chosen,
        class_names,
        f"{description}; checkpoint {checkpoint}",
        config.layer,
        config.top_k,
        config.batch_size,
        config.device,
    )
    if config.overlay and chosen:
        _overlays(classifier, cache, chosen, config, outcome)
    return outcome


def _overlays(
    classifier: nn.Module,
    cache: Any,
    chosen: Sequence[str],
    config: AttentionConfig,
    outcome: AttentionOutcome,
) -> None:
    from video_eleatt.features.backbones import build_backbone

    try:
        backbone_config = backbone_config_from_cache(cache.config, config.backbone_weights)
        backbone = build_backbone(backbone_config).model
        preprocess = preprocess_from_cache(cache.config)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        outcome.failures.update(dict.fromkeys(chosen, reason))
        return
    root = config.video_root or ((cache.config.get("dataset") or {}).get("root"))
    for rel_path in chosen:
        if not root:
            outcome.failures[rel_path] = "no video_root given and none recorded in the cache"
            continue
        try:
            files, warning = overlay_video(
                classifier,
                backbone,
                preprocess,
                cache,
                rel_path,
                Path(root) / rel_path,
                outcome.output_dir,
                config.max_frames,
                config.gif,
                config.layer,
                config.device,
            )
        except Exception as err:  # one unreadable video must not stop the others
            outcome.failures[rel_path] = f"{type(err).__name__}: {err}"
            continue
        outcome.files += files
        if warning:
            outcome.warnings.append(warning)
