"""DecodePool: event order, broken files, timeout kill/replace, crash, bounded memory, shutdown.

Most pools here use the "fork" start method (workers in milliseconds); one test runs the
default "forkserver" path end to end.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from video_factory import (
    BROKEN_KINDS,
    CollectGarbage,
    CrashOnWidth,
    HangOnWidth,
    ToFloatCHW,
    read_indices,
    read_indices_flat,
    write_broken_video,
    write_index_video,
)

from video_eleatt.video.pool import (
    DecodePool,
    DecodeTask,
    FrameChunk,
    VideoFailed,
    VideoFinished,
    VideoStarted,
)
from video_eleatt.video.sampling import SamplingConfig

ALL = SamplingConfig(mode="all")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    paths = {
        "a.mp4": write_index_video(root / "a.mp4", 40, fps=10.0),
        "b.mkv": write_index_video(root / "b.mkv", 25, fps=5.0, codec="ffv1"),
        "c.mp4": write_index_video(root / "c.mp4", 9, fps=10.0),
        "narrow.mp4": write_index_video(root / "narrow.mp4", 10, size=(32, 32)),
        "crash.mp4": write_index_video(root / "crash.mp4", 10, size=(40, 32)),
    }
    for kind in BROKEN_KINDS:
        paths[f"{kind}.mp4"] = write_broken_video(root / f"{kind}.mp4", kind)
    return {key: str(path) for key, path in paths.items()}


def by_video(events):
    """Events grouped per key, in arrival order."""
    grouped: dict[str, list] = {}
    for event in events:
        grouped.setdefault(event.key, []).append(event)
    return grouped


def assert_complete(events, expected_indices, chunk_size):
    """Started, chunks covering frame_indices in order (checked by pixel), Finished."""
    started, *chunks, finished = events
    assert isinstance(started, VideoStarted) and isinstance(finished, VideoFinished)
    assert started.frame_indices.tolist() == expected_indices
    assert all(isinstance(chunk, FrameChunk) for chunk in chunks)
    assert [chunk.start for chunk in chunks] == list(range(0, len(expected_indices), chunk_size))
    assert read_indices_flat(chunk.frames for chunk in chunks) == expected_indices


def pool_is_gone(pids):
    """True when none of the processes exists any more."""
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_events_in_order_and_broken_files_fail_with_reasons(videos):
    # the default start method (forkserver), end to end
    tasks = [DecodeTask("a.mp4", videos["a.mp4"], SamplingConfig(mode="fps", fps=5.0))]
    tasks += [DecodeTask(f"{kind}.mp4", videos[f"{kind}.mp4"], ALL) for kind in BROKEN_KINDS]
    tasks += [
        DecodeTask("b.mkv", videos["b.mkv"], SamplingConfig(mode="uniform", num_frames=4)),
        DecodeTask("c.mp4", videos["c.mp4"], ALL),
    ]
    with DecodePool(num_workers=2, timeout_s=30, chunk_size=4) as pool:
        events = list(pool.imap(tasks))
        pids = pool.worker_pids()
    assert pool_is_gone(pids)
    grouped = by_video(events)
    assert sorted(grouped) == sorted(task.key for task in tasks)  # every video reported
    assert_complete(grouped["a.mp4"], list(range(0, 40, 2)), chunk_size=4)
    assert_complete(grouped["b.mkv"], [3, 9, 15, 21], chunk_size=4)
    assert_complete(grouped["c.mp4"], list(range(9)), chunk_size=4)
    started = grouped["a.mp4"][0]
    assert started.info.num_frames == 40 and started.info.fps == 10.0
    np.testing.assert_allclose(started.timestamps, np.arange(0, 40, 2) / 10.0, atol=1e-6)
    reasons = {key: evts[0].reason for key, evts in grouped.items() if key.startswith(BROKEN_KINDS)}
    assert all(len(grouped[key]) == 1 for key in reasons)  # a single VideoFailed each
    assert "empty" in reasons["zero_byte.mp4"]
    assert "no such file" in reasons["missing.mp4"]
    for kind in ("truncated", "not_video", "corrupt", "no_frames"):
        assert "cannot open" in reasons[f"{kind}.mp4"]
        assert videos[f"{kind}.mp4"] in reasons[f"{kind}.mp4"]


def test_transform_runs_in_the_worker_and_decode_size_resizes(videos):
    tasks = [DecodeTask("a", videos["a.mp4"], SamplingConfig(mode="uniform", num_frames=3))]
    with DecodePool(1, 30, transform=ToFloatCHW(), decode_size=(32, 24), start_method="fork") as p:
        events = list(p.imap(tasks))
    started, chunk, _ = events
    assert (started.info.width, started.info.height) == (32, 24)
    assert chunk.frames.dtype == torch.float32 and chunk.frames.shape == (3, 3, 24, 32)
    frames = (chunk.frames * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    assert read_indices(frames) == [6, 20, 33]


def test_a_forked_worker_leaves_the_parents_uncollected_decoders_alone(videos):
    """The parent holds a threaded FFmpeg decoder that only its garbage collector can free (a
    reference cycle, as a finished decode can leave). A worker forked now inherits the object
    but not the decoder's threads: freeing it there hangs or crashes the worker. The worker
    here collects garbage on every chunk, and must still decode its video."""
    import gc

    import av

    gc.disable()  # the parent must not collect the cycle before the fork
    try:
        container = av.open(videos["a.mp4"])
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads, started by the first decode
        next(container.decode(stream))
        cycle = {"container": container}
        cycle["self"] = cycle
        del container, stream, cycle
        tasks = [DecodeTask("a", videos["a.mp4"], ALL)]
        with DecodePool(1, 5.0, transform=CollectGarbage(), start_method="fork") as pool:
            events = list(pool.imap(tasks))
    finally:
        gc.enable()
        gc.collect()
    assert not [event for event in events if isinstance(event, VideoFailed)]
    assert_complete(events, list(range(40)), chunk_size=32)


def test_a_hung_decode_is_killed_replaced_and_the_job_goes_on(videos):
    # HangOnWidth holds the GIL forever on the 32-pixel-wide video, as decord does on files
    # whose header over-reports frames; only SIGKILL stops it
    tasks = [DecodeTask("hang", videos["narrow.mp4"], ALL), DecodeTask("a", videos["a.mp4"], ALL)]
    timeout_s = 1.0
    with DecodePool(1, timeout_s, transform=HangOnWidth(32), start_method="fork") as pool:
        hung_pid = pool.worker_pids()[0]
        start = time.monotonic()
        events = []
        for event in pool.imap(tasks):
            events.append((time.monotonic() - start, event))
        replacement_pid = pool.worker_pids()[0]
        # the replacement (forked by the monitor thread) outlives that thread's end
        assert_complete(list(pool.imap(tasks[1:])), list(range(40)), chunk_size=32)
        assert pool.worker_pids() == [replacement_pid]
    failed_at, failed = next((t, e) for t, e in events if isinstance(e, VideoFailed))
    assert failed.key == "hang"
    assert failed.reason.startswith("timed out after ")
    assert "limit 1 s" in failed.reason and videos["narrow.mp4"] in failed.reason
    assert timeout_s <= failed_at < timeout_s + 3.0
    assert replacement_pid != hung_pid and pool_is_gone([hung_pid])
    assert_complete([e for _, e in events if e.key == "a"], list(range(40)), chunk_size=32)


def test_a_crashed_worker_is_replaced_and_its_video_failed(videos):
    tasks = [DecodeTask("crash", videos["crash.mp4"], ALL), DecodeTask("c", videos["c.mp4"], ALL)]
    with DecodePool(1, 30, transform=CrashOnWidth(40), start_method="fork") as pool:
        grouped = by_video(pool.imap(tasks))
    failed = grouped["crash"][-1]
    assert isinstance(failed, VideoFailed)
    assert "decode worker died (signal SIGSEGV)" in failed.reason
    assert_complete(grouped["c"], list(range(9)), chunk_size=32)


def test_slow_consumer_does_not_time_out_a_healthy_video(videos):
    # the consumer holds each chunk longer than the timeout; the worker is held back by the
    # chunk limit meanwhile, and that time does not count against the video
    tasks = [DecodeTask("a", videos["a.mp4"], ALL)]
    with DecodePool(1, 0.6, chunk_size=10, max_chunks_per_worker=1, start_method="fork") as pool:
        events = []
        for event in pool.imap(tasks):
            events.append(event)
            if isinstance(event, FrameChunk) and event.start < 20:
                time.sleep(0.9)
    assert_complete(events, list(range(40)), chunk_size=10)


def test_leaving_early_replaces_busy_workers_and_close_leaves_no_process(videos):
    tasks = [DecodeTask(f"a{i}", videos["a.mp4"], ALL) for i in range(4)]
    pool = DecodePool(2, 30, chunk_size=4, start_method="fork")
    first_pids = pool.worker_pids()
    for event in pool.imap(tasks):
        if isinstance(event, FrameChunk):
            break  # abandon the generator with videos in flight
    events = list(pool.imap([DecodeTask("c", videos["c.mp4"], ALL)]))
    assert_complete(events, list(range(9)), chunk_size=4)
    pids = pool.worker_pids()
    with pytest.raises(KeyboardInterrupt), pool:
        for _ in pool.imap(tasks):
            raise KeyboardInterrupt
    assert pool_is_gone(first_pids + pids + pool.worker_pids())
    with pytest.raises(RuntimeError, match="closed"):
        next(pool.imap(tasks))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_peak_memory_does_not_grow_with_video_length(tmp_path):
    # 6000 frames of 64x64 (10 minutes at 10 fps): 74 MB of frames if anything kept them
    short = write_index_video(tmp_path / "short.mp4", 60, size=(64, 64), lossless=False)
    long = write_index_video(tmp_path / "long.mp4", 6000, size=(64, 64), lossless=False)
    frame_bytes = 64 * 64 * 3
    with DecodePool(1, 60, chunk_size=32, start_method="fork") as pool:
        peaks = []
        for path in (short, long):
            parent_before, parent_peak, frames = _rss_bytes(), 0, 0
            for event in pool.imap([DecodeTask("v", str(path), ALL)]):
                if isinstance(event, FrameChunk):
                    frames += len(event.frames)
                    parent_peak = max(parent_peak, _rss_bytes())
                assert not isinstance(event, VideoFailed), event
            peaks.append((pool.worker_peak_rss()[0], parent_peak - parent_before, frames))
    (worker_short, _, frames_short), (worker_long, parent_growth, frames_long) = peaks
    assert (frames_short, frames_long) == (60, 6000)
    kept_everything = 6000 * frame_bytes  # 74 MB; measured growth is under 15 MB
    assert worker_long - worker_short < kept_everything / 3
    assert parent_growth < kept_everything / 3


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize("sample_fps", [0.5, 2.0], ids=["sparse", "dense"])
def test_slow_consumer_does_not_let_the_decoder_read_the_video_into_memory(tmp_path, sample_fps):
    # a decoder that runs ahead of its caller (decord's reader thread did) turns the lead into
    # RGB frames while the worker waits on a slow consumer: up to the whole video (74 MB here)
    long = write_index_video(tmp_path / "long.mp4", 6000, size=(64, 64), lossless=False)
    short = write_index_video(tmp_path / "short.mp4", 60, size=(64, 64), lossless=False)
    sampling = SamplingConfig(mode="fps", fps=sample_fps)
    peaks = []
    for path in (short, long):
        with DecodePool(1, 60, chunk_size=16, start_method="fork") as pool:
            for event in pool.imap([DecodeTask("v", str(path), sampling)]):
                assert not isinstance(event, VideoFailed), event
                if isinstance(event, FrameChunk):
                    time.sleep(0.1 if sample_fps < 1 else 0.025)
            peaks.append(pool.worker_peak_rss()[0])
    kept_everything = 6000 * 64 * 64 * 3
    assert peaks[1] - peaks[0] < kept_everything / 4


def test_a_wrong_frame_table_restarts_the_video_from_a_decode_pass(videos, monkeypatch):
    from video_eleatt.video import frame_table

    container_table = frame_table.container_table

    def shifted(
        container, stream, by_pts=True
    ):  # says frame 10 is missing and one more comes at the end
        table = container_table(container, stream, by_pts)
        pts = np.concatenate([table.pts[:10], table.pts[11:], [table.pts[-1] + 1]])
        return frame_table.FrameTable(pts, table.keyframes, len(pts), frames=len(pts))

    monkeypatch.setattr(frame_table, "container_table", shifted)  # the forked worker inherits it
    with DecodePool(1, 30, chunk_size=4, start_method="fork") as pool:
        events = list(pool.imap([DecodeTask("a", videos["a.mp4"], ALL)]))
    first = [i for i, event in enumerate(events) if isinstance(event, VideoStarted)]
    assert len(first) == 2  # started, the chunks before the mismatch, started again
    assert all(isinstance(event, FrameChunk) for event in events[first[0] + 1 : first[1]])
    assert read_indices_flat(e.frames for e in events[first[0] + 1 : first[1]]) == list(range(8))
    assert_complete(events[first[1] :], list(range(40)), chunk_size=4)


def test_a_damaged_video_restarts_from_a_decode_pass_with_its_clean_frames(tmp_path):
    from video_factory import write_conformance_video

    path = str(write_conformance_video(tmp_path, "h264_slice_errors"))
    lost = {*range(120, 150), *range(210, 250)}  # see test_video_conformance.EXPECTED_DAMAGE
    clean = [i for i in range(300) if i not in lost]
    with DecodePool(1, 30, chunk_size=64, start_method="fork", on_damage="fail") as pool:
        failed = list(pool.imap([DecodeTask("v", path, ALL)]))
    with DecodePool(1, 30, chunk_size=64, start_method="fork") as pool:
        events = list(pool.imap([DecodeTask("v", path, ALL)]))
    assert isinstance(failed[-1], VideoFailed) and "frame 120 " in failed[-1].reason
    last_start = max(i for i, event in enumerate(events) if isinstance(event, VideoStarted))
    info = events[last_start].info
    assert last_start > 0 and info.num_frames == len(clean) and info.lost_frames == 70
    started, *chunks, finished = events[last_start:]
    assert isinstance(finished, VideoFinished)
    assert started.frame_indices.tolist() == list(range(len(clean)))
    assert read_indices_flat(chunk.frames for chunk in chunks) == clean  # never a substitute
