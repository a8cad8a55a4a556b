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

The checkpoint and backbone are rebuilt by :mod:`video_eleatt.inference.checkpoints` and the
overlays drawn by :mod:`video_eleatt.inference.spatial`; what stays here knows comparison
runs (:func:`resolve_checkpoint`) and writes the analysis folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import nn

from video_eleatt.compare.attention import (
    AttentionStats,
    collect_attention,
    plot_attention_over_time,
    write_attention_stats,
)
from video_eleatt.compare.results import read_result
from video_eleatt.datasets import DatasetSpec, load_index
from video_eleatt.features import CacheError, open_features
from video_eleatt.features.backbones import build_backbone
from video_eleatt.fileio import safe_name
from video_eleatt.inference.checkpoints import (
    backbone_config_from_cache,
    load_classifier,
    preprocess_from_cache,
)
from video_eleatt.inference.errors import AttentionError
from video_eleatt.inference.spatial import OVERLAY_NOTE, overlay_video
from video_eleatt.training.errors import TrainingError
from video_eleatt.training.run import find_best_checkpoint


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
        result = read_result(path)  # a comparison run: the checkpoint its report tested
        tested = (result.extra.get("tested_checkpoint") if result else None) or ""
        if tested and Path(tested).is_file():
            return Path(tested)
        try:
            return find_best_checkpoint(path / "checkpoints")
        except TrainingError as err:
            raise AttentionError(f"no checkpoint for run directory {path}: {err}") from err
    raise AttentionError(
        f"checkpoint {str(path)!r} does not exist; give a .ckpt file or a run directory "
        "(e.g. <compare output>/runs/eleatt_gru/split-1/seed-0)"
    )


def subset_videos(data: dict, cache: Any, subset: str) -> tuple[list[tuple[str, int | None]], str]:
    """(rel_path, label) of the subset's videos that have features, and a description.

    Uses the dataset index of the checkpoint's split; when it cannot be read (dataset moved),
    falls back to every video of the cache and says so.
    """
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


def run_attention(config: AttentionConfig) -> AttentionOutcome:
    """The whole ``video-eleatt attention`` command.

    Raises:
        AttentionError: unusable checkpoint, cache, subset or video names.
    """
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
