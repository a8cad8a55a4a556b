"""Extraction: videos -> decode + preprocess (worker processes) -> backbone -> feature cache.

The main process runs the backbone; :class:`~video_eleatt.video.pool.DecodePool` workers
decode, sample and preprocess (resize + crop, uint8) ahead of it, several videos at a time.
Frame chunks from all videos go into one queue and the backbone always runs on batches of
exactly ``batch_size`` frames (the very last batch is padded), so a frame's features do not
depend on which other frames share its batch: a resumed or multi-process run writes the same
bytes as one uninterrupted run. Each video is written atomically as soon as its last frame is
through the backbone, then its manifest row is appended.

Resume: a rerun skips videos whose manifest row is "ok" and whose file is whole with the
recorded shape; everything else (never started, killed mid-way, failed when
``retry_failed``) is redone.

>>> summary = run_extraction(ExtractConfig(dataset=DatasetSpec("ucf101", "data/ucf101"),
...                                        backbone=BackboneConfig("resnet50")))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from video_eleatt.datasets import DatasetSpec
from video_eleatt.datasets._common import VIDEO_EXTENSIONS
from video_eleatt.features.backbones import (
    Backbone,
    BackboneConfig,
    build_backbone,
)
from video_eleatt.features.cache import (
    CONFIG_NAME,
    FEATURES_DIR,
    MANIFEST_NAME,
    TEMP_PATTERN,
    CacheError,
    ManifestWriter,
    cache_dir_name,
    compact_manifest,
    create_cache,
    decode_staleness,
    entry_is_complete,
    features_hash,
    read_config,
    read_manifest,
    write_entry,
    write_failure,
)
from video_eleatt.features.preprocess import FramePreprocess, normalize_frames
from video_eleatt.video.decode import DECODE_VERSION
from video_eleatt.video.sampling import SamplingConfig

PIPELINE_VERSION = "video_eleatt.features.extract/1"


def _default_sampling() -> SamplingConfig:
    return SamplingConfig(mode="fps", fps=8.0)


@dataclass
class ExtractConfig:
    """Everything an extraction run needs (the YAML of ``video-eleatt extract --config``).

    Input, one of: ``dataset`` (a DatasetSpec; every video of the dataset, labels from its
    index) or ``videos`` (a list file, one "path [label]" per line, paths relative to ``root``
    or the list's folder; or a folder, searched recursively for video files, unlabelled).

    Attributes:
        dataset: the dataset to extract (all its videos, whatever the split).
        videos: a list file or a folder of videos, when there is no dataset spec.
        root: folder the list file's paths are relative to (default: the list's folder).
        name: cache name prefix for ``videos`` input (default: the list/folder name).
        backbone: model name, library and weights.
        sampling: which frames of each video (mode "all", "fps", "uniform", "segments").
        batch_size: frames per backbone batch (every batch is full; the last is padded).
        num_workers: decode worker processes.
        timeout_s: wall-clock seconds one video may take to decode before its worker is
            killed and the video recorded as failed.
        chunk_size: frames per decoded chunk sent from a worker.
        dtype: storage dtype of the features ("float16" or "float32").
        precision: compute precision: "auto" (the fastest the hardware offers whose features
            pass the parity check: float16 autocast on CUDA, bfloat16 autocast on CPUs with
            native bfloat16 (AVX512-BF16/AMX), else float32), or "float32", "bfloat16" or
            "float16" (autocast) as given.
        parity_threshold: "auto" keeps reduced precision only where the smallest per-frame
            cosine similarity between its features and float32 NCHW features of the same
            frames is at least this (see :func:`parity_check`).
        parity_check: only run the parity check on frames of the first videos, print the
            report and exit (``video-eleatt extract ... --parity_check``).
        tune_malloc: stop glibc from returning large buffers to the OS after every forward
            pass (``mallopt``; the decode workers get ``MALLOC_MMAP_MAX_``): at batch 32 a
            resnet50 on CPU otherwise spends much of its time re-faulting activation memory.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        output_root: caches go to ``<output_root>/<dataset>_<backbone>_<hash8>``.
        cache_dir: an explicit cache directory instead (still refused on a config mismatch).
        strict: exit non-zero when any video failed.
        retry_failed: on a rerun, try videos that failed before again.
        allow_partial: keep the decodable prefix of a video with decode errors (its manifest
            row says ``partial`` with the frame counts) instead of failing it.
        num_processes: local processes to spread the videos over (each with its own decode
            workers and device); under ``torchrun`` the ranks come from the environment.
        threads: torch threads per process on CPU; 0 (default) divides this process's CPU
            cores among the local processes (2 cores, 2 processes: 1 thread each), so that
            several ranks on one CPU do not oversubscribe it.
        limit: extract only the first N videos (sorted by path): smoke tests.
        progress: show a progress bar.
    """

    dataset: DatasetSpec | None = None
    videos: str | None = None
    root: str | None = None
    name: str | None = None
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    sampling: SamplingConfig = field(default_factory=_default_sampling)
    batch_size: int = 32
    num_workers: int = 2
    timeout_s: float = 120.0
    chunk_size: int = 16
    dtype: Literal["float16", "float32"] = "float16"
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    parity_threshold: float = 0.999
    parity_check: bool = False
    tune_malloc: bool = True
    device: str = "auto"
    output_root: str = "features"
    cache_dir: str | None = None
    strict: bool = False
    retry_failed: bool = True
    allow_partial: bool = False
    num_processes: int = 1
    threads: int = 0
    limit: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class VideoTask:
    """One video to extract."""

    rel_path: str
    path: str
    label: int | None


@dataclass
class VideoSource:
    """The resolved input of a run."""

    name: str
    tasks: list[VideoTask]  # sorted by rel_path
    class_names: list[str] | None
    dataset: dict[str, Any] | None
    description: dict[str, Any]


@dataclass
class ExtractSummary:
    """What a run did (per rank, or summed over ranks)."""

    cache_dir: str
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)
    previously_failed: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def merge(self, other: ExtractSummary) -> None:
        self.ok += other.ok
        self.failed += other.failed
        self.skipped += other.skipped
        self.frames += other.frames
        self.seconds = max(self.seconds, other.seconds)
        self.failures.update(other.failures)
        self.previously_failed.update(other.previously_failed)
        self.settings = self.settings or other.settings

    def report(self) -> str:
        """The human-readable summary printed at the end of a run."""
        lines = [
            f"extraction summary: {self.ok} ok, {self.failed} failed, {self.skipped} skipped "
            f"(already done), {self.frames} frames in {self.seconds:.1f} s "
            f"({self.frames_per_second:.1f} frames/s)",
            f"cache: {self.cache_dir}",
        ]
        if self.settings:
            lines.append(f"settings: {describe_settings(self.settings)}")
        failures = {**self.previously_failed, **self.failures}
        if failures:
            lines.append(f"failed videos ({len(failures)}; reasons in {MANIFEST_NAME}):")
            for rel_path, reason in list(sorted(failures.items()))[:20]:
                lines.append(f"  {rel_path}: {reason}")
            if len(failures) > 20:
                lines.append(f"  ... and {len(failures) - 20} more")
        return "\n".join(lines)


# --------------------------------------------------------------------------- inputs


def resolve_source(config: ExtractConfig) -> VideoSource:
    """The videos of a run: from the dataset index, a list file or a folder.

    Raises:
        ValueError: when neither or both of ``dataset`` and ``videos`` are given, or the list
            file or folder does not exist.
    """
    if (config.dataset is None) == (config.videos is None):
        raise ValueError(
            "give exactly one input: `dataset: {name: ..., root: ...}` or `videos: <list file "
            f"or folder>` (got dataset={config.dataset!r}, videos={config.videos!r})"
        )
    if config.dataset is not None:
        from video_eleatt.datasets import load_index

        spec = config.dataset
        if not isinstance(spec, DatasetSpec):
            spec = DatasetSpec.from_dict(spec)
        index = load_index(spec)
        tasks = [
            VideoTask(record.rel_path, str(index.path(record)), record.label)
            for record in index.records
        ]
        return VideoSource(
            name=spec.name,
            tasks=sorted(tasks, key=lambda task: task.rel_path),
            class_names=list(index.class_names),
            dataset=spec.to_dict(),
            description={"kind": "dataset", "num_videos": len(tasks)},
        )
    source = Path(config.videos)  # type: ignore[arg-type]
    if source.is_dir():
        root = source
        tasks = [
            VideoTask(path.relative_to(root).as_posix(), str(path), None)
            for path in sorted(root.rglob("*"))
            if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file()
        ]
        class_names = None
        kind = "folder"
    elif source.is_file():
        root = Path(config.root) if config.root else source.parent
        tasks, class_names = _read_video_list(source, root)
        kind = "list"
    else:
        raise ValueError(
            f"videos={str(source)!r} is neither a list file nor a folder; expected a text file "
            "with one 'relative/path.mp4 [label]' per line, or a folder of videos"
        )
    if not tasks:
        raise ValueError(f"no videos found in {source}")
    return VideoSource(
        name=config.name or source.stem,
        tasks=sorted(tasks, key=lambda task: task.rel_path),
        class_names=class_names,
        dataset=None,
        description={"kind": kind, "path": str(source), "root": str(root)},
    )


def _read_video_list(list_file: Path, root: Path) -> tuple[list[VideoTask], list[str] | None]:
    tasks = []
    for number, raw in enumerate(list_file.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.rsplit(maxsplit=1)
        label = None
        if len(tokens) == 2 and tokens[1].lstrip("-").isdigit():
            line, label = tokens[0], int(tokens[1])
        path = Path(line)
        if path.is_absolute():
            try:
                rel_path = path.relative_to(root.resolve()).as_posix()
            except ValueError as err:
                raise ValueError(
                    f"{list_file}:{number}: {line} is not under root {root}; list paths relative "
                    "to root, or set root"
                ) from err
        else:
            rel_path = Path(line).as_posix()
        tasks.append(VideoTask(rel_path, str(root / rel_path), label))
    labels = [task.label for task in tasks if task.label is not None]
    class_names = [str(i) for i in range(max(labels) + 1)] if labels else None
    return tasks, class_names


# --------------------------------------------------------------------------- identity


def cpu_has_native_bfloat16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16 on x86, BF16
    on Arm); elsewhere oneDNN emulates it and bfloat16 autocast is slower than float32."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def candidate_precision(device: torch.device) -> str:
    """The fastest precision ``precision: auto`` tries on ``device`` before the parity check."""
    if device.type == "cuda":
        return "float16"
    if device.type == "cpu" and cpu_has_native_bfloat16():
        return "bfloat16"
    return "float32"


def resolve_precision(
    config: ExtractConfig, device: torch.device, backbone: Backbone | None = None
) -> str:
    """The compute precision used ("float32", "float16" or "bfloat16").

    An explicit ``config.precision`` is used as given. ``auto`` takes
    :func:`candidate_precision` and, given the ``backbone`` (with its weights), keeps it only
    when :func:`select_precision`'s parity check passes; without a backbone (naming a cache
    without loading weights) it returns the candidate.
    """
    if config.precision != "auto":
        return config.precision
    candidate = candidate_precision(device)
    if backbone is None or candidate == "float32":
        return candidate
    return select_precision(backbone, device, candidate, config.parity_threshold)[0]


@dataclass
class ParityReport:
    """Fast-path features vs float32 NCHW features of the same frames.

    Attributes:
        precision: the fast path's precision.
        num_frames: frames compared.
        min_cosine: smallest per-frame cosine similarity.
        mean_cosine: mean per-frame cosine similarity.
        max_relative_error: largest per-frame ``|fast - ref| / |ref|`` (L2 norms).
        mean_relative_error: mean of the same.
        threshold: the ``min_cosine`` a reduced precision needs to be used by default.
    """

    precision: str
    num_frames: int
    min_cosine: float
    mean_cosine: float
    max_relative_error: float
    mean_relative_error: float
    threshold: float

    @property
    def passed(self) -> bool:
        """True when ``min_cosine >= threshold``."""
        return self.min_cosine >= self.threshold

    def describe(self) -> str:
        """One line for the run's output."""
        verdict = "passes" if self.passed else "FAILS"
        return (
            f"{self.precision} vs float32 NCHW on {self.num_frames} frames: cosine min "
            f"{self.min_cosine:.6f} mean {self.mean_cosine:.6f}, relative error max "
            f"{self.max_relative_error:.2e} mean {self.mean_relative_error:.2e} ({verdict} "
            f"min cosine >= {self.threshold:g})"
        )


