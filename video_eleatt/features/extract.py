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
from video_eleatt.features.backbones import Backbone, BackboneConfig, build_backbone
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
    entry_is_complete,
    features_hash,
    read_manifest,
    write_entry,
    write_failure,
)
from video_eleatt.features.preprocess import FramePreprocess, normalize_frames
from video_eleatt.video.sampling import SamplingConfig

PIPELINE_VERSION = "video_eleatt.features.extract/1"
VIDEO_EXTENSIONS = (
    ".mp4",
    ".avi",
    ".mkv",
    ".webm",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".3gp",
    ".ogv",
)


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
        precision: compute precision: "auto" (float16 autocast on CUDA, float32 on CPU),
            "float32", "bfloat16" or "float16" (autocast).
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        output_root: caches go to ``<output_root>/<dataset>_<backbone>_<hash8>``.
        cache_dir: an explicit cache directory instead (still refused on a config mismatch).
        strict: exit non-zero when any video failed.
        retry_failed: on a rerun, try videos that failed before again.
        num_processes: local processes to spread the videos over (each with its own decode
            workers and device); under ``torchrun`` the ranks come from the environment.
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
    device: str = "auto"
    output_root: str = "features"
    cache_dir: str | None = None
    strict: bool = False
    retry_failed: bool = True
    num_processes: int = 1
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

    def report(self) -> str:
        """The human-readable summary printed at the end of a run."""
        lines = [
            f"extraction summary: {self.ok} ok, {self.failed} failed, {self.skipped} skipped "
            f"(already done), {self.frames} frames in {self.seconds:.1f} s "
            f"({self.frames_per_second:.1f} frames/s)",
            f"cache: {self.cache_dir}",
        ]
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


def resolve_precision(config: ExtractConfig, device: torch.device) -> str:
    """The compute precision actually used ("float32", "float16" or "bfloat16")."""
    if config.precision != "auto":
        return config.precision
    return "float16" if device.type == "cuda" else "float32"


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
    if not existing or cache_dir.exists() or config.precision != "auto":
        return cache_dir
    prefix = cache_dir.name.rsplit("_", 1)[0] + "_"
    wanted = {key: value for key, value in identity.items() if key != "precision"}
    matches = []
    for candidate in sorted(cache_dir.parent.glob(prefix + "*")):
        try:
            features = json.loads((candidate / CONFIG_NAME).read_text())["features"]
        except (OSError, ValueError, KeyError):
            continue
        if {key: value for key, value in features.items() if key != "precision"} == wanted:
            matches.append(candidate)
    if len(matches) > 1:
        raise CacheError(
            f"{cache_dir} does not exist and several caches differ from it only in precision: "
            f"{[str(m) for m in matches]}; set `precision:` in the config to choose one"
        )
    return matches[0] if matches else cache_dir


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


