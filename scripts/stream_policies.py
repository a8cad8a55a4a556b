"""Which recurrent state policy follows a long stream best: measured on concatenated test clips.

A long video is made of test clips of the checkpoint's own dataset, one after another, each of
another class than the one before (re-encoded once, at the clips' frame rate). It is streamed
once through the checkpoint's pipeline (:mod:`video_eleatt.inference.stream`: time-based
sampling at the training features' rate, one backbone pass per frame), and every state policy
is stepped over the same per-frame features. For each policy: the share of segments whose
top-1 at their last step is their class, the share of steps whose top-1 is their segment's
class, and the lag from each change until the top-1 settles on the new class
(:func:`video_eleatt.inference.timeline.segment_scores`).

    .venv/bin/python scripts/stream_policies.py --checkpoint runs/demo/runs/eleatt_gru/\\
        split-default/seed-0/checkpoints/last.ckpt --clips 40 --output_dir runs/stream_policies

Writes ``<output_dir>/long_video.mp4``, ``policies.csv`` (one row per checkpoint and policy)
and ``timeline_<policy>.csv/png`` with the true segments drawn, and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import fractions
import random
import statistics
import sys
from pathlib import Path

import av
import torch

from video_eleatt.datasets import DatasetSpec, load_index
from video_eleatt.inference.predict import load_predictor
from video_eleatt.inference.stream import (
    POLICIES,
    StatePolicy,
    StreamClassifier,
    stream_settings,
)
from video_eleatt.inference.stream_source import FrameStream
from video_eleatt.inference.timeline import Segment, segment_scores, write_timeline

POLICY_VARIANTS = [
    ("carry", 1),
    ("window", 1),
    ("staggered", 2),
    ("staggered", 3),
    ("staggered", 4),
]


def test_clips(record: dict, count: int, seed: int) -> list[tuple[Path, int]]:
    """``count`` test clips of the checkpoint's dataset, no two neighbours of one class."""
    data = record.get("data") or {}
    spec = dict(data.get("dataset") or {})
    spec["split"] = data.get("split", spec.get("split"))
    index = load_index(DatasetSpec(**spec))
    by_class: dict[int, list[Path]] = {}
    for video in index.records:
        if video.subset == "test" and video.label is not None:
            by_class.setdefault(int(video.label), []).append(index.path(video))
    rng = random.Random(seed)
    chosen: list[tuple[Path, int]] = []
    while len(chosen) < count:
        labels = [c for c in by_class if not chosen or c != chosen[-1][1]]
        label = rng.choice(labels)
        chosen.append((rng.choice(by_class[label]), label))
    return chosen


def concatenate(clips: list[tuple[Path, int]], path: Path) -> list[Segment]:
    """Writes the clips one after another into ``path`` (H.264, the first clip's rate and
    size); returns each clip's segment in seconds."""
    segments, written = [], 0
    with av.open(str(path), "w") as output:
        stream, rate = None, None
        for clip, label in clips:
            with av.open(str(clip)) as source:
                video = source.streams.video[0]
                if stream is None:
                    rate = round(float(video.average_rate or 12))
                    stream = output.add_stream("libx264", rate=rate)
                    stream.width, stream.height = video.width, video.height
                    stream.pix_fmt = "yuv420p"
                start = written
                for frame in source.decode(video):
                    image = frame.reformat(format="yuv420p")
                    image.pts, image.time_base = written, fractions.Fraction(1, rate)
                    written += 1
                    for packet in stream.encode(image):
                        output.mux(packet)
            segments.append(Segment(start / rate, written / rate, label))
        for packet in stream.encode():
            output.mux(packet)
    return segments


def run_name(checkpoint: str) -> str:
    """``<variant>_<seed-N>`` of a comparison run's checkpoint path."""
    parts = Path(checkpoint).parts
    return f"{parts[-5]}_{parts[-3]}" if len(parts) >= 5 else Path(checkpoint).stem


def measure(checkpoint: str, video: Path, segments: list[Segment], output_dir: Path) -> list[dict]:
    predictor = load_predictor(checkpoint)
    settings = stream_settings(predictor)
    streamer = StreamClassifier(predictor, settings)
    times, features = [], []
    with FrameStream(str(video), settings.rate, settings.phase) as frames:
        for frame in frames:
            times.append(frame.time)
            features.append(streamer.features(frame.image, frame.frame_index))
    rows = []
    for policy, num_states in POLICY_VARIANTS:
        states = StatePolicy(
            predictor.module.classifier, policy, settings.trained_steps, num_states
        )
        steps = []
        with torch.no_grad():
            for number, feature in enumerate(features):
                logits, seen = states.step(feature)
                probabilities = torch.softmax(logits.double(), 0).numpy()
                steps.append(
                    {
                        "step": number,
                        "time": times[number],
                        "frame_time": times[number],
                        "steps_seen": seen,
                        "probabilities": probabilities,
                    }
                )
        predicted = [int(step["probabilities"].argmax()) for step in steps]
        scores = segment_scores(times, predicted, segments)
        name = policy if policy != "staggered" else f"staggered-{num_states}"
        write_timeline(
            steps,
            predictor.class_names,
            output_dir / f"timeline_{run_name(checkpoint)}_{name}",
            f"{name}: {len(segments)} concatenated test clips",
            segments,
        )
        rows.append(
            {
                "checkpoint": checkpoint,
                "policy": name,
                "rate_per_s": round(settings.rate, 3),
                "clip_steps": settings.trained_steps,
                "segments": scores.num_segments,
                "segment_accuracy": round(scores.segment_accuracy, 4),
                "step_accuracy": round(scores.step_accuracy, 4),
                "median_lag_s": None if scores.median_lag is None else round(scores.median_lag, 3),
                "never_settled": scores.never_settled,
            }
        )
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", nargs="+", required=True, help="one or more .ckpt")
    parser.add_argument("--clips", type=int, default=40, help="test clips in the long video")
    parser.add_argument("--seed", type=int, default=0, help="draw of the clips")
    parser.add_argument("--output_dir", default="runs/stream_policies")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    record = torch.load(args.checkpoint[0], map_location="cpu", weights_only=True)["video_eleatt"]
    clips = test_clips(record, args.clips, args.seed)
    video = output_dir / "long_video.mp4"
    segments = concatenate(clips, video)
    print(f"{video}: {len(clips)} test clips, {segments[-1].end:.1f} s", file=sys.stderr)
    rows = [
        row
        for checkpoint in args.checkpoint
        for row in measure(checkpoint, video, segments, output_dir)
    ]
    with open(output_dir / "policies.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("policy          segment acc  step acc  median lag (s)  never settled  (mean of runs)")
    for policy in dict.fromkeys(row["policy"] for row in rows):
        mine = [row for row in rows if row["policy"] == policy]
        lags = [row["median_lag_s"] for row in mine if row["median_lag_s"] is not None]
        print(
            f"{policy:<15} {statistics.mean(r['segment_accuracy'] for r in mine):>11.3f}"
            f"  {statistics.mean(r['step_accuracy'] for r in mine):>8.3f}"
            f"  {statistics.mean(lags) if lags else float('nan'):>14.2f}"
            f"  {statistics.mean(r['never_settled'] for r in mine):>13.1f}"
        )
    print(f"rows: {output_dir / 'policies.csv'}; timelines: {output_dir}/timeline_*.png")
    return 0


if __name__ == "__main__":
    assert set(POLICIES) >= {policy for policy, _ in POLICY_VARIANTS}
    sys.exit(main(sys.argv[1:]))
