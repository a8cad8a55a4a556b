"""The ``video-eleatt`` command: one entry point, one subcommand per step of the pipeline.

Each subcommand is a small function below that imports its module and runs it
(``run(args: list[str]) -> int | None``, ``args`` without the command's name). Those imports
sit inside the functions on purpose: only the command that runs is loaded, so
``video-eleatt --help`` is fast and a broken optional step cannot break the others. A
``--config`` value may be a shipped config's name (``video_eleatt.config_files``): it becomes
a path here, before the command's parser sees it.

``predict`` has two forms: ``predict --checkpoint <ckpt> <video> ...`` classifies raw videos
(:mod:`video_eleatt.inference.cli`); without ``--checkpoint`` it is Lightning's predict over a
feature cache (:mod:`video_eleatt.training.cli`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from video_eleatt.config_files import ConfigNameError, resolve_config_args
from video_eleatt.envcheck import version_report

Command = Callable[[list[str]], "int | None"]

# Every function imports its module when it runs (start-up time, see the module docstring).


def _demo(args: list[str]) -> int | None:
    from video_eleatt.demo.cli import demo_main

    return demo_main(args)


def _configs(args: list[str]) -> int | None:
    from video_eleatt.config_cli import main

    return main(args)


def _make_demo_data(args: list[str]) -> int | None:
    from video_eleatt.demo.cli import generate_main

    return generate_main(args)


def _toy(args: list[str]) -> int | None:
    from video_eleatt.models.toy import main

    return main(args)


def _datasets(args: list[str]) -> int | None:
    from video_eleatt.datasets.cli import datasets_main

    return datasets_main(args)


def _describe(args: list[str]) -> int | None:
    from video_eleatt.datasets.cli import describe_main

    return describe_main(args)


def _check(args: list[str]) -> int | None:
    from video_eleatt.features.cli import check_main

    return check_main(args)


def _extract(args: list[str]) -> int | None:
    from video_eleatt.features.cli import extract_main

    return extract_main(args)


def _verify(args: list[str]) -> int | None:
    from video_eleatt.features.cli import verify_main

    return verify_main(args)


def _pack(args: list[str]) -> int | None:
    from video_eleatt.features.cli import pack_main

    return pack_main(args)


def _import_features(args: list[str]) -> int | None:
    from video_eleatt.features.cli import import_main

    return import_main(args)


def _training(verb: str) -> Command:
    """``fit``/``validate``/``test``: LightningCLI parses the verb itself, so it goes first."""

    def run(args: list[str]) -> int | None:
        from video_eleatt.training.cli import main

        return main([verb, *args])

    return run


def _predict(args: list[str]) -> int | None:
    if _raw_video_form(args):
        from video_eleatt.inference.cli import main as predict_videos

        return predict_videos(args)
    if any(arg in ("-h", "--help") for arg in args):
        # two forms; Lightning's help only knows the feature-cache one
        from video_eleatt.inference.cli import build_parser

        print(build_parser().format_help())
        print("video-eleatt predict without --checkpoint: Lightning's predict over a cache\n")
    from video_eleatt.training.cli import main

    return main(["predict", *args])


def _compare(args: list[str]) -> int | None:
    from video_eleatt.compare.cli import main

    return main(args)


def _attention(args: list[str]) -> int | None:
    from video_eleatt.compare.cli import attention_main

    return attention_main(args)


# name -> (function, one-line help)
COMMANDS: dict[str, tuple[Command, str]] = {
    "demo": (_demo, "the main job: demo data, extraction, comparison"),
    "configs": (_configs, "list the shipped configs; copy them to edit"),
    "make-demo-data": (_make_demo_data, "write the demo video dataset"),
    "toy": (_toy, "baseline vs EleAtt GRU on a generated sequence task"),
    "datasets": (_datasets, "list the supported dataset formats"),
    "describe": (_describe, "counts per split and class"),
    "check": (_check, "preflight for extract: find the videos it cannot decode (same options)"),
    "extract": (_extract, "extract per-frame CNN features"),
    "verify": (_verify, "check a cache against its manifest"),
    "pack": (_pack, "build the read-optimised form of a cache"),
    "import-features": (_import_features, "turn a folder of per-video .npy features into a cache"),
    "fit": (_training("fit"), "train (LightningCLI)"),
    "validate": (_training("validate"), "evaluate on the validation split"),
    "test": (_training("test"), "evaluate on the test split"),
    "predict": (_predict, "class scores for cached features, or for raw videos with --checkpoint"),
    "compare": (_compare, "baseline vs EleAtt over seeds, with a report"),
    "attention": (_attention, "attention maps of a trained model"),
}

# Their --config also has the short form -c (LightningCLI's).
TRAINING_VERBS = ("fit", "validate", "test", "predict")
# Commands whose backbone shares the CPU with decode worker processes. OpenMP threads that
# spin-wait between layers take CPU time the decoders need; libgomp reads this setting when
# torch is loaded, so it is set before the command's module is imported (a value the user
# set wins).
PASSIVE_OPENMP_COMMANDS = ("extract",)


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: video-eleatt <command> [options]   (video-eleatt <command> --help)", ""]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "video-eleatt --version: the versions a bug report needs"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("--version", "-V"):
        print(version_report())
        return 0
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"video-eleatt: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    if name in PASSIVE_OPENMP_COMMANDS:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    flags = ("--config", "-c") if name in TRAINING_VERBS else ("--config",)
    try:
        args = resolve_config_args(args, flags)
    except ConfigNameError as err:
        print(f"video-eleatt {name}: error: {err}", file=sys.stderr)
        return 2
    run, _ = COMMANDS[name]
    return int(run(args) or 0)


def _raw_video_form(args: list[str]) -> bool:
    return any(arg == "--checkpoint" or arg.startswith("--checkpoint=") for arg in args)
