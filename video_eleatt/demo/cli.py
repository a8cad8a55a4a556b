"""``video-eleatt demo`` and ``video-eleatt make-demo-data``.

>>> demo_main(["--quick"])  # doctest: +SKIP
>>> generate_main(["--root", "data/demo/motion"])  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from dataclasses import fields

from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser

from video_eleatt.demo.options import DemoOptions
from video_eleatt.demo.synth import DEFAULT_ROOT, DemoDataError, generate_dataset
from video_eleatt.demo.synth_config import CLASSES, DEFAULT_CLASSES, SynthConfig
from video_eleatt.progress import progress_bar


def build_demo_parser() -> ArgumentParser:
    """The parser of ``video-eleatt demo`` (every :class:`DemoOptions` field)."""
    parser = ArgumentParser(
        prog="video-eleatt demo",
        description=(
            "The whole system, offline, in about 5 minutes on 2 idle CPU cores: generate the demo "
            "videos (if missing), extract per-frame features with a randomly initialised "
            "resnet18, train Baseline-GRU and EleAtt-GRU over several seeds, and write the "
            "comparison report. Rerunning reuses the dataset, the features and finished runs."
        ),
        exit_on_error=False,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with these options")
    parser.add_class_arguments(DemoOptions, None)
    return parser


def parse_options(argv: list[str]) -> DemoOptions:
    """:class:`DemoOptions` from the command line (``--quick`` alone means ``--quick true``).

    Raises:
        jsonargparse.ArgumentError: unknown or mistyped options.
    """
    expanded: list[str] = []
    for position, arg in enumerate(argv):
        expanded.append(arg)
        following = argv[position + 1] if position + 1 < len(argv) else None
        if arg in ("--quick", "--pretrained") and (following is None or following.startswith("-")):
            expanded.append("true")
    parser = build_demo_parser()
    values = parser.instantiate(parser.parse_args(expanded))
    return DemoOptions(**{f.name: values[f.name] for f in fields(DemoOptions)})


def demo_main(argv: list[str]) -> int:
    """``video-eleatt demo [--quick] [--device cuda] [--pretrained] [--seeds [0,1,2]] ...``."""
    try:
        options = parse_options(list(argv))
    except ArgumentError as err:
        print(f"video-eleatt demo: error: {err}", file=sys.stderr)
        return 2
    # Imported here, not at the top: the whole pipeline (torch, Lightning, timm) loads in
    # seconds, and `video-eleatt demo --help` or a mistyped option should not wait for it.
    from video_eleatt.demo.main import run_demo

    return run_demo(options)


def generate_main(argv: list[str] | None = None) -> int:
    """Writes the demo dataset (UCF101 layout) unless a complete one is already there.

    ``video-eleatt make-demo-data [--root DIR] [--videos-per-class N] [--seed S]``

    Returns:
        0 on success, 1 when the dataset cannot be written (the reason is printed).
    """
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

    bars: list = []  # made on the first video written (none when the dataset is complete)

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(progress_bar(total, "make-demo-data", unit="video"))
        bars[0].update(1)
        if done == total:
            bars[0].close()

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
