"""The frame table on generated videos: the container's packets and a decode pass agree."""

from __future__ import annotations

import av
import numpy as np
import pytest
from video_factory import write_index_video

from video_eleatt.video import frame_table
from video_eleatt.video.frame_table import (
    BROKEN_REFERENCE,
    DecodeFailure,
    PacketTaken,
    clean_frames,
    container_table,
    decoded_table,
    is_reference,
    scan_packets,
    seek_cost,
)


@pytest.fixture(scope="module")
def gop4(tmp_path_factory):
    return write_index_video(tmp_path_factory.mktemp("table") / "gop4.mp4", 12, keyframe_interval=4)


def test_container_and_decode_pass_give_the_same_table(gop4):
    with av.open(str(gop4)) as container:
        from_packets = container_table(container, container.streams.video[0])
    with av.open(str(gop4)) as container:
        from_decoding = decoded_table(container, container.streams.video[0], str(gop4))
    assert from_packets is not None and len(from_packets) == len(from_decoding) == 12
    np.testing.assert_array_equal(from_packets.pts, from_decoding.pts)
    assert from_packets.keyframes.tolist() == from_decoding.keyframes.tolist() == [0, 4, 8]
    assert from_decoding.first_error is None and from_decoding.frames_in_file == 12
    assert len(scan_packets(str(gop4)).pts) == 12


def _reject_frame_5(monkeypatch, reference: bool) -> None:
    """The decoder rejects the packet of its 6th output frame (packet markers pass through)."""
    decoder_output = frame_table.decoder_output

    def failing(container, stream):
        position = 0
        for item in decoder_output(container, stream):
            if not isinstance(item, PacketTaken):
                position += 1
                if position == 6:
                    item = DecodeFailure("ValueError: boom", item.pts, reference=reference)
            yield item

    monkeypatch.setattr(frame_table, "decoder_output", failing)


def test_a_decoder_error_loses_frames_up_to_the_next_keyframe(gop4, monkeypatch):
    _reject_frame_5(monkeypatch, reference=True)
    with av.open(str(gop4)) as container:
        table = decoded_table(container, container.streams.video[0], str(gop4))
    # 5 is lost, 6 and 7 are decoded from it; the keyframe 8 is clean again
    step = int(table.pts[1])  # ticks per frame
    assert (table.pts // step).tolist() == [0, 1, 2, 3, 4, 8, 9, 10, 11]
    assert (table.lost_pts // step).tolist() == [5, 6, 7] and table.lost == 3
    assert len(table) == 9 and table.frames_in_file == 12 and table.decoded
    assert table.first_error == (5, "ValueError: boom")
    assert table.keyframes.tolist() == [0, 4, 5]  # frame 8 is the 6th clean frame
    with av.open(str(gop4)) as container, pytest.raises(DecodeFailure, match="boom"):
        list(clean_frames(container, container.streams.video[0]))  # no Losses: it raises
    # the same file known by output order: the lost frames keep their slots
    with av.open(str(gop4)) as container:
        table = decoded_table(container, container.streams.video[0], str(gop4), by_pts=False)
    assert table.pts is None and table.slots.tolist() == [0, 1, 2, 3, 4, 8, 9, 10, 11]
    assert table.lost_slots.tolist() == [5, 6, 7]


def test_a_lost_frame_nothing_refers_to_loses_only_itself(gop4, monkeypatch):
    _reject_frame_5(monkeypatch, reference=False)
    with av.open(str(gop4)) as container:
        losses = frame_table.Losses()
        slots = [slot for slot, _ in clean_frames(container, container.streams.video[0], losses)]
    assert slots == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11] and losses.slots == [5]
    assert BROKEN_REFERENCE not in losses.reasons


def test_reference_packets_are_told_from_non_reference_ones():
    # H.264, length-prefixed (avcC with 4-byte lengths): nal_ref_idc in bits 5-6 of the header
    avcc = bytes([1, 100, 0, 30, 0xFF])
    idr, b_slice = bytes([0x65, 0x88]), bytes([0x01, 0x9E])
    prefix = len(b_slice).to_bytes(4, "big")
    assert not is_reference(prefix + b_slice, "h264", avcc)
    assert is_reference(len(idr).to_bytes(4, "big") + idr, "h264", avcc)
    assert not is_reference(b"\x00\x00\x01" + b_slice, "h264", None)  # Annex B
    # MPEG-4 Part 2: only B-VOPs (coding type 2) are never references
    vop = b"\x00\x00\x01\xb6"
    assert not is_reference(vop + bytes([0b10 << 6]), "mpeg4")
    assert is_reference(vop + bytes([0b01 << 6]) + vop + bytes([0b10 << 6]), "mpeg4")  # P + B
    assert is_reference(b"garbage", "vp9")


def test_seek_cost_counts_frames_decoded_from_each_keyframe():
    keyframes = np.array([0, 4, 8])
    # frame 5: keyframe 4 then 5 (2); frame 6 follows on (1); frame 9: keyframe 8 then 9 (2)
    assert seek_cost(keyframes, np.array([5, 6, 9])) == 5
    # frame 2: frames 0, 1, 2 from keyframe 0
    assert seek_cost(keyframes, np.array([2])) == 3
