"""Which compute precision an extraction uses, and the parity check that guards it.

``precision: auto`` tries the fastest precision the hardware offers (float16 autocast on CUDA,
bfloat16 on CPUs with native bfloat16, else float32) and keeps it only when the fast path's
features match float32 NCHW features of the same frames (per-frame cosine >= threshold).

>>> parity_check(backbone, frames, torch.device("cpu"), "bfloat16").passed  # doctest: +SKIP
True
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from video_eleatt.features.backbones import Backbone, build_backbone
from video_eleatt.features.config import ExtractConfig, resolve_source
from video_eleatt.features.preprocess import FramePreprocess, normalize_frames
from video_eleatt.features.runner import FeatureRunner
from video_eleatt.features.tuning import resolve_device
from video_eleatt.hardware import cpu_has_native_bfloat16
from video_eleatt.video.decode import VideoDecodeError, read_frames
from video_eleatt.video.sampling import sample_frame_indices


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


def run_parity_check(config: ExtractConfig, max_frames: int = 32) -> ParityReport:
    """The parity check of ``config``'s fast path on frames of its first videos.

    Decodes up to ``max_frames`` frames (the config's sampling, spread over the first videos
    that decode), preprocesses them as extraction does, and compares the fast path at the
    precision the run would try (the configured one, or ``auto``'s candidate) with float32
    NCHW. Used by ``video-eleatt extract ... --parity_check``.

    Raises:
        ValueError: no video of the source could be decoded.
    """
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
