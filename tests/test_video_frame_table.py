"""The frame table on generated videos: the container's packets and a decode pass agree."""

from __future__ import annotations

import av
import numpy as np
import pytest
from video_factory import write_index_video

from video_eleatt.video.frame_table import (
    DecodeFailure,
    container_table,
    decode_checked,
    decoded_table,
    packet_pts,
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
    assert len(packet_pts(str(gop4))) == 12


def test_a_decoder_error_ends_the_decode_pass_table_at_that_frame(gop4):
    class Failing:
        def __init__(self, container):
            self.container = container

        def decode(self, stream):
            for position, frame in enumerate(self.container.decode(stream)):
                if position == 5:
                    raise ValueError("boom\nsecond line")
                yield frame

    with av.open(str(gop4)) as container:
        table = decoded_table(Failing(container), container.streams.video[0], str(gop4))
    assert len(table) == 5 and table.frames_in_file == 12
    assert table.first_error == (5, "ValueError: boom")
    with av.open(str(gop4)) as container, pytest.raises(DecodeFailure, match="ValueError: boom"):
        list(decode_checked(Failing(container), container.streams.video[0]))


def test_seek_cost_counts_frames_decoded_from_each_keyframe():
    keyframes = np.array([0, 4, 8])
    # frame 5: keyframe 4 then 5 (2); frame 6 follows on (1); frame 9: keyframe 8 then 9 (2)
    assert seek_cost(keyframes, np.array([5, 6, 9])) == 5
    # frame 2: frames 0, 1, 2 from keyframe 0
    assert seek_cost(keyframes, np.array([2])) == 3
