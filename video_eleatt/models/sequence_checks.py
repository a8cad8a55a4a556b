"""Checks shared by every recurrent layer and the fused path: gate activation, input, lengths.

Below both :mod:`video_eleatt.models.eleatt` (the layers) and
:mod:`video_eleatt.models.fused_gru` (the fast path the GRU layer calls), so that neither
imports the other to validate its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

GATE_ACTIVATIONS = ("sigmoid", "softmax")
GateActivation = Literal["sigmoid", "softmax"]


def check_gate_activation(gate_activation: str) -> str:
    """Return ``gate_activation`` if it is one of ``GATE_ACTIVATIONS``, else raise ValueError."""
    if gate_activation not in GATE_ACTIVATIONS:
        raise ValueError(
            f"unknown gate_activation {gate_activation!r}; choose one of "
            f"{', '.join(GATE_ACTIVATIONS)} (sigmoid is the paper's choice)"
        )
    return gate_activation


def check_sequence_input(x: Tensor, input_size: int, weight: Tensor, owner: str) -> None:
    """Check a batch-first input against a layer: rank, feature size, emptiness, dtype, device.

    Args:
        x: the input, expected (B, T, D) with D == ``input_size``.
        input_size: D the layer was built for.
        weight: any parameter of the layer (gives the expected dtype and device).
        owner: the layer's name, for messages.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner} expects a tensor of shape (B, T, D); got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(
            f"{owner} expects batch-first input of shape (B, T, D={input_size}); got shape "
            f"{tuple(x.shape)}. Add a batch dimension with x.unsqueeze(0) for one sequence."
        )
    if x.shape[2] != input_size:
        raise ValueError(
            f"{owner} was built for input size D={input_size} but got input of size "
            f"{x.shape[2]} (shape {tuple(x.shape)}); build the layer with "
            f"input_size={x.shape[2]} or feed {input_size}-dimensional features."
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{owner} got an empty batch: shape {tuple(x.shape)} (B={x.shape[0]}, "
            f"T={x.shape[1]}); a batch needs at least one sequence of at least one step."
        )
    if x.dtype != weight.dtype:
        raise TypeError(
            f"{owner} input has dtype {x.dtype} but its parameters are {weight.dtype}; convert "
            f"one of them (x.to({weight.dtype}) or layer.to({x.dtype}))."
        )
    if x.device != weight.device:
        raise ValueError(
            f"{owner} input is on {x.device} but its parameters are on {weight.device}; move "
            f"one of them (x.to('{weight.device}') or layer.to('{x.device}'))."
        )


def resolve_lengths(
    x: Tensor,
    lengths: Tensor | Sequence[int] | None = None,
    mask: Tensor | None = None,
    owner: str = "layer",
) -> Tensor | None:
    """Validate ``lengths`` or a prefix ``mask`` for input ``x`` (B, T, D).

    Args:
        x: the batch-first input.
        lengths: (B,) integers in [1, T], or None.
        mask: (B, T) bool, True on each sequence's valid prefix, or None.
        owner: the caller's name, for messages.

    Returns:
        (B,) int64 lengths on ``x.device``, or None when every sequence has all T steps.
    """
    batch, steps = x.shape[0], x.shape[1]
    if lengths is not None and mask is not None:
        raise ValueError(f"{owner}: pass lengths or mask, not both")
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            kind = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(f"{owner}: mask must be a bool tensor (B, T); got {kind}")
        if tuple(mask.shape) != (batch, steps):
            raise ValueError(
                f"{owner}: mask must have shape (B, T) = {(batch, steps)} like the input; got "
                f"{tuple(mask.shape)}"
            )
        lengths = mask.sum(dim=1)
        prefix = torch.arange(steps, device=mask.device) < lengths.unsqueeze(1)
        if not torch.equal(prefix, mask):
            bad = (prefix != mask).any(dim=1).nonzero().flatten().tolist()
            raise ValueError(
                f"{owner}: mask must be a prefix mask (True for the first lengths[b] steps, then "
                f"False); rows {bad} are not. Reorder padding to the end of each sequence."
            )
    if lengths is None:
        return None
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype in (torch.bool,) or lengths.is_floating_point() or lengths.is_complex():
        raise TypeError(f"{owner}: lengths must be integers (int64 tensor); got {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(
            f"{owner}: lengths must have shape (B,) = ({batch},) to match the input's batch; "
            f"got shape {tuple(lengths.shape)}"
        )
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1 or high > steps:
        raise ValueError(
            f"{owner}: lengths must lie in [1, T={steps}]; got values from {low} to {high} "
            f"(lengths={lengths.tolist()}). Drop empty sequences and pad to the longest one."
        )
    if low == steps:
        return None
    return lengths.to(device=x.device, dtype=torch.int64)
