"""Streaming prediction: a source of any length classified frame by frame as it plays.

The pipeline is the training data's (:mod:`video_eleatt.inference.predict`), one frame at a
time: frames sampled by time at the checkpoint's step rate (:func:`stream_settings`, from its
feature cache) as they arrive (:class:`~video_eleatt.inference.stream_source.FrameStream`),
each preprocessed and passed through the backbone alone, and the recurrent model stepped once
per frame with its state carried (:meth:`~video_eleatt.models.classifier.SequenceClassifier.step`;
the prefix is never run again). Each step gives the class probabilities the model would give
had the video ended there (its running prediction).

**State policy.** The model was trained on clips of ``L`` steps from a zero state; a stream is
longer. :class:`StatePolicy` decides which state the prediction comes from:

- ``carry``: one state for the whole stream (the model never saw a state this old);
- ``window``: the state is reset every ``L`` steps and the prediction is the current window's
  (right after a reset it has seen only a step or two);
- ``staggered`` (the default): ``K`` states started ``L / K`` steps apart, each reset after
  ``L`` steps; the prediction is the oldest one's, so it always rests on the last
  ``L - L/K + 1`` to ``L`` steps, as the model was trained. The ``K`` states are stepped as
  one batch of ``K`` (about the cost of one; the backbone runs once per frame).

``scripts/stream_policies.py`` measured them on long videos of concatenated demo clips
(segment accuracy and lag after each change; figures in the README), which chose the default.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from video_eleatt.features.cache import FeatureCache
from video_eleatt.features.layout import CacheError
from video_eleatt.features.preprocess import FramePreprocess
from video_eleatt.inference.errors import PredictError
from video_eleatt.inference.predict import Predictor
from video_eleatt.inference.stream_source import DEFAULT_STALL_TIMEOUT_S, FrameStream
from video_eleatt.models.classifier import OnlineState, SequenceClassifier

POLICIES = ("carry", "window", "staggered")
DEFAULT_POLICY = "staggered"
DEFAULT_NUM_STATES = 3
# Feature files read to measure a cache's step rate and clip length.
_RATE_SAMPLE = 64


@dataclass
class StreamSettings:
    """How a checkpoint's model is fed from a stream.

    Attributes:
        rate: Steps per second of media time (the rate its training features were sampled at).
        phase: Sample times are ``(k + phase) / rate``: 0 for an ``fps`` cache, 0.5 for caches
            sampled at bin centres (``uniform``, ``segments``).
        trained_steps: ``L``, the steps of a training clip.
        source: Where the two numbers come from, for the log.
    """

    rate: float
    phase: float
    trained_steps: int
    source: str


def stream_settings(
    predictor: Predictor, rate: float | None = None, trained_steps: int | None = None
) -> StreamSettings:
    """The step rate and clip length of ``predictor``'s training features.

    ``fps`` sampling gives the rate directly. For ``uniform`` / ``segments`` (a fixed number
    of frames per clip) and ``all``, it is the median over the cache's videos of steps per
    second of video, read from the feature cache the checkpoint names. The clip length is
    the protocol's ``num_steps`` for window/segment training, else the median cached length.
    A model trained on ``segments`` (``num_steps`` steps spread over each whole video) saw
    its steps ``median length / num_steps`` cached steps apart: the rate is divided by that.

    Args:
        predictor: From :func:`~video_eleatt.inference.predict.load_predictor`.
        rate: Steps per second, instead of the cache's.
        trained_steps: Clip length, instead of the cache's.

    Raises:
        PredictError: a value is needed from the cache and the cache cannot be read.
    """
    sampling = predictor.sampling
    protocol = predictor.protocol
    phase = 0.0 if sampling.mode in ("fps", "all") else 0.5
    steps_per_s, lengths, origin = [], [], []
    if rate is None and sampling.mode == "fps":
        rate = float(sampling.fps)
        origin.append(f"rate {rate:g}/s from the cache's fps sampling")
    segments = protocol.get("train_sampling") == "segments"
    if protocol.get("train_sampling") in ("window", "segments") and trained_steps is None:
        trained_steps = int(protocol["num_steps"])
    if rate is None or trained_steps is None or segments:
        cache_dir = predictor.cache_dir
        try:
            cache = FeatureCache(cache_dir)
            keys = cache.ok_keys()
            for key in keys[:: max(1, len(keys) // _RATE_SAMPLE)][:_RATE_SAMPLE]:
                entry = cache.load(key)
                lengths.append(int(entry.features.shape[0]))
                if entry.duration > 0:
                    steps_per_s.append(entry.features.shape[0] / entry.duration)
        except (CacheError, KeyError, OSError, ValueError, TypeError) as err:
            raise PredictError(
                f"the stream's step rate and clip length come from the feature cache the "
                f"model was trained on ({cache_dir}), which cannot be read: {err}. Fix: pass "
                "--cache <that cache>, or --stream_rate <steps per second> and "
                "--stream_window <steps per training clip>"
            ) from err
        if not lengths:
            raise PredictError(f"the feature cache {cache_dir} holds no video to measure")
    if rate is None:
        rate = statistics.median(steps_per_s)
        origin.append(f"rate {rate:.3g}/s: median steps/s of {len(steps_per_s)} cached videos")
        if segments and statistics.median(lengths) > trained_steps:
            rate *= trained_steps / statistics.median(lengths)
            origin.append(f"{rate:.3g}/s for {trained_steps} segments per video")
    if trained_steps is None:
        trained_steps = int(statistics.median(lengths))
        origin.append(f"clip length {trained_steps}: median of {len(lengths)} cached videos")
    if not (math.isfinite(rate) and rate > 0) or trained_steps < 1:
        raise PredictError(f"stream rate {rate!r} or clip length {trained_steps!r} is unusable")
    return StreamSettings(float(rate), phase, int(trained_steps), "; ".join(origin) or "given")


class StatePolicy:
    """Which recurrent state(s) a stream carries, and which one predicts (module docstring).

    Args:
        classifier: The model (eval mode).
        policy: "carry", "window" or "staggered".
        window: ``L``, steps per training clip.
        num_states: ``K`` for "staggered".
    """

    def __init__(
        self,
        classifier: SequenceClassifier,
        policy: str = DEFAULT_POLICY,
        window: int = 12,
        num_states: int = DEFAULT_NUM_STATES,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown state policy {policy!r}; choose one of {POLICIES}")
        if window < 1 or num_states < 1:
            raise ValueError(f"window {window} and num_states {num_states} must be >= 1")
        self.classifier = classifier
        self.policy = policy
        self.window = window
        count = 1 if policy != "staggered" else min(num_states, window)
        # State j starts at step offsets[j]; all K states are stepped as one batch of K.
        self.offsets = torch.tensor([round(j * window / count) for j in range(count)])
        self.state: OnlineState | None = None
        self.steps = 0

    @torch.no_grad()
    def step(self, feature: Tensor) -> tuple[Tensor, int]:
        """One frame's features (1, D) -> (logits (C,), steps behind the prediction)."""
        count = len(self.offsets)
        since = self.steps - self.offsets  # (K,) steps since each state's first start
        if self.state is None:
            self.state = self.classifier.initial_state(count)
        elif self.policy != "carry":
            restart = (since >= 0) & (since % self.window == 0)
            if bool(restart.any()):
                self.state = self.state.reset(restart.to(self.state.num_steps.device))
        scores, self.state = self.classifier.step(feature.expand(count, -1), self.state)
        ages = torch.where(since.to(self.state.num_steps.device) >= 0, self.state.num_steps, -1)
        oldest = int(ages.argmax())
        self.steps += 1
        return scores[oldest], int(ages[oldest])


