"""Frame-exact decoding on the conformance suite of ``video_factory``.

Every conformance video encodes the index of each displayed frame in its pixels, and
:func:`video_factory.ground_truth` decodes it with a plain sequential PyAV loop, in
presentation order (by pts; output order in AVI). For every kind and every sampling mode,
:class:`VideoReader` must report the frames and times that decode gives, pick the same frames
as sampling the ground truth, and return exactly those frames (upright), whichever chunks the
request is cut into. Packed B-frames (DivX/Xvid) are read like any other AVI.

Damaged files keep their clean frames: the frames each kind loses are fixed by how the file
was damaged (its writer's docstring), every frame returned shows the index its timestamp
implies, the timestamps show the gap, and ``on_damage="fail"`` fails at the first loss.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from video_factory import (
    CONFORMANCE_KINDS,
    DAMAGED_KINDS,
    ODD_SIZE,
    ROTATED_SIZE,
    GroundTruth,
    ground_truth,
    index_frame,
    read_indices,
    write_conformance_video,
)

from video_eleatt.video.decode import (
    FrameTableMismatch,
    VideoDecodeError,
    VideoReader,
    read_frames,
)
from video_eleatt.video.sampling import SamplingConfig, sample_frame_indices

SAMPLINGS = {
    "all": SamplingConfig(mode="all"),
    "fps2": SamplingConfig(mode="fps", fps=2.0),
    "fps50": SamplingConfig(mode="fps", fps=50.0),  # above every video's rate: repeats
    "uniform8": SamplingConfig(mode="uniform", num_frames=8),
    "segments16": SamplingConfig(mode="segments", num_segments=16),
    "uniform8_max5": SamplingConfig(mode="uniform", num_frames=8, max_frames=5),
    "all_max7": SamplingConfig(mode="all", max_frames=7),
}
CHUNK_SIZE = 5  # small, so that most requests cross chunk boundaries

# A frame of these is on screen for a whole second: sampling may pick it twice.
VARIABLE_RATE_KINDS = {"vfr_gap_mp4"}

# What the factory promises about each kind (checked against the ground truth below).
EXPECTED_FRAMES = {
    "mpeg4_bframes_avi": 60,
    "h264_bframes_mp4": 80,
    "h264_offset_mp4": 60,
    "h264_negative_start_mp4": 60,  # 70 packets: 10 frames before time 0 are hidden
    "h264_mkv": 60,
    "vp9_webm": 60,
    "mjpeg_avi": 40,
    "vfr_gap_mp4": 60,
    "rotated90_mp4": 40,
    "odd_size": 40,
    "gray": 40,
    "yuv420p10": 60,
    "single_frame": 1,
    "mpeg4_packed1_avi": 60,
    "mpeg4_packed2_avi": 60,
    "mpeg4_packed_long_avi": 900,
    "mpeg4_nvop_avi": 30,  # 31 chunks: an N-VOP shows nothing
    "h264_bframes_avi": 80,
    "mpeg4_bframes_long_avi": 600,
}
# kind -> (non-empty packets, frames FFmpeg outputs, frames before the first decode error,
# the frames lost: the damaged ones and those decoded from them up to the next keyframe)
EXPECTED_DAMAGE = {
    # P-frame 120 rejected (keyframes every 50); frame 210 flagged corrupt
    "h264_slice_errors": (300, 299, 120, [*range(120, 150), *range(210, 250)]),
    # frame 24 flagged corrupt, packets 25-36 rejected, 37-39 from lost references; key 40
    "h264_zeroed_middle": (60, 48, 24, list(range(24, 40))),
    # one B-frame (no other frame's reference) rejected: frame 39 in presentation order
    "h264_lost_bframe_mp4": (80, 79, 39, [39]),
    # packed AVI: chunk 13 (P15 + B13) rejected; I12, decoded before, comes out after it
    "mpeg4_packed_damaged_avi": (60, 58, 12, list(range(13, 24))),
}
# The frame a strict reader names, from the container's table and from a decode pass, where
# they differ from the first lost frame: reading front to back, the AVI fails before its
# frame 12 comes out (decoded before the damage, output after it).
STRICT_FRAME = {"mpeg4_packed_damaged_avi": {"auto": 12, "decode": 13}}


class _Videos:
    """Writes each kind once per module, on first use, with its ground truth."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cache: dict[str, tuple[Path, GroundTruth]] = {}

    def __call__(self, kind: str) -> tuple[Path, GroundTruth]:
        if kind not in self.cache:
            path = write_conformance_video(self.folder, kind)
            self.cache[kind] = (path, ground_truth(path))
        return self.cache[kind]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> _Videos:
    return _Videos(tmp_path_factory.mktemp("conformance"))


