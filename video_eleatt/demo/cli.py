"""``video-eleatt make-demo-data``: write the demo video dataset."""

from __future__ import annotations

import sys
import time


def generate_main(argv: list[str] | None = None) -> int:
    """Writes the demo dataset (UCF101 layout) unless a complete one is already there.

    ``video-eleatt make-demo-data [--root DIR] [--videos-per-class N] [--seed S]``

    Returns:
        0 on success, 1 when the dataset cannot be written (the reason is printed).
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    from video_eleatt.demo.synth import (
        CLASSES,
        DEFAULT_CLASSES,
        DEFAULT_ROOT,
        DemoDataError,
        SynthConfig,
        generate_dataset,
    )

    defaults = SynthConfig()
    parser = ArgumentParser(
        prog="video-eleatt make-demo-data",
        description=(
            "Write the demo action dataset: short H.264 .mp4 videos of shapes whose class is "
            "the order of a change over time (growing vs shrinking, hue forward vs backward, "
            "...), in UCF101 layout with class index and split lists. Deterministic by seed; "
            "a complete dataset already at --root is left as it is."
        ),
    )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with these options")
    parser.add_argument("--root", type=str, default=DEFAULT_ROOT, help="dataset folder")
    parser.add_argument(
        "--videos_per_class",
        "--videos-per-class",
        type=int,
        default=defaults.videos_per_class,
        help="clips per class (about 30 in 100 go to the test list, by group)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="the draw")
    parser.add_argument(
        "--classes",
        type=list[str],
        default=list(DEFAULT_CLASSES),
        help=f"class names, in class-id order; from: {', '.join(CLASSES)}",
    )
    parser.add_argument(
        "--num_workers",
        "--num-workers",
        type=int,
        default=2,
        help="processes rendering and encoding videos",
    )
    args = parser.parse_args(argv)

    try:
        config = SynthConfig(
            videos_per_class=args.videos_per_class, seed=args.seed, classes=tuple(args.classes)
        )
    except ValueError as err:
        print(f"video-eleatt make-demo-data: {err}", file=sys.stderr)
        return 1

    last_print = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last_print[0] > 2.0:
            last_print[0] = now
            print(f"\r  {done}/{total} videos", end="\n" if done == total else "", flush=True)

    total = config.videos_per_class * len(config.classes)
    print(
        f"demo dataset at {args.root}: {len(config.classes)} classes x "
        f"{config.videos_per_class} videos (seed {config.seed})"
    )
    try:
        dataset = generate_dataset(args.root, config, args.num_workers, progress)
    except DemoDataError as err:
        print(f"video-eleatt make-demo-data: {err}", file=sys.stderr)
        return 1
    if not dataset.created:
        print(f"already complete, nothing written ({total} videos)")
    else:
        print(f"wrote {total} videos in {dataset.seconds:.0f} s")
    print(
        f"  videos:  {dataset.root}/UCF-101/<Class>/v_<Class>_gXX_cYY.mp4\n"
        f"  lists:   {dataset.root}/ucfTrainTestlist/ (classInd.txt, trainlist01.txt "
        f"{dataset.num_train} videos, testlist01.txt {dataset.num_test} videos)\n"
        f"  classes: {', '.join(dataset.class_names)}\n"
        f"  read it as: dataset: {{name: ucf101, root: {dataset.root}, split: 1}}"
    )
    return 0