@dataclass
class StepRecord:
    """One streamed step: what the JSON line holds.

    Attributes:
        step: 0-based.
        time: The sample time (seconds from the first frame).
        frame_time: Start time of the frame used.
        frame_index: Its position in the source's decoding order.
        steps_seen: Steps behind the prediction (the predicting state's age).
        probabilities: (C,) float64.
        top_k: ``(class_name, probability)``, best first.
    """

    step: int
    time: float
    frame_time: float
    frame_index: int
    steps_seen: int
    probabilities: np.ndarray
    top_k: list[tuple[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 6),
            "step": self.step,
            "frame_time": round(self.frame_time, 6),
            "frame": self.frame_index,
            "steps_seen": self.steps_seen,
            "top_k": [{"class": name, "probability": round(p, 6)} for name, p in self.top_k],
        }


@dataclass
class StreamTimings:
    """Wall seconds spent per stage over a stream (``decode`` is the wait for the next
    sampled frame: decoding runs in its own thread, overlapped with the rest)."""

    decode: list[float] = field(default_factory=list)
    backbone: list[float] = field(default_factory=list)
    step: list[float] = field(default_factory=list)


class StreamClassifier:
    """Steps a checkpoint's model through sampled frames (module docstring).

    Args:
        predictor: The checkpoint's model and feature pipeline.
        settings: Its step rate and clip length (:func:`stream_settings`).
        policy: The state policy's name.
        num_states: States of the "staggered" policy.
        top_k: Classes per record.
    """

    def __init__(
        self,
        predictor: Predictor,
        settings: StreamSettings,
        policy: str = DEFAULT_POLICY,
        num_states: int = DEFAULT_NUM_STATES,
        top_k: int = 5,
    ) -> None:
        self.predictor = predictor
        self.settings = settings
        self.top_k = max(1, min(top_k, len(predictor.class_names)))
        self.transform = FramePreprocess(predictor.preprocess, output="uint8")
        self.policy = StatePolicy(
            predictor.module.classifier, policy, settings.trained_steps, num_states
        )
        self.timings = StreamTimings()
        # The source being read by :meth:`run`, kept for its counts (lost_packets) afterwards.
        self.stream: FrameStream | None = None
        self._last_frame: tuple[int, Tensor] | None = None

    @torch.no_grad()
    def features(self, image: np.ndarray, frame_index: int) -> Tensor:
        """(1, D) features of one (H, W, 3) uint8 frame, rounded through the cache's dtype; a
        frame sampled twice (a rate above the source's) is computed once."""
        if self._last_frame is not None and self._last_frame[0] == frame_index:
            return self._last_frame[1]
        frames = self.transform(image[None])  # (1, 3, h, w) uint8
        feature = self.predictor.runner(frames).to(self.predictor.storage_dtype).float()
        feature = feature.to(self.predictor.device)
        self._last_frame = (frame_index, feature)
        return feature

    @torch.no_grad()
    def classify(self, feature: Tensor) -> tuple[np.ndarray, int]:
        """Steps the model once: (probabilities (C,), steps behind them)."""
        logits, seen = self.policy.step(feature)
        return torch.softmax(logits.double(), dim=0).cpu().numpy(), seen

    def run(
        self,
        source: str,
        on_step: Callable[[StepRecord], None],
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        max_steps: int | None = None,
    ) -> None:
        """Classifies ``source`` until it ends, calling ``on_step`` after every step.

        Raises:
            StreamError: the source cannot be opened, stalls or drops out; every step before
                has been handed to ``on_step``.
        """
        names = self.predictor.class_names
        with FrameStream(
            source, self.settings.rate, self.settings.phase, stall_timeout_s, max_steps
        ) as frames:
            self.stream = frames
            waited = time.perf_counter()
            for frame in frames:
                started = time.perf_counter()
                feature = self.features(frame.image, frame.frame_index)
                extracted = time.perf_counter()
                probabilities, seen = self.classify(feature)
                stepped = time.perf_counter()
                self.timings.decode.append(started - waited)
                self.timings.backbone.append(extracted - started)
                self.timings.step.append(stepped - extracted)
                order = np.argsort(-probabilities)[: self.top_k]
                on_step(
                    StepRecord(
                        step=frame.step,
                        time=frame.time,
                        frame_time=frame.frame_time,
                        frame_index=frame.frame_index,
                        steps_seen=seen,
                        probabilities=probabilities,
                        top_k=[(names[i], float(probabilities[i])) for i in order],
                    )
                )
                waited = time.perf_counter()


def default_timeline_prefix(source: str) -> Path:
    """Where the timeline goes without ``--timeline``: beside a source file
    (``<file>.timeline.csv``), else ``stream_timeline.*`` in the current folder."""
    path = Path(source)
    if source != "-" and "://" not in source and path.is_file():
        return path.with_name(path.name + ".timeline")
    return Path("stream_timeline")