def _is_avi(path: Path) -> bool:
    return path.suffix.lower() == ".avi"


def _reference_times(path: Path, truth: GroundTruth) -> np.ndarray:
    """The frame times a reader must report: AVI has no presentation times, only a rate."""
    if _is_avi(path):
        return np.arange(len(truth.frame_ids), dtype=np.float64) / truth.rate
    return truth.times


def _decode(reader: VideoReader, indices: np.ndarray) -> tuple[list[int], list[int]]:
    """Decode ``indices`` in chunks of CHUNK_SIZE; the indices returned and the frames' ids."""
    height, width = reader.info.height, reader.info.width
    got_indices: list[int] = []
    got_ids: list[int] = []
    for chunk_indices, frames in reader.iter_frames(indices, chunk_size=CHUNK_SIZE):
        frames = np.asarray(frames)
        assert chunk_indices.dtype == np.int64
        assert 1 <= len(chunk_indices) <= CHUNK_SIZE
        assert frames.dtype == np.uint8 and frames.shape == (len(chunk_indices), height, width, 3)
        got_indices.extend(chunk_indices.tolist())
        got_ids.extend(read_indices(frames))
    return got_indices, got_ids


# ---------------------------------------------------------------------------- the factory


@pytest.mark.parametrize("kind", CONFORMANCE_KINDS)
def test_conformance_video_shows_frame_i_as_i(videos, kind):
    # the ground truth every reader test relies on: frame i encodes i, times start at 0
    _, truth = videos(kind)
    assert truth.frame_ids == list(range(EXPECTED_FRAMES[kind]))
    assert truth.first_error is None
    assert truth.times.dtype == np.float64 and truth.times.shape == (len(truth.frame_ids),)
    assert truth.times[0] == 0.0 and (np.diff(truth.times) > 0).all()
    assert np.isfinite(truth.rate) and truth.rate > 0
    assert truth.rotation == (90 if kind == "rotated90_mp4" else 0)
    size = {
        "rotated90_mp4": ROTATED_SIZE,
        "odd_size": ODD_SIZE,
        "mpeg4_packed_long_avi": (32, 32),
        "mpeg4_bframes_long_avi": (32, 32),
    }
    size = size.get(kind, (64, 48))
    assert truth.size == size


def test_vfr_gap_video_pauses_for_a_second(videos):
    _, truth = videos("vfr_gap_mp4")
    steps = np.diff(truth.times)
    np.testing.assert_allclose(np.delete(steps, 29), 0.04, atol=1e-6)
    assert steps[29] == pytest.approx(1.04, abs=1e-6)


@pytest.mark.parametrize("kind", DAMAGED_KINDS)
def test_damaged_video_is_damaged_as_documented(videos, kind):
    import av

    path, truth = videos(kind)
    packets, frames, first_error, lost = EXPECTED_DAMAGE[kind]
    with av.open(str(path)) as container:
        assert sum(1 for packet in container.demux(video=0) if packet.size) == packets
    assert len(truth.frame_ids) == frames < packets  # FFmpeg outputs fewer frames than packets
    assert truth.first_error == first_error
    assert truth.frame_ids[:first_error] == list(range(first_error))
    assert truth.frame_ids[first_error] != first_error  # the damage shows in the pixels
    # after the lost frames, every frame is exact again
    after = lost[-1] + 1
    assert truth.frame_ids[after - packets :] == list(range(after, packets))
    if kind == "h264_zeroed_middle":
        assert path.stat().st_size >= 256 * 1024


