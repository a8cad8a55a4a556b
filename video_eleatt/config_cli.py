"""``video-eleatt configs list | copy``: the shipped configs, and copies of them to edit.

>>> main(["list", "jhmdb"])  # doctest: +SKIP
>>> main(["copy", "jhmdb", "my_configs"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import sys

from video_eleatt.config_files import (
    EVERYTHING,
    ConfigNameError,
    CopyRefused,
    copy_configs,
    list_configs,
    shipped_root,
)
from video_eleatt.fileio import write_failure_reason

EXIT_BAD_INPUT = 2
EXIT_WRITE_ERROR = 3
DEFAULT_DESTINATION = "configs"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="video-eleatt configs",
        description=(
            "The configs shipped with the package. Every command that takes --config also "
            "takes a shipped config's name (jhmdb/eleatt_gru_split1, or eleatt_gru_split1 "
            "when the file name is unique); a file on disk always wins over a name."
        ),
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="list|copy")
    listing = actions.add_parser("list", help="the shipped configs, with what each is")
    listing.add_argument("folder", nargs="?", help="only this folder (e.g. jhmdb)")
    copying = actions.add_parser(
        "copy",
        help="copy a config, a folder or all of them into a folder, to edit",
        description=(
            "Copy shipped configs, keeping their folders: `configs copy jhmdb my_configs` "
            "writes my_configs/jhmdb/*.yaml. Refuses to overwrite a file with other content "
            "unless --force."
        ),
    )
    copying.add_argument("name", help=f"a config, a folder (jhmdb), or {EVERYTHING!r}")
    copying.add_argument(
        "destination",
        nargs="?",
        default=DEFAULT_DESTINATION,
        help=(
            f"folder to copy into (default: {DEFAULT_DESTINATION}/, where the README's "
            "`--config configs/...` paths then read the copies)"
        ),
    )
    copying.add_argument("--force", action="store_true", help="overwrite existing files")
    return parser


def format_listing(folder: str | None) -> str:
    """The ``configs list`` text: a header, then one line per config grouped by folder."""
    configs = list_configs(folder)
    width = max(len(config.name) for config in configs) + 2
    summary_width = max(100 - width, 30)
    example = next((c.name for c in configs if c.name.startswith("jhmdb/")), configs[0].name)
    lines = [
        f"{len(configs)} shipped configs in {shipped_root()}",
        f"Name one wherever a config path goes (video-eleatt fit --config {example}); copy",
        "one to edit it (video-eleatt configs copy jhmdb my_configs).",
    ]
    current = None
    for config in configs:
        group = config.name.rsplit("/", 1)[0] if "/" in config.name else ""
        if group != current:
            lines.append("")
            current = group
        summary = config.summary
        if len(summary) > summary_width:
            summary = summary[: summary_width - 3].rstrip() + "..."
        lines.append(f"{config.name:<{width}}{summary}".rstrip())
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``video-eleatt configs list [FOLDER]`` | ``configs copy NAME [DEST] [--force]``.

    Returns:
        0 done; 2 an unknown name or files in the way; 3 the destination cannot be written.
    """
    args = build_parser().parse_args(argv)
    prog = f"video-eleatt configs {args.action}"
    try:
        if args.action == "list":
            print(format_listing(args.folder))
            return 0
        outcome = copy_configs(args.name, args.destination, force=args.force)
    except (ConfigNameError, CopyRefused) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:
        where = err.filename or args.destination
        print(
            f"{prog}: error: cannot write to {where}: {write_failure_reason(err)}; copy into a "
            f"writable folder: video-eleatt configs copy {args.name} <folder>",
            file=sys.stderr,
        )
        return EXIT_WRITE_ERROR
    for path in outcome.written:
        print(f"wrote      {path}")
    for path in outcome.unchanged:
        print(f"unchanged  {path} (already the shipped content)")
    if outcome.read_from_package:
        print("Named in the copies and read from the package until a file is at these paths:")
        for path in outcome.read_from_package:
            print(f"  {path}")
    example = (outcome.written or outcome.unchanged)[0]
    print(f"Use a copy by its path: video-eleatt <command> --config {example}")
    return 0
