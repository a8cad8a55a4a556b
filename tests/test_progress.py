"""progress_bar: a tqdm bar on a terminal, plain timed lines in a log, nothing when disabled."""

from __future__ import annotations

import io

from tqdm import tqdm

from video_eleatt.progress import LineProgress, progress_bar


class Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_every_interval_and_a_final_line():
    log, clock = io.StringIO(), Clock()
    bar = LineProgress(1000, "extract ucf101", "video", log, interval_s=10.0, clock=clock)
    assert bar.every == 100  # 10 % of the total
    for _ in range(5):
        clock.now += 4.0  # 4 s per video: one line at 12 s (10 s after the start), not per video
        bar.update(1)
    assert log.getvalue() == "extract ucf101: 3/1000 videos (0.3 %), 0.25 videos/s, 66 min left\n"
    bar.set_postfix_str("failed=0")
    bar.close()  # at 20 s: the final line
    bar.close()  # a second close writes nothing
    assert log.getvalue().splitlines() == [
        "extract ucf101: 3/1000 videos (0.3 %), 0.25 videos/s, 66 min left",
        "extract ucf101: 5/1000 videos (0.5 %), 0.25 videos/s, 66 min left [failed=0]",
    ]
    assert "\r" not in log.getvalue()


def test_a_log_gets_a_line_every_n_items_and_once_at_the_end():
    log, clock = io.StringIO(), Clock()
    with LineProgress(7, "check", "video", log, interval_s=60.0, every=3, clock=clock) as bar:
        for _ in range(7):
            clock.now += 0.5
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert [line.split(" ", 2)[1] for line in lines] == ["3/7", "6/7", "7/7"]
    assert lines[-1] == "check: 7/7 videos (100.0 %), 2 videos/s, done in 4 s"
    assert "\r" not in log.getvalue()
    log = io.StringIO()
    with LineProgress(6, "check", "video", log, interval_s=60.0, every=3, clock=clock) as bar:
        bar.update(3)
        bar.update(3)
    assert len(log.getvalue().splitlines()) == 2  # the last line was already written


def test_unknown_total_and_nothing_done():
    log, clock = io.StringIO(), Clock()
    LineProgress(None, "scan", "file", log, clock=clock).close()
    assert log.getvalue() == "scan: 0 files\n"  # the final line, even with nothing done
    log = io.StringIO()
    bar = LineProgress(None, "scan", "match", log, every=2, clock=clock)
    clock.now += 1.0
    bar.update(2)
    assert log.getvalue() == "scan: 2 matches, 2 matches/s\n"


def test_a_terminal_gets_a_tqdm_bar():
    terminal = Terminal()
    with progress_bar(3, "check", unit="video", stream=terminal) as bar:
        assert isinstance(bar, tqdm)
        bar.update(3)
    assert "check" in terminal.getvalue() and "3/3" in terminal.getvalue()
    assert isinstance(progress_bar(3, "check", stream=io.StringIO()), LineProgress)


def test_disabled_writes_nothing_anywhere():
    for stream in (io.StringIO(), Terminal()):
        bar = progress_bar(10, "check", enabled=False, stream=stream, every=1)
        assert not isinstance(bar, tqdm)
        bar.update(5)
        bar.set_postfix_str("failed=1")
        bar.close()
        assert stream.getvalue() == ""
