"""``video-eleatt predict --checkpoint <ckpt> <video> [<video> ...]``: classify raw videos.

Prints the top-k classes of each video with their probabilities
(:mod:`video_eleatt.inference.predict`); ``--attention_overlay out.png`` also draws the first
EleAtt layer's attention over the frames (:mod:`video_eleatt.inference.spatial`; our
extension, not the paper's). ``predict`` without ``--checkpoint`` is Lightning's predict over
a feature cache (:mod:`video_eleatt.training.cli`); the top-level :mod:`video_eleatt.cli`
chooses between the two.

Exit codes: 0 every video classified; 1 some videos could not be decoded (named, the others
are still classified); 2 unusable checkpoint or options.

>>> main(["--checkpoint", "runs/demo/runs/eleatt_gru/split-default/seed-0/checkpoints/last.ckpt",
...       "data/demo/motion/UCF-101/Grow/v_Grow_g01_c01.mp4"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sys

from jsonargparse import ArgumentError, ArgumentParser

from video_eleatt.fileio import atomic_write_text
from video_eleatt.inference.errors import AttentionError, PredictError
from video_eleatt.inference.predict import (
    VideoPrediction,
    load_predictor,
    overlay_paths,
    predict_video,
)
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
    parser.add_argument("videos", type=str, nargs="+", help="video files")
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
    try:
        predictor = load_predictor(args.checkpoint, args.device, args.cache, args.backbone_weights)
    except PredictError as err:
        print(f"video-eleatt predict: error: {err}", file=sys.stderr)
        return 2
    for note in predictor.notes:
        print(f"note: {note}", file=sys.stderr)
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