def test_nvop_avi_has_one_chunk_more_than_frames_and_is_not_packed(videos):
    import av

    from video_eleatt.video.mpeg4 import Mpeg4Vops

    path, truth = videos("mpeg4_nvop_avi")
    vops = Mpeg4Vops()
    with av.open(str(path)) as container:
        flags = [vops.add(bytes(p)) for p in container.demux(video=0) if p.size]
    assert len(flags) == 31 and flags.count(True) == 1 and flags[10] and not vops.packed
    assert len(truth.frame_ids) == 30
    # not damage: even the strict reader takes it whole
    reader = VideoReader(path, on_damage="fail")
    assert reader.info.num_frames == 30 and reader.info.lost_frames == 0
    assert _decode(reader, np.arange(30))[1] == list(range(30))


def test_packed_avi_is_packed_and_labelled_out_of_order(videos):
    # the file the old reader refused: DivX user data, two VOPs in a chunk, N-VOPs, and pts
    # labels that are not in presentation order although the frames are
    import av

    from video_eleatt.video.mpeg4 import Mpeg4Vops

    path, truth = videos("mpeg4_packed2_avi")
    with av.open(str(path)) as container:
        chunks = [bytes(packet) for packet in container.demux(video=0) if packet.size]
    assert b"DivX503b1393p" in chunks[0]
    assert len(chunks) == 60
    assert any(chunk.count(b"\x00\x00\x01\xb6") == 2 for chunk in chunks)  # P + B
    assert min(len(chunk) for chunk in chunks) <= 8  # N-VOPs
    assert truth.frame_ids == list(range(60))
    assert truth.output_pts != sorted(truth.output_pts)
    for kind in ("mpeg4_packed1_avi", "mpeg4_packed2_avi", "mpeg4_packed_long_avi"):
        vops = Mpeg4Vops()
        with av.open(str(videos(kind)[0])) as container:
            not_coded = [vops.add(bytes(p)) for p in container.demux(video=0) if p.size]
        assert vops.packed and any(not_coded)  # the N-VOPs that release the P-frames


# ----------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("kind", CONFORMANCE_KINDS)
def test_info_and_timestamps_match_the_ground_truth(videos, kind):
    path, truth = videos(kind)
    reader = VideoReader(path)
    info = reader.info
    assert info.num_frames == len(truth.frame_ids)
    assert (info.width, info.height) == truth.size  # upright
    assert info.rotation == truth.rotation
    assert info.lost_frames == 0 and info.frames_in_file is None
    assert np.isfinite(info.fps) and info.fps > 0
    if kind not in VARIABLE_RATE_KINDS:
        assert info.fps == pytest.approx(truth.rate, rel=1e-3)
    timestamps = reader.frame_timestamps()
    assert timestamps.dtype == np.float64 and timestamps.shape == (info.num_frames,)
    if _is_avi(path):  # no presentation times in AVI: frame i starts at i / rate
        assert info.timestamps_source == "derived"
        np.testing.assert_allclose(timestamps, _reference_times(path, truth), rtol=0, atol=1e-6)
    else:
        assert info.timestamps_source == "container"
        np.testing.assert_allclose(timestamps, truth.times, rtol=0, atol=1e-3)


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("kind", CONFORMANCE_KINDS)
def test_sampled_frames_are_exactly_the_ground_truth(videos, kind, sampling):
    path, truth = videos(kind)
    config = SAMPLINGS[sampling]
    reader = VideoReader(path)
    info = reader.info
    indices = sample_frame_indices(info.num_frames, info.fps, config, reader.frame_timestamps())
    expected = sample_frame_indices(
        len(truth.frame_ids), info.fps, config, _reference_times(path, truth)
    )
    np.testing.assert_array_equal(indices, expected)

    got_indices, got_ids = _decode(reader, indices)
    assert got_indices == indices.tolist()
    assert got_ids == [truth.frame_ids[i] for i in indices]

    # no frame twice unless the video is too short (or, at variable rate, too slow) for it
    if kind not in VARIABLE_RATE_KINDS:
        count = config.num_frames if config.mode == "uniform" else config.num_segments
        if config.mode in ("uniform", "segments") and count <= info.num_frames:
            assert len(set(got_indices)) == len(got_indices)
        if config.mode == "fps" and config.fps < truth.rate:
            assert len(set(got_indices)) == len(got_indices)
        if config.mode == "all":
            assert len(set(got_indices)) == len(got_indices)