def reference_features(
    backbone: Backbone, frames: torch.Tensor, batch_size: int = 32
) -> torch.Tensor:
    """Float32 NCHW features of preprocessed uint8 frames (B, 3, h, w) -> (B, D), no autocast.

    The plain path every speed-up is checked against (a copy of the model, default memory
    format, ``torch.no_grad``).
    """
    import copy

    model = copy.deepcopy(backbone.model).float().to(memory_format=torch.contiguous_format)
    model = model.cpu().eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            images = normalize_frames(frames[start : start + batch_size], backbone.preprocess)
            outputs.append(model(images.contiguous()).float())  # (b, D)
    return torch.cat(outputs)


def parity_check(
    backbone: Backbone,
    frames: torch.Tensor,
    device: torch.device,
    precision: str,
    threshold: float = 0.999,
    batch_size: int = 32,
) -> ParityReport:
    """Compares the fast path (:class:`FeatureRunner`) with float32 NCHW on the same frames.

    Args:
        backbone: the backbone, with the weights that will be used.
        frames: uint8 (N, 3, h, w) preprocessed frames (resized and cropped).
        device: where the fast path runs.
        precision: the fast path's precision.
        threshold: the smallest per-frame cosine similarity that passes.
        batch_size: frames per forward pass (both paths).

    Returns:
        Per-frame cosine similarity (min, mean) and relative error of the fast path.

    >>> parity_check(backbone, frames, torch.device("cpu"), "bfloat16").passed  # doctest: +SKIP
    True
    """
    reference = reference_features(backbone, frames, batch_size).double()  # (N, D)
    runner = FeatureRunner(backbone, device, precision)
    fast = torch.cat(
        [runner(frames[start : start + batch_size]) for start in range(0, len(frames), batch_size)]
    ).double()  # (N, D)
    cosine = torch.nn.functional.cosine_similarity(fast, reference, dim=1, eps=1e-12)
    relative = (fast - reference).norm(dim=1) / reference.norm(dim=1).clamp_min(1e-12)
    return ParityReport(
        precision=precision,
        num_frames=len(frames),
        min_cosine=float(cosine.min()),
        mean_cosine=float(cosine.mean()),
        max_relative_error=float(relative.max()),
        mean_relative_error=float(relative.mean()),
        threshold=threshold,
    )


