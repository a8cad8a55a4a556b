"""The ``video-eleatt`` command: one entry point, one subcommand per step of the pipeline.

Subcommands are looked up in a literal table and imported only when run, so
``video-eleatt --help`` is fast and a broken optional step cannot break the others.
Each target is a function ``main(argv: list[str]) -> int | None``. A ``--config`` value may
be a shipped config's name (``video_eleatt.config_files``): it becomes a path here, before the
command's parser sees it.
"""

from __future__ import annotations

import importlib
import os
import sys

from video_eleatt.config_files import ConfigNameError, resolve_config_args
from video_eleatt.envcheck import version_report

# name -> ("module:function", one-line help). The training verbs receive their own name
# as argv[0] because LightningCLI parses the subcommand itself.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("video_eleatt.demo.main:main", "the main job: demo data, extraction, comparison"),
    "configs": ("video_eleatt.config_cli:main", "list the shipped configs; copy them to edit"),
    "make-demo-data": ("video_eleatt.demo.cli:generate_main", "write the demo video dataset"),
    "toy": ("video_eleatt.models.toy:main", "baseline vs EleAtt GRU on a generated sequence task"),
    "datasets": ("video_eleatt.datasets.cli:datasets_main", "list the supported dataset formats"),
    "describe": ("video_eleatt.datasets.cli:describe_main", "counts per split and class"),
    "check": (
        "video_eleatt.features.cli:check_main",
        "preflight for extract: find the videos it cannot decode (same options)",
    ),
    "extract": ("video_eleatt.features.cli:extract_main", "extract per-frame CNN features"),
    "verify": ("video_eleatt.features.cli:verify_main", "check a cache against its manifest"),
    "pack": ("video_eleatt.features.cli:pack_main", "build the read-optimised form of a cache"),
    "import-features": (
        "video_eleatt.features.cli:import_main",
        "turn a folder of per-video .npy features into a cache",
    ),
    "fit": ("video_eleatt.training.cli:main", "train (LightningCLI)"),
    "validate": ("video_eleatt.training.cli:main", "evaluate on the validation split"),
    "test": ("video_eleatt.training.cli:main", "evaluate on the test split"),
    "predict": (
        "video_eleatt.training.cli:main",
        "class scores for cached features, or for raw videos with --checkpoint",
    ),
    "compare": ("video_eleatt.compare.cli:main", "baseline vs EleAtt over seeds, with a report"),
    "attention": ("video_eleatt.compare.cli:attention_main", "attention maps of a trained model"),
}

TRAINING_VERBS = ("fit", "validate", "test", "predict")
# ``predict --checkpoint <ckpt> <video> ...`` classifies raw videos; ``predict`` without
# --checkpoint is Lightning's predict over a feature cache (the "predict" entry above).
RAW_VIDEO_PREDICT = "video_eleatt.predict_video"
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
    name = argv[0]
    if name not in COMMANDS:
        print(
            f"video-eleatt: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    if name in PASSIVE_OPENMP_COMMANDS:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    target, _ = COMMANDS[name]
    module_name, function_name = target.split(":")
    raw_videos = name == "predict" and _raw_video_form(argv[1:])
    if raw_videos:
        module_name, function_name = RAW_VIDEO_PREDICT, "main"
    elif name == "predict" and any(arg in ("-h", "--help") for arg in argv[1:]):
        # predict has two forms; Lightning's help only knows the feature-cache one
        print(importlib.import_module(RAW_VIDEO_PREDICT).build_parser().format_help())
        print("video-eleatt predict without --checkpoint: Lightning's predict over a cache\n")
    module = importlib.import_module(module_name)
    function = getattr(module, function_name)
    args = argv if name in TRAINING_VERBS and not raw_videos else argv[1:]
    flags = ("--config", "-c") if name in TRAINING_VERBS else ("--config",)
    try:
        args = resolve_config_args(args, flags)
    except ConfigNameError as err:
        print(f"video-eleatt {name}: error: {err}", file=sys.stderr)
        return 2
    result = function(args)
    return int(result or 0)


def _raw_video_form(args: list[str]) -> bool:
    return any(arg == "--checkpoint" or arg.startswith("--checkpoint=") for arg in args)
