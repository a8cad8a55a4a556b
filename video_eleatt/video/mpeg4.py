"""What an MPEG-4 Part 2 stream (Xvid, DivX: the codec of UCF101 and HMDB51 AVIs) says about
its frames without decoding them, read from its packets in file order (ISO 14496-2).

- **Packed B-frames** (DivX/Xvid "packed bitstream"): ``DivX503b1393p``-style user data, or two
  VOPs in one packet.
- **Not-coded VOPs** (N-VOPs, ``vop_coded`` 0): in a packed stream each follows a P+B packet and
  releases the P-frame; in a plain one it is DivX's "drop frame" placeholder, and FFmpeg shows
  nothing for it. Either way the frames a decoder shows are the *coded* VOPs.
- **Display slots**: where each keyframe (I-VOP) sits in presentation order, from the packets
  around it (see :class:`Mpeg4Vops`).

The VOP header's time field has as many bits as the VOL's ``vop_time_increment_resolution``
needs, so the first VOL is parsed for it.
"""

from __future__ import annotations

import re

VOP_START = b"\x00\x00\x01\xb6"
_VOL_START = b"\x00\x00\x01\x20"
_PACKED_USER_DATA = re.compile(rb"DivX\d+(?:Build|b)\d+p")
_I, _B = 0, 2  # vop_coding_type: I, P, B, S


class Mpeg4Vops:
    """Reads an MPEG-4 Part 2 stream's packets in file order (:meth:`add`).

    Frames are placed per packet, so that one damaged packet misplaces nothing else: in a
    packed stream every packet (N-VOPs included) releases one frame, in presentation order; in
    a plain one every packet but an N-VOP holds one frame, in decode order, and a reference
    (I-, P- or S-VOP) is shown after the B-VOP packets that follow it.

    Attributes:
        packed: the stream stores packed B-frames.
        time_bits: bits of ``vop_time_increment`` (None until a VOL was read).
    """

    def __init__(self) -> None:
        self.packed = False
        self.time_bits: int | None = None
        # per packet: coding type of its first VOP (None: unreadable), VOPs in it, not coded
        self._packets: list[tuple[int | None, int, bool]] = []

    def add(self, data: bytes) -> bool:
        """Read one packet; True when it holds VOPs and none of them is coded (an N-VOP)."""
        count = data.count(VOP_START)
        if not self.packed and (count > 1 or _PACKED_USER_DATA.search(data[:4096])):
            self.packed = True
        if self.time_bits is None:
            self.time_bits = _vol_time_bits(data)
        first_type, coded_any, position = None, False, data.find(VOP_START)
        while position >= 0 and self.time_bits is not None:
            header = _vop_header(data[position + 4 : position + 16], self.time_bits)
            if header is None:
                coded_any = True  # unreadable: counted as a frame
                break
            if first_type is None:
                first_type = header[0]
            coded_any = coded_any or header[1]
            position = data.find(VOP_START, position + 4)
        not_coded = count > 0 and self.time_bits is not None and not coded_any
        self._packets.append((first_type, count, not_coded))
        return not_coded

    @property
    def not_coded_packets(self) -> int:
        """Packets read so far that hold only not-coded VOPs."""
        return sum(1 for _, _, not_coded in self._packets if not_coded)

    @property
    def frames(self) -> int:
        """Frames a decoder shows for the packets read so far."""
        if self.packed:
            return len(self._packets)
        return sum(1 for _, _, not_coded in self._packets if not not_coded)

    @property
    def keyframe_slots(self) -> list[int]:
        """Presentation-order positions of the I-VOPs read so far."""
        packets = self._packets
        slots = []
        if self.packed:
            for index, (first_type, count, _) in enumerate(packets):
                if first_type != _I:
                    continue
                slot = index
                if count > 1:  # I + B: shown where the N-VOP after its B-VOPs releases it
                    following = index + 1
                    while following < len(packets) and not packets[following][2]:
                        following += 1
                    slot = following
                slots.append(slot)
            return slots
        shown = [index for index, packet in enumerate(packets) if not packet[2]]
        for position, index in enumerate(shown):
            if packets[index][0] != _I:
                continue
            run = 0  # the B-VOP packets after it are shown before it
            while position + 1 + run < len(shown) and packets[shown[position + 1 + run]][0] == _B:
                run += 1
            slots.append(position + run)
        return sorted(slots)


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
    """Bits of ``vop_time_increment`` from the first VOL header in ``data`` (6.2.3), or None
    when there is none or it does not parse."""
    position = data.find(_VOL_START)
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


def _vop_header(header: bytes, time_bits: int) -> tuple[int, bool] | None:
    """``(vop_coding_type, vop_coded)`` of a VOP header (the bytes after its start code)."""
    bits = _Bits(header)
    try:
        coding_type = bits.read(2)
        while bits.read(1):  # modulo_time_base
            pass
        bits.read(1 + time_bits + 1)  # marker, vop_time_increment, marker
        return coding_type, bool(bits.read(1))
    except EOFError:
        return None


def is_b_only(data: bytes) -> bool:
    """Whether every VOP in ``data`` is a B-VOP (never another frame's reference)."""
    types, position = set(), data.find(VOP_START)
    while 0 <= position < len(data) - 4:
        types.add(data[position + 4] >> 6)
        position = data.find(VOP_START, position + 4)
    return types == {_B}


def is_intra(data: bytes) -> bool:
    """Whether the first VOP in ``data`` is an I-VOP (a keyframe)."""
    position = data.find(VOP_START)
    return 0 <= position < len(data) - 4 and data[position + 4] >> 6 == _I