def probe_frames(preprocess: Any, num_frames: int = 16, seed: int = 0) -> torch.Tensor:
    """Deterministic natural-looking test frames, uint8 (N, 3, h, w) at the crop size.

    Smooth colour gradients, a few solid shapes, and mild noise: the same on every machine
    and rank, so ``precision: auto`` decides the same everywhere for the same weights.
    """
    height, width = preprocess.crop_size
    generator = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height).view(1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, width)
    frames = []
    for _ in range(num_frames):
        phase = torch.rand(3, 1, 1, generator=generator) * 6.28
        image = 0.5 + 0.35 * torch.sin(
            phase + 4 * x + 3 * y * torch.rand(3, 1, 1, generator=generator)
        )
        for _shape in range(3):
            top, left = (torch.rand(2, generator=generator) * 0.7).tolist()
            size = 0.1 + 0.2 * float(torch.rand(1, generator=generator))
            colour = torch.rand(3, 1, 1, generator=generator)
            rows = slice(int(top * height), int((top + size) * height))
            columns = slice(int(left * width), int((left + size) * width))
            image[:, rows, columns] = colour
        image = image + 0.03 * torch.randn(3, height, width, generator=generator)
        frames.append((image.clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.stack(frames)  # (N, 3, h, w)


_PRECISION_DECISIONS: dict[tuple, tuple[str, ParityReport]] = {}


def select_precision(
    backbone: Backbone, device: torch.device, candidate: str, threshold: float = 0.999
) -> tuple[str, ParityReport]:
    """``candidate`` if its parity check on :func:`probe_frames` passes, else "float32".

    Decided once per process for the same backbone identity, device and threshold.

    Returns:
        The precision to use and the parity report behind the decision.
    """
    key = (
        json.dumps(backbone.identity, sort_keys=True, default=str),
        str(device),
        candidate,
        threshold,
    )
    if key not in _PRECISION_DECISIONS:
        report = parity_check(
            backbone, probe_frames(backbone.preprocess), device, candidate, threshold
        )
        _PRECISION_DECISIONS[key] = (candidate if report.passed else "float32", report)
    return _PRECISION_DECISIONS[key]


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 36)}


