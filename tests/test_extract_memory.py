"""The parent's memory during extraction does not grow with video length.

What the parent holds per video is its (T, D) features (inherent) and nothing else in
proportion to T: decoded chunks are bounded by the pool's per-worker limit and the batcher
holds less than a batch plus a chunk, however far decoding runs ahead of a slow backbone; and
an entry is written from the features array itself, not from copies of the whole file.
Checked with counters and tracemalloc, not timings.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import ClassVar

import numpy as np
import pytest
from video_factory import write_index_video

import video_eleatt.features.extract as extract
from video_eleatt.features.backbones import BackboneConfig
from video_eleatt.features.cache import write_entry
from video_eleatt.features.config import ExtractConfig
from video_eleatt.features.entry_file import encode_safetensors, load_entry_file
from video_eleatt.features.extract import run_extraction
from video_eleatt.features.layout import feature_path
from video_eleatt.features.runner import FeatureRunner, FrameBatcher
from video_eleatt.video.pool import DecodePool, DecodeTask, FrameChunk, VideoFailed
from video_eleatt.video.sampling import SamplingConfig

ALL = SamplingConfig(mode="all")


def test_a_stalled_consumer_holds_at_most_the_chunk_limit(tmp_path):
    # two 200-frame videos in chunks of 4: 100 chunks the workers could push while the
    # consumer sleeps on its first chunk; only max_chunks_per_worker each may wait
    paths = [write_index_video(tmp_path / f"v{i}.mp4", 200, seed=i) for i in range(2)]
    tasks = [DecodeTask(f"v{i}", str(path), ALL) for i, path in enumerate(paths)]
    frames = 0
    with DecodePool(2, 60, chunk_size=4, max_chunks_per_worker=2, start_method="fork") as pool:
        for event in pool.imap(tasks):
            assert not isinstance(event, VideoFailed), event
            if isinstance(event, FrameChunk):
                if frames == 0:
                    time.sleep(1.0)  # decoding the rest takes well under this
                frames += len(event.frames)
        peak = pool.peak_chunks_waiting
    assert frames == 400
    assert 1 <= peak <= 2 * 2


class _CountingPool(DecodePool):
    instances: ClassVar[list[DecodePool]] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.instances.append(self)


class _CountingBatcher(FrameBatcher):
    peak = 0

    def add(self, key, start, frames):
        super().add(key, start, frames)
        type(self).peak = max(type(self).peak, len(self))


@pytest.fixture(autouse=True)
def _reset_counters():
    _CountingPool.instances = []
    _CountingBatcher.peak = 0


def test_extraction_with_a_slow_backbone_keeps_a_bounded_number_of_frames(tmp_path, monkeypatch):
    write_index_video(tmp_path / "videos" / "long.mp4", 240, fps=10.0)
    # the names extraction looks up when it runs
    monkeypatch.setattr(extract, "DecodePool", _CountingPool)
    monkeypatch.setattr(extract, "FrameBatcher", _CountingBatcher)
    launch = FeatureRunner.launch

    def slow_launch(self, frames):
        time.sleep(0.02)  # the backbone is the bottleneck: decoding runs ahead of it
        return launch(self, frames)

    monkeypatch.setattr(FeatureRunner, "launch", slow_launch)
    config = ExtractConfig(
        videos=str(tmp_path / "videos"),
        backbone=BackboneConfig("test_resnet", "timm", weights="random"),
        sampling=ALL,
        batch_size=4,
        chunk_size=4,
        num_workers=1,
        precision="float32",
        device="cpu",
        progress=False,
        output_root=str(tmp_path / "features"),
    )
    summary = run_extraction(config)
    assert (summary.ok, summary.frames) == (1, 240)
    (pool,) = _CountingPool.instances
    # 60 chunks went through; at most the pool's limit waited in the parent at once
    assert 1 <= pool.peak_chunks_waiting <= pool.max_chunks_per_worker
    assert _CountingBatcher.peak < config.batch_size + config.chunk_size


def test_write_entry_streams_the_features_without_copying_them(tmp_path):
    # (6000, 512) float16: a 10-minute video at 10 fps, 6 MB. Encoding to one bytes object
    # held 3 more copies of it at once (tobytes, join, prefix + body).
    features = np.random.default_rng(0).standard_normal((6000, 512)).astype(np.float16)
    frame_indices = np.arange(6000)
    timestamps = frame_indices / 10.0
    tracemalloc.start()
    try:
        write_entry(
            tmp_path, "v.mp4", features, frame_indices, timestamps, 10.0, 6000, 600.0, 2,
            dtype="float16",
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < features.nbytes / 10
    path = feature_path(tmp_path, "v.mp4")
    metadata = {
        "fps": "10.0",
        "num_frames": "6000",
        "duration": "600.0",
        "rel_path": "v.mp4",
        "label": "2",
    }
    tensors = {"features": features, "frame_indices": frame_indices, "timestamps": timestamps}
    assert path.read_bytes() == encode_safetensors(tensors, metadata)  # the same bytes as before
    loaded, _ = load_entry_file(path)
    np.testing.assert_array_equal(loaded["features"].numpy(), features)
