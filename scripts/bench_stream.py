"""Latency of streaming prediction (``video-eleatt predict --stream``), per stage and end to end.

For a checkpoint and a video (a long one: ``scripts/stream_policies.py`` writes
``long_video.mp4``), measures on this machine:

- *decode*: reading the source and handing out the sampled frames (every frame is decoded,
  sampled ones converted to RGB), per sampled frame, alone;
- *backbone*: preprocessing and the backbone on one frame, per sampled frame;
- *step*: one recurrent step of the state policy (``carry``: one state; ``staggered``: K);
- *end to end*: the whole stream, decode overlapped in its thread: steps per wall second, and
  media seconds per wall second (the real-time factor; >= 1 keeps up with a live source
  sampled at the checkpoint's rate);
- *CPU time*: the process's CPU seconds (all its threads) per second of media over the same
  run. Wall figures depend on what else the machine runs (the load average is printed); CPU
  time much less so: below the number of cores, an otherwise idle machine keeps up.

    .venv/bin/python scripts/bench_stream.py --checkpoint CKPT --video long_video.mp4

Prints one table with medians and 95th percentiles (milliseconds) and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

from video_eleatt.inference.predict import load_predictor
from video_eleatt.inference.stream import StatePolicy, StreamClassifier, stream_settings
from video_eleatt.inference.stream_source import FrameStream


def machine() -> str:
    model, flags = platform.processor() or "unknown CPU", ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and model in ("", "unknown CPU", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    avx2 = "AVX2" if " avx2" in flags else "no AVX2"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    threads = torch.get_num_threads()
    return f"{model}, {cores} cores ({avx2}), {gpu}, torch {torch.__version__}, {threads} threads"


def summary(name: str, seconds: list[float]) -> str:
    values = sorted(seconds)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    median = 1000 * statistics.median(values)
    return f"{name:<26} {median:>9.2f} {1000 * p95:>9.2f}   ({len(values)} samples)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--video", required=True, help="a long video to stream")
    parser.add_argument("--max_steps", type=int, default=400, help="steps measured")
    parser.add_argument("--num_states", type=int, default=3, help="of the staggered policy")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    predictor = load_predictor(args.checkpoint)
    settings = stream_settings(predictor)
    streamer = StreamClassifier(predictor, settings, "staggered", args.num_states)

    decode, started = [], time.perf_counter()
    frames = []
    with FrameStream(
        args.video, settings.rate, settings.phase, max_frames=args.max_steps
    ) as stream:
        for frame in stream:
            now = time.perf_counter()
            decode.append(now - started)
            frames.append(frame)
            started = time.perf_counter()

    backbone, features = [], []
    for frame in frames:
        streamer._last_frame = None  # measure every frame, not the repeat shortcut
        begin = time.perf_counter()
        features.append(streamer.features(frame.image, frame.frame_index))
        backbone.append(time.perf_counter() - begin)

    steps: dict[str, list[float]] = {}
    for policy, count in (("carry", 1), ("staggered", args.num_states)):
        states = StatePolicy(predictor.module.classifier, policy, settings.trained_steps, count)
        timings = steps.setdefault(f"step ({policy}{'' if count == 1 else f', K={count}'})", [])
        for feature in features:
            begin = time.perf_counter()
            states.step(feature)
            timings.append(time.perf_counter() - begin)

    records = []
    end_to_end = StreamClassifier(predictor, settings, "staggered", args.num_states)
    begin, cpu_begin = time.perf_counter(), time.process_time()
    end_to_end.run(args.video, records.append, max_steps=args.max_steps)
    wall, cpu = time.perf_counter() - begin, time.process_time() - cpu_begin
    media = records[-1].time + 1.0 / settings.rate

    print(f"machine: {machine()}; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    print(
        f"checkpoint {args.checkpoint}\n  step rate {settings.rate:.3g}/s (real time: "
        f"{1000 / settings.rate:.0f} ms per step), clip length {settings.trained_steps}; "
        f"source {stream.fps} fps"
    )
    print(f"{'stage (per sampled frame)':<26} {'median ms':>9} {'p95 ms':>9}")
    print(summary("decode (alone)", decode))
    print(summary("backbone (1 frame)", backbone))
    for name, timings in steps.items():
        print(summary(name, timings))
    print(
        f"end to end (staggered K={args.num_states}): {len(records)} steps, {media:.1f} s of "
        f"media in {wall:.2f} s: {len(records) / wall:.1f} steps/s, real-time factor "
        f"{media / wall:.1f}x; CPU time {cpu:.1f} s = {cpu / media:.2f} CPU s per media s "
        f"({1000 * cpu / len(records):.0f} ms per step)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