class FrameBatcher:
    """Gathers frame chunks of many videos into full backbone batches.

    ``add`` queues (key, start, frames); ``ready`` yields batches of exactly ``batch_size``
    frames as (frames (B, 3, h, w), [(key, start_in_video, start_in_batch, n), ...]);
    ``flush`` yields the last partial batch padded to ``batch_size`` with zeros.
    """

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._chunks: list[tuple[str, int, torch.Tensor]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: str, start: int, frames: torch.Tensor) -> None:
        if len(frames):
            self._chunks.append((key, start, frames))
            self._count += len(frames)

    def drop(self, key: str) -> None:
        """Forgets queued frames of a video (it failed)."""
        self._chunks = [chunk for chunk in self._chunks if chunk[0] != key]
        self._count = sum(len(chunk[2]) for chunk in self._chunks)

    def _take(self, size: int) -> tuple[torch.Tensor, list[tuple[str, int, int, int]]]:
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

    def ready(self) -> Iterator[tuple[torch.Tensor, list[tuple[str, int, int, int]]]]:
        while self._count >= self.batch_size:
            yield self._take(self.batch_size)

    def flush(self) -> Iterator[tuple[torch.Tensor, list[tuple[str, int, int, int]]]]:
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
        self.model = backbone.model.to(device, memory_format=torch.channels_last).eval()
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
        batcher.drop(key)
        pending.pop(key, None)
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
        )
        summary.ok += 1
        summary.frames += len(video.frame_indices)
        if progress is not None:
            progress.update(1)

    in_flight: list[tuple[torch.Tensor, list[tuple[str, int, int, int]]]] = []

    def scatter(device_outputs: torch.Tensor, places: list[tuple[str, int, int, int]]) -> None:
        outputs = runner.collect(device_outputs).numpy()  # (B, D)
        for key, start, offset, n in places:
            video = pending.get(key)
            if video is None:  # failed after these frames were queued
                continue
            video.features[start : start + n] = outputs[offset : offset + n].astype(storage)
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

    def run_batch(frames: torch.Tensor, places: list[tuple[str, int, int, int]]) -> None:
        in_flight.append((runner.launch(frames), places))
        if len(in_flight) > 1:  # batch i+1 is queued: now wait for batch i
            scatter(*in_flight.pop(0))

    def _frames_done() -> int:
        return sum(len(v.frame_indices) - v.remaining for v in pending.values())

    started = time.perf_counter()
    decode_tasks = (DecodeTask(task.rel_path, task.path, config.sampling) for task in tasks)
    with DecodePool(
        config.num_workers, config.timeout_s, transform=transform, chunk_size=config.chunk_size
    ) as pool:
        for event in pool.imap(decode_tasks):
            name = _event_name(event)
            if name == "VideoStarted":
                frame_indices = np.asarray(event.frame_indices, dtype=np.int64)
                timestamps = np.asarray(event.timestamps, dtype=np.float64)
                if len(frame_indices) == 0:
                    fail(event.key, "no frames sampled")
                    continue
                pending[event.key] = _Pending(
                    task=by_key[event.key],
                    info=event.info,
                    frame_indices=frame_indices,
                    timestamps=timestamps,
                    features=np.zeros((len(frame_indices), feature_dim), storage),
                    remaining=len(frame_indices),
                )
            elif name == "FrameChunk":
                if event.key in pending:
                    batcher.add(event.key, int(event.start), torch.as_tensor(event.frames))
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
    """Starts the decode pool's fork server now, so it imports torch and decord while the
    backbone loads (the pool would otherwise start it, and wait for it, on the first video).

    The preload list is the pool's own plus this package's transform module.
    """
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["torch", "decord", "video_eleatt.video.pool", FramePreprocess.__module__]
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
    precision = resolve_precision(config, device)
    source = resolve_source(config)
    tasks = source.tasks[: config.limit] if config.limit else source.tasks
    warm_decode_workers()
    backbone = build_backbone(config.backbone)
    if backbone.untrained and rank == 0:
        from video_eleatt.features.backbones import untrained_banner

        print(untrained_banner(config.backbone.name), file=sys.stderr, flush=True)
    cache_config_dict = cache_config(config, backbone, source, precision)
    cache_dir = cache_dir_for(config, source.name, cache_config_dict["features"])
    if rank == 0:
        create_cache(cache_dir, cache_config_dict)
        _clean_temp_files(cache_dir)
        compact_manifest(cache_dir)  # folds parts a killed multi-process run left
    distributed.barrier(world_size)
    if rank != 0:
        create_cache(cache_dir, cache_config_dict)  # checks; rank 0 has written it

    manifest_rows = read_manifest(cache_dir)
    summary = ExtractSummary(cache_dir=str(cache_dir))
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
    try:
        with ManifestWriter(cache_dir / manifest_name) as manifest:
            if todo:
                extract_videos(todo, config, runner, cache_dir, manifest, summary, progress)
    finally:
        if progress is not None:
            progress.close()
    summaries = distributed.gather_objects(summary, world_size)
    if rank == 0:
        total = ExtractSummary(cache_dir=str(cache_dir))
        for part in summaries:
            total.merge(part)
        compact_manifest(cache_dir)
        _clean_temp_files(cache_dir)
        summary = total
    distributed.barrier(world_size)
    return summary


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
    "VideoTask",
    "extract_videos",
    "resolve_cache_dir",
    "resolve_source",
    "run_extraction",
]
