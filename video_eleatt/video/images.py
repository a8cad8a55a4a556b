"""Decoded frames as images: upright, at the output size, cut into chunks. Pure helpers of
:class:`video_eleatt.video.decode.VideoReader` (no decoding here)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def chunked(
    indices: np.ndarray,
    frames: Iterator[tuple[int, np.ndarray]],
    chunk_size: int,
    shape: tuple[int, int],
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Sorted ``indices`` (repeats allowed) in chunks, from unique (index, frame) pairs."""
    height, width = shape
    chunk_start = 0
    chunk = np.empty((min(chunk_size, len(indices)), height, width, 3), np.uint8)
    position = 0
    for index, image in frames:
        while position < len(indices) and indices[position] == index:
            chunk[position - chunk_start] = image
            position += 1
            if position - chunk_start == len(chunk):
                yield indices[chunk_start:position], torch.from_numpy(chunk)
                chunk_start = position
                remaining = min(chunk_size, len(indices) - position)
                chunk = np.empty((remaining, height, width, 3), np.uint8)
    for _ in frames:  # the sequential path checks the rest of the file
        pass
    if position < len(indices):
        raise RuntimeError(f"decoded {position} of {len(indices)} frames")  # a bug, not input


def display_rotation(frame) -> int:
    """The clockwise turn (0, 90, 180, 270) that makes a decoded frame upright.

    FFmpeg's display matrix angle (``frame.rotation``) is counterclockwise: a phone video
    tagged ``rotate=90`` reads -90 and is turned 90 degrees clockwise, as ffmpeg's
    ``autorotate`` does.
    """
    try:
        angle = float(frame.rotation or 0)
    except Exception:
        return 0
    return round(-angle / 90.0) * 90 % 360


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """(H, W, 3) turned ``rotation`` degrees clockwise."""
    if rotation == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-rotation // 90))


def output_size(height: int, width: int, out_width: int, out_height: int) -> tuple[int, int]:
    if out_width > 0 and out_height > 0:
        return out_height, out_width
    if out_width > 0:
        return max(1, round(height * out_width / width)), out_width
    if out_height > 0:
        return out_height, max(1, round(width * out_height / height))
    return height, width
