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

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from video_eleatt.features import distributed
from video_eleatt.features.backbones import build_backbone, untrained_banner
from video_eleatt.features.cache import create_cache, entry_is_complete, write_entry, write_failure
from video_eleatt.features.config import ExtractConfig, VideoTask, resolve_source
from video_eleatt.features.identity import cache_config, decode_staleness, extract_request
from video_eleatt.features.layout import (
    FEATURES_DIR,
    MANIFEST_NAME,
    TEMP_PATTERN,
    read_config,
)
from video_eleatt.features.locate import cache_dir_for, caches_differing_only_in, record_request
from video_eleatt.features.manifest import ManifestWriter, compact_manifest, read_manifest
from video_eleatt.features.precision import candidate_precision, resolve_precision, select_precision
from video_eleatt.features.preprocess import FramePreprocess
from video_eleatt.features.runner import FeatureRunner, FrameBatcher
from video_eleatt.features.tuning import (
    cpu_threads,
    describe_settings,
    resolve_device,
    tune_malloc,
    warm_decode_workers,
)
from video_eleatt.progress import progress_bar
from video_eleatt.video.decode import DECODE_REVISION
from video_eleatt.video.pool import DecodePool, DecodeTask


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


def decode_record(info: Any) -> dict[str, Any]:
    """How a video was decoded, for its feature file and manifest row: where the timestamps
    came from, the stored rotation (frames are upright), the decode revision and, for a
    damaged video, what was lost (count, frames in the file, first and last lost time in
    seconds, the first reason)."""
    record: dict[str, Any] = {
        "timestamps": info.timestamps_source,
        "rotation": info.rotation,
        "decode_revision": DECODE_REVISION,
    }
    if info.lost_frames:
        record["damage"] = {
            "lost_frames": info.lost_frames,
            "frames_in_file": info.frames_in_file,
            "first_lost_s": round(info.lost_first_s, 6),
            "last_lost_s": round(info.lost_last_s, 6),
            "reason": info.damage,
        }
    return record


def needs_decoding(row: dict[str, Any] | None, complete: bool, retry_failed: bool) -> bool:
    """Whether a video's latest manifest row calls for decoding it (again).

    A complete "ok" row is kept, unless an older decode revision kept only a partial prefix
    of it (``allow_partial``: the frames after the first error are now kept too). A "failed"
    row is retried with ``retry_failed``, and always when an older decode revision failed it
    (packed B-frames, out-of-order decoder output and damaged files were refused before
    revision 3).
    """
    if row is None:
        return True
    if complete:
        return "partial" in row
    if row.get("status") == "failed":
        return retry_failed or row.get("decode_revision") != DECODE_REVISION
    return True


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
    """Extracts ``tasks`` into ``cache_dir``: decode pool -> batches -> backbone -> entries.

    ``progress`` (a :func:`~video_eleatt.progress.progress_bar`, or None) advances by one per
    video finished or failed.
    """
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
            progress.set_postfix_str(f"{summary.failed} failed", refresh=False)

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
            rate = (summary.frames + _frames_done()) / elapsed
            progress.set_postfix_str(f"{rate:.1f} frames/s, {summary.failed} failed", refresh=False)

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
        on_damage=config.on_damage,
        max_lost_fraction=config.max_lost_fraction,
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
        # how the config finds this cache without building a backbone (locate.find_cache)
        record_request(cache_dir, extract_request(config))
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
        if needs_decoding(row, entry_is_complete(cache_dir, row), config.retry_failed):
            todo.append(task)
        elif row.get("status") == "failed":
            summary.skipped += 1
            summary.previously_failed[task.rel_path] = str(row.get("error"))
        else:
            summary.skipped += 1

    manifest_name = MANIFEST_NAME if world_size == 1 else f"manifest.rank{rank}.jsonl"
    runner = FeatureRunner(backbone, device, precision)
    settings["folded_batchnorms"] = runner.folded_batchnorms
    show = config.progress and rank == 0
    progress = None
    if show:
        progress = progress_bar(len(todo), f"extract {source.name}", unit="video")
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


def failed_in_cache(cache_dir: str | Path, rel_paths: Iterable[str]) -> dict[str, str]:
    """rel_path -> error of the given videos whose latest manifest row is "failed"."""
    manifest = read_manifest(cache_dir)
    return {
        key: str(manifest[key].get("error"))
        for key in rel_paths
        if key in manifest and manifest[key].get("status") == "failed"
    }
