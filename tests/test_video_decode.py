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

from video_eleatt.video import frame_table
from video_eleatt.video.decode import (
    FrameTableMismatch,
    VideoDecodeError,
    VideoInfo,
    VideoReader,
    read_frames,
)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode")
    return {
        "mp4": write_index_video(root / "cfr.mp4", 40, fps=25.0),
        "mkv": write_index_video(root / "cfr.mkv", 40, fps=25.0, codec="ffv1"),
        "lossy": write_index_video(root / "lossy.mp4", 40, fps=25.0, lossless=False, seed=1),
        "vfr": write_vfr_video(root / "vfr.mp4"),
        "gop4": write_index_video(root / "gop4.mp4", 40, fps=25.0, keyframe_interval=4),
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


@pytest.mark.parametrize("path", ["sequential", "seek"])
def test_chunks_never_exceed_chunk_size(videos, path):
    reader = VideoReader(videos["gop4"])
    asked = range(39, -1, -1) if path == "sequential" else [38, 30, 22, 14, 6, 3, 0]
    assert reader.seek_for(np.unique(asked)) == (path == "seek")
    chunks = list(reader.iter_frames(asked, 3))
    assert [len(indices) for indices, _ in chunks[:-1]] == [3] * (len(chunks) - 1)
    assert 1 <= len(chunks[-1][0]) <= 3
    assert read_indices_flat(frames for _, frames in chunks) == sorted(asked)


def test_seek_and_sequential_paths_give_identical_frames(videos):
    reader = VideoReader(videos["gop4"])
    asked = np.array([1, 9, 9, 22, 35])
    assert reader.seek_for(asked)  # keyframes every 4 frames: seeking decodes 3 of 5 frames
    sought = torch.cat([frames for _, frames in reader.iter_frames(asked, 2)])
    reader.seek_for = lambda indices: False
    decoded = torch.cat([frames for _, frames in reader.iter_frames(asked, 2)])
    assert torch.equal(sought, decoded)
    assert read_indices(sought) == asked.tolist()


def test_sparse_requests_on_a_long_gop_decode_sequentially(videos):
    reader = VideoReader(videos["mp4"])  # one keyframe: a seek saves nothing
    assert not reader.seek_for(np.array([5, 20, 35]))


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
    # FFmpeg's average rate of an mp4 is frames / duration, not the nominal rate (10)
    assert reader.info.fps == pytest.approx(len(VFR_PTS) / 1.7, rel=1e-3)
    [(_, frames)] = list(reader.iter_frames(range(10)))
    assert read_indices(frames) == list(range(10))


def test_absurd_container_times_are_derived_from_the_rate(tmp_path):
    # a frame 20000 s after the previous one in a 3-frame, 10 fps video: not a real time
    path = write_index_video(tmp_path / "absurd.mkv", 3, fps=10.0, codec="ffv1", pts=[0, 0.1, 2e4])
    reader = VideoReader(path)
    assert reader.info.timestamps_source == "derived" and not reader.timestamps_from_container
    np.testing.assert_allclose(reader.frame_timestamps(), [0.0, 0.1, 0.2])
    assert reader.info.duration == pytest.approx(0.3)
    [(_, frames)] = list(reader.iter_frames(range(3)))
    assert read_indices(frames) == [0, 1, 2]


def test_decoder_resizes_to_decode_size(videos):
    reader = VideoReader(videos["mp4"], width=32, height=24)
    assert (reader.info.width, reader.info.height) == (32, 24)
    [(_, frames)] = list(reader.iter_frames([0, 21, 39]))
    assert frames.shape == (3, 24, 32, 3)
    assert read_indices(frames) == [0, 21, 39]


def _fail_at(monkeypatch, position: int) -> None:
    """Make the decoder reject the packet of its ``position``-th output frame (a reference)."""
    decoder_output = frame_table.decoder_output

    def failing(container, stream):
        items = decoder_output(container, stream)
        frames = (item for item in items if not isinstance(item, frame_table.PacketTaken))
        for count, item in enumerate(frames):
            if count == position:
                yield frame_table.DecodeFailure("InvalidDataError: boom", item.pts)
                continue
            yield item

    monkeypatch.setattr(frame_table, "decoder_output", failing)


def test_decode_error_names_path_count_fps_frame_and_indices(videos, monkeypatch):
    reader = VideoReader(videos["mp4"], on_damage="fail")
    _fail_at(monkeypatch, 21)
    chunks = []
    with pytest.raises(VideoDecodeError) as caught:
        for chunk in reader.iter_frames([3, 9, 30], chunk_size=2):
            chunks.append(chunk)
    message = str(caught.value)
    assert str(videos["mp4"]) in message
    assert "40 frames at 25.000 fps" in message
    assert "frame 21 (about 0.84 s) failed: InvalidDataError: boom" in message
    assert "[3, 9, 30]" in message and "on_damage='keep'" in message
    assert caught.value.decodable_frames == 21
    assert [indices.tolist() for indices, _ in chunks] == [[3, 9]]  # never a substitute for 30


def test_damage_keeps_the_clean_frames_and_records_the_loss(videos, monkeypatch):
    _fail_at(monkeypatch, 21)  # no keyframe after frame 0: frames 21-39 are lost
    with pytest.raises(VideoDecodeError, match="frame 21"):
        VideoReader(videos["mp4"], index="decode", on_damage="fail")
    reader = VideoReader(videos["mp4"], index="decode")
    info = reader.info
    assert info.num_frames == 21 and info.lost_frames == 19 and info.frames_in_file == 40
    assert info.lost_first_s == pytest.approx(0.84) and info.lost_last_s == pytest.approx(1.56)
    assert info.damage == "InvalidDataError: boom" and info.duration == pytest.approx(21 / 25)
    [(indices, frames)] = list(reader.iter_frames(range(40), chunk_size=40))
    assert read_indices(frames) == indices.tolist() == [*range(21), *[20] * 19]  # clamped
    info, indices, timestamps, frames = read_frames(
        videos["mp4"], lambda info, times: np.arange(info.num_frames)
    )
    assert info.lost_frames == 19 and read_indices(frames) == list(range(21))
    np.testing.assert_allclose(timestamps, np.arange(21) / 25.0, atol=1e-6)
    with pytest.raises(VideoDecodeError, match="mostly damaged: 19 of 40 frames lost"):
        VideoReader(videos["mp4"], index="decode", max_lost_fraction=0.4)


def test_a_wrong_container_table_is_rebuilt_from_a_decode_pass(videos, monkeypatch):
    container_table = frame_table.container_table

    def shifted(
        container, stream, by_pts=True
    ):  # claims frame 10 is missing and one more at the end
        table = container_table(container, stream, by_pts)
        pts = np.concatenate([table.pts[:10], table.pts[11:], [table.pts[-1] + 512]])
        return frame_table.FrameTable(pts, table.keyframes, len(pts), frames=len(pts))

    monkeypatch.setattr(frame_table, "container_table", shifted)
    reader = VideoReader(videos["mp4"])
    with pytest.raises(FrameTableMismatch, match="index='decode'"):
        list(reader.iter_frames(range(40)))
    info, indices, _, frames = read_frames(videos["mp4"], lambda info, times: np.arange(40))
    assert info.num_frames == 40 and read_indices(frames) == indices.tolist() == list(range(40))


def test_frames_48_pixels_wide_decode(tmp_path):
    # decord 0.6.0 failed to copy frames 48 pixels wide (also 8, 16, 24, 72)
    path = write_index_video(tmp_path / "w48.mp4", 3, size=(48, 48))
    [(_, frames)] = list(VideoReader(path).iter_frames([0, 1, 2]))
    assert frames.shape == (3, 48, 48, 3) and read_indices(frames) == [0, 1, 2]


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


def test_a_frame_the_decoder_drops_silently_is_a_recorded_loss(videos, monkeypatch):
    decoder_output = frame_table.decoder_output

    def dropping(container, stream):  # frame 13 never comes out, and nothing is raised
        items = decoder_output(container, stream)
        frames = (item for item in items if not isinstance(item, frame_table.PacketTaken))
        for position, item in enumerate(frames):
            if position != 13:
                yield item

    monkeypatch.setattr(frame_table, "decoder_output", dropping)
    with pytest.raises(FrameTableMismatch, match=r"frame 13: the decoder skipped") as caught:
        list(VideoReader(videos["mp4"]).iter_frames(range(20)))  # a gap in the container's pts
    assert caught.value.decodable_frames == 13
    with pytest.raises(VideoDecodeError, match=r"frame 13 .*skipped this frame"):
        list(VideoReader(videos["mp4"], on_damage="fail").iter_frames(range(20)))
    with pytest.raises(VideoDecodeError, match=r"frame 13 .*no frame for this packet"):
        VideoReader(videos["mp4"], index="decode", on_damage="fail")  # 39 frames, 40 packets
    reader = VideoReader(videos["mp4"], index="decode")
    assert reader.info.num_frames == 39 and reader.info.frames_in_file == 40
    assert reader.info.lost_first_s == pytest.approx(13 / 25)
    [(_, frames)] = list(reader.iter_frames(range(39), chunk_size=39))
    assert read_indices(frames) == [*range(13), *range(14, 40)]
