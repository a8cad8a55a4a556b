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

Decoders seen to read these back exactly (decord 0.6.0): lossless libx264 in mp4/mkv, ffv1 in
mkv. Lossy codecs (mpeg4, mjpeg) still give the right :func:`read_index`.
"""

from __future__ import annotations

import fractions
from collections.abc import Sequence
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
