"""Small real videos for tests, written with PyAV, whose frames encode their own index.

Every frame of an "index video" is a grid of black/white blocks: block ``b`` is white when bit
``b`` of the frame index is set. The blocks are large and gray (no chroma), so the pattern
survives yuv420 subsampling, lossy compression and in-decoder resizing; :func:`read_index`
recovers the index from a decoded frame, so a decoder test can assert exactly which frame came
back.

Writers (each returns the path it wrote):

- :func:`write_index_video`: constant or variable frame rate (explicit ``pts``), any container
  PyAV can write (``.mp4``/``.mkv``/``.avi`` chosen by extension), lossless x264 by default.
- :func:`write_vfr_video`: a variable-frame-rate mp4 with irregular gaps (:data:`VFR_PTS`).
- :func:`write_long_video`: a 10-minute video at tiny resolution (a few seconds to write).
- :func:`write_broken_video`: zero-byte, truncated, non-video text, missing path, a video stream
  with no frames, and a video whose every packet is garbage.
- :func:`write_video_folder`: a folder of small videos that differ from each other (seeded
  noise on top of the index pattern), for extraction and pipeline tests.
- :func:`write_conformance_video`: the conformance suite, one small file per decoding quirk
  (:data:`CONFORMANCE_KINDS`: B-frames in AVI and MP4, start offsets, negative start times
  hidden by an edit list, Matroska, VP9, MJPEG, a pause, rotation metadata, odd size, gray,
  10-bit, a single frame) and per kind of damage (:data:`DAMAGED_KINDS`). Each writer's
  docstring records what FFmpeg and decord do with its file.
- :func:`ground_truth`: what a plain sequential PyAV decode of a file gives (the index of
  every output frame, turned upright, and its time), to check a decoder against.

Decoders seen to read these back exactly (decord 0.6.0): lossless libx264 in mp4/mkv, ffv1 in
mkv. Lossy codecs (mpeg4, mjpeg) still give the right :func:`read_index`.
"""

from __future__ import annotations

import fractions
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_SIZE = (64, 48)  # (width, height); both even for yuv420
INDEX_BITS = 16  # frame indices up to 65535

# Presentation times (seconds) of the variable-frame-rate video: irregular gaps, including a
# long pause (0.44 -> 0.9 s) and a burst (0.40, 0.42, 0.44 s).
VFR_PTS = (0.0, 0.1, 0.15, 0.4, 0.42, 0.44, 0.9, 1.0, 1.5, 1.6)

BROKEN_KINDS = ("zero_byte", "truncated", "not_video", "missing", "no_frames", "corrupt")


def _grid(bits: int) -> tuple[int, int]:
    columns = int(np.ceil(np.sqrt(bits)))
    rows = int(np.ceil(bits / columns))
    return rows, columns


