"""The frame table of a video: its frames in presentation order, how they are known, the seek
points, and what was lost.

:class:`~video_eleatt.video.decode.VideoReader` checks every frame it returns against this
table (steps 1 and 1b of :mod:`video_eleatt.video.decode`). A frame is known one of two ways:

- **by pts** (containers with presentation times: MP4, MOV, MKV, WebM): the table holds the
  sorted pts of the frames, and a decoded frame is the frame whose pts it carries, whatever
  order the decoder outputs it in (an H.264 stream that does not signal its reorder delay comes
  out in decode order);
- **by output order** (AVI, which stores no presentation times, and files whose decoded pts
  are missing or repeated): frame ``i`` is the ``i``-th clean frame the decoder outputs. The
  pts FFmpeg attaches to AVI frames are guesses from a frame counter; with packed B-frames
  (DivX/Xvid "packed bitstream", as in UCF101 and HMDB51) they come out as 1, 2, 4, 3, 5, 7,
  6, ... on frames that are in the right order, so they are never used to identify a frame.

:func:`container_table` reads the table from the container's packets (demux only); it gives
up (None) on a packet without a pts, a corrupt packet or a duplicate pts.
:func:`decoded_table` decodes every frame once without converting it and records what the
decoder really outputs, and what it lost.

**Damage** (:func:`clean_frames`, the one place frames come out of the decoder): a packet the
decoder rejects, or a frame it flags corrupt, loses that frame, and every frame after it up to
the next keyframe, which the decoder made from a broken reference (they look plausible and are
wrong: see ``tests/video_factory.py``'s damaged kinds). A rejected packet that is no other
frame's reference (:func:`is_reference`) loses only itself. Decoding goes on from the next
keyframe. A packet that yields no frame and no error is a loss where frames are known by pts
(its pts never comes out); in AVI it is not (a not-coded N-VOP shows nothing:
:class:`Mpeg4Vops`).
Lost frames are never replaced by others: the table lists the clean frames, and the lost ones
separately (:class:`Losses`), so that their times show as a gap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

CORRUPT_FRAME = "the decoder flagged the frame corrupt (concealed errors)"
BROKEN_REFERENCE = "decoded from a damaged reference (before the next keyframe)"
SILENT_DROP = "the decoder output no frame for this packet and raised no error"


class DecodeFailure(Exception):
    """The decoder raised, or flagged a frame corrupt; ``reason`` says which.

    Attributes:
        reason: one line.
        pts: the pts of the packet or frame lost, where known.
        reference: False when the lost packet is known to be no other frame's reference (an
            H.264 slice with ``nal_ref_idc`` 0, an MPEG-4 B-VOP): the frames after it are
            clean. True (the safe default) when it is, or cannot be told.
    """

    def __init__(self, reason: str, pts: int | None = None, reference: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pts = pts
        self.reference = reference


@dataclass
class Losses:
    """Frames a decode lost, in the order met.

    Attributes:
        slots: output slot of each lost frame (clean frames and lost ones counted together):
            where it sits in a file known by output order.
        pts: the lost frame's pts where the decoder or the packet gave one, else None.
        reasons: why each was lost (:data:`CORRUPT_FRAME`, :data:`BROKEN_REFERENCE`, or the
            decoder's error).
    """

    slots: list[int] = field(default_factory=list)
    pts: list[int | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, slot: int, pts: int | None, reason: str) -> None:
        self.slots.append(slot)
        self.pts.append(pts)
        self.reasons.append(reason)

    def __len__(self) -> int:
        return len(self.slots)


@dataclass(frozen=True)
class FrameTable:
    """The clean frames of a video in presentation order, and the lost ones.

    Attributes:
        pts: int64 (N,) presentation times of the frames in the stream's time base, strictly
            increasing, when frames are known by pts; None when they are known by output order.
        keyframes: int64 sorted positions that a seek can start decoding from (always has 0).
        frames_in_file: frames the file holds: clean and lost ones.
        decoded: True when a decode pass made the table (it knows the losses); False when it
            comes from the container's packets (it assumes none).
        slots: int64 (N,) output slot of each frame, known by output order after a loss
            (frame times are ``slot / rate``); None when the slots are ``0 .. N-1``.
        lost_pts: int64 sorted pts of the lost frames (known by pts), else empty.
        lost_slots: int64 sorted slots of the lost frames (known by output order), else empty.
        first_error: (position of the first lost frame among the frames, its reason), or None.
    """

    pts: np.ndarray | None
    keyframes: np.ndarray
    frames_in_file: int
    decoded: bool = False
    slots: np.ndarray | None = None
    lost_pts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lost_slots: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    first_error: tuple[int, str] | None = None
    frames: int = -1  # clean frames (set by the constructors)

    def __len__(self) -> int:
        return self.frames if self.frames >= 0 else self.frames_in_file

    @property
    def lost(self) -> int:
        """Frames lost to damage."""
        return self.frames_in_file - len(self)


def decoder_output(container, stream) -> Iterator:
    """Every frame the decoder outputs, packet by packet, and a :class:`DecodeFailure` in the
    stream where it rejects a packet (yielded, not raised: decoding goes on after it)."""
    codec = stream.codec_context.name
    extradata = stream.codec_context.extradata
    for packet in container.demux(stream):  # ends with an empty packet: flushes the decoder
        try:
            frames = packet.decode()
        except Exception as err:  # av.error.InvalidDataError and friends
            reference = is_reference(bytes(packet), codec, extradata)
            yield DecodeFailure(first_line(err), packet.pts, reference)
            continue
        yield from frames


_MPEG4_VOP = b"\x00\x00\x01\xb6"
_PACKED_USER_DATA = re.compile(rb"DivX\d+(?:Build|b)\d+p")


class Mpeg4Vops:
    """Reads MPEG-4 Part 2 packets in file order: is the stream packed (DivX/Xvid "packed
    bitstream": ``DivX...p`` user data, or two VOPs in one packet), and is a packet a
    not-coded VOP (``vop_coded`` 0, an N-VOP)? The VOP header's time field has as many bits as
    the VOL's ``vop_time_increment_resolution`` needs, so the VOL is parsed for it."""

    def __init__(self) -> None:
        self.packed = False
        self.time_bits: int | None = None

    def not_coded(self, data: bytes) -> bool:
        """Whether ``data`` holds VOPs and none of them is coded (updates :attr:`packed`)."""
        if _PACKED_USER_DATA.search(data[:4096]) or data.count(_MPEG4_VOP) > 1:
            self.packed = True
        if self.time_bits is None:
            self.time_bits = _vol_time_bits(data)
        position = data.find(_MPEG4_VOP)
        if position < 0 or self.time_bits is None:
            return False
        while position >= 0:
            if _vop_coded(data[position + 4 : position + 16], self.time_bits) is not False:
                return False
            position = data.find(_MPEG4_VOP, position + 4)
        return True


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.text = "".join(f"{byte:08b}" for byte in data)
        self.position = 0

    def read(self, count: int) -> int:
        if self.position + count > len(self.text):
            raise EOFError
        value = int(self.text[self.position : self.position + count] or "0", 2)
        self.position += count
        return value


def _vol_time_bits(data: bytes) -> int | None:
    """Bits of ``vop_time_increment`` from the first VOL header in ``data`` (ISO 14496-2
    6.2.3), or None when there is none or it does not parse."""
    position = data.find(b"\x00\x00\x01\x20")
    if position < 0:
        return None
    bits = _Bits(data[position + 4 : position + 40])
    try:
        bits.read(1 + 8)  # random_accessible_vol, video_object_type_indication
        verid = 1
        if bits.read(1):  # is_object_layer_identifier
            verid = bits.read(4)
            bits.read(3)
        if bits.read(4) == 0xF:  # aspect_ratio_info: extended PAR
            bits.read(16)
        if bits.read(1):  # vol_control_parameters
            bits.read(3)  # chroma_format, low_delay
            if bits.read(1):  # vbv_parameters
                bits.read(79)
        shape = bits.read(2)
        if shape == 3 and verid != 1:
            bits.read(4)
        bits.read(1)  # marker
        resolution = bits.read(16)
    except EOFError:
        return None
    return max(1, (resolution - 1).bit_length()) if resolution else None


def _vop_coded(header: bytes, time_bits: int) -> bool | None:
    """``vop_coded`` of a VOP header (the bytes after its start code), or None."""
    bits = _Bits(header)
    try:
        bits.read(2)  # vop_coding_type
        while bits.read(1):  # modulo_time_base
            pass
        bits.read(1 + time_bits + 1)  # marker, vop_time_increment, marker
        return bool(bits.read(1))
    except EOFError:
        return None


def is_reference(data: bytes, codec: str, extradata: bytes | None = None) -> bool:
    """Whether a packet may be another frame's reference (True unless shown otherwise).

    Told for H.264 (every slice NAL unit has ``nal_ref_idc`` 0: a non-reference frame, in
    length-prefixed ``avcC`` or Annex B framing) and MPEG-4 Part 2 (only B-VOPs, never
    references); any other codec, or a packet too damaged to parse, counts as a reference.
    """
    if codec == "mpeg4":
        types, position = set(), data.find(_MPEG4_VOP)
        while 0 <= position < len(data) - 4:
            types.add(data[position + 4] >> 6)
            position = data.find(_MPEG4_VOP, position + 4)
        return types != {2}
    if codec != "h264":
        return True
    headers = []
    if extradata and extradata[0] == 1 and len(extradata) > 4:  # avcC: length-prefixed
        size, offset = (extradata[4] & 3) + 1, 0
        while offset + size < len(data):
            length = int.from_bytes(data[offset : offset + size], "big")
            headers.append(data[offset + size])
            offset += size + length
    else:  # Annex B start codes
        position = data.find(b"\x00\x00\x01")
        while 0 <= position < len(data) - 3:
            headers.append(data[position + 3])
            position = data.find(b"\x00\x00\x01", position + 3)
    slices = [header for header in headers if header & 0x1F in (1, 5)]
    return not slices or any(header & 0x60 for header in slices)


def clean_frames(container, stream, losses: Losses | None = None) -> Iterator[tuple[int, object]]:
    """``(slot, frame)`` of every clean frame the decoder outputs, in output order.

    Damage (see the module docstring) is recorded in ``losses`` and decoding goes on; without
    ``losses`` the first damage raises :class:`DecodeFailure` (callers that cannot place a
    loss). Slots count clean and lost frames together.
    """
    slot = 0
    broken = False  # a reference is damaged until the next keyframe
    for item in decoder_output(container, stream):
        if isinstance(item, DecodeFailure):
            reason, pts = item.reason, item.pts
        elif item.is_corrupt:
            reason, pts = CORRUPT_FRAME, item.pts
        elif broken and not item.key_frame:
            reason, pts = BROKEN_REFERENCE, item.pts
        else:
            broken = False
            yield slot, item
            slot += 1
            continue
        broken = broken or not isinstance(item, DecodeFailure) or item.reference
        if losses is None:
            raise DecodeFailure(reason, pts)
        losses.add(slot, pts, reason)
        slot += 1


def container_table(container, stream, by_pts: bool = True) -> FrameTable | None:
    """Step 1: the frame table from the packets (no decoding), or None if unusable.

    With ``by_pts`` False (AVI) only the packets are counted: the frames are known by output
    order, with no seek points but the first frame. An MPEG-4 Part 2 stream that is not packed
    (see :class:`Mpeg4Vops`) shows nothing for a not-coded VOP (N-VOP, DivX's "drop frame"),
    so those packets are not counted; in a packed stream each releases the frame before it.
    """
    vops = Mpeg4Vops() if stream.codec_context.name == "mpeg4" else None
    not_coded = 0
    pts, keyframe_pts = [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue  # the flush packet demux ends with; frames an edit list cuts off
            if packet.is_corrupt or (by_pts and packet.pts is None):
                return None
            if vops is not None and not by_pts:
                not_coded += vops.not_coded(bytes(packet))
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframe_pts.append(packet.pts)
    except Exception:  # a demux error: let the decode pass find out what decodes
        return None
    if not pts:
        return None
    if not by_pts:
        count = len(pts) - (0 if vops is None or vops.packed else not_coded)
        return FrameTable(None, np.zeros(1, np.int64), count, frames=count)
    ordered = np.sort(np.asarray(pts, np.int64))
    if not strictly_increasing(ordered):
        return None
    keyframes = np.searchsorted(ordered, np.asarray(keyframe_pts, np.int64))
    keyframes = np.unique(np.concatenate([[0], keyframes])).astype(np.int64)
    return FrameTable(
        pts=ordered, keyframes=keyframes, frames_in_file=len(ordered), frames=len(ordered)
    )


def decoded_table(container, stream, path: str, by_pts: bool = True) -> FrameTable:
    """Step 1b: decode every frame of an open video once (no conversion) and record the clean
    frames and the lost ones; ``path`` is the same file, whose packets are counted to find
    frames the decoder dropped without an error (known by pts only).

    Frames are known by pts when ``by_pts`` and every clean frame has a pts of its own;
    otherwise by output order.
    """
    losses = Losses()
    pts: list[int | None] = []
    slots: list[int] = []
    keys: list[bool] = []
    for slot, frame in clean_frames(container, stream, losses):
        pts.append(frame.pts)
        slots.append(slot)
        keys.append(bool(frame.key_frame))
    known_pts = [value for value in pts if value is not None]
    if by_pts and pts and len(known_pts) == len(pts) and len(set(known_pts)) == len(pts):
        return _table_by_pts(np.asarray(pts, np.int64), np.asarray(keys), losses, path)
    return _table_by_order(np.asarray(slots, np.int64), np.asarray(keys, bool), losses)


def _table_by_pts(pts: np.ndarray, keys: np.ndarray, losses: Losses, path: str) -> FrameTable:
    order = np.argsort(pts, kind="stable")
    ordered = pts[order]
    clean = set(ordered.tolist())
    shown = [value for value in packet_pts(path) if value is not None]
    lost = {value for value in losses.pts if value is not None} | set(shown)
    lost_pts = np.asarray(sorted(lost - clean), np.int64)
    reasons = {value: reason for value, reason in zip(losses.pts, losses.reasons)}
    # losses without a pts (a rejected packet that had none) are counted, not placed
    frames_in_file = len(ordered) + max(len(lost_pts), len(losses))
    first_error = None
    if len(lost_pts):
        first = int(lost_pts[0])
        first_error = (int(np.searchsorted(ordered, first)), reasons.get(first, SILENT_DROP))
    elif len(losses):
        first_error = (len(ordered), losses.reasons[0])
    keyframes = np.flatnonzero(keys[order]).astype(np.int64)
    keyframes = np.unique(np.concatenate([[0], keyframes])).astype(np.int64)
    return FrameTable(
        pts=ordered,
        keyframes=keyframes,
        frames_in_file=frames_in_file,
        decoded=True,
        lost_pts=lost_pts,
        first_error=first_error,
        frames=len(ordered),
    )


def _table_by_order(slots: np.ndarray, keys: np.ndarray, losses: Losses) -> FrameTable:
    lost_slots = np.asarray(sorted(losses.slots), np.int64)
    first_error = None
    if len(lost_slots):
        first = int(np.argmin(losses.slots))
        first_error = (int(np.searchsorted(slots, lost_slots[0])), losses.reasons[first])
    keyframes = np.unique(np.concatenate([[0], np.flatnonzero(keys)])).astype(np.int64)
    return FrameTable(
        pts=None,
        keyframes=keyframes,
        frames_in_file=len(slots) + len(lost_slots),
        decoded=True,
        slots=slots if len(lost_slots) else None,
        lost_slots=lost_slots,
        first_error=first_error,
        frames=len(slots),
    )


def packet_pts(path: str) -> list[int | None]:
    """The pts of the video packets that are shown (not cut by an edit list), file order."""
    import av

    pts = []
    try:
        with av.open(path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size and not packet.is_discard:
                    pts.append(packet.pts)
    except Exception:  # a demux error: the packets before it are what the file has
        pass
    return pts


def strictly_increasing(values) -> bool:
    """Whether a sequence of pts rises at every step (one or no value counts as rising)."""
    values = np.asarray(values)
    return bool(len(values) < 2 or (np.diff(values) > 0).all())


def seek_cost(keyframes: np.ndarray, wanted: np.ndarray) -> int:
    """Frames decoded to reach the sorted unique ``wanted`` frames by seeking."""
    cost, position = 0, -1
    for target in wanted.tolist():
        keyframe = int(keyframes[np.searchsorted(keyframes, target, "right") - 1])
        start = keyframe if keyframe > position + 1 or target <= position else position + 1
        cost += target - start + 1
        position = target
    return cost


def first_line(err: BaseException) -> str:
    """The useful line of a decoder error, with its type."""
    text = str(err).strip() or type(err).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else text}"[:400]