def tune_malloc() -> bool:
    """Keep large buffers in the heap between forward passes (glibc only).

    By default glibc serves every allocation above 32 MB-ish with a fresh ``mmap`` and gives
    it back on ``free``, so each forward pass at a large batch re-faults its activation
    memory page by page (resnet50, batch 32, 2 CPU cores: about 32 -> 13 frames/s). This sets
    ``M_MMAP_MAX = 0`` and a high ``M_TRIM_THRESHOLD`` for this process (memory is then held
    at the peak working set and reused), and the same through ``MALLOC_*`` environment
    variables for processes started afterwards (the decode workers' fork server).

    Returns:
        True when glibc accepted the settings.
    """
    import ctypes

    os.environ.update({k: os.environ.get(k, v) for k, v in MALLOC_ENV.items()})
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False


def cpu_threads(requested: int, local_processes: int) -> int:
    """Torch threads for one extraction process on CPU: ``requested``, or with 0 this
    process's cores divided among the ``local_processes`` ranks of this machine (at least 1).
    """
    if requested < 0:
        raise ValueError(f"threads must be >= 0 (0 = automatic); got {requested}")
    if requested:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, local_processes))


def describe_settings(settings: dict[str, Any]) -> str:
    """The settings line of a run's output."""
    folded = settings.get("folded_batchnorms")
    parts = [
        f"{settings['precision']} on {settings['device']}",
        "channels_last",
        "inference_mode",
        *([f"{folded} BatchNorms folded into their convolutions"] if folded else []),
        f"batch {settings['batch_size']}",
        *([f"{settings['threads']} threads"] if settings.get("threads") else []),
        f"{settings['num_workers']} decode workers (decode + resize + crop overlapped)",
        f"malloc tuned: {'yes' if settings.get('malloc_tuned') else 'no'}",
    ]
    text = ", ".join(parts)
    if settings.get("parity"):
        text += f"; parity: {settings['parity']}"
    return text