def test_rotated_video_comes_back_upright(videos):
    path, _ = videos("rotated90_mp4")
    reader = VideoReader(path)
    # stored as a phone's "rotate 90": turn the coded 64x80 frames 90 degrees clockwise
    assert reader.info.rotation == 90
    assert (reader.info.width, reader.info.height) == ROTATED_SIZE == (80, 64)
    for chunk_indices, frames in reader.iter_frames([0, 1, 6, 7, 39], chunk_size=CHUNK_SIZE):
        for index, frame in zip(chunk_indices.tolist(), np.asarray(frames)):
            # lossless: pixel for pixel the upright pattern, not a mirrored or flipped one
            np.testing.assert_array_equal(frame, index_frame(index, ROTATED_SIZE))


def test_every_frame_in_one_chunk_and_one_at_a_time(videos):
    # the same frames whatever the chunking, on the file decord gets wrong (B-frames in AVI)
    path, truth = videos("mpeg4_bframes_avi")
    reader = VideoReader(path)
    [(indices, frames)] = list(reader.iter_frames(np.arange(60), chunk_size=60))
    assert indices.tolist() == list(range(60))
    assert read_indices(frames) == truth.frame_ids
    singles = [
        read_indices(frames)[0]
        for index in (59, 17, 33, 0, 12)
        for _, frames in VideoReader(path).iter_frames([index], chunk_size=1)
    ]
    assert singles == [59, 17, 33, 0, 12]


# ---------------------------------------------------------------------------- damaged files


def _clean_frames(kind: str) -> tuple[list[int], list[int]]:
    packets, _, _, lost = EXPECTED_DAMAGE[kind]
    return [i for i in range(packets) if i not in set(lost)], lost


@pytest.mark.parametrize("sampling", ["all", "uniform8", "fps2", "segments16"])
@pytest.mark.parametrize("kind", DAMAGED_KINDS)
def test_damaged_video_keeps_every_clean_frame_and_shows_the_gap(videos, kind, sampling):
    path, _ = videos(kind)
    clean, lost = _clean_frames(kind)
    reader = VideoReader(path, index="decode")
    info = reader.info
    assert info.num_frames == len(clean) and info.lost_frames == len(lost)
    assert info.frames_in_file == EXPECTED_DAMAGE[kind][0]
    assert info.lost_first_s == pytest.approx(lost[0] / 25) and info.damage
    assert info.lost_last_s == pytest.approx(lost[-1] / 25)
    timestamps = reader.frame_timestamps()
    np.testing.assert_allclose(timestamps, np.array(clean) / 25, rtol=0, atol=1e-6)
    indices = sample_frame_indices(info.num_frames, info.fps, SAMPLINGS[sampling], timestamps)
    got_indices, got_ids = _decode(reader, indices)
    assert got_indices == indices.tolist()
    assert got_ids == [clean[i] for i in indices]  # never another frame in a lost one's place


