"""Frame sampling by time: every mode, checked against hand-derived indices and decoded frames."""

from __future__ import annotations

import math

import numpy as np
import pytest
from video_factory import VFR_PTS, read_indices_flat, write_index_video, write_vfr_video

from video_eleatt.video.decode import VideoReader
from video_eleatt.video.sampling import SamplingConfig, sample_frame_indices


def sample(num_frames, video_fps, timestamps=None, /, **config):
    config = SamplingConfig(**config)
    return sample_frame_indices(num_frames, video_fps, config, timestamps).tolist()


def test_all_is_every_frame():
    assert sample(7, 30.0, mode="all") == list(range(7))


def test_fps_picks_the_frame_on_screen_at_each_time():
    # 30 frames at 10 fps = 3 s; at 3 fps the times are k/3 s, k = 0..8, and the frame on
    # screen at t is floor(10 t) (float64 reference, computed independently of the code)
    expected = [math.floor(10 * k / 3 + 1e-9) for k in range(9)]
    assert expected == [0, 3, 6, 10, 13, 16, 20, 23, 26]
    assert sample(30, 10.0, mode="fps", fps=3.0) == expected
    assert sample(30, 10.0, mode="fps", fps=2.0) == [0, 5, 10, 15, 20, 25]
    assert sample(30, 10.0, mode="fps", fps=10.0) == list(range(30))


def test_fps_above_the_video_rate_repeats_frames():
    assert sample(4, 10.0, mode="fps", fps=20.0) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_fps_tolerates_float32_timestamps_a_hair_late():
    # decord returns float32 seconds: 0.1 comes back as 0.10000000149 > 0.1
    timestamps = (np.arange(30) / 10.0).astype(np.float32).astype(np.float64)
    assert sample(30, 10.0, timestamps, mode="fps", fps=10.0) == list(range(30))


def test_fps_on_a_variable_frame_rate_video(tmp_path):
    reader = VideoReader(write_vfr_video(tmp_path / "vfr.mp4"))
    timestamps = reader.frame_timestamps()
    indices = sample(10, reader.info.fps, timestamps, mode="fps", fps=5.0)
    # times 0, .2, ..., 1.6 s (span 1.6 s + one average frame interval); frame starts are
    # 0, .1, .15, .4, .42, .44, .9, 1.0, 1.5, 1.6: the latest start <= t is
    # [0, 2, 3, 5, 5, 7, 7, 7, 9]; 9 samples of 10 frames force no repeat, so each repeat moves
    # to the next free frame and the end pulls back: [0, 2, 3, 4, 5, 6, 7, 8, 9]
    assert VFR_PTS == (0.0, 0.1, 0.15, 0.4, 0.42, 0.44, 0.9, 1.0, 1.5, 1.6)
    assert indices == [0, 2, 3, 4, 5, 6, 7, 8, 9]
    assert read_indices_flat(frames for _, frames in reader.iter_frames(indices)) == indices
    # without the timestamps the same video is sampled as if constant-rate (i / avg fps)
    fallback = sample(10, reader.info.fps, None, mode="fps", fps=5.0)
    assert fallback == [math.floor(k / 5.0 * reader.info.fps + 1e-9) for k in range(9)]
    assert fallback != indices


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ({"mode": "uniform", "num_frames": 4}, [0, 1, 2, 3]),
        ({"mode": "segments", "num_segments": 5}, [0, 1, 2, 3, 4]),
        # 6 samples of 5 frames: a frame may be used ceil(6 / 5) = 2 times, no more
        ({"mode": "uniform", "num_frames": 6}, [0, 0, 1, 1, 2, 2]),
    ],
)
def test_repeats_only_where_the_length_forces_them(mode, expected):
    # 5 frames, the first one shown for 10 s, the rest 0.1 s each: every uniform time but the
    # last falls on frame 0, yet 4 or 5 samples fit in 5 distinct frames
    timestamps = np.array([0.0, 10.0, 10.1, 10.2, 10.3])
    assert sample(5, 10.0, timestamps, **mode) == expected