def resolve_device(config: ExtractConfig, local_rank: int = 0) -> torch.device:
    """The device of this process: ``auto`` picks CUDA (by local rank) when available."""
    if config.device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(config.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return device


def features_identity(config: ExtractConfig, backbone: Backbone, precision: str) -> dict[str, Any]:
    """Everything that changes the features; its hash names the cache directory."""
    sampling = config.sampling
    return {
        "pipeline": PIPELINE_VERSION,
        "decode": DECODE_VERSION,
        "backbone": backbone.identity,
        "feature_dim": backbone.feature_dim,
        "preprocess": backbone.preprocess.to_dict(),
        "sampling": sampling.to_dict() if hasattr(sampling, "to_dict") else asdict(sampling),
        "dtype": config.dtype,
        "precision": precision,
    }


def cache_config(
    config: ExtractConfig, backbone: Backbone, source: VideoSource, precision: str
) -> dict[str, Any]:
    """The config.json of the cache a run writes."""
    identity = features_identity(config, backbone, precision)
    return {
        "features": identity,
        "features_hash": features_hash(identity),
        "feature_dim": backbone.feature_dim,
        "class_names": source.class_names,
        "dataset": source.dataset,
        "source": source.description,
        "untrained": backbone.untrained,
        "note": (
            "UNTRAINED: random backbone weights; the features carry no learned information"
            if backbone.untrained
            else None
        ),
    }


def cache_dir_for(config: ExtractConfig, source_name: str, identity: dict[str, Any]) -> Path:
    """``cache_dir`` if set, else ``<output_root>/<source>_<backbone>_<hash8>``."""
    if config.cache_dir:
        return Path(config.cache_dir)
    return Path(config.output_root) / cache_dir_name(
        source_name, config.backbone.name, features_hash(identity)
    )


def resolve_cache_dir(config: ExtractConfig | str | Path, existing: bool = False) -> Path:
    """The cache directory an extract config writes to, without reading any video.

    Builds the backbone architecture (no weights download) to learn its feature size and
    preprocessing. Accepts an :class:`ExtractConfig` or the path of its YAML.

    Args:
        config: the extract config or its YAML.
        existing: look for a cache that exists: with ``precision: auto`` the directory
            depends on the machine (float16 autocast on CUDA, float32 on CPU), so a cache made
            on another kind of machine is found by its identity without the precision when the
            exact directory is absent and exactly one such cache exists.

    Raises:
        CacheError: with ``existing``, when several caches match but not exactly.
    """
    if not isinstance(config, ExtractConfig):
        from video_eleatt.features.cli import parse_extract_config

        config = parse_extract_config(["--config", str(config)])
    if config.cache_dir:
        return Path(config.cache_dir)
    backbone = build_backbone(config.backbone, load_weights=False)
    precision = resolve_precision(config, resolve_device(config))
    if config.dataset is not None:
        name = getattr(config.dataset, "name", None) or dict(config.dataset)["name"]
    else:
        name = config.name or Path(config.videos or "videos").stem
    identity = features_identity(config, backbone, precision)
    cache_dir = cache_dir_for(config, name, identity)
    if not existing or cache_dir.exists():
        return cache_dir
    stale = caches_differing_only_in(cache_dir, identity, "decode")
    if stale:
        raise CacheError(
            f"{stale[0]} was made from this config {decode_staleness(read_config(stale[0]))}. "
            f"Re-extract: `video-eleatt extract --config <this config>` writes {cache_dir}"
        )
    if config.precision != "auto":
        return cache_dir
    matches = caches_differing_only_in(cache_dir, identity, "precision")
    if len(matches) > 1:
        raise CacheError(
            f"{cache_dir} does not exist and several caches differ from it only in precision: "
            f"{[str(m) for m in matches]}; set `precision:` in the config to choose one"
        )
    return matches[0] if matches else cache_dir


def caches_differing_only_in(cache_dir: Path, identity: dict[str, Any], key: str) -> list[Path]:
    """Caches beside ``cache_dir`` (same name prefix) whose identity equals ``identity`` in
    everything but ``key`` (e.g. "precision", or "decode": made by an older decode path)."""
    prefix = cache_dir.name.rsplit("_", 1)[0] + "_"
    wanted = {name: value for name, value in identity.items() if name != key}
    matches = []
    for candidate in sorted(cache_dir.parent.glob(prefix + "*")):
        if candidate == cache_dir:
            continue
        try:
            features = json.loads((candidate / CONFIG_NAME).read_text())["features"]
        except (OSError, ValueError, KeyError):
            continue
        if {name: value for name, value in features.items() if name != key} == wanted:
            matches.append(candidate)
    return matches


# --------------------------------------------------------------------------- batching


@dataclass
class _Pending:
    """A video whose frames are on their way through the backbone."""

    task: VideoTask
    info: Any
    frame_indices: np.ndarray
    timestamps: np.ndarray
    features: np.ndarray  # (K, D) storage dtype, filled as batches complete
    remaining: int
    decoded: bool = False
    # the batcher's key for this attempt: a second VideoStarted (the worker decodes the video
    # again) makes a new attempt, and batches still holding the old one's frames are ignored
    token: tuple[str, int] = ("", 0)


class FrameBatcher:
    """Gathers frame chunks of many videos into full backbone batches.

    ``add`` queues (key, start, frames); ``ready`` yields batches of exactly ``batch_size``
    frames as (frames (B, 3, h, w), [(key, start_in_video, start_in_batch, n), ...]);
    ``flush`` yields the last partial batch padded to ``batch_size`` with zeros.
    """

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._chunks: list[tuple[Any, int, torch.Tensor]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: Any, start: int, frames: torch.Tensor) -> None:
        if len(frames):
            self._chunks.append((key, start, frames))
            self._count += len(frames)

    def drop(self, key: Any) -> None:
        """Forgets queued frames of a video (it failed)."""
        self._chunks = [chunk for chunk in self._chunks if chunk[0] != key]
        self._count = sum(len(chunk[2]) for chunk in self._chunks)

    def _take(self, size: int) -> tuple[torch.Tensor, list[tuple[Any, int, int, int]]]:
        parts, places, filled = [], [], 0
        while filled < size and self._chunks:
            key, start, frames = self._chunks[0]
            n = min(len(frames), size - filled)
            parts.append(frames[:n])
            places.append((key, start, filled, n))
            if n == len(frames):
                self._chunks.pop(0)
            else:
                self._chunks[0] = (key, start + n, frames[n:])
            filled += n
        self._count -= filled
        if filled < size:  # pad: the backbone always sees the same batch size
            pad = torch.zeros((size - filled, *parts[0].shape[1:]), dtype=parts[0].dtype)
            parts.append(pad)
        return torch.cat(parts), places

    def ready(self) -> Iterator[tuple[torch.Tensor, list[tuple[Any, int, int, int]]]]:
        while self._count >= self.batch_size:
            yield self._take(self.batch_size)

    def flush(self) -> Iterator[tuple[torch.Tensor, list[tuple[Any, int, int, int]]]]:
        yield from self.ready()
        if self._count:
            yield self._take(self.batch_size)


class FeatureRunner:
    """Runs the backbone on uint8 batches: normalise on the device, channels_last, autocast.

    ``launch`` queues a batch and returns its outputs still on the device (on CUDA the work is
    asynchronous); ``collect`` brings them to the CPU. Extraction launches batch i+1 before
    collecting batch i, so a GPU is never idle while the CPU gathers the next batch.
    """

    def __init__(self, backbone: Backbone, device: torch.device, precision: str):
        self.backbone = backbone
        self.device = device
        self.precision = precision
        model, self.folded_batchnorms = backbone.inference_model()
        self.model = model.to(device, memory_format=torch.channels_last).eval()
        self._checked = False

    def launch(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) uint8 -> (B, D) outputs on the device (not synchronised)."""
        with torch.inference_mode():
            if self.device.type == "cuda":
                frames = frames.pin_memory().to(self.device, non_blocking=True)
            images = normalize_frames(frames.to(self.device), self.backbone.preprocess)
            images = images.contiguous(memory_format=torch.channels_last)  # (B, 3, h, w)
            if self.precision == "float32":
                return self.model(images)
            dtype = torch.float16 if self.precision == "float16" else torch.bfloat16
            with torch.autocast(device_type=self.device.type, dtype=dtype):
                return self.model(images)

    def collect(self, outputs: torch.Tensor) -> torch.Tensor:
        """Device outputs of ``launch`` -> (B, D) float32 on the CPU (checked once)."""
        outputs = outputs.float().cpu()  # (B, D)
        if not self._checked:
            if outputs.ndim != 2 or outputs.shape[1] != self.backbone.feature_dim:
                raise RuntimeError(
                    f"backbone {self.backbone.identity['name']} returned {tuple(outputs.shape)}; "
                    f"expected (batch, {self.backbone.feature_dim}). It must output pooled "
                    "features (classifier removed)."
                )
            self._checked = True
        return outputs

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) uint8 -> (B, D) float32 on the CPU."""
        return self.collect(self.launch(frames))


# --------------------------------------------------------------------------- the run


def decode_record(info: Any) -> dict[str, Any]:
    """How a video was decoded, for its feature file and manifest row: where the timestamps
    came from, the stored rotation (frames are upright) and, for a partial video, the counts."""
    record: dict[str, Any] = {"timestamps": info.timestamps_source, "rotation": info.rotation}
    if info.partial:
        record["partial"] = {"frames_kept": info.num_frames, "frames_in_file": info.frames_in_file}
    return record


def _event_name(event: Any) -> str:
    return type(event).__name__


def extract_videos(
    tasks: list[VideoTask],
    config: ExtractConfig,
    runner: FeatureRunner,
    cache_dir: Path,
    manifest: ManifestWriter,
    summary: ExtractSummary,
    progress: Any = None,
) -> None:
    """Extracts ``tasks`` into ``cache_dir``: decode pool -> batches -> backbone -> entries."""
    from video_eleatt.video.pool import DecodePool, DecodeTask

    by_key = {task.rel_path: task for task in tasks}
    pending: dict[str, _Pending] = {}
    batcher = FrameBatcher(config.batch_size)
    storage = np.float16 if config.dtype == "float16" else np.float32
    feature_dim = runner.backbone.feature_dim
    transform = FramePreprocess(runner.backbone.preprocess, output="uint8")

    def fail(key: str, reason: str) -> None:
        video = pending.pop(key, None)
        if video is not None:
            batcher.drop(video.token)
        write_failure(cache_dir, key, by_key[key].label, reason, manifest=manifest)
        summary.failed += 1
        summary.failures[key] = reason
        if progress is not None:
            progress.update(1)
            progress.set_postfix(failed=summary.failed, refresh=False)

    def finish(key: str) -> None:
        video = pending.pop(key)
        info = video.info
        write_entry(
            cache_dir,
            key,
            video.features,
            video.frame_indices,
            video.timestamps,
            fps=info.fps,
            num_frames=info.num_frames,
            duration=info.duration,
            label=video.task.label,
            dtype=config.dtype,
            manifest=manifest,
            decode=decode_record(info),
        )
        summary.ok += 1
        summary.frames += len(video.frame_indices)
        if progress is not None:
            progress.update(1)

    in_flight: list[tuple[torch.Tensor, list[tuple[Any, int, int, int]]]] = []

    def scatter(device_outputs: torch.Tensor, places: list[tuple[Any, int, int, int]]) -> None:
        outputs = runner.collect(device_outputs).numpy().astype(storage, copy=False)  # (B, D)
        for token, start, offset, n in places:
            key = token[0]
            video = pending.get(key)
            if video is None or video.token != token:  # failed or restarted since queued
                continue
            video.features[start : start + n] = outputs[offset : offset + n]
            video.remaining -= n
            if video.remaining == 0 and video.decoded:
                finish(key)
        if progress is not None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress.set_postfix(
                frames_s=f"{(summary.frames + _frames_done()) / elapsed:.1f}",
                failed=summary.failed,
                refresh=False,
            )

    def run_batch(frames: torch.Tensor, places: list[tuple[Any, int, int, int]]) -> None:
        in_flight.append((runner.launch(frames), places))
        if len(in_flight) > 1:  # batch i+1 is queued: now wait for batch i
            scatter(*in_flight.pop(0))

    def _frames_done() -> int:
        return sum(len(v.frame_indices) - v.remaining for v in pending.values())

    started = time.perf_counter()
    decode_tasks = (DecodeTask(task.rel_path, task.path, config.sampling) for task in tasks)
    with DecodePool(
        config.num_workers,
        config.timeout_s,
        transform=transform,
        chunk_size=config.chunk_size,
        allow_partial=config.allow_partial,
    ) as pool:
        for event in pool.imap(decode_tasks):
            name = _event_name(event)
            if name == "VideoStarted":
                frame_indices = np.asarray(event.frame_indices, dtype=np.int64)
                timestamps = np.asarray(event.timestamps, dtype=np.float64)
                if len(frame_indices) == 0:
                    fail(event.key, "no frames sampled")
                    continue
                previous = pending.pop(event.key, None)
                attempt = 0
                if previous is not None:  # decoded again from the decoder's own frame table
                    batcher.drop(previous.token)
                    attempt = previous.token[1] + 1
                pending[event.key] = _Pending(
                    task=by_key[event.key],
                    info=event.info,
                    frame_indices=frame_indices,
                    timestamps=timestamps,
                    features=np.zeros((len(frame_indices), feature_dim), storage),
                    remaining=len(frame_indices),
                    token=(event.key, attempt),
                )
            elif name == "FrameChunk":
                if event.key in pending:
                    token = pending[event.key].token
                    batcher.add(token, int(event.start), torch.as_tensor(event.frames))
                    for frames, places in batcher.ready():
                        run_batch(frames, places)
            elif name == "VideoFinished":
                video = pending.get(event.key)
                if video is None:
                    continue
                video.decoded = True
                if video.remaining == 0:
                    finish(event.key)
            elif name == "VideoFailed":
                fail(event.key, str(event.reason))
        for frames, places in batcher.flush():
            run_batch(frames, places)
        while in_flight:
            scatter(*in_flight.pop(0))
    for key in list(pending):  # decoded fewer frames than announced
        fail(
            key,
            f"decoder delivered {len(pending[key].frame_indices) - pending[key].remaining}"
            f" of {len(pending[key].frame_indices)} frames",
        )
    summary.seconds = time.perf_counter() - started


def warm_decode_workers() -> None:
    """Starts the decode pool's fork server now, so it imports torch and PyAV while the
    backbone loads (the pool would otherwise start it, and wait for it, on the first video).

    The preload list is the pool's own plus this package's transform module.
    """
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["torch", "av", "video_eleatt.video.pool", FramePreprocess.__module__]
    )
    forkserver.ensure_running()


