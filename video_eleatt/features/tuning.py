"""Where an extraction computes and how fast: the device, torch threads, the allocator, the
decode workers' warm start, and the settings line a run prints.

Every setting here changes speed only, never the features (precision, which can, is chosen in
:mod:`video_eleatt.features.precision` behind a parity check).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
from typing import Any

import torch

from video_eleatt.features.config import ExtractConfig
from video_eleatt.features.preprocess import FramePreprocess

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


def warm_decode_workers() -> None:
    """Starts the decode pool's fork server now, so it imports torch and PyAV while the
    backbone loads (the pool would otherwise start it, and wait for it, on the first video).

    The preload list is the pool's own plus this package's transform module.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    from multiprocessing import forkserver  # not on every platform

    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["torch", "av", "video_eleatt.video.pool", FramePreprocess.__module__]
    )
    forkserver.ensure_running()
