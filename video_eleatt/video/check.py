"""Check that videos decode, through the very decode path extraction uses (``video-eleatt check``).

:func:`check_videos` runs each video through :class:`~video_eleatt.video.pool.DecodePool`
(worker processes, per-video timeout) with the sampling and pool settings extraction would use,
and records one :class:`VideoCheck` per video: the frames extraction would get, or why it
would get none. A video that passes here is one ``extract`` decodes with the same settings.

``thorough`` decodes every frame of each video instead, and adds what the decoder's output
says about the container (:func:`thorough_findings`): frame counts that disagree (decoded
frames vs packets vs the header's ``stream.frames``), a container frame table the decoder
contradicted, timestamps derived from the frame rate and why, jumps in the timestamps, a
stored rotation. These are warnings, not failures: extraction copes with them.

Statuses, worst first (:data:`STATUSES`):

- ``failed``: extraction would record the video as failed; the detail is the reason and names
  the file.
- ``damaged``: decode errors; the clean frames are kept (``on_damage="keep"``, the default)
  and the detail says how many frames were lost and when.
- ``warning``: decodes, but ``thorough`` found a disagreement (listed in the detail).
- ``ok``: decodes; the detail says which frames were decoded.

The report (:func:`write_report`) is a TSV file with a header line, one row per video in
input order::

    rel_path<TAB>status<TAB>detail

``detail`` is one line: the failure reason, or ``"; "``-joined findings followed by the
frames decoded, e.g. ``decoded 4 of 12 frames [1, 4, 7, 10] at 8.000 fps, 64x48``.

The command line (options shared with ``extract``) is
``video_eleatt.features.cli.check_main``.

>>> sampling = SamplingConfig(mode="fps", fps=8.0)
>>> result = check_videos([("a.mp4", "/data/a.mp4")], sampling)  # doctest: +SKIP
>>> print(format_summary(result, output=None))  # doctest: +SKIP
checked 1 videos in 0.4 s: 1 ok, 0 warning, 0 damaged, 0 failed
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from video_eleatt.fileio import atomic_write_bytes
from video_eleatt.progress import progress_bar
from video_eleatt.video.decode import (
    ABSURD_SPAN_FACTOR,
    MAX_LOST_FRACTION,
    TIMESTAMPS_DERIVED,
    VideoInfo,
    damage_text,
    short_indices,
)
from video_eleatt.video.mpeg4 import Mpeg4Vops
from video_eleatt.video.pool import (
    DecodePool,
    DecodeTask,
    FrameChunk,
    VideoFailed,
    VideoFinished,
    VideoStarted,
)
from video_eleatt.video.sampling import SamplingConfig, sample_frame_indices

STATUS_OK = "ok"
STATUS_WARNING = "warning"
STATUS_DAMAGED = "damaged"
STATUS_FAILED = "failed"
STATUSES = (STATUS_OK, STATUS_WARNING, STATUS_DAMAGED, STATUS_FAILED)

REPORT_HEADER = "rel_path\tstatus\tdetail"

# A frame interval this many times the median one is reported as a jump in the timestamps:
# a pause in a variable-frame-rate video, or frames the encoder dropped.
TIMESTAMP_JUMP_FACTOR = 4.0


@dataclass(frozen=True)
class ContainerProbe:
    """What a video's container says, without decoding (a demux of its video stream).

    Attributes:
        format_name: FFmpeg's container format name, e.g. ``"avi"`` or ``"mov,mp4,..."``.
        header_frames: the frame count the header stores (``stream.frames``); 0 when the
            container stores none (Matroska, WebM).
        packets: non-empty packets of the video stream that are shown (not cut off by an
            edit list).
        discarded: packets an edit list cuts off before the start (decoded as references,
            never shown; every player hides them too).
        packets_without_pts: packets with no presentation time.
        repeated_pts: packets whose presentation time another packet already has.
        pts_span_s: seconds from the earliest to the latest packet pts; None without pts.
        rate: the stream's average frame rate, frames per second; None when it has none.
        error: why the demux stopped early (the counts cover the packets before it).
        packed_bframes: an MPEG-4 Part 2 stream in DivX/Xvid's "packed bitstream"
            (``DivX503b1393p``-style user data, or two VOPs in one packet).
        not_coded: packets of a plain (not packed) MPEG-4 Part 2 stream that hold only
            not-coded VOPs (N-VOPs, DivX's "drop frame" placeholders): they show no frame.
    """

    format_name: str
    header_frames: int
    packets: int
    discarded: int = 0
    packets_without_pts: int = 0
    repeated_pts: int = 0
    pts_span_s: float | None = None
    rate: float | None = None
    error: str | None = None
    packed_bframes: bool = False
    not_coded: int = 0


def probe_container(path: str | Path) -> ContainerProbe:
    """Demux the first video stream of ``path`` and count what its container says.

    Only the parent process of a check calls this, after a worker opened the same file, which
    demuxes it all the same: a file that would hang a demux has timed out in the worker first.

    Raises:
        av.error.FFmpegError: the file does not open as a container; IndexError: it has no
            video stream.
    """
    import av

    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        pts: list[int] = []
        without_pts = packets = discarded = 0
        error = None
        vops = Mpeg4Vops() if stream.codec_context.name == "mpeg4" else None
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue  # the flush packet demux ends with
                if vops is not None:
                    vops.add(bytes(packet))
                if packet.is_discard:
                    discarded += 1
                    continue
                packets += 1
                if packet.pts is None:
                    without_pts += 1
                else:
                    pts.append(packet.pts)
        except Exception as err:  # av.error.*: keep what was demuxed before it
            error = f"{type(err).__name__}: {err}"
        span = None
        if pts and stream.time_base:
            span = float((max(pts) - min(pts)) * stream.time_base)
        return ContainerProbe(
            format_name=container.format.name or "",
            header_frames=int(stream.frames or 0),
            packets=packets,
            discarded=discarded,
            packets_without_pts=without_pts,
            repeated_pts=len(pts) - len(set(pts)),
            pts_span_s=span,
            rate=float(rate) if rate else None,
            error=error,
            packed_bframes=vops is not None and vops.packed,
            not_coded=vops.not_coded_packets if vops is not None and not vops.packed else 0,
        )


@dataclass
class VideoCheck:
    """The outcome for one video.

    Attributes:
        rel_path: the video's key (its path relative to the dataset root or list).
        status: one of :data:`STATUSES`.
        reason: why it failed (names the file); empty unless failed.
        findings: what ``thorough`` found (warnings first, then notes such as a rotation),
            one line each.
        info: the video as decoded (None when it did not open).
        frame_indices: int64 (K,) sorted source indices of the frames decoded (None when
            it failed).
        sampled: frames the extraction's sampling picks, when ``thorough`` decoded them all.
    """

    rel_path: str
    status: str
    reason: str = ""
    findings: list[str] = field(default_factory=list)
    info: VideoInfo | None = None
    frame_indices: np.ndarray | None = None
    sampled: int | None = None

    @property
    def detail(self) -> str:
        """The report's one-line detail column (no tabs or line breaks)."""
        if self.status == STATUS_FAILED:
            parts = [self.reason]
        else:
            parts = [*self.findings, self._frames_text()]
        return " ".join("; ".join(part for part in parts if part).split())

    def _frames_text(self) -> str:
        if self.info is None or self.frame_indices is None:
            return ""
        info = self.info
        indices = short_indices(self.frame_indices)
        text = (
            f"decoded {len(self.frame_indices)} of {info.num_frames} frames {indices} at "
            f"{info.fps:.3f} fps, {info.width}x{info.height}"
        )
        if self.sampled is not None:
            text += f"; the extraction's sampling picks {self.sampled}"
        return text


@dataclass
class CheckResult:
    """Outcome of checking a set of videos.

    Attributes:
        videos: one entry per video, in input order.
        seconds: wall-clock time of the check.
        thorough: whether every frame was decoded.
    """

    videos: list[VideoCheck]
    seconds: float
    thorough: bool = False

    def count(self, status: str) -> int:
        """Videos with ``status`` (one of :data:`STATUSES`)."""
        return sum(video.status == status for video in self.videos)

    @property
    def failures(self) -> list[VideoCheck]:
        """The videos extraction would fail, in input order."""
        return [video for video in self.videos if video.status == STATUS_FAILED]


@dataclass
class _Progress:
    """Events of one video so far (the latest attempt: a restart replaces the earlier one)."""

    info: VideoInfo | None = None
    frame_indices: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    delivered: int = 0
    restarted: bool = False
    finished: bool = False
    failure: str | None = None


def check_videos(
    videos: Sequence[tuple[str, str | Path]],
    sampling: SamplingConfig,
    *,
    thorough: bool = False,
    num_workers: int = 2,
    timeout_s: float = 120.0,
    chunk_size: int = 16,
    on_damage: str = "keep",
    max_lost_fraction: float = MAX_LOST_FRACTION,
    start_method: str = "forkserver",
    progress: bool = True,
) -> CheckResult:
    """Decode the frames extraction would decode (or, ``thorough``, all) of every video.

    The tasks and pool settings are extraction's own (``DecodeTask(rel_path, path,
    sampling)`` in a :class:`DecodePool` with these options); only the transform is left out,
    as it cannot fail on a decoded frame. Extraction's own checks on the events are repeated:
    a video with no frames sampled, or fewer frames delivered than announced, fails.

    Args:
        videos: (rel_path, path) of each video; rel_path is its key in the result.
        sampling: the extraction's sampling (mode, fps, num_frames, ...).
        thorough: decode every frame (mode "all") and report frame-count and timestamp
            findings; ``sampling`` is then applied to the timestamps, to check it picks frames.
        num_workers: decode worker processes.
        timeout_s: seconds a video may take before its worker is killed and it fails.
        chunk_size: frames per decoded chunk sent from a worker.
        on_damage: "keep" (status ``damaged``, the clean frames kept) or "fail" (the first
            lost frame fails the video).
        max_lost_fraction: a video that loses more than this share of its frames fails.
        start_method: multiprocessing start method of the pool.
        progress: show progress on stderr: a live bar on a terminal, a line every few
            seconds in a log file.

    Returns:
        One :class:`VideoCheck` per video, in input order.
    """
    start = time.monotonic()
    decode_sampling = SamplingConfig(mode="all") if thorough else sampling
    paths = {rel_path: str(path) for rel_path, path in videos}
    tasks = [DecodeTask(rel_path, path, decode_sampling) for rel_path, path in paths.items()]
    states = {rel_path: _Progress() for rel_path in paths}
    probes: dict[str, ContainerProbe | str] = {}
    failed = 0
    with (
        progress_bar(len(tasks), "check", unit="video", enabled=progress) as bar,
        DecodePool(
            num_workers,
            timeout_s,
            chunk_size=chunk_size,
            start_method=start_method,
            on_damage=on_damage,
            max_lost_fraction=max_lost_fraction,
        ) as pool,
    ):
        for event in pool.imap(tasks):
            state = states[event.key]
            if isinstance(event, VideoStarted):
                state.restarted = state.info is not None
                state.info = event.info
                state.frame_indices = np.asarray(event.frame_indices, dtype=np.int64)
                state.timestamps = np.asarray(event.timestamps, dtype=np.float64)
                state.delivered = 0  # chunks of an earlier attempt are void
                if len(state.frame_indices) == 0 and state.failure is None:
                    state.failure = f"no frames sampled from {paths[event.key]}"
                if thorough and event.key not in probes:
                    # here, while the workers decode: the parent would only wait for them
                    probes[event.key] = _probe_or_reason(paths[event.key])
            elif isinstance(event, FrameChunk):
                state.delivered += len(event.frames)
            elif isinstance(event, VideoFinished | VideoFailed):
                if isinstance(event, VideoFailed):
                    state.failure = state.failure or event.reason
                state.finished = True
                failed += state.failure is not None
                bar.set_postfix_str(f"failed={failed}")
                bar.update(1)
    checks = [
        _outcome(rel_path, paths[rel_path], states[rel_path], sampling, thorough, probes)
        for rel_path in paths
    ]
    return CheckResult(checks, time.monotonic() - start, thorough)


def _probe_or_reason(path: str) -> ContainerProbe | str:
    try:
        return probe_container(path)
    except Exception as err:  # av.error.*: the finding says so, the check goes on
        return f"{type(err).__name__}: {err}"


def _outcome(
    rel_path: str,
    path: str,
    state: _Progress,
    sampling: SamplingConfig,
    thorough: bool,
    probes: dict[str, ContainerProbe | str],
) -> VideoCheck:
    """A video's check from its events, with the verdicts extraction would reach."""
    if state.failure is not None:
        return VideoCheck(rel_path, STATUS_FAILED, reason=state.failure, info=state.info)
    info, frame_indices = state.info, state.frame_indices
    if not state.finished or info is None or frame_indices is None:
        return VideoCheck(rel_path, STATUS_FAILED, f"the decode pool reported no end for {path}")
    if state.delivered != len(frame_indices):
        return VideoCheck(
            rel_path,
            STATUS_FAILED,
            f"decoder delivered {state.delivered} of {len(frame_indices)} frames of {path}",
            info=info,
        )
    check = VideoCheck(rel_path, STATUS_OK, info=info, frame_indices=frame_indices)
    if info.damaged:
        check.status = STATUS_DAMAGED
        check.findings.append(f"damaged: {damage_text(info)}; the clean frames are kept")
    if not thorough:
        return check
    assert state.timestamps is not None  # mode "all": the timestamps of every frame
    try:
        check.sampled = len(
            sample_frame_indices(info.num_frames, info.fps, sampling, state.timestamps)
        )
    except ValueError as err:
        check.status, check.reason = STATUS_FAILED, f"{path}: the sampling fails: {err}"
        return check
    probe = probes.get(rel_path, "not probed")
    warnings, notes = thorough_findings(
        info, state.timestamps, state.delivered, probe, state.restarted
    )
    check.findings += warnings + notes
    if warnings and check.status == STATUS_OK:
        check.status = STATUS_WARNING
    return check


def thorough_findings(
    info: VideoInfo,
    timestamps: np.ndarray,
    decoded: int,
    probe: ContainerProbe | str,
    restarted: bool = False,
) -> tuple[list[str], list[str]]:
    """What a full decode says about a video beyond "it decodes": (warnings, notes).

    Warnings are disagreements (frame counts, a frame table the decoder contradicted,
    timestamps derived for want of usable ones, jumps in the timestamps); notes are facts
    extraction handles as designed (AVI's derived timestamps, a stored rotation).

    Args:
        info: the video as decoded.
        timestamps: float64 (num_frames,) start time of every frame, seconds.
        decoded: frames the decoder delivered (``info.num_frames`` unless something is off).
        probe: what the container says, or why it could not be probed.
        restarted: the worker decoded the video again from a table of the decoder's output
            (the container's frame table was contradicted, or a decode error was located).

    Returns:
        (warnings, notes): one line each.
    """
    warnings: list[str] = []
    notes: list[str] = []
    if isinstance(probe, str):
        warnings.append(f"the container could not be probed: {probe}")
    else:
        in_file = info.frames_in_file if info.damaged else decoded
        if probe.error:
            warnings.append(f"demuxing stops early: {probe.error}")
        if probe.packed_bframes:
            notes.append(
                "packed B-frames (DivX/Xvid packed bitstream, as in UCF101 and HMDB51): "
                "decoded in order, frames known by position; nothing to fix"
            )
        if probe.not_coded:
            notes.append(
                f"{probe.not_coded} not-coded VOPs (N-VOPs, DivX's drop-frame placeholders) "
                "show no frame"
            )
        if not info.damaged and probe.packets - probe.not_coded != decoded:
            warnings.append(
                f"{decoded} frames decode but the container has {probe.packets} packets"
            )
        counted = (in_file, in_file + probe.discarded, in_file + probe.not_coded)
        if probe.header_frames and probe.header_frames not in counted:
            warnings.append(
                f"the header says {probe.header_frames} frames (stream.frames), "
                f"{in_file} are in the file"
            )
        if probe.discarded:
            notes.append(
                f"an edit list hides {probe.discarded} frames before the start (decoded as "
                "references, not shown, as in every player)"
            )
    if restarted and not info.damaged:
        warnings.append(
            "the container's frame table disagreed with the decoder's output; the video was "
            "indexed again by a decode pass"
        )
    if info.timestamps_source == TIMESTAMPS_DERIVED:
        why = _derived_why(info, probe)
        text = f"timestamps derived as index / {info.fps:.3f} fps ({why})"
        (notes if why.startswith("AVI") else warnings).append(text)
    elif len(timestamps) > 2:
        intervals = np.diff(timestamps)
        median = float(np.median(intervals))
        largest = int(np.argmax(intervals))
        if median > 0 and intervals[largest] > TIMESTAMP_JUMP_FACTOR * median:
            warnings.append(
                f"the timestamps jump {intervals[largest]:.3f} s after frame {largest} "
                f"({intervals[largest] / median:.1f} times the median frame interval "
                f"{median:.3f} s): a pause (variable frame rate) or dropped frames"
            )
    if info.rotation:
        notes.append(f"stored rotation {info.rotation} degrees (frames are turned upright)")
    return warnings, notes


def _derived_why(info: VideoInfo, probe: ContainerProbe | str) -> str:
    """Why the decoder derived the timestamps, as far as the container shows it."""
    if isinstance(probe, str):
        return "the container could not be probed to say why"
    if "avi" in probe.format_name.split(","):
        return "AVI stores no presentation times; FFmpeg makes them from the frame rate"
    if probe.packets_without_pts:
        return f"{probe.packets_without_pts} of {probe.packets} packets have no pts"
    if probe.repeated_pts:
        return f"{probe.repeated_pts} packets repeat another packet's pts"
    span, rate, count = probe.pts_span_s, probe.rate, info.num_frames
    if span is not None and rate and count > 1 and span > ABSURD_SPAN_FACTOR * count / rate:
        return f"the container's times span {span:.0f} s for {count} frames at {rate:.3f} fps"
    return "the decoder's frame times are missing or not increasing"


def format_report(result: CheckResult) -> str:
    """The TSV report: :data:`REPORT_HEADER`, then ``rel_path<TAB>status<TAB>detail`` per video."""
    lines = [REPORT_HEADER]
    lines += [f"{video.rel_path}\t{video.status}\t{video.detail}" for video in result.videos]
    return "\n".join(lines) + "\n"


def write_report(path: str | Path, result: CheckResult | None = None) -> None:
    """Write the TSV report atomically (``None``: the header alone, to test the path early).

    Raises:
        OSError: the folder cannot be created or the file written.
    """
    text = format_report(result) if result is not None else REPORT_HEADER + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def format_summary(result: CheckResult, output: str | None, max_listed: int = 20) -> str:
    """The text printed at the end of a check: counts, then the failed videos with their
    reasons and the damaged/warning ones with their findings (``max_listed`` of each)."""
    counts = ", ".join(f"{result.count(status)} {status}" for status in STATUSES)
    what = " (thorough: every frame)" if result.thorough else ""
    lines = [f"checked {len(result.videos)} videos in {result.seconds:.1f} s{what}: {counts}"]
    see = f" (see {output})" if output else " (--output FILE.tsv lists them all)"
    groups = [
        ("unreadable (extraction fails them):", result.failures),
        (
            "damaged or with warnings:",
            [v for v in result.videos if v.status in (STATUS_DAMAGED, STATUS_WARNING)],
        ),
    ]
    for title, group in groups:
        if not group:
            continue
        lines.append(title)
        lines += [f"  {video.rel_path}: {video.detail}" for video in group[:max_listed]]
        if len(group) > max_listed:
            lines.append(f"  ... and {len(group) - max_listed} more{see}")
    if output:
        lines.append(f"report (rel_path, status, detail per video) written to {output}")
    return "\n".join(lines)
