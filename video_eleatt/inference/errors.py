"""The errors of inference, below every layer that reports them (compare, the commands)."""

from __future__ import annotations


class PredictError(ValueError):
    """The checkpoint or the options cannot be used (the message says why and the fix)."""


class AttentionError(ValueError):
    """The model, checkpoint or video cannot be analysed (the message says why and the fix)."""
