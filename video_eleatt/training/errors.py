"""The error raised for bad training input (config, cache, split, checkpoint)."""

from __future__ import annotations


class TrainingError(ValueError):
    """Training cannot run with the given input.

    The message names the bad value, what was expected and the fix; the command line prints
    it without a traceback.
    """
