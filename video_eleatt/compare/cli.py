"""``video-eleatt compare`` and ``video-eleatt attention``.

>>> main(["--config", "configs/compare/jhmdb_gru.yaml"])  # doctest: +SKIP
>>> main(["--config", "configs/compare/jhmdb_gru.yaml", "--report_only", "true"])  # doctest: +SKIP
>>> attention_main(["--checkpoint", "runs/compare/jhmdb/runs/eleatt_gru/split-1/seed-0",
...                 "--videos", "[brush_hair/v1.avi]"])  # doctest: +SKIP

Project modules are imported inside the commands: ``video-eleatt --help`` stays fast.
"""

from __future__ import annotations

import sys

from jsonargparse import ArgumentError, ArgumentParser


def main(argv: list[str]) -> int:
    """``video-eleatt compare --config configs/compare/<name>.yaml [--option value ...]``.

    Returns:
        0 when every planned run finished, 1 when some are missing or failed (the report is
        written anyway and lists them), 2 for a config error.
    """
    from video_eleatt.compare.plan import ComparisonError, parse_compare_config
    from video_eleatt.compare.runner import format_summary, run_comparison

    try:
        config, config_text = parse_compare_config(argv)
    except ArgumentError as err:
        print(f"video-eleatt compare: error: {err}", file=sys.stderr)
        return 2
    try:
        outcome = run_comparison(config, config_text)
    except ComparisonError as err:
        print(f"video-eleatt compare: error: {err}", file=sys.stderr)
        return 2
    print(format_summary(outcome))
    complete = not outcome.failed and not outcome.report.missing_runs
    return 0 if complete and outcome.report.comparable else 1


def build_attention_parser() -> ArgumentParser:
    """The parser of ``video-eleatt attention`` (every :class:`AttentionConfig` field)."""
    from video_eleatt.compare.attention_run import AttentionConfig
    from video_eleatt.compare.options import dataclass_parser

    return dataclass_parser(
        "video-eleatt attention",
        "First-layer attention of a trained EleAtt model: per feature dimension (mean and "
        "spread), over time for chosen videos, and (our extension) as a heatmap over the "
        "frames.",
        "attention YAML",
        AttentionConfig,
    )


def attention_main(argv: list[str]) -> int:
    """``video-eleatt attention --checkpoint <ckpt or run dir> [--videos [a.avi,b.avi]]``.

    Returns:
        0 when everything asked was written, 1 when some overlays failed (listed), 2 for bad
        input.
    """
    from video_eleatt.compare.attention_run import AttentionConfig, run_attention
    from video_eleatt.compare.options import parse_dataclass
    from video_eleatt.inference.errors import AttentionError

    parser = build_attention_parser()
    try:
        config, _ = parse_dataclass(parser, argv, AttentionConfig)
    except ArgumentError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    try:
        outcome = run_attention(config)
    except AttentionError as err:
        print(f"video-eleatt attention: error: {err}", file=sys.stderr)
        return 2
    print(outcome.summary())
    return 1 if outcome.failures else 0