def _clean_temp_files(cache_dir: Path) -> None:
    """Removes temporary files of writes interrupted by a kill (no writer is running)."""
    for path in [*(cache_dir / FEATURES_DIR).rglob(".*.tmp*"), *cache_dir.glob(".*.tmp*")]:
        if TEMP_PATTERN.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)


def run_extraction(config: ExtractConfig, rank: int = 0, world_size: int = 1) -> ExtractSummary:
    """One rank's share of an extraction (the whole run when ``world_size`` is 1).

    Rank 0 creates the cache and, at the end, merges the ranks' manifest parts; with several
    ranks, ``torch.distributed`` (already initialised) provides the barriers.

    Returns:
        This rank's summary, or on rank 0 of several, the sum over ranks.

    Raises:
        CacheError: the cache directory holds another configuration.
        CacheWriteError: the cache cannot be written (names the path).
    """
    from video_eleatt.features import distributed

    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = resolve_device(config, local_rank)
    threads = None
    if device.type == "cpu":
        threads = cpu_threads(config.threads, int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
        torch.set_num_threads(threads)
    source = resolve_source(config)
    tasks = source.tasks[: config.limit] if config.limit else source.tasks
    malloc_tuned = tune_malloc() if config.tune_malloc else False
    warm_decode_workers()
    backbone = build_backbone(config.backbone)
    if backbone.untrained and rank == 0:
        from video_eleatt.features.backbones import untrained_banner

        print(untrained_banner(config.backbone.name), file=sys.stderr, flush=True)
    precision = resolve_precision(config, device, backbone)
    parity = None
    if config.precision == "auto" and candidate_precision(device) != "float32":
        parity = select_precision(
            backbone, device, candidate_precision(device), config.parity_threshold
        )[1]
    settings = {
        "precision": precision,
        "device": str(device),
        "batch_size": config.batch_size,
        "threads": threads,
        "num_workers": config.num_workers,
        "malloc_tuned": malloc_tuned,
        "parity": parity.describe() if parity is not None else None,
        "reduced_precision_refused": parity is not None and not parity.passed,
    }
    cache_config_dict = cache_config(config, backbone, source, precision)
    cache_dir = cache_dir_for(config, source.name, cache_config_dict["features"])
    if rank == 0:
        for stale in caches_differing_only_in(cache_dir, cache_config_dict["features"], "decode"):
            print(
                f"note: {stale} holds this config's features, made "
                f"{decode_staleness(read_config(stale))}; this run extracts them again into "
                f"{cache_dir} (delete the old cache when you no longer need it)",
                file=sys.stderr,
                flush=True,
            )
        create_cache(cache_dir, cache_config_dict)
        _clean_temp_files(cache_dir)
        compact_manifest(cache_dir)  # folds parts a killed multi-process run left
    distributed.barrier(world_size)
    if rank != 0:
        create_cache(cache_dir, cache_config_dict)  # checks; rank 0 has written it

    manifest_rows = read_manifest(cache_dir)
    summary = ExtractSummary(cache_dir=str(cache_dir), settings=settings)
    todo = []
    for task in distributed.shard(tasks, rank, world_size):
        row = manifest_rows.get(task.rel_path)
        if entry_is_complete(cache_dir, row):
            summary.skipped += 1
        elif row and row.get("status") == "failed" and not config.retry_failed:
            summary.skipped += 1
            summary.previously_failed[task.rel_path] = str(row.get("error"))
        else:
            todo.append(task)

    manifest_name = MANIFEST_NAME if world_size == 1 else f"manifest.rank{rank}.jsonl"
    runner = FeatureRunner(backbone, device, precision)
    settings["folded_batchnorms"] = runner.folded_batchnorms
    show = config.progress and rank == 0
    progress = None
    if show:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(todo), unit="video", desc=f"extract {source.name}", leave=True)
        print(
            f"extracting {len(todo)} videos ({summary.skipped} already done) with "
            f"{backbone.identity['name']} ({backbone.feature_dim}-d, {precision} on {device}) "
            f"into {cache_dir}",
            file=sys.stderr,
            flush=True,
        )
    if rank == 0 and (show or settings["reduced_precision_refused"]):
        print(f"settings: {describe_settings(settings)}", file=sys.stderr, flush=True)
    try:
        with ManifestWriter(cache_dir / manifest_name) as manifest:
            if todo:
                extract_videos(todo, config, runner, cache_dir, manifest, summary, progress)
    finally:
        if progress is not None:
            progress.close()
    summaries = distributed.gather_objects(summary, world_size)
    if rank == 0:
        total = ExtractSummary(cache_dir=str(cache_dir), settings=settings)
        for part in summaries:
            total.merge(part)
        compact_manifest(cache_dir)
        _clean_temp_files(cache_dir)
        summary = total
    distributed.barrier(world_size)
    return summary


