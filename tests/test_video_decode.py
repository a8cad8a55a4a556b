"""VideoReader on generated videos whose frames encode their own index."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from video_factory import (
    BROKEN_KINDS,
    VFR_PTS,
    read_index,
    read_indices,
    read_indices_flat,
    write_broken_video,
    write_index_video,
    write_vfr_video,
)

from video_eleatt.video.decode import VideoDecodeError, VideoInfo, VideoReader


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode")
    return {
        "mp4": write_index_video(root / "cfr.mp4", 40, fps=25.0),
        "mkv": write_index_video(root / "cfr.mkv", 40, fps=25.0, codec="ffv1"),
        "lossy": write_index_video(root / "lossy.mp4", 40, fps=25.0, lossless=False, seed=1),
        "vfr": write_vfr_video(root / "vfr.mp4"),
        "root": root,
    }


@pytest.mark.parametrize("name", ["mp4", "mkv", "lossy"])
def test_every_frame_comes_back_in_order(videos, name):
    reader = VideoReader(videos[name])
    assert reader.info == VideoInfo(str(videos[name]), 40, 25.0, pytest.approx(1.6), 64, 48)
    chunks = list(reader.iter_frames(np.arange(40), chunk_size=16))
    assert [len(indices) for indices, _ in chunks] == [16, 16, 8]
    for indices, frames in chunks:
        assert frames.dtype == torch.uint8 and frames.shape == (len(indices), 48, 64, 3)
        assert read_indices(frames) == indices.tolist()


def test_lossless_frames_are_exact(videos):
    from video_factory import index_frame

    reader = VideoReader(videos["mp4"])
    [(_, frames)] = list(reader.iter_frames([7]))
    assert torch.equal(frames[0], torch.from_numpy(index_frame(7)))


def test_requested_frames_sorted_and_exact(videos):
    reader = VideoReader(videos["mp4"])
    asked = [33, 2, 17, 17, 39, 0]
    [(indices, frames)] = list(reader.iter_frames(asked, chunk_size=32))
    assert indices.tolist() == [0, 2, 17, 17, 33, 39]
    assert read_indices(frames) == [0, 2, 17, 17, 33, 39]


def test_indices_are_clamped_to_the_decodable_range(videos):
    reader = VideoReader(videos["mp4"])
    [(indices, frames)] = list(reader.iter_frames([100, -3, 5, 39, 40]))
    assert indices.dtype == np.int64
    assert indices.tolist() == [0, 5, 39, 39, 39]  # no wrap-around: -3 -> 0, not 37
    assert read_indices(frames) == [0, 5, 39, 39, 39]


def test_chunks_never_ask_decord_for_more_than_chunk_size(videos):
    reader = VideoReader(videos["mp4"])
    reader.sequential_for = lambda indices: False  # the decord path (sparse requests)
    calls = []
    get_batch = reader._reader.get_batch

    def spy(indices):
        calls.append(list(indices))
        return get_batch(indices)

    reader._reader.get_batch = spy
    got = read_indices_flat(frames for _, frames in reader.iter_frames(range(39, -1, -1), 6))
    assert [len(call) for call in calls] == [6, 6, 6, 6, 6, 6, 4]
    assert [index for call in calls for index in call] == list(range(40))  # sorted, each once
    assert got == list(range(40))


def test_cfr_timestamps_are_index_over_fps(videos):
    reader = VideoReader(videos["mkv"])
    assert reader.timestamps_from_container
    timestamps = reader.frame_timestamps()
    assert timestamps.dtype == np.float64 and timestamps.shape == (40,)
    np.testing.assert_allclose(timestamps, np.arange(40) / 25.0, atol=1e-6)


def test_vfr_timestamps_come_from_the_container(videos):
    reader = VideoReader(videos["vfr"])
    assert reader.info.num_frames == len(VFR_PTS)
    np.testing.assert_allclose(reader.frame_timestamps(), VFR_PTS, atol=1e-6)
    # decord's average fps of an mp4 is frames / duration, not the nominal rate (10)
    assert reader.info.fps == pytest.approx(len(VFR_PTS) / 1.7, rel=1e-3)
    [(_, frames)] = list(reader.iter_frames(range(10)))
    assert read_indices(frames) == list(range(10))


def test_garbage_timestamps_fall_back_to_index_over_fps(videos, monkeypatch):
    import decord

    def garbage(self, indices):
        return np.zeros((len(indices), 2), np.float32)  # all equal: unusable

    monkeypatch.setattr(decord.VideoReader, "get_frame_timestamp", garbage)
    reader = VideoReader(videos["vfr"])
    assert not reader.timestamps_from_container
    np.testing.assert_allclose(reader.frame_timestamps(), np.arange(10) / reader.info.fps)
    assert reader.info.duration == pytest.approx(10 / reader.info.fps)


def test_decoder_resizes_to_decode_size(videos):
    reader = VideoReader(videos["mp4"], width=32, height=24)
    assert (reader.info.width, reader.info.height) == (32, 24)
    [(_, frames)] = list(reader.iter_frames([0, 21, 39]))
    assert frames.shape == (3, 24, 32, 3)
    assert read_indices(frames) == [0, 21, 39]


def test_decode_error_names_path_count_fps_and_indices(videos):
    reader = VideoReader(videos["mp4"])
    reader.sequential_for = lambda indices: False  # decord decodes (PyAV falls back to it too)

    def failing(indices):
        raise RuntimeError("[10:31:19] /src/video/video_reader.cc:1: Check failed: boom")

    reader._reader.get_batch = failing
    with pytest.raises(VideoDecodeError) as caught:
        next(reader.iter_frames([3, 9]))
    message = str(caught.value)
    assert str(videos["mp4"]) in message
    assert "40 frames at 25.000 fps" in message
    assert "[3, 9]" in message
    assert "RuntimeError: Check failed: boom" in message  # decord's location prefix removed
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_decord_small_width_quirk_gives_a_clear_error(tmp_path):
    # decord 0.6.0 fails to copy frames 48 pixels wide (also 8, 16, 24, 72); if this test
    # fails because decoding now works, decord was fixed: drop the hint in decode.py.
    path = write_index_video(tmp_path / "w48.mp4", 3, size=(48, 48))
    with pytest.raises(VideoDecodeError, match="small frame widths"):
        VideoReader(path)


EXPECTED_REASON = {
    "zero_byte": "the file is empty",
    "truncated": "as a video",
    "not_video": "as a video",
    "missing": "no such file",
    "no_frames": "cannot find video stream",
    "corrupt": "as a video",
}


@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_broken_files_raise_video_decode_error(tmp_path, kind):
    path = write_broken_video(tmp_path / f"{kind}.mp4", kind)
    with pytest.raises(VideoDecodeError) as caught:
        VideoReader(path)
    assert str(path) in str(caught.value)
    assert EXPECTED_REASON[kind] in str(caught.value)


def test_read_index_rejects_a_frame_that_is_not_a_pattern():
    assert read_index(np.full((48, 64, 3), 0, np.uint8)) == 0
    with pytest.raises(ValueError, match="not an index frame"):
        read_index(np.full((48, 64, 3), 128, np.uint8))


@pytest.mark.parametrize("name", ["lossy", "mkv", "vfr"])
def test_dense_requests_decode_sequentially_and_match_decord(videos, name):
    # the PyAV sequential path must give decord's frames bit for bit, chunked the same way
    num_frames = VideoReader(videos[name]).info.num_frames
    asked = [i for i in range(num_frames) if i % 3 != 1] + [4, 4]
    dense = VideoReader(videos[name])
    assert dense.sequential_for(np.sort(dense.clamp(asked)))
    sparse = VideoReader(videos[name])
    sparse.sequential_for = lambda indices: False
    got = list(dense.iter_frames(asked, chunk_size=5))
    expected = list(sparse.iter_frames(asked, chunk_size=5))
    assert [i.tolist() for i, _ in got] == [i.tolist() for i, _ in expected]
    for (_, frames), (_, reference) in zip(got, expected, strict=True):
        assert torch.equal(frames, reference)
    assert read_indices_flat(f for _, f in got) == sorted(asked)


def test_sparse_or_resized_requests_use_decord(videos):
    reader = VideoReader(videos["mp4"])
    assert not reader.sequential_for(np.array([0, 39]))  # 20 frames apart on average
    assert not VideoReader(videos["mp4"], width=32, height=24).sequential_for(np.arange(40))


def test_sequential_mismatch_falls_back_to_decord_without_losing_frames(videos, monkeypatch):
    from video_eleatt.video import decode

    check = decode._SequentialDecoder._check

    def fail_at_frame_21(self, frame_index, frame):
        if frame_index == 21:
            raise decode._SequentialMismatch("test")
        check(self, frame_index, frame)

    monkeypatch.setattr(decode._SequentialDecoder, "_check", fail_at_frame_21)
    chunks = list(VideoReader(videos["mp4"]).iter_frames(range(40), chunk_size=8))
    assert [len(indices) for indices, _ in chunks] == [8, 8, 8, 8, 8]
    assert read_indices_flat(frames for _, frames in chunks) == list(range(40))
