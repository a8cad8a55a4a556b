"""``video-eleatt compare`` and ``video-eleatt attention``.

>>> main(["--config", "configs/compare/jhmdb_gru.yaml"])  # doctest: +SKIP
>>> main(["--config", "configs/compare/jhmdb_gru.yaml", "--report_only", "true"])  # doctest: +SKIP
>>> attention_main(["--checkpoint", "runs/compare/jhmdb/runs/eleatt_gru/split-1/seed-0",
...                 "--videos", "[brush_hair/v1.avi]"])  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser


def _build_parser(
    prog: str, description: str, config_help: str, config_cls: type
) -> ArgumentParser:
    """``--config`` (a YAML file) plus every field of the dataclass ``config_cls``."""
    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help=config_help)
    parser.add_class_arguments(config_cls, None)
    return parser


def _parse(parser: ArgumentParser, argv: list[str], config_cls: type) -> tuple[Any, Any] | None:
    """``(config_cls instance, namespace)`` from ``argv``, or None (error printed) when the
    arguments are invalid."""
    from jsonargparse import ArgumentError

    try:
        namespace = parser.parse_args(argv)
    except ArgumentError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return None
    values = parser.instantiate(namespace)
    return config_cls(**{f.name: values[f.name] for f in fields(config_cls)}), namespace


def build_compare_parser() -> ArgumentParser:
    """The parser of ``video-eleatt compare`` (every :class:`CompareConfig` field)."""
    from video_eleatt.compare.runner import CompareConfig

    return _build_parser(
        "video-eleatt compare",
        "Train baseline and EleAtt variants over seeds (and splits) with the same training "
        "code as `fit`, then write a report with paired statistics and figures. Rerunning "
        "skips finished runs and resumes interrupted ones.",
        "comparison YAML",
        CompareConfig,
    )


def main(argv: list[str]) -> int:
    """``video-eleatt compare --config configs/compare/<name>.yaml [--option value ...]``.

    Returns:
        0 when every planned run finished, 1 when some are missing or failed (the report is
        written anyway and lists them), 2 for a config error.
    """
    from video_eleatt.compare.runner import (
        CompareConfig,
        ComparisonError,
        format_summary,
        run_comparison,
    )

    parser = build_compare_parser()
    parsed = _parse(parser, argv, CompareConfig)
    if parsed is None:
        return 2
    config, namespace = parsed
    config_text = parser.dump(namespace, skip_none=False)
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

    return _build_parser(
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
    from video_eleatt.compare.attention import AttentionError
    from video_eleatt.compare.attention_run import AttentionConfig, run_attention

    parsed = _parse(build_attention_parser(), argv, AttentionConfig)
    if parsed is None:
        return 2
    config = parsed[0]
    try:
        outcome = run_attention(config)
    except AttentionError as err:
        print(f"video-eleatt attention: error: {err}", file=sys.stderr)
        return 2
    print(outcome.summary())
    return 1 if outcome.failures else 0
