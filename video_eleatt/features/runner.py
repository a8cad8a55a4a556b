"""Running the backbone on frames from many videos at once.

:class:`FrameBatcher` gathers frame chunks of many videos into batches of exactly
``batch_size`` frames (the last padded), so a frame's features do not depend on which other
frames share its batch. :class:`FeatureRunner` runs the backbone on such a batch: uint8 in,
normalised on the device, channels_last, autocast at the chosen precision.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from video_eleatt.features.backbones import Backbone
from video_eleatt.features.preprocess import normalize_frames


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