def index_frame(
    index: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    bits: int = INDEX_BITS,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """The RGB frame that encodes ``index``.

    Args:
        index: frame index, in [0, 2**bits).
        size: (width, height) in pixels, each at least 4 pixels per grid block.
        bits: number of index bits (grid blocks).
        noise: optional uint8 (H, W, 3) values in [0, 24] added to black blocks and subtracted
            from white ones, to make videos differ without disturbing :func:`read_index`.

    Returns:
        uint8 array (H, W, 3).
    """
    if not 0 <= index < 2**bits:
        raise ValueError(f"frame index {index} does not fit in {bits} bits; raise bits")
    width, height = size
    rows, columns = _grid(bits)
    block_h, block_w = height // rows, width // columns
    if block_h < 4 or block_w < 4:
        raise ValueError(
            f"size {size} is too small for a {rows}x{columns} grid of {bits} bits; "
            f"use at least {4 * columns}x{4 * rows}"
        )
    frame = np.zeros((height, width, 3), np.uint8)
    for bit in range(bits):
        if (index >> bit) & 1:
            row, column = divmod(bit, columns)
            frame[
                row * block_h : (row + 1) * block_h, column * block_w : (column + 1) * block_w
            ] = 255
    if noise is not None:
        frame = np.where(frame > 127, frame - noise, frame + noise).astype(np.uint8)
    return frame


def read_index(frame: np.ndarray, bits: int = INDEX_BITS) -> int:
    """The index encoded in a decoded frame by :func:`index_frame`.

    Args:
        frame: uint8 (H, W, 3) (numpy array or torch tensor), any size the video was decoded at.
        bits: the number of bits the video was written with.

    Returns:
        The frame index.

    Raises:
        ValueError: the frame does not hold a clean pattern (a block is neither dark nor
            bright), e.g. it is not an index frame or was decoded wrongly.
    """
    frame = np.asarray(frame, dtype=np.float64)
    height, width = frame.shape[:2]
    rows, columns = _grid(bits)
    block_h, block_w = height / rows, width / columns
    index = 0
    for bit in range(bits):
        row, column = divmod(bit, columns)
        # read the middle half of the block: edges blur under resizing and compression
        top, left = row * block_h, column * block_w
        patch = frame[
            int(top + block_h / 4) : int(np.ceil(top + 3 * block_h / 4)),
            int(left + block_w / 4) : int(np.ceil(left + 3 * block_w / 4)),
        ]
        level = patch.mean()
        if 64 < level < 192:
            raise ValueError(
                f"block {bit} has mean level {level:.0f}, neither dark nor bright: "
                "not an index frame (or decoded wrongly)"
            )
        if level >= 128:
            index |= 1 << bit
    return index


def read_indices(frames, bits: int = INDEX_BITS) -> list[int]:
    """:func:`read_index` of every frame of a uint8 (N, H, W, 3) batch."""
    return [read_index(frame, bits) for frame in np.asarray(frames)]


def read_indices_flat(batches, bits: int = INDEX_BITS) -> list[int]:
    """:func:`read_index` of every frame of several uint8 (n, H, W, 3) batches, as one list."""
    return [index for frames in batches for index in read_indices(frames, bits)]


def _codec_for(path: Path, codec: str | None) -> str:
    if codec is not None:
        return codec
    return {".avi": "mpeg4"}.get(path.suffix.lower(), "libx264")


def write_index_video(
    path: str | Path,
    num_frames: int,
    fps: float = 10.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    codec: str | None = None,
    lossless: bool = True,
    pts: Sequence[float] | None = None,
    bits: int = INDEX_BITS,
    seed: int | None = None,
    keyframe_interval: int | None = None,
) -> Path:
    """Write a video whose frame ``i`` encodes ``i`` (see :func:`index_frame`).

    Args:
        path: output file; the extension picks the container (.mp4, .mkv, .avi, ...).
        num_frames: number of frames.
        fps: nominal frame rate (frames per second); with ``pts`` only the stream's rate tag.
        size: (width, height), both even.
        codec: PyAV encoder name; default libx264 (mpeg4 for .avi). "ffv1" in .mkv is lossless.
        lossless: x264 with qp 0 (exact pixels back); False uses crf 23 (still readable).
        pts: presentation time of each frame in seconds (variable frame rate), strictly
            increasing, millisecond resolution; None = frame i at i / fps.
        bits: index bits in the pattern (16: up to 65535 frames).
        seed: when given, seeded noise in [0, 24] on every frame, so two videos with different
            seeds differ while both still encode their indices.
        keyframe_interval: GOP size (x264 default 250 when None).

    Returns:
        ``path`` as a Path.
    """
    import av  # here, not at the top: listing the factory needs no PyAV

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if pts is not None and len(pts) != num_frames:
        raise ValueError(f"pts has {len(pts)} entries for {num_frames} frames")
    codec = _codec_for(path, codec)
    rate = fractions.Fraction(fps).limit_denominator(1001)
    time_base = fractions.Fraction(1, 1000) if pts is not None else 1 / rate
    rng = np.random.default_rng(seed) if seed is not None else None
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        options: dict[str, str] = {}
        if codec.startswith("libx264"):
            options = {"preset": "ultrafast", "qp": "0"} if lossless else {"preset": "ultrafast"}
        if keyframe_interval is not None:
            options["g"] = str(keyframe_interval)
        stream.options = options
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        for i in range(num_frames):
            noise = rng.integers(0, 25, (height, width, 3), dtype=np.uint8) if rng else None
            frame = av.VideoFrame.from_ndarray(index_frame(i, size, bits, noise), format="rgb24")
            frame.time_base = time_base
            frame.pts = i if pts is None else round(pts[i] * 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_vfr_video(path: str | Path, size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    """A variable-frame-rate mp4: frame i at :data:`VFR_PTS` [i] seconds (10 frames)."""
    return write_index_video(path, len(VFR_PTS), fps=10.0, size=size, pts=VFR_PTS)


def write_long_video(
    path: str | Path,
    minutes: float = 10.0,
    fps: float = 10.0,
    size: tuple[int, int] = (32, 32),
) -> Path:
    """A long index video (default 10 minutes at 10 fps = 6000 frames, 32x32, a few seconds)."""
    return write_index_video(path, round(minutes * 60 * fps), fps=fps, size=size, lossless=False)


def write_broken_video(path: str | Path, kind: str) -> Path:
    """Write (or, for "missing", do not write) a file a decoder must reject.

    Args:
        path: where the broken file goes.
        kind: one of :data:`BROKEN_KINDS`:
            "zero_byte": an empty file;
            "truncated": the first half of a valid mp4 (its index, at the end, is lost);
            "not_video": a text file with a video extension;
            "missing": no file at all (any existing file at ``path`` is removed);
            "no_frames": a valid container with a video stream and zero frames;
            "corrupt": a valid mp4 whose frame data is overwritten with garbage, so the
            container opens but no frame decodes.

    Returns:
        ``path`` as a Path.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "zero_byte":
        path.write_bytes(b"")
    elif kind == "truncated":
        write_index_video(path, 30)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "not_video":
        path.write_text("this is a text file, not a video\n" * 20)
    elif kind == "missing":
        path.unlink(missing_ok=True)
    elif kind == "no_frames":
        with av.open(str(path), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height = DEFAULT_SIZE
            stream.pix_fmt = "yuv420p"
            container.start_encoding()
    elif kind == "corrupt":
        write_index_video(path, 30, seed=0, keyframe_interval=1)
        data = bytearray(path.read_bytes())
        start, end = data.find(b"mdat") + 4, data.find(b"moov") - 8
        if not 0 < start < end:
            raise RuntimeError(f"could not find the frame data of {path} to corrupt")
        data[start:end] = b"\xff" * (end - start)
        path.write_bytes(bytes(data))
    else:
        raise ValueError(f"unknown broken-video kind {kind!r}; choose one of {BROKEN_KINDS}")
    return path


def write_video_folder(
    root: str | Path,
    rel_paths: Sequence[str],
    num_frames: int | Sequence[int] = 12,
    fps: float = 8.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> list[Path]:
    """Write one small index video per relative path under ``root``.

    Videos differ from each other (noise seeded by ``seed`` + position) and each still encodes
    its frame indices, so both extraction outputs and frame identity can be checked.

    Args:
        root: folder to write into (created).
        rel_paths: POSIX paths relative to ``root``, e.g. ``["a/v1.mp4", "b/v2.mkv"]``.
        num_frames: frames per video, one number for all or one per path.
        fps: frame rate of every video.
        size: (width, height) of every video.
        seed: base seed of the per-video noise.

    Returns:
        The absolute paths written, in the order of ``rel_paths``.
    """
    root = Path(root)
    counts = [num_frames] * len(rel_paths) if isinstance(num_frames, int) else list(num_frames)
    if len(counts) != len(rel_paths):
        raise ValueError(f"{len(counts)} frame counts for {len(rel_paths)} paths")
    return [
        write_index_video(root / rel_path, count, fps=fps, size=size, seed=seed + position)
        for position, (rel_path, count) in enumerate(zip(rel_paths, counts))
    ]


# ------------------------------------------------------------------------ conformance suite
# One small file per container/codec quirk a frame-exact decoder has to get right, plus damaged
# files. Each writer's docstring says what FFmpeg (PyAV 18.1, FFmpeg 8.1) does with the file.


def _encode(
    path: Path,
    images: Iterable[np.ndarray],
    *,
    codec: str,
    rate: fractions.Fraction,
    time_base: fractions.Fraction,
    pts: Sequence[int] | None = None,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    max_b_frames: int | None = None,
    gop_size: int | None = None,
    display_rotation: int | None = None,
) -> Path:
    """Encode RGB ``images`` (coded orientation) into ``path``; frame i gets ``pts[i]`` ticks.

    ``display_rotation`` is PyAV's counter-clockwise angle (see :func:`write_conformance_video`
    for the convention); the muxer writes it as the stream's display matrix (mp4 ``tkhd``).
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        for i, image in enumerate(images):
            if i == 0:  # the stream's size is the coded size of the first image
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = pix_fmt
                stream.options = dict(options or {})
                if max_b_frames is not None:
                    stream.codec_context.max_b_frames = max_b_frames
                if gop_size is not None:
                    stream.codec_context.gop_size = gop_size
                stream.codec_context.time_base = time_base
                stream.time_base = time_base
                if display_rotation is not None:
                    stream.set_display_rotation(display_rotation)  # before the first frame
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.time_base = time_base
            frame.pts = i if pts is None else pts[i]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _index_images(count: int, size: tuple[int, int] = DEFAULT_SIZE) -> Iterable[np.ndarray]:
    return (index_frame(i, size) for i in range(count))


# libx264 settings that make B-frames: lossless (qp 0) and the ultrafast preset both turn
# them off, so these files are lossy (crf 20 still reads back exactly with read_index).
_X264_BFRAMES = {"preset": "medium", "crf": "20", "bf": "3", "g": "24"}
_X264_LOSSLESS = {"preset": "ultrafast", "qp": "0"}


def _mpeg4_bframes_avi(path: Path) -> Path:
    """MPEG-4 Part 2 (the Xvid/DivX family, as in HMDB51) in AVI, with B-frames, 60 frames at 25
    fps, GOP 12.

    AVI has no presentation times, only a frame counter; with B-frames the packets come in
    decode order (pts 1, 4, 2, 3, 7, 5, 6, ... once FFmpeg's parser guesses them) and the first
    decoded frame has pts 1, not 0. FFmpeg decodes all 60 frames, in order. decord 0.6.0 sorts
    its frame index by packet pts and seems to see no pts on the B-frames (INT64_MIN ticks of
    1/25 s = -3.7e17 s): frames 0-20 get that time, the rest only the I/P frames' times (0.08,
    0.12, 0.20, 0.24, ...); its keyframe indices are wrong (0, 10, 22, ... for 0, 12, 24, ...)
    and sparse requests return wrong frames (``get_batch([17])`` gives frame 7). Only its
    front-to-back decode is right.
    """
    rate = fractions.Fraction(25)
    return _encode(
        path,
        _index_images(60),
        codec="mpeg4",
        rate=rate,
        time_base=1 / rate,
        max_b_frames=2,
        gop_size=12,
    )


def _h264_bframes(path: Path) -> Path:
    """H.264 with B-frames (up to 3) and a keyframe every 24 frames, 80 frames at 25 fps.

    In MP4, packets are in decode order (dts starts below zero, pts != dts); presentation
    starts at 0. In AVI (no presentation times) FFmpeg labels the frames, in the right order,
    with pts 1, 4, 3, 5, 2, 8, 7, 9, 6, ... (decode-order guesses): only the output order says
    which frame is which.
    """
    rate = fractions.Fraction(25)
    return _encode(
        path,
        _index_images(80),
        codec="libx264",
        rate=rate,
        time_base=1 / rate,
        options=_X264_BFRAMES,
    )


def _h264_offset_mp4(path: Path) -> Path:
    """H.264 MP4 with B-frames whose first frame is presented at 1.5 s, 60 frames at 25 fps.

    The muxer writes an edit list with an empty edit of 1.5 s; FFmpeg reports the stream's
    ``start_time`` as 1.5 s and frame pts from there. Frame times are relative to the first.
    """
    rate = fractions.Fraction(25)
    return _encode(
        path,
        _index_images(60),
        codec="libx264",
        rate=rate,
        time_base=fractions.Fraction(1, 1000),
        pts=[1500 + 40 * i for i in range(60)],
        options=_X264_BFRAMES,
    )


# Frames of h264_negative_start_mp4 before time 0, which the edit list hides.
_HIDDEN_FRAMES = 10


def _h264_negative_start_mp4(path: Path) -> Path:
    """H.264 MP4 with B-frames whose first 10 coded frames have negative presentation times.

    70 frames are coded at 25 fps from -0.4 s; the MP4 muxer keeps the negative times with an
    edit list that starts the presentation at the frame coded for 0 s (media time 0.48 s: 0.4 s
    plus x264's two-frame B-frame delay), so a player shows only the 60 frames from 0 s, as in
    a clip cut with ``ffmpeg -ss ... -c copy``. FFmpeg demuxes all 70 packets (pts from -0.4 s)
    but the decoder drops the 10 hidden frames (the demuxer marks them to discard): 60 frames
    come out, the first at pts 0. The hidden frames encode ``2**16 - 10 .. 2**16 - 1`` (so one
    that leaks out is recognisable), the shown frame ``i`` encodes ``i``. decord 0.6.0 counts 70
    frames from -0.4 s; its front-to-back decode gives the 60 shown frames and then repeats the
    last one 10 times, and its sparse requests are 10 frames off.
    """
    rate = fractions.Fraction(25)
    indices = [(2**INDEX_BITS + k) % 2**INDEX_BITS for k in range(-_HIDDEN_FRAMES, 60)]
    return _encode(
        path,
        (index_frame(index) for index in indices),
        codec="libx264",
        rate=rate,
        time_base=1 / rate,
        pts=list(range(-_HIDDEN_FRAMES, 60)),
        options=_X264_BFRAMES,
    )


def _h264_mkv(path: Path) -> Path:
    """H.264 with B-frames in Matroska at 30 fps, 60 frames.

    Matroska stores times in milliseconds, so 30 fps times are rounded (0, 33, 67, 100, ... ms)
    and the container has no frame count (``stream.frames`` is 0).
    """
    rate = fractions.Fraction(30)
    return _encode(
        path,
        _index_images(60),
        codec="libx264",
        rate=rate,
        time_base=1 / rate,
        options=_X264_BFRAMES,
    )


def _vp9_webm(path: Path) -> Path:
    """VP9 in WebM, 60 frames at 25 fps (libvpx realtime: no hidden alt-ref frames)."""
    rate = fractions.Fraction(25)
    return _encode(
        path,
        _index_images(60),
        codec="libvpx-vp9",
        rate=rate,
        time_base=1 / rate,
        options={"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"},
    )


def _mjpeg_avi(path: Path) -> Path:
    """MJPEG (full-range yuvj420p) in AVI, 40 frames at 25 fps: every frame a keyframe."""
    rate = fractions.Fraction(25)
    return _encode(
        path, _index_images(40), codec="mjpeg", rate=rate, time_base=1 / rate, pix_fmt="yuvj420p"
    )


# Presentation times (seconds) of vfr_gap_mp4: 25 fps with a 1 s pause after frame 29.
VFR_GAP_PTS = tuple(i / 25 + (1.0 if i >= 30 else 0.0) for i in range(60))


def _vfr_gap_mp4(path: Path) -> Path:
    """Lossless H.264 MP4 at 25 fps with a 1 s pause in the middle (:data:`VFR_GAP_PTS`).

    60 frames over 3.4 s: the container's average rate is 60 / 3.4 s, not 25.
    """
    return write_index_video(path, len(VFR_GAP_PTS), fps=25.0, pts=VFR_GAP_PTS)


# Upright (displayed) size of rotated90_mp4: coded 64 wide, 80 high. decord 0.6.0 cannot copy
# out frames of some small widths (48 among them), so the coded width is kept at 64.
ROTATED_SIZE = (80, 64)


def _rotated90_mp4(path: Path) -> Path:
    """Lossless H.264 MP4 shot "in portrait": frames coded on their side, with a display matrix
    that turns them upright, 40 frames at 25 fps.

    The file is what a phone writes with the legacy ``rotate=90`` tag: the display matrix in
    ``tkhd`` is ``a=0, b=1, c=-1, d=0`` (16.16 fixed point), for which FFmpeg's
    ``av_display_rotation_get`` and PyAV's ``VideoFrame.rotation`` give **-90**: the angle
    the matrix turns the coded frame *counter-clockwise*, i.e. the coded frame must be turned
    90 degrees clockwise to be upright (``np.rot90(image, k=frame.rotation // 90)``, as the
    ffmpeg command line's autorotate does). In the clockwise convention of the ``rotate`` tag
    (and of :attr:`GroundTruth.rotation`) the rotation is 90.

    Coded frames are ``np.rot90`` (counter-clockwise) of the index pattern, so the upright
    frame (:data:`ROTATED_SIZE`, 80x64) is the plain pattern; the coded frame is 64x80.
    decord 0.6.0 applies the rotation itself and returns upright 80x64 frames.
    """
    rate = fractions.Fraction(25)
    return _encode(
        path,
        (np.rot90(image) for image in _index_images(40, ROTATED_SIZE)),
        codec="libx264",
        rate=rate,
        time_base=1 / rate,
        options=_X264_LOSSLESS,
        display_rotation=-90,  # PyAV's counter-clockwise angle: clockwise 90 to be upright
    )


ODD_SIZE = (67, 51)  # (width, height) of the odd_size video


def _odd_size(path: Path) -> Path:
    """Lossless H.264 (yuv444p, so no chroma subsampling needs even sizes) MP4 of 67x51 pixels,
    40 frames at 25 fps."""
    rate = fractions.Fraction(25)
    return _encode(
        path,
        _index_images(40, ODD_SIZE),
        codec="libx264",
        rate=rate,
        time_base=1 / rate,
        pix_fmt="yuv444p",
        options=_X264_LOSSLESS,
    )


def _gray(path: Path) -> Path:
    """FFV1 in Matroska with the ``gray`` pixel format (luma only), 40 frames at 25 fps.

    FFV1, not libx264: x264 can code 4:0:0, but FFmpeg's H.264 decoder returns such frames as
    yuv420p, so only FFV1 makes the decoder hand out ``gray`` frames to convert to RGB.
    """
    rate = fractions.Fraction(25)
    return _encode(
        path, _index_images(40), codec="ffv1", rate=rate, time_base=1 / rate, pix_fmt="gray"
    )


def _yuv420p10(path: Path) -> Path:
    """10-bit HEVC (libx265, yuv420p10le) with B-frames in MP4, 60 frames at 25 fps."""
    rate = fractions.Fraction(25)
    return _encode(
        path,
        _index_images(60),
        codec="libx265",
        rate=rate,
        time_base=1 / rate,
        pix_fmt="yuv420p10le",
        options={"preset": "ultrafast", "crf": "20", "x265-params": "log-level=error"},
    )


def _single_frame(path: Path) -> Path:
    """A lossless H.264 MP4 with one frame (the container's average rate is still 25)."""
    rate = fractions.Fraction(25)
    return _encode(
        path,
        _index_images(1),
        codec="libx264",
        rate=rate,
        time_base=1 / rate,
        options=_X264_LOSSLESS,
    )


def _avcc_slices(data: bytes, position: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of the slice NAL units (types 1 and 5) of one length-prefixed packet."""
    slices, offset, end = [], position, position + size
    while offset + 4 < end:
        length = int.from_bytes(data[offset : offset + 4], "big")
        if data[offset + 4] & 0x1F in (1, 5):
            slices.append((offset + 4, length))
        offset += 4 + length
    return slices


def _packet_spans(path: Path) -> list[tuple[int, int]]:
    """(byte position, size) of every non-empty video packet of ``path``, in file order."""
    import av

    with av.open(str(path)) as container:
        return [(packet.pos, packet.size) for packet in container.demux(video=0) if packet.size]


def _h264_slice_errors(path: Path) -> Path:
    """Lossy H.264 MP4 (no B-frames, keyframe every 50) of 300 frames at 25 fps, 64x48, with
    two damaged packets.

    - Packet 120 (a P-frame): 4 bytes after its NAL header are zeroed, so its slice header
      does not parse (FFmpeg logs "reference count 1 overflow", "slice type 15 too large" and
      "no frame!"). The decoder makes no frame from it and ``avcodec_send_packet`` fails:
      PyAV raises ``av.error.InvalidDataError`` for that packet, so ``container.decode``
      stops after 120 frames (a loop that catches the error and goes on decodes the rest).
      The next frames are decoded against the missing reference: not flagged corrupt, but
      wrong for a few frames (output positions 120-126 show 119, 119, 119, 114, no pattern,
      113, 112), after which the picture converges and position k shows frame k + 1.
    - Packet 210: the second half of its slice data is zeroed: FFmpeg logs "Invalid level
      prefix" and "error while decoding MB", raises nothing, conceals the damage and flags
      the frame (``frame.is_corrupt``); the next frame is wrong too, unflagged.

    So 300 packets give 299 frames (the "decord counts 456, FFmpeg decodes 455" case of the
    bug report), ``packet.is_corrupt`` is never set (the container cannot know), and the first
    120 frames are exact: :attr:`GroundTruth.first_error` is 120. decord 0.6.0 says 300
    frames and raises ``DECORDError`` (avcodec_send_packet failed) for any request that
    makes it decode packet 120.
    """
    write_index_video(path, 300, fps=25.0, lossless=False, seed=3, keyframe_interval=50)
    spans = _packet_spans(path)
    data = bytearray(path.read_bytes())
    [(offset, _)] = _avcc_slices(data, *spans[120])[:1]
    data[offset + 1 : offset + 5] = bytes(4)  # the bits after the NAL header: slice header
    [(offset, length)] = _avcc_slices(data, *spans[210])[:1]
    data[offset + length // 2 : offset + length] = bytes(length - length // 2)
    path.write_bytes(bytes(data))
    return path


def _h264_zeroed_middle(path: Path) -> Path:
    """Lossless H.264 MP4 (no B-frames, keyframe every 10) of 60 noisy 96x64 frames at 25 fps,
    about 320 KiB, with 64 KiB in the middle of its frame data (``mdat``) zeroed.

    The zeroed bytes cover packets 24-36: 25-35 entirely (the keyframe 30 among them), 24 and
    36 in part. Packet 24 (its end zeroed) decodes without an error, but its frame is
    flagged ``frame.is_corrupt`` and shows frame 23. Packets 25-36 start with a zero NAL size:
    each makes ``avcodec_send_packet`` fail (PyAV raises ``av.error.InvalidDataError``, FFmpeg
    logs "no frame!") and gives no frame. Packets 37-39 then decode, unflagged, against the
    lost references into frames with no clean pattern, and the keyframe at 40 recovers. So
    60 packets give 48 frames; ``container.decode`` raises after 25 frames; ``packet.is_corrupt``
    is never set. The first 24 frames are exact: :attr:`GroundTruth.first_error` is 24 (the
    flagged frame is the first error). decord 0.6.0 says 60 frames and raises ``DECORDError``
    for any request that decodes packets 25-36.
    """
    write_index_video(path, 60, fps=25.0, size=(96, 64), seed=5, keyframe_interval=10)
    data = bytearray(path.read_bytes())
    start, end = data.find(b"mdat") + 4, data.find(b"moov")
    if not 0 < start < end - 2**17:
        raise RuntimeError(f"{path}: frame data not found or smaller than 128 KiB")
    middle = (start + end) // 2
    data[middle - 2**15 : middle + 2**15] = bytes(2**16)
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------- packed B-frames (DivX/Xvid)
_VOP = b"\x00\x00\x01\xb6"


def _vop_type(packet: bytes) -> str:
    """ "I", "P", "B" or "S" of the first VOP in an MPEG-4 Part 2 packet."""
    return "IPBS"[packet[packet.find(_VOP) + 4] >> 6]


def _not_coded_vop(vop: bytes, time_bits: int) -> bytes:
    """A not-coded P-VOP (an "N-VOP", 6-8 bytes) with the time fields of ``vop``."""
    start = vop.find(_VOP) + 4
    bits = "".join(f"{byte:08b}" for byte in vop[start : start + 8])
    end = 2
    while bits[end] == "1":  # modulo_time_base: ones, then a zero
        end += 1
    end += 1
    # vop_coding_type P, the same modulo_time_base, marker, vop_time_increment, marker, not coded
    head = "01" + bits[2:end] + "1" + bits[end + 1 : end + 1 + time_bits] + "1" + "0"
    head += "0" + "1" * ((8 - (len(head) + 1) % 8) % 8)  # next_start_code stuffing
    return _VOP + int(head, 2).to_bytes(len(head) // 8, "big")


def write_packed_avi(
    path: str | Path,
    num_frames: int,
    b_frames: int = 2,
    gop_size: int = 12,
    size: tuple[int, int] = DEFAULT_SIZE,
    rate: int = 25,
) -> Path:
    """An MPEG-4 Part 2 AVI with *packed* B-frames, the way DivX 5 and Xvid stored them (and
    UCF101 and HMDB51 hold them); frame ``i`` encodes ``i`` (:func:`index_frame`).

    The layout of a packed bitstream: the first packet's VOL carries ``DivX503b1393p`` user
    data (the ``p`` says "packed"); each I- or P-VOP shares its AVI chunk with the first
    B-VOP that follows it in decode order; the other B-VOPs have chunks of their own; and a
    not-coded VOP (N-VOP) follows, so that there is one chunk per displayed frame, in display
    order. FFmpeg 8.1 decodes all ``num_frames`` frames in order, and labels them with pts
    1, 2, 4, 3, 5, 7, 6, ... (AVI has no presentation times; a chunk holds two VOPs). A decoder
    that never took the first packet (the DivX user data) drops every P-frame after a seek.

    Args:
        path: the .avi to write.
        num_frames: frames (at least 2).
        b_frames: B-frames between references (1 or 2).
        gop_size: frames per GOP (the encoder's scene-cut detection is off, so GOPs are long
            when asked: 250 makes a long GOP for seek tests).
        size: (width, height).
        rate: frames per second (an integer: the VOP time fields are written for it).

    Returns:
        ``path`` as a Path.
    """
    packets = _mpeg4_vops(num_frames, size, rate, b_frames, gop_size)
    return _write_packed(path, packets, size, rate)


def _mpeg4_vops(
    num_frames: int, size: tuple[int, int], rate: int, b_frames: int, gop_size: int
) -> list[bytes]:
    """MPEG-4 Part 2 VOPs of index frames (decode order, one per packet), scene cuts off."""
    import av

    encoder = av.CodecContext.create("mpeg4", "w")
    encoder.width, encoder.height = size
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = fractions.Fraction(1, rate)
    encoder.framerate = fractions.Fraction(rate)
    encoder.max_b_frames = b_frames
    encoder.gop_size = gop_size
    encoder.bit_rate = 2_000_000
    encoder.options = {"sc_threshold": "1000000000"}
    packets: list[bytes] = []
    for i in range(num_frames):
        frame = av.VideoFrame.from_ndarray(index_frame(i, size), format="rgb24")
        frame.pts = i
        packets += [bytes(packet) for packet in encoder.encode(frame)]
    packets += [bytes(packet) for packet in encoder.encode(None)]
    return packets


def _mux_avi(
    path: Path,
    chunks: Sequence[bytes],
    size: tuple[int, int],
    rate: int,
    keyframes: Sequence[bool] | None = None,
) -> Path:
    """Write MPEG-4 Part 2 ``chunks`` as they are, one AVI chunk each (an Xvid-tagged stream);
    keyframes: the I-VOP chunks unless given."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    if keyframes is None:
        keyframes = [_vop_type(chunk) == "I" for chunk in chunks]
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_tag = "XVID"
        for tick, (chunk, keyframe) in enumerate(zip(chunks, keyframes)):
            packet = av.Packet(chunk)
            packet.stream = stream
            packet.pts = packet.dts = tick
            packet.time_base = fractions.Fraction(1, rate)
            packet.is_keyframe = keyframe
            container.mux(packet)
    return path


def pack_bframes(source: str | Path, path: str | Path) -> Path:
    """Rewrite an MPEG-4 Part 2 AVI with B-frames (one VOP per chunk, as FFmpeg writes it) in
    the packed layout of :func:`write_packed_avi`: same VOPs, same pictures, only the chunks
    differ. The VOP time fields are assumed to count in 1 / rate (FFmpeg's encoder)."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        rate = round(float(stream.average_rate))
        packets = [bytes(packet) for packet in container.demux(stream) if packet.size]
    return _write_packed(Path(path), packets, size, rate)


def _write_packed(path: Path, packets: list[bytes], size: tuple[int, int], rate: int) -> Path:
    """Write MPEG-4 Part 2 VOPs (decode order, one per packet) as a packed-B-frame AVI."""
    first = packets[0].find(_VOP)
    packets[0] = packets[0][:first] + b"\x00\x00\x01\xb2DivX503b1393p" + packets[0][first:]
    time_bits = max(1, (rate - 1).bit_length())  # vop_time_increment_resolution = rate
    chunks: list[bytes] = []
    position = 0
    while position < len(packets):
        reference = packets[position]
        following = position + 1
        while following < len(packets) and _vop_type(packets[following]) == "B":
            following += 1
        b_vops = packets[position + 1 : following]
        if b_vops:
            chunks += [reference + b_vops[0], *b_vops[1:], _not_coded_vop(reference, time_bits)]
        else:
            chunks.append(reference)
        position = following
    if len(chunks) != len(packets):
        raise RuntimeError(f"packed {len(chunks)} chunks for {len(packets)} frames")
    return _mux_avi(path, chunks, size, rate)


def _mpeg4_packed1_avi(path: Path) -> Path:
    """Packed B-frames (:func:`write_packed_avi`), one B-frame between references, N-VOPs,
    60 frames at 25 fps, GOP 12: FFmpeg labels the frames 1, 2, 3, 5, 4, 7, 6, ..."""
    return write_packed_avi(path, 60, b_frames=1, gop_size=12)


def _mpeg4_packed2_avi(path: Path) -> Path:
    """Packed B-frames (:func:`write_packed_avi`), two B-frames between references, N-VOPs,
    60 frames at 25 fps, GOP 24 (open GOPs: B-frames after an I-frame show before it)."""
    return write_packed_avi(path, 60, b_frames=2, gop_size=24)


def _mpeg4_packed_long_avi(path: Path) -> Path:
    """A long packed-B-frame AVI for sparse requests: 900 frames (36 s at 25 fps), 32x32, GOP
    300, two B-frames. A decoder that never took its first packet drops every P-frame after a
    seek into it; one that did outputs the frames in order from the I-frame sought."""
    return write_packed_avi(path, 900, b_frames=2, gop_size=300, size=(32, 32))


def _h264_lost_bframe_mp4(path: Path) -> Path:
    """H.264 MP4 with B-frames (not references: no B-pyramid), 80 frames at 25 fps, GOP 24,
    whose B-frame packet 40 (file order) has its slice header zeroed: a frame lost in
    mid-file, as in a real 456-packet MP4 that decodes to 455 frames.

    FFmpeg rejects that packet (``avcodec_send_packet`` fails: PyAV raises
    ``av.error.InvalidDataError``) and outputs the other 79 frames, all exact: nothing refers
    to a B-frame here. The lost frame is the one whose pts the packet carries.
    """
    rate = fractions.Fraction(25)
    _encode(
        path,
        _index_images(80),
        codec="libx264",
        rate=rate,
        time_base=1 / rate,
        options={**_X264_BFRAMES, "x264-params": "b-pyramid=none"},
    )
    spans = _packet_spans(path)
    data = bytearray(path.read_bytes())
    for position, size in spans[40:]:
        slices = _avcc_slices(data, position, size)
        if slices and all(data[offset] & 0x60 == 0 for offset, _ in slices):  # nal_ref_idc 0
            offset = slices[0][0]
            data[offset + 1 : offset + 5] = bytes(4)
            break
    else:
        raise RuntimeError(f"{path}: no B-frame packet after packet 40")
    path.write_bytes(bytes(data))
    return path


def _mpeg4_nvop_avi(path: Path) -> Path:
    """MPEG-4 Part 2 AVI *not* packed, no B-frames, 30 frames at 25 fps, GOP 12, with a
    not-coded VOP (N-VOP, DivX's "drop frame" placeholder) in its own chunk after frame 9.

    31 chunks; FFmpeg outputs 30 frames (nothing for the N-VOP, and no error). AVI has no
    presentation times: the frames are the decoder's output, at ``i / rate``.
    """
    packets = _mpeg4_vops(30, DEFAULT_SIZE, 25, b_frames=0, gop_size=12)
    chunks = [*packets[:10], _not_coded_vop(packets[9], 5), *packets[10:]]
    return _mux_avi(path, chunks, DEFAULT_SIZE, 25)


def _mpeg4_packed_damaged_avi(path: Path) -> Path:
    """A packed-B-frame AVI (:func:`write_packed_avi`: 60 frames at 25 fps, 2 B-frames, GOP 12)
    whose chunk 13 (P-frame 15 packed with B-frame 13) is zeroed after its first VOP header's
    first two bytes: the damage of a real broken DivX file.

    FFmpeg rejects the chunk and outputs 58 frames: frames 0-11; the I-frame 12, decoded
    before the damage but output after it; a frame flagged corrupt; then frames 13-23 decoded
    from the lost P-frame (wrong pictures, unflagged); and 24-59, exact again from the
    I-frame 24. So frames 13-23 are lost, and the keyframe that comes out first after the
    damage (12) must not be taken for the end of it.
    """
    write_packed_avi(path, 60, b_frames=2, gop_size=12)
    import av

    with av.open(str(path)) as container:
        packets = [(bytes(p), p.is_keyframe) for p in container.demux(video=0) if p.size]
    chunks, keyframes = (list(column) for column in zip(*packets))
    start = chunks[13].find(_VOP) + 4
    chunks[13] = chunks[13][: start + 2] + bytes(len(chunks[13]) - start - 2)
    return _mux_avi(path, chunks, DEFAULT_SIZE, 25, keyframes)


def _mpeg4_bframes_long_avi(path: Path) -> Path:
    """A long plain (not packed) MPEG-4 Part 2 AVI for sparse requests: 600 frames (24 s at
    25 fps), 32x32, two B-frames, an I-frame every 100 frames (open GOPs).

    After a seek to an I-VOP's chunk FFmpeg drops the open GOP's leading B-frames and outputs
    the I-frame first; front to back or after a seek, frame i comes out of the packet with dts
    i + 1, which lets a reader check where a seek landed.
    """
    rate = fractions.Fraction(25)
    return _encode(
        path,
        _index_images(600, (32, 32)),
        codec="mpeg4",
        rate=rate,
        time_base=1 / rate,
        max_b_frames=2,
        gop_size=100,
        options={"sc_threshold": "1000000000"},
    )


_CONFORMANCE_WRITERS = {
    "mpeg4_bframes_avi": (".avi", _mpeg4_bframes_avi),
    "h264_bframes_mp4": (".mp4", _h264_bframes),
    "h264_offset_mp4": (".mp4", _h264_offset_mp4),
    "h264_negative_start_mp4": (".mp4", _h264_negative_start_mp4),
    "h264_mkv": (".mkv", _h264_mkv),
    "vp9_webm": (".webm", _vp9_webm),
    "mjpeg_avi": (".avi", _mjpeg_avi),
    "vfr_gap_mp4": (".mp4", _vfr_gap_mp4),
    "rotated90_mp4": (".mp4", _rotated90_mp4),
    "odd_size": (".mp4", _odd_size),
    "gray": (".mkv", _gray),
    "yuv420p10": (".mp4", _yuv420p10),
    "single_frame": (".mp4", _single_frame),
    "mpeg4_packed1_avi": (".avi", _mpeg4_packed1_avi),
    "mpeg4_packed2_avi": (".avi", _mpeg4_packed2_avi),
    "mpeg4_packed_long_avi": (".avi", _mpeg4_packed_long_avi),
    "mpeg4_nvop_avi": (".avi", _mpeg4_nvop_avi),
    "h264_bframes_avi": (".avi", _h264_bframes),
    "mpeg4_bframes_long_avi": (".avi", _mpeg4_bframes_long_avi),
}
_DAMAGED_WRITERS = {
    "h264_slice_errors": (".mp4", _h264_slice_errors),
    "h264_zeroed_middle": (".mp4", _h264_zeroed_middle),
    "h264_lost_bframe_mp4": (".mp4", _h264_lost_bframe_mp4),
    "mpeg4_packed_damaged_avi": (".avi", _mpeg4_packed_damaged_avi),
}

# Videos whose i-th displayed frame encodes i; see write_conformance_video.
CONFORMANCE_KINDS: tuple[str, ...] = tuple(_CONFORMANCE_WRITERS)
# Damaged videos: frames before the first decode error encode their index, later ones may not.
DAMAGED_KINDS: tuple[str, ...] = tuple(_DAMAGED_WRITERS)


def write_conformance_video(folder: str | Path, kind: str) -> Path:
    """Write the conformance video ``kind`` into ``folder`` as ``<kind>.<ext>``.

    Each kind is one thing a frame-exact decoder must get right; its writer's docstring
    (``_<kind>`` in this module) says what the file holds and what FFmpeg does with it. For
    the :data:`CONFORMANCE_KINDS`, the i-th frame a player shows (in presentation order, turned
    upright) encodes i (:func:`read_index`); :func:`ground_truth` decodes that independently.
    The :data:`DAMAGED_KINDS` hold decode errors; frames before the first one encode their
    index. Every file is small: each takes well under 0.3 s to write.

    Rotation convention: FFmpeg's display matrix angle (``av_display_rotation_get``, PyAV's
    ``VideoFrame.rotation``) is the angle the matrix turns the coded frame counter-clockwise,
    in [-180, 180]; a phone's "rotate 90" file reads -90 and is made upright by turning the
    coded frame 90 degrees clockwise. :attr:`GroundTruth.rotation` gives it clockwise, as the
    legacy ``rotate`` tag does: ``(-frame.rotation) % 360``, so 90 for ``rotated90_mp4``.

    Args:
        folder: where to write (created).
        kind: one of :data:`CONFORMANCE_KINDS` or :data:`DAMAGED_KINDS`.

    Returns:
        The path written.
    """
    writers = {**_CONFORMANCE_WRITERS, **_DAMAGED_WRITERS}
    if kind not in writers:
        raise ValueError(
            f"unknown conformance video kind {kind!r}; choose one of "
            f"{CONFORMANCE_KINDS + DAMAGED_KINDS}"
        )
    extension, writer = writers[kind]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return writer(folder / f"{kind}{extension}")


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """What a plain sequential FFmpeg decode (PyAV) of a video gives, put in presentation
    order; see :func:`ground_truth`.

    Attributes:
        frame_ids: :func:`read_index` of each decoded frame, turned upright, in presentation
            order; -1 where the frame holds no clean pattern (damage).
        times: float64 (len(frame_ids),) presentation times in seconds from the first frame:
            ``pts * time_base`` where the container has presentation times, ``i / rate`` in
            AVI (which has none).
        rate: the stream's average frame rate (``stream.average_rate``), frames per second.
        rotation: degrees the coded frames are turned *clockwise* to be upright (0, 90, 180 or
            270): the legacy ``rotate`` tag, ``(-frame.rotation) % 360`` in PyAV's terms.
        size: (width, height) of the upright frames.
        first_error: number of frames output before the first decode error (a packet the
            decoder rejects, or a frame it flags ``is_corrupt``); None when there is none.
        output_pts: the pts FFmpeg attached to each frame, in the decoder's output order.
    """

    frame_ids: list[int]
    times: np.ndarray
    rate: float
    rotation: int
    size: tuple[int, int]
    first_error: int | None
    output_pts: list[int | None]


def ground_truth(path: str | Path) -> GroundTruth:
    """Decode ``path`` front to back with PyAV, the reference a decoder is checked against.

    A plain single-threaded sequential decode: every packet of the first video stream in file
    order, every frame the decoder outputs. A packet the decoder rejects
    (``av.error.FFmpegError``, damaged files only) is counted as an error and skipped, as the
    ffmpeg command line does, rather than ending the decode. The frames are then put in
    presentation order as the contract of :mod:`video_eleatt.video.decode` defines it: by pts
    where the container stores presentation times, in output order in AVI.

    Args:
        path: a video, e.g. from :func:`write_conformance_video`.

    Returns:
        The :class:`GroundTruth`.
    """
    import av

    frame_ids: list[int] = []
    pts: list[int] = []
    rotation, size, first_error = 0, (0, 0), None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # no frame threads: errors stay with their packet
        time_base = stream.time_base
        rate = float(stream.average_rate) if stream.average_rate else float("nan")
        is_avi = "avi" in container.format.name.split(",")
        for packet in container.demux(stream):  # ends with an empty packet: flushes the decoder
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                if first_error is None:
                    first_error = len(frame_ids)
                continue
            for frame in frames:
                if frame.is_corrupt and first_error is None:
                    first_error = len(frame_ids)
                # frame.rotation turns the coded frame counter-clockwise; np.rot90 too
                image = np.rot90(frame.to_ndarray(format="rgb24"), k=round(frame.rotation / 90))
                try:
                    frame_ids.append(read_index(image))
                except ValueError:
                    frame_ids.append(-1)
                pts.append(frame.pts)
                rotation = (-round(frame.rotation)) % 360
                size = (image.shape[1], image.shape[0])
    if not frame_ids:
        raise ValueError(f"{path}: no frame decodes")
    if is_avi:
        order = np.arange(len(pts))
        times = order / rate
    else:
        order = np.argsort(np.asarray(pts, np.int64), kind="stable")
        ordered = np.asarray(pts, np.int64)[order]
        times = np.array([float((t - ordered[0]) * time_base) for t in ordered], np.float64)
    presented = [frame_ids[i] for i in order]
    return GroundTruth(presented, times, rate, rotation, size, first_error, pts)


# ------------------------------------------------------------------ transforms for pool tests
# Picklable, importable (``video_factory`` is on the test path), so pool workers can run them.


class ToFloatCHW:
    """uint8 (n, H, W, 3) -> float32 (n, 3, H, W) in [0, 1]: the shape a backbone transform has."""

    def __call__(self, frames):
        return frames.permute(0, 3, 1, 2).float() / 255.0


class HangOnWidth:
    """Hold the GIL forever on frames ``width`` pixels wide, as decord does on some files.

    ``ctypes.PyDLL`` calls keep the GIL, so no Python thread or signal handler in the worker
    can run: only killing the process stops it, which is what the pool's timeout must do.
    """

    def __init__(self, width: int) -> None:
        self.width = width

    def __call__(self, frames):
        if frames.shape[2] == self.width:
            import ctypes

            ctypes.PyDLL(None).sleep(3600)
        return frames


class CrashOnWidth:
    """Kill the worker with SIGSEGV on frames ``width`` pixels wide (a decoder segfault)."""

    def __init__(self, width: int) -> None:
        self.width = width

    def __call__(self, frames):
        if frames.shape[2] == self.width:
            import faulthandler
            import os
            import signal

            faulthandler.disable()  # no traceback dump from the (forked) worker in test output
            os.kill(os.getpid(), signal.SIGSEGV)
        return frames


class CollectGarbage:
    """Run the garbage collector on every chunk, in the worker (identity on the frames)."""

    def __call__(self, frames):
        import gc

        gc.collect()
        return frames
