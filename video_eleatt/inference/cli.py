"""``video-eleatt predict --checkpoint <ckpt> <video> [<video> ...]``: classify raw videos;
``video-eleatt predict --checkpoint <ckpt> --stream <source>``: classify a stream as it plays.

Prints the top-k classes of each video with their probabilities
(:mod:`video_eleatt.inference.predict`); ``--attention_overlay out.png`` also draws the first
EleAtt layer's attention over the frames (:mod:`video_eleatt.inference.spatial`; our
extension, not the paper's). ``predict`` without ``--checkpoint`` is Lightning's predict over
a feature cache (:mod:`video_eleatt.training.cli`); the top-level :mod:`video_eleatt.cli`
chooses between the two.

With ``--stream`` (:mod:`video_eleatt.inference.stream`) the source is a file of any length,
``-`` (standard input), a URL FFmpeg opens (rtsp, http) or a capture device (``/dev/video0``).
Every step prints one JSON line on standard output as soon as it is computed::

    {"time": 0.125, "step": 0, "frame_time": 0.083333, "frame": 1, "steps_seen": 1,
     "top_k": [{"class": "Grow", "probability": 0.41}, ...]}

``time`` is the sample time in seconds from the first frame (strictly increasing),
``frame``/``frame_time`` the frame used, ``steps_seen`` the steps behind the prediction (its
state's age). At the end -- also after a failure, with what was emitted -- the timeline is
written (``<source>.timeline.csv`` / ``.png`` beside a file source, else
``stream_timeline.*``; ``--timeline PREFIX``; :mod:`video_eleatt.inference.timeline`).

Exit codes: 0 every video classified (a stream read to its end, or stopped with Ctrl-C); 1
some videos could not be decoded (named, the others are still classified), or the stream
could not be opened, stalled (``--stall_timeout_s``) or dropped out (the lines already printed
stay valid); 2 unusable checkpoint or options.

>>> main(["--checkpoint", "runs/demo/runs/eleatt_gru/split-default/seed-0/checkpoints/last.ckpt",
...       "data/demo/motion/UCF-101/Grow/v_Grow_g01_c01.mp4"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sys
from typing import IO

import torch
from jsonargparse import ArgumentError, ArgumentParser

from video_eleatt.fileio import atomic_write_text
from video_eleatt.inference.errors import AttentionError, PredictError
from video_eleatt.inference.predict import (
    Predictor,
    VideoPrediction,
    load_predictor,
    overlay_paths,
    predict_video,
)
from video_eleatt.inference.stream import (
    DEFAULT_NUM_STATES,
    DEFAULT_POLICY,
    POLICIES,
    StepRecord,
    StreamClassifier,
    default_timeline_prefix,
    stream_settings,
)
from video_eleatt.inference.stream_source import DEFAULT_STALL_TIMEOUT_S, StreamError
from video_eleatt.inference.timeline import write_timeline
from video_eleatt.video.decode import VideoDecodeError


def build_parser() -> ArgumentParser:
    """The parser of ``video-eleatt predict --checkpoint``."""
    parser = ArgumentParser(
        prog="video-eleatt predict",
        description=(
            "Classify raw videos with a trained checkpoint: decode, sample, extract features "
            "with the backbone and settings recorded with the checkpoint, and print the top-k "
            "classes with their probabilities."
        ),
        exit_on_error=False,
    )
    parser.add_argument("--checkpoint", type=str, required=True, help=".ckpt of fit/compare")
    parser.add_argument("videos", type=str, nargs="*", help="video files")
    parser.add_argument(
        "--stream",
        type=str | None,
        default=None,
        help="classify this source as it plays, one JSON line per step: a file of any "
        "length, - (stdin), a URL (rtsp://, http://) or a capture device (/dev/video0)",
    )
    parser.add_argument(
        "--stall_timeout_s",
        type=float,
        default=DEFAULT_STALL_TIMEOUT_S,
        help="--stream: fail when no data arrives for this long (seconds)",
    )
    parser.add_argument(
        "--state_policy",
        type=str,
        default=DEFAULT_POLICY,
        help=f"--stream: recurrent state over long streams, one of {', '.join(POLICIES)}",
    )
    parser.add_argument(
        "--num_states",
        type=int,
        default=DEFAULT_NUM_STATES,
        help="--stream: states of the staggered policy",
    )
    parser.add_argument(
        "--stream_rate",
        type=float | None,
        default=None,
        help="--stream: steps per second (default: the training features' rate)",
    )
    parser.add_argument(
        "--stream_window",
        type=int | None,
        default=None,
        help="--stream: steps per training clip (default: from the training features)",
    )
    parser.add_argument(
        "--timeline",
        type=str | None,
        default=None,
        help="--stream: path prefix of the timeline CSV and PNG",
    )
    parser.add_argument(
        "--max_steps", type=int | None, default=None, help="--stream: stop after this many steps"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="--stream: torch threads; one frame at a time gains little from more, and on a "
        "busy machine a second one mostly waits (README, streaming latency)",
    )
    parser.add_argument("--top_k", type=int, default=5, help="classes shown per video")
    parser.add_argument(
        "--attention_overlay",
        type=str | None,
        default=None,
        help="PNG of the first-layer attention over the frames (EleAtt models; several "
        "videos: one file each, <stem>_<video>.png)",
    )
    parser.add_argument("--device", type=str, default="cpu", help="cpu or cuda[:N]")
    parser.add_argument(
        "--cache",
        type=str | None,
        default=None,
        help="feature cache to read the extraction settings from, when the checkpoint has none",
    )
    parser.add_argument(
        "--backbone_weights",
        type=str | None,
        default=None,
        help="the backbone's weights file, when the features were extracted with one",
    )
    parser.add_argument(
        "--output", type=str | None, default=None, help="also write the results as JSON lines"
    )
    return parser


def main(argv: list[str]) -> int:
    """``video-eleatt predict --checkpoint <ckpt> <video> [<video> ...] [--top_k 5]
    [--attention_overlay out.png]`` (``argv`` without the verb)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except ArgumentError as err:
        print(f"video-eleatt predict: error: {err}", file=sys.stderr)
        return 2
    if args.top_k < 1:
        print(f"video-eleatt predict: error: --top_k {args.top_k}: expected >= 1", file=sys.stderr)
        return 2
    videos = [str(video) for video in args.videos]
    if bool(videos) == bool(args.stream):
        print(
            "video-eleatt predict: error: give video files or --stream <source>, not "
            f"{'both' if videos else 'neither'}",
            file=sys.stderr,
        )
        return 2
    if args.stream and (args.stall_timeout_s <= 0 or args.num_states < 1 or args.threads < 1):
        print(
            f"video-eleatt predict: error: --stall_timeout_s {args.stall_timeout_s}, "
            f"--num_states {args.num_states}, --threads {args.threads}: expected a positive "
            "number of seconds, >= 1 and >= 1",
            file=sys.stderr,
        )
        return 2
    if args.stream and args.state_policy not in POLICIES:
        print(
            f"video-eleatt predict: error: --state_policy {args.state_policy!r}: choose one of "
            f"{', '.join(POLICIES)}",
            file=sys.stderr,
        )
        return 2
    try:
        predictor = load_predictor(args.checkpoint, args.device, args.cache, args.backbone_weights)
    except PredictError as err:
        print(f"video-eleatt predict: error: {err}", file=sys.stderr)
        return 2
    for note in predictor.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.stream:
        return stream_main(args, predictor)
    failures: dict[str, str] = {}
    results: list[VideoPrediction] = []
    for video, overlay in zip(videos, overlay_paths(args.attention_overlay, videos)):
        try:
            result = predict_video(predictor, video, args.top_k, overlay)
        except (VideoDecodeError, ValueError, AttentionError, OSError) as err:
            failures[video] = f"{type(err).__name__}: {err}"
            print(f"{video}: FAILED: {err}", file=sys.stderr, flush=True)
            continue
        results.append(result)
        print(f"{video}: {result.num_steps} frames sampled over {result.duration:.1f} s")
        for rank, (name, probability) in enumerate(result.top_k, 1):
            print(f"  {rank}. {name:<24} {probability:.4f}")
        if result.overlay is not None:
            print(f"  attention overlay: {result.overlay}")
        sys.stdout.flush()
    if args.output:
        lines = [
            json.dumps(
                {
                    "video": r.video,
                    "top_k": [{"class": n, "probability": p} for n, p in r.top_k],
                    "probabilities": dict(zip(predictor.class_names, r.probabilities.tolist())),
                    "num_steps": r.num_steps,
                }
            )
            for r in results
        ]
        atomic_write_text(args.output, "".join(line + "\n" for line in lines))
    if failures:
        print(
            f"{len(failures)} of {len(videos)} video(s) could not be classified: "
            + ", ".join(failures),
            file=sys.stderr,
        )
        return 1
    return 0