@pytest.mark.parametrize("kind", DAMAGED_KINDS)
def test_damaged_video_through_read_frames_from_the_container_table(videos, kind):
    # the container's table cannot know the damage: decoding finds it, and read_frames (like
    # the decode pool) indexes the video again by a decode pass
    path, _ = videos(kind)
    clean, lost = _clean_frames(kind)
    with pytest.raises(FrameTableMismatch, match=r"damage|skipped"):
        reader = VideoReader(path)
        assert reader.info.lost_frames == 0  # not known yet
        for _ in reader.iter_frames(np.arange(reader.info.num_frames), chunk_size=CHUNK_SIZE):
            pass
    info, _, timestamps, frames = read_frames(path, lambda info, times: np.arange(info.num_frames))
    assert info.lost_frames == len(lost)
    assert read_indices(frames.numpy()) == clean
    np.testing.assert_allclose(timestamps, np.array(clean) / 25, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", DAMAGED_KINDS)
def test_damaged_video_fails_at_the_first_loss_when_asked(videos, kind):
    path, _ = videos(kind)
    _, lost = _clean_frames(kind)
    for index in ("auto", "decode"):
        with pytest.raises(VideoDecodeError) as caught:
            reader = VideoReader(path, on_damage="fail", index=index)
            for _ in reader.iter_frames(np.arange(reader.info.num_frames), chunk_size=CHUNK_SIZE):
                pass
        message = str(caught.value)
        assert str(path) in message
        assert re.search(r"fail", message, re.IGNORECASE), message
        frame = STRICT_FRAME.get(kind, {}).get(index, lost[0])
        assert f"frame {frame} " in message  # the first frame lost, in presentation order
        assert caught.value.decodable_frames == frame
        assert not isinstance(caught.value, FrameTableMismatch)


def test_mostly_damaged_video_fails_over_the_limit(videos):
    path, _ = videos("h264_slice_errors")  # 70 of 300 frames lost
    assert VideoReader(path, index="decode", max_lost_fraction=0.25).info.lost_frames == 70
    with pytest.raises(VideoDecodeError, match=r"mostly damaged: 70 of 300 frames lost \(23%"):
        VideoReader(path, index="decode", max_lost_fraction=0.2)


# ---------------------------------------------------------------------------- packed AVI


@pytest.mark.parametrize("kind", ["mpeg4_packed_long_avi", "mpeg4_bframes_long_avi"])
def test_sparse_frames_of_a_long_avi_come_from_checked_seeks(videos, monkeypatch, kind):
    # packed or plain: the reader seeks to the I-VOP packet before each frame, after the
    # decoder took the first packet (without it, FFmpeg drops every P-frame of a packed AVI
    # after a seek), and checks each frame by the packet that released it; the sequential
    # path must not be needed
    path, _ = videos(kind)
    frames = EXPECTED_FRAMES[kind]
    gop = 300 if kind == "mpeg4_packed_long_avi" else 100
    indices = np.array([5, gop - 1, gop, gop + 1, gop + gop // 2, 2 * gop + 1, frames - 1])
    reader = VideoReader(path)
    assert reader.seek_for(indices)

    def no_fallback(self, wanted):
        raise AssertionError(f"the seek path handed frames {wanted.tolist()} to decoding")

    monkeypatch.setattr(VideoReader, "_sequential_frames", no_fallback)
    got_indices, got_ids = _decode(reader, indices)
    assert got_indices == indices.tolist() and got_ids == indices.tolist()
    for config in (
        SamplingConfig(mode="fps", fps=0.5),
        SamplingConfig(mode="uniform", num_frames=8),
    ):
        indices = sample_frame_indices(frames, 25.0, config, reader.frame_timestamps())
        assert _decode(VideoReader(path), indices)[1] == indices.tolist()


def test_a_seek_without_the_first_packet_is_caught(videos, monkeypatch):
    # FFmpeg's own behaviour, which the reader guards against: a packed AVI sought by a decoder
    # that never took its first packet loses its P-frames; the landing check must see it
    from video_eleatt.video import decode

    path, _ = videos("mpeg4_packed_long_avi")
    reader = VideoReader(path)
    monkeypatch.setattr(VideoReader, "_prime", staticmethod(lambda container, stream: None))
    surprises = []
    real_seek = VideoReader._seek_in_order

    def spy(self, wanted):
        try:
            yield from real_seek(self, wanted)
        except decode._SeekSurprise as surprise:
            surprises.append(str(surprise))
            raise

    monkeypatch.setattr(VideoReader, "_seek_in_order", spy)
    assert _decode(reader, np.array([302, 303, 605]))[1] == [302, 303, 605]  # via decoding
    assert surprises and "from packet" in surprises[0]


def test_a_seek_that_lands_elsewhere_hands_over_to_decoding(videos, monkeypatch):
    # the keyframe table is wrong by a GOP: the landing check sees it and decodes instead
    from video_eleatt.video import frame_table

    container_table = frame_table.container_table

    def shifted(container, stream, by_pts=True):
        table = container_table(container, stream, by_pts)
        points = np.concatenate([table.seek_points[:1], table.seek_points[2:], [10**6]])
        return dataclasses.replace(table, seek_points=points)

    monkeypatch.setattr(frame_table, "container_table", shifted)
    path, _ = videos("mpeg4_bframes_long_avi")
    indices = np.array([150, 450])
    reader = VideoReader(path)
    assert reader.seek_for(indices)
    assert _decode(reader, indices)[1] == [150, 450]


def test_packed_avi_in_one_chunk_and_one_at_a_time(videos):
    path, _ = videos("mpeg4_packed1_avi")
    [(indices, frames)] = list(VideoReader(path).iter_frames(np.arange(60), chunk_size=60))
    assert read_indices(frames) == indices.tolist() == list(range(60))
    singles = [
        read_indices(frames)[0]
        for index in (59, 17, 33, 0, 12, 13)
        for _, frames in VideoReader(path).iter_frames([index], chunk_size=1)
    ]
    assert singles == [59, 17, 33, 0, 12, 13]


# ------------------------------------------------------- decoder output out of presentation order


def _in_decode_order(decoder_output):
    from video_eleatt.video import frame_table

    """A decoder that outputs frames in decode order (as FFmpeg's H.264 decoder does on a
    stream that does not signal its reorder delay): each B-frame after the reference that
    follows it, with the pts of the presentation it belongs to."""

    def output(container, stream):
        held = []  # B-frames: out once the next reference has gone out
        for item in decoder_output(container, stream):
            if isinstance(item, frame_table.PacketTaken):
                yield item
                continue
            if int(item.pict_type) == 3:  # B
                held.append(item)
                continue
            yield item
            yield from held
            held = []
        yield from held

    return output


@pytest.mark.parametrize("sampling", ["all", "uniform8", "segments16", "fps2"])
def test_frames_out_of_presentation_order_are_put_in_order_by_pts(videos, monkeypatch, sampling):
    # No FFmpeg bitstream filter here removes a stream's reorder-delay signalling, so the
    # decoder that outputs decode order is simulated on a real B-frame file.
    from video_eleatt.video import frame_table

    path, truth = videos("h264_bframes_mp4")
    monkeypatch.setattr(frame_table, "decoder_output", _in_decode_order(frame_table.decoder_output))
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        items = frame_table.decoder_output(container, stream)
        order = [item.pts for item in items if not isinstance(item, frame_table.PacketTaken)]
    assert order != sorted(order)  # the simulated decoder really is out of order
    for index in ("auto", "decode"):
        reader = VideoReader(path, index=index)
        assert reader.info.lost_frames == 0
        np.testing.assert_allclose(reader.frame_timestamps(), truth.times, atol=1e-3)
        indices = sample_frame_indices(
            80, reader.info.fps, SAMPLINGS[sampling], reader.frame_timestamps()
        )
        got_indices, got_ids = _decode(reader, indices)
        assert got_indices == indices.tolist() and got_ids == indices.tolist()
