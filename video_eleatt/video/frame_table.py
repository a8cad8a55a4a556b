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

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from video_eleatt.video.mpeg4 import Mpeg4Vops, is_b_only, is_intra

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
        seek_points: for frames known by output order, the container timestamp to seek to for
            each of ``keyframes``, where seeking lands on a known frame (an MPEG-4 Part 2 AVI);
            None: no seeking (frames known by pts seek to their own pts).
    """

    pts: np.ndarray | None
    keyframes: np.ndarray
    frames_in_file: int
    decoded: bool = False
    slots: np.ndarray | None = None
    lost_pts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lost_slots: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    first_error: tuple[int, str] | None = None
    seek_points: np.ndarray | None = None
    frames: int = -1  # clean frames (set by the constructors)

    def __len__(self) -> int:
        return self.frames if self.frames >= 0 else self.frames_in_file

    @property
    def lost(self) -> int:
        """Frames lost to damage."""
        return self.frames_in_file - len(self)


@dataclass(frozen=True)
class PacketTaken:
    """Yielded by :func:`decoder_output` once the decoder has taken a packet, before the
    frames that packet released.

    Attributes:
        dts: the packet's decode timestamp (None for the flush at the end).
        key: a keyframe packet (an MPEG-4 Part 2 packet whose first VOP is an I-VOP, else
            one the container flags).
    """

    dts: int | None
    key: bool


@dataclass
class DecodeState:
    """Where a :func:`clean_frames` decode is: ``released_by`` is the dts of the packet that
    released the frame last yielded (None: the flush at the end)."""

    released_by: int | None = None


# More keyframe packets than keyframes out by this many: the container's keyframe flags do not
# match the decoder's (e.g. an MP4 without a sync-sample table flags every packet).
_KEY_FLAG_SLACK = 3


def decoder_output(container, stream) -> Iterator:
    """Every frame the decoder outputs, packet by packet; a :class:`DecodeFailure` where it
    rejects a packet (yielded, not raised: decoding goes on after it); and a
    :class:`PacketTaken` for each packet it takes, before the frames that packet released."""
    codec = stream.codec_context.name
    extradata = stream.codec_context.extradata
    for packet in container.demux(stream):  # ends with an empty packet: flushes the decoder
        try:
            frames = packet.decode()
        except Exception as err:  # av.error.InvalidDataError and friends
            reference = is_reference(bytes(packet), codec, extradata)
            yield DecodeFailure(first_line(err), packet.pts, reference)
            continue
        key = bool(packet.size) and (
            is_intra(bytes(packet)) if codec == "mpeg4" else bool(packet.is_keyframe)
        )
        yield PacketTaken(packet.dts if packet.size else None, key)
        yield from frames


def is_reference(data: bytes, codec: str, extradata: bytes | None = None) -> bool:
    """Whether a packet may be another frame's reference (True unless shown otherwise).

    Told for H.264 (every slice NAL unit has ``nal_ref_idc`` 0: a non-reference frame, in
    length-prefixed ``avcC`` or Annex B framing) and MPEG-4 Part 2 (only B-VOPs, never
    references); any other codec, or a packet too damaged to parse, counts as a reference.
    """
    if codec == "mpeg4":
        return not is_b_only(data)
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


def clean_frames(
    container, stream, losses: Losses | None = None, state: DecodeState | None = None
) -> Iterator[tuple[int, object]]:
    """``(slot, frame)`` of every clean frame the decoder outputs, in output order.

    Damage (see the module docstring) is recorded in ``losses`` and decoding goes on; without
    ``losses`` the first damage raises :class:`DecodeFailure` (callers that cannot place a
    loss). Slots count clean and lost frames together. ``state``, when given, says which
    packet released each frame yielded.

    Decoding is clean again at a keyframe *decoded* after the damage: the decoder outputs
    keyframes in the order it took their packets, so the n-th keyframe out is the n-th
    keyframe packet taken, and one taken before the damage (output late, B-frames before it) is
    kept but does not end it.
    """
    slot = 0
    broken = False  # a reference is damaged until a keyframe decoded after it
    keys_taken = keys_out = damaged_at = 0
    for item in decoder_output(container, stream):
        if isinstance(item, PacketTaken):
            keys_taken += item.key
            if state is not None:
                state.released_by = item.dts
            continue
        if isinstance(item, DecodeFailure):
            reason, pts = item.reason, item.pts
        else:
            keys_out += bool(item.key_frame)
            after = keys_out > damaged_at or keys_taken - keys_out > _KEY_FLAG_SLACK
            if item.is_corrupt:
                reason, pts = CORRUPT_FRAME, item.pts
            elif broken and not item.key_frame:
                reason, pts = BROKEN_REFERENCE, item.pts
            else:  # a keyframe taken before the damage is clean too, but does not end it
                broken = broken and not after
                yield slot, item
                slot += 1
                continue
        if reason != BROKEN_REFERENCE and (not isinstance(item, DecodeFailure) or item.reference):
            broken, damaged_at = True, keys_taken
        if losses is None:
            raise DecodeFailure(reason, pts)
        losses.add(slot, pts, reason)
        slot += 1


def container_table(container, stream, by_pts: bool = True) -> FrameTable | None:
    """Step 1: the frame table from the packets (no decoding), or None if unusable.

    With ``by_pts`` False (AVI) the frames are known by output order and only counted
    (:class:`PacketScan`), seekable where :meth:`PacketScan.seek_points` allows.
    """
    layout = PacketScan(stream.codec_context.name) if not by_pts else None
    pts, keyframe_pts = [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue  # the flush packet demux ends with; frames an edit list cuts off
            if packet.is_corrupt or (by_pts and packet.pts is None):
                return None
            if layout is not None:
                layout.add(packet)
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframe_pts.append(packet.pts)
    except Exception:  # a demux error: let the decode pass find out what decodes
        return None
    if not pts:
        return None
    if layout is not None:
        count = layout.frames
        seekable = layout.seek_points()
        if seekable is None:
            return FrameTable(None, np.zeros(1, np.int64), count, frames=count)
        keyframes, seek_points = seekable
        return FrameTable(None, keyframes, count, seek_points=seek_points, frames=count)
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
    scan = scan_packets(path)
    if by_pts and pts and len(known_pts) == len(pts) and len(set(known_pts)) == len(pts):
        return _table_by_pts(np.asarray(pts, np.int64), np.asarray(keys), losses, scan.pts)
    return _table_by_order(
        np.asarray(slots, np.int64),
        np.asarray(keys, bool),
        losses,
        scan.frames,
        scan.keyframe_slots,
    )


def _table_by_pts(
    pts: np.ndarray, keys: np.ndarray, losses: Losses, packet_pts: list[int | None]
) -> FrameTable:
    order = np.argsort(pts, kind="stable")
    ordered = pts[order]
    clean = set(ordered.tolist())
    shown = [value for value in packet_pts if value is not None]
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


def _table_by_order(
    counted: np.ndarray,
    keys: np.ndarray,
    losses: Losses,
    frames_in_file: int,
    keyframe_slots: np.ndarray,
) -> FrameTable:
    """The table of a file known by output order, its clean frames placed in presentation slots.

    ``counted`` slots count one per lost decoder output or rejected packet, which misplaces
    frames after a loss (a rejected packed chunk held two frames; a keyframe taken before the
    damage may come out after it), so a keyframe after a loss is put on the file's keyframe
    slot (``keyframe_slots``) nearest its counted one, and the frames after it follow. The
    lost slots are those no clean frame takes, up to ``frames_in_file`` (the container's
    count).
    """
    slots = np.empty_like(counted)
    shift, previous = 0, -1
    for position, (slot, key) in enumerate(zip(counted.tolist(), keys.tolist())):
        slot += shift
        if key and slot > previous + 1:  # a keyframe after a loss: on its own slot
            candidates = keyframe_slots[keyframe_slots > previous]
            if len(candidates):
                nearest = int(candidates[np.argmin(np.abs(candidates - slot))])
                shift += nearest - slot
                slot = nearest
        slots[position] = previous = slot
    total = max(frames_in_file, previous + 1)
    lost_slots = np.setdiff1d(np.arange(total), slots).astype(np.int64)
    first_error = None
    if len(lost_slots):
        reason = losses.reasons[int(np.argmin(losses.slots))] if len(losses) else SILENT_DROP
        first_error = (int(np.searchsorted(slots, lost_slots[0])), reason)
    keyframes = np.unique(np.concatenate([[0], np.flatnonzero(keys)])).astype(np.int64)
    return FrameTable(
        pts=None,
        keyframes=keyframes,
        frames_in_file=total,
        decoded=True,
        slots=slots if len(lost_slots) else None,
        lost_slots=lost_slots,
        first_error=first_error,
        frames=len(slots),
    )


class PacketScan:
    """What a file's shown packets say, read in file order (demux only): their pts, and for
    frames known by output order how many the decoder shows and where its keyframes sit among
    them (presentation slots).

    MPEG-4 Part 2 is read packet by packet (:class:`~video_eleatt.video.mpeg4.Mpeg4Vops`): an
    N-VOP of a plain stream shows nothing, and the I-VOPs' slots come from the B-frame
    reordering. Any other codec: one frame per packet, keyframes where the packets are.
    """

    def __init__(self, codec: str) -> None:
        self.vops = Mpeg4Vops() if codec == "mpeg4" else None
        self.pts: list[int | None] = []
        self.packets = 0
        self.keyframe_packets: list[int] = []
        self.intra_dts: list[int | None] = []  # MPEG-4: the dts of each I-VOP packet

    def add(self, packet) -> None:
        if self.vops is not None:
            data = bytes(packet)
            self.vops.add(data)
            if is_intra(data):
                self.intra_dts.append(packet.dts)
        if packet.is_keyframe:
            self.keyframe_packets.append(self.packets)
        self.pts.append(packet.pts)
        self.packets += 1

    def seek_points(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(keyframe slots, dts to seek to)`` where a seek can land on a known frame: an
        MPEG-4 Part 2 stream, packed or not, without N-VOPs in a plain stream, whose first frame
        is a keyframe; else None (an N-VOP releases no frame, so it would break the one frame
        per packet that the seek path checks its landing by).
        """
        vops = self.vops
        if vops is None or (not vops.packed and vops.not_coded_packets):
            return None
        slots = vops.keyframe_slots
        dts = self.intra_dts
        if len(slots) != len(dts) or not slots or slots[0] != 0 or None in dts:
            return None
        return np.asarray(slots, np.int64), np.asarray(dts, np.int64)

    @property
    def frames(self) -> int:
        if self.vops is not None:
            return self.vops.frames
        return self.packets

    @property
    def keyframe_slots(self) -> np.ndarray:
        if self.vops is not None:
            return np.asarray(self.vops.keyframe_slots, np.int64)
        return np.asarray(self.keyframe_packets, np.int64)


def scan_packets(path: str) -> PacketScan:
    """:class:`PacketScan` of the first video stream of ``path``: its packets that are shown
    (not cut by an edit list), up to a demux error if there is one."""
    import av

    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        scan = PacketScan(stream.codec_context.name)
        try:
            for packet in container.demux(stream):
                if packet.size and not packet.is_discard:
                    scan.add(packet)
        except Exception:  # a demux error: the packets before it are what the file has
            pass
    return scan


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