def test_timestamps_are_taken_from_the_first_frame():
    timestamps = 0.5 + np.arange(30) / 10.0  # the stream starts at 0.5 s
    assert sample(30, 10.0, timestamps, mode="fps", fps=2.0) == [0, 5, 10, 15, 20, 25]


def test_unusable_timestamps_fall_back_to_average_fps():
    decreasing = np.arange(30)[::-1] / 10.0
    assert sample(30, 10.0, decreasing, mode="fps", fps=2.0) == [0, 5, 10, 15, 20, 25]
    with pytest.raises(ValueError, match=r"expected \(30,\)"):
        sample(30, 10.0, np.zeros(29), mode="fps", fps=2.0)


def test_uniform_takes_bin_centres():
    # floor((k + 0.5) * n / N)
    assert sample(30, 10.0, mode="uniform", num_frames=3) == [5, 15, 25]
    assert sample(30, 10.0, mode="uniform", num_frames=4) == [3, 11, 18, 26]
    assert sample(3, 10.0, mode="uniform", num_frames=5) == [0, 0, 1, 2, 2]


def test_segments_take_the_centre_of_each_segment():
    assert sample(30, 10.0, mode="segments", num_segments=3) == [5, 15, 25]
    assert sample(100, 25.0, mode="segments", num_segments=8) == [
        math.floor((k + 0.5) * 100 / 8) for k in range(8)
    ]


def test_max_frames_caps_uniformly_in_every_mode():
    assert sample(30, 10.0, mode="all", max_frames=4) == [3, 11, 18, 26]
    capped = sample(300, 10.0, mode="fps", fps=10.0, max_frames=3)
    assert capped == [50, 150, 250]
    assert sample(30, 10.0, mode="all", max_frames=100) == list(range(30))


def test_sampling_is_deterministic_and_sorted():
    timestamps = np.cumsum(np.random.default_rng(0).uniform(0.01, 0.2, 500))
    for config in [
        SamplingConfig(mode="fps", fps=7.0),
        SamplingConfig(mode="uniform", num_frames=33),
        SamplingConfig(mode="all", max_frames=17),
    ]:
        first = sample_frame_indices(500, 9.0, config, timestamps)
        assert np.array_equal(first, sample_frame_indices(500, 9.0, config, timestamps))
        assert first.dtype == np.int64 and (np.diff(first) >= 0).all()
        assert first.min() >= 0 and first.max() <= 499


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (dict(mode="fps"), "needs 'fps'"),
        (dict(mode="uniform"), "needs 'num_frames'"),
        (dict(mode="segments", num_frames=3), "needs 'num_segments'"),
        (dict(mode="every"), "choose one of"),
        (dict(mode="fps", fps=0.0), "positive"),
        (dict(mode="uniform", num_frames=0), "num_frames must be an integer >= 1"),
        (dict(mode="all", max_frames=2.5), "max_frames must be an integer"),
    ],
)
def test_bad_configs_are_refused_with_the_fix(config, message):
    with pytest.raises(ValueError, match=message):
        SamplingConfig(**config)


def test_fps_mode_needs_a_frame_rate():
    with pytest.raises(ValueError, match="needs a positive frame rate"):
        sample(30, float("nan"), mode="fps", fps=2.0)
    assert sample(3, float("nan"), mode="all") == [0, 1, 2]


def test_to_dict_keeps_only_what_the_mode_uses():
    config = SamplingConfig(mode="uniform", fps=4.0, num_frames=16)
    assert config.to_dict() == {"mode": "uniform", "num_frames": 16}


def test_uniform_on_a_decoded_video(tmp_path):
    reader = VideoReader(write_index_video(tmp_path / "v.mkv", 50, fps=25.0, codec="ffv1"))
    indices = sample_frame_indices(
        reader.info.num_frames,
        reader.info.fps,
        SamplingConfig(mode="uniform", num_frames=5),
        reader.frame_timestamps(),
    )
    assert indices.tolist() == [5, 15, 25, 35, 45]
    decoded = read_indices_flat(frames for _, frames in reader.iter_frames(indices))
    assert decoded == indices.tolist()