def stream_main(args, predictor: Predictor) -> int:
    """``--stream``: one JSON line per step on stdout (and ``--output``), then the timeline."""
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _stream(args, predictor)
    finally:
        torch.set_num_threads(threads)  # main() may be called in a longer-lived process


def _stream(args, predictor: Predictor) -> int:
    try:
        settings = stream_settings(predictor, args.stream_rate, args.stream_window)
        classifier = StreamClassifier(
            predictor, settings, args.state_policy, args.num_states, args.top_k
        )
    except (PredictError, ValueError) as err:
        print(f"video-eleatt predict: error: {err}", file=sys.stderr)
        return 2
    print(
        f"stream {args.stream}: {settings.rate:.3g} steps/s, clip length "
        f"{settings.trained_steps} steps ({settings.source}); state policy {args.state_policy}",
        file=sys.stderr,
    )
    rows: list[dict] = []
    output: IO[str] | None = open(args.output, "w") if args.output else None  # noqa: SIM115

    def emit(record: StepRecord) -> None:
        fields = record.to_json()
        line = json.dumps(fields)
        for handle in (sys.stdout, output):
            if handle is not None:
                handle.write(line + "\n")
                handle.flush()  # each line is whole once written: a later failure keeps it
        rows.append({**fields, "probabilities": record.probabilities})

    failure, code = None, 0
    try:
        classifier.run(args.stream, emit, args.stall_timeout_s, args.max_steps)
    except StreamError as err:
        failure, code = str(err), 1
    except KeyboardInterrupt:
        print("stopped (Ctrl-C)", file=sys.stderr)
    except BrokenPipeError:
        sys.stderr.write("stdout was closed; stopping\n")
        code = 1
    finally:
        if output is not None:
            output.close()
    prefix = args.timeline or default_timeline_prefix(args.stream)
    title = f"{args.stream}: streamed top-1 ({args.state_policy} state policy)"
    csv_path, png_path = write_timeline(rows, predictor.class_names, prefix, title)
    timings = classifier.timings
    if rows:
        per_step = sum(timings.backbone) + sum(timings.step) + sum(timings.decode)
        print(
            f"stream: {len(rows)} steps over {rows[-1]['time']:.2f} s of media in "
            f"{per_step:.2f} s; timeline {csv_path}, {png_path}",
            file=sys.stderr,
        )
    lost = classifier.stream.lost_packets if classifier.stream is not None else 0
    if lost:
        print(
            f"stream: {lost} packet(s) the decoder rejected were skipped (damaged input)",
            file=sys.stderr,
        )
    if failure:
        print(
            f"video-eleatt predict: error: {failure} ({len(rows)} steps were emitted before; "
            "they stay valid)",
            file=sys.stderr,
        )
    return code
