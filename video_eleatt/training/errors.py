"""The error raised for bad training input (config, cache, split, checkpoint), and the
wording shared by its messages."""

from __future__ import annotations


class TrainingError(ValueError):
    """Training cannot run with the given input.

    The message names the bad value, what was expected and the fix; the command line prints
    it without a traceback.
    """


def first_differences(
    left: list[str], right: list[str], left_name: str, right_name: str, limit: int = 3
) -> list[str]:
    """``"i: <left_name> 'a' vs <right_name> 'b'"`` for the first ``limit`` positions where two
    class-name lists differ (positions past the shorter list are not compared)."""
    return [
        f"{i}: {left_name} {a!r} vs {right_name} {b!r}"
        for i, (a, b) in enumerate(zip(left, right))
        if a != b
    ][:limit]
