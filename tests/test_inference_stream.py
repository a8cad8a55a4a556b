"""``video-eleatt predict --checkpoint CKPT --stream SOURCE``: a source classified as it plays.

The model is the tiny two-class (red / blue) one of tests/stream_fixtures.py, trained through
the real extraction and fit, so the checkpoint carries its backbone, preprocessing and
sampling as a real one does (4 steps/s, 8-step clips).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from stream_fixtures import CLASS_NAMES, FPS, make_stream_model, write_segments

from video_eleatt.inference.cli import main as predict_main
from video_eleatt.inference.predict import load_predictor, predict_video
from video_eleatt.inference.stream import StatePolicy, StreamClassifier, stream_settings
from video_eleatt.inference.stream_source import FrameStream, StreamError
from video_eleatt.inference.timeline import Segment, segment_scores
from video_eleatt.models.classifier import ClassifierConfig, SequenceClassifier

KEYS = {"time", "step", "frame_time", "frame", "steps_seen", "top_k"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    info = make_stream_model(root)
    info["root"] = root
    info["two_classes"] = write_segments(root / "red_then_blue.mp4", [0, 1], seconds=3.0)
    return info


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def check_schema(lines: list[dict], top_k: int) -> None:
    """Every line: the documented keys, consecutive steps, strictly increasing times, top-k
    sorted, probabilities of known classes."""
    assert lines, "no JSON line"
    for number, line in enumerate(lines):
        assert set(line) == KEYS, line
        assert line["step"] == number
        assert line["steps_seen"] >= 1
        assert 0 <= line["frame_time"] <= line["time"]
        probabilities = [entry["probability"] for entry in line["top_k"]]
        assert len(line["top_k"]) == top_k
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 <= sum(probabilities) <= 1 + 1e-5
        assert {entry["class"] for entry in line["top_k"]} <= set(CLASS_NAMES)
    times = [line["time"] for line in lines]
    assert all(b > a for a, b in itertools.pairwise(times))


def test_streamed_prediction_switches_class_after_the_boundary(model, tmp_path, capsys):
    prefix = tmp_path / "timeline"
    argv = ["--checkpoint", str(model["checkpoint"]), "--stream", str(model["two_classes"])]
    code = predict_main([*argv, "--top_k", "2", "--timeline", str(prefix)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = json_lines(captured.out)
    check_schema(lines, top_k=2)
    # 6 s at 4 steps/s, sample times at bin centres (k + 0.5) / 4
    assert [line["time"] for line in lines] == pytest.approx([(k + 0.5) / 4 for k in range(24)])
    top1 = [line["top_k"][0]["class"] for line in lines]
    times = [line["time"] for line in lines]
    first_blue = top1.index("Blue")
    assert times[first_blue] > 3.0  # never before the change (no look-ahead)
    assert set(top1[:first_blue]) == {"Red"}
    assert times[first_blue] < 3.0 + 2.0  # within a trained clip length of it
    assert set(top1[first_blue:]) == {"Blue"}
    # the frame behind each step is the one on screen at its time
    assert [line["frame"] for line in lines] == [int(t * FPS) for t in times]
    with open(prefix.with_name("timeline.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(lines)
    assert [row["top1"] for row in rows] == top1
    assert list(rows[0])[-2:] == ["p_Red", "p_Blue"]
    for row, line in zip(rows, lines):
        assert float(row["time"]) == pytest.approx(line["time"], abs=1e-6)
        assert float(row["p_Red"]) + float(row["p_Blue"]) == pytest.approx(1.0, abs=1e-5)
    assert prefix.with_name("timeline.png").stat().st_size > 1000
    assert "4 steps/s, clip length 8 steps" in captured.err


def test_a_stream_stepped_frame_by_frame_ends_where_the_whole_clip_prediction_is(model):
    """One clip, its own rate (8 steps over 2 s), one carried state: the last step's
    probabilities are those of the whole-clip prediction (same frames, same model)."""
    predictor = load_predictor(model["checkpoint"])
    settings = stream_settings(predictor)
    streamer = StreamClassifier(predictor, settings, policy="carry", top_k=2)
    records = []
    streamer.run(str(model["test_clip"]), records.append)
    whole = predict_video(predictor, model["test_clip"])
    assert len(records) == whole.num_steps == 8
    assert [r.frame_index for r in records] == whole.frame_indices.tolist()
    np.testing.assert_allclose(records[-1].probabilities, whole.probabilities, atol=1e-4)


def write_partial_stream(path: Path, stop: threading.Event) -> threading.Thread:
    """A FIFO that gets the first half of a 4-s MPEG-TS stream, then nothing (kept open)."""
    source = write_segments(path.with_suffix(".ts"), [0], seconds=4.0, container="mpegts")
    data = source.read_bytes()
    os.mkfifo(path)

    def writer() -> None:
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            stop.wait(30)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    return thread


def test_a_stalling_pipe_hits_the_timeout_and_keeps_what_was_written(model, tmp_path, capsys):
    fifo, stop = tmp_path / "live.fifo", threading.Event()
    writer = write_partial_stream(fifo, stop)
    output, prefix = tmp_path / "steps.jsonl", tmp_path / "stalled"
    started = time.monotonic()
    try:
        code = predict_main(
            [
                "--checkpoint", str(model["checkpoint"]), "--stream", str(fifo),
                "--stall_timeout_s", "1", "--output", str(output), "--timeline", str(prefix),
            ]
        )  # fmt: skip
    finally:
        stop.set()
        writer.join(5)
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert code == 1
    assert "the stream stalled: no data for" in captured.err
    assert "stall limit 1 s" in captured.err
    assert "steps were emitted before; they stay valid" in captured.err
    assert elapsed < 20
    printed = json_lines(captured.out)
    assert len(printed) >= 3  # the first half of the stream came through
    check_schema(printed, top_k=2)
    assert json_lines(output.read_text()) == printed
    with open(prefix.with_name("stalled.csv")) as handle:
        assert len(list(csv.DictReader(handle))) == len(printed)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.mp4", "cannot open stream source"),
        ("rtsp://127.0.0.1:9/nothing", "cannot open stream source"),
        ("/dev/video97", "cannot open stream source"),
    ],
)
def test_a_source_that_cannot_be_opened_fails_clearly(model, tmp_path, capsys, source, message):
    if source == "missing.mp4":
        source = str(tmp_path / source)
    argv = ["--checkpoint", str(model["checkpoint"]), "--stream", source]
    code = predict_main([*argv, "--stall_timeout_s", "3", "--timeline", str(tmp_path / "t")])
    captured = capsys.readouterr()
    assert code == 1
    assert message in captured.err and source in captured.err
    assert json_lines(captured.out) == []


def test_the_end_of_a_live_source_is_a_drop_out(model):
    stream = FrameStream(str(model["test_clip"]), rate=4.0)
    stream.live = True  # as for a capture device or an rtsp URL
    seen = []
    dropped = "live source ended \\(dropped out\\) after 8 sampled"
    with pytest.raises(StreamError, match=dropped), stream:
        seen.extend(stream)
    assert len(seen) == 8


def test_state_policies_reset_and_stagger_as_documented():
    torch.manual_seed(0)
    config = ClassifierConfig(input_size=4, num_classes=3, hidden_size=5, dropout=0.0)
    classifier = SequenceClassifier(config).eval()
    features = torch.randn(20, 1, 4)
    ages = {}
    for policy in ("carry", "window", "staggered"):
        states = StatePolicy(classifier, policy, window=6, num_states=3)
        ages[policy] = [states.step(feature)[1] for feature in features]
    assert ages["carry"] == list(range(1, 21))
    assert ages["window"] == [1, 2, 3, 4, 5, 6] * 3 + [1, 2]
    # states started at steps 0, 2, 4, each reset every 6 steps: the oldest is 5 or 6 old
    assert ages["staggered"][:6] == [1, 2, 3, 4, 5, 6]
    assert set(ages["staggered"][6:]) == {5, 6}
    # the window policy's prediction at step 6 is that of a fresh state
    window = StatePolicy(classifier, "window", window=6)
    logits = [window.step(feature)[0] for feature in features[:7]]
    fresh = classifier.step(features[6])[0][0]
    torch.testing.assert_close(logits[6], fresh)


def test_segment_scores_count_recognised_segments_and_lags():
    times = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5]
    segments = [Segment(0, 2, 0), Segment(2, 5, 1), Segment(5, 7, 0)]
    scores = segment_scores(times, [0, 0, 0, 1, 1, 1, 1], segments)
    assert scores.segment_accuracy == pytest.approx(2 / 3)
    assert scores.step_accuracy == pytest.approx(4 / 7)
    assert scores.lags == [1.5, None]
    assert scores.median_lag == 1.5 and scores.never_settled == 1


@pytest.mark.parametrize("kind", ["mpeg4_packed2_avi", "h264_bframes_mp4"])
def test_a_streamed_file_gives_the_frames_the_file_sampler_picks(tmp_path, kind):
    # the same rule as video.sampling (the frame on screen at each sample time, with its
    # tolerance), and AVI frames timed by position: FFmpeg's pts labels on packed B-frames
    # are 1, 2, 4, 3, ... on frames in order
    from video_factory import read_index, write_conformance_video

    from video_eleatt.video.decode import VideoReader
    from video_eleatt.video.sampling import frames_at_times

    path = write_conformance_video(tmp_path, kind)
    with FrameStream(str(path), rate=10.0) as stream:
        sampled = list(stream)
    reader = VideoReader(path)
    times = np.array([item.time for item in sampled])
    expected = frames_at_times(times, reader.frame_timestamps(), reader.info.fps)
    assert len(sampled) == round(reader.info.duration * 10)  # 10 samples a second
    assert [read_index(item.image) for item in sampled] == expected.tolist()