def run_parity_check(config: ExtractConfig, max_frames: int = 32) -> ParityReport:
    """The parity check of ``config``'s fast path on frames of its first videos.

    Decodes up to ``max_frames`` frames (the config's sampling, spread over the first videos
    that decode), preprocesses them as extraction does, and compares the fast path at the
    precision the run would try (the configured one, or ``auto``'s candidate) with float32
    NCHW. Used by ``video-eleatt extract ... --parity_check``.

    Raises:
        ValueError: no video of the source could be decoded.
    """
    from video_eleatt.video.decode import VideoDecodeError, read_frames
    from video_eleatt.video.sampling import sample_frame_indices

    device = resolve_device(config)
    backbone = build_backbone(config.backbone)
    precision = candidate_precision(device) if config.precision == "auto" else config.precision
    transform = FramePreprocess(backbone.preprocess, output="uint8")
    chunks, count = [], 0
    for task in resolve_source(config).tasks:
        wanted = max(1, min(8, max_frames - count))

        def pick(info, timestamps, wanted=wanted):
            indices = sample_frame_indices(info.num_frames, info.fps, config.sampling, timestamps)
            return np.unique(indices[np.linspace(0, len(indices) - 1, wanted).round().astype(int)])

        try:
            _, _, _, frames = read_frames(task.path, pick)
        except (VideoDecodeError, ValueError):
            continue
        chunks.append(transform(frames))  # (n, 3, h, w) uint8
        count += len(frames)
        if count >= max_frames:
            break
    if not chunks:
        raise ValueError(f"parity check: no video of {config.videos or config.dataset} decoded")
    return parity_check(backbone, torch.cat(chunks), device, precision, config.parity_threshold)


def failed_in_cache(cache_dir: str | Path, rel_paths: Iterable[str]) -> dict[str, str]:
    """rel_path -> error of the given videos whose latest manifest row is "failed"."""
    manifest = read_manifest(cache_dir)
    return {
        key: str(manifest[key].get("error"))
        for key in rel_paths
        if key in manifest and manifest[key].get("status") == "failed"
    }


__all__ = [
    "CacheError",
    "ExtractConfig",
    "ExtractSummary",
    "FeatureRunner",
    "FrameBatcher",
    "ParityReport",
    "VideoTask",
    "extract_videos",
    "parity_check",
    "resolve_cache_dir",
    "resolve_source",
    "run_extraction",
    "run_parity_check",
    "select_precision",
]
