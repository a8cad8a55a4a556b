"""A stack of recurrent layers: m EleAtt layers followed by n plain torch layers.

The paper's "m-EleAtt-GRU + n-GRU": the first m layers carry the element-wise attention gate,
the remaining n are ordinary layers of the same type and width. The plain part is a single
torch ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` with ``num_layers=n`` (cuDNN on a GPU), so with
m = 0 the stack *is* the torch stack. Dropout is applied between layers, never after the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from video_eleatt.models.eleatt import EleAttGRU, EleAttLSTM, EleAttRNN, State
from video_eleatt.models.sequence_checks import (
    GateActivation,
    check_gate_activation,
    check_sequence_input,
    resolve_lengths,
)

CellType = Literal["gru", "lstm", "rnn"]

# cell name -> (EleAtt layer, plain torch layer)
CELLS: dict[str, tuple[type[nn.Module], type[nn.RNNBase]]] = {
    "gru": (EleAttGRU, nn.GRU),
    "lstm": (EleAttLSTM, nn.LSTM),
    "rnn": (EleAttRNN, nn.RNN),
}


def check_cell(cell: str) -> str:
    """Return ``cell`` if it names a recurrent type in ``CELLS``, else raise ValueError."""
    if cell not in CELLS:
        raise ValueError(
            f"unknown cell type {cell!r}; choose one of {', '.join(CELLS)} "
            "(rnn is the paper's simple tanh RNN, sRNN)"
        )
    return cell


class RecurrentStack(nn.Module):
    """m EleAtt layers then n plain layers, all of one cell type and width.

    Args:
        cell: "gru", "lstm" or "rnn".
        input_size: D of the input features.
        hidden_size: N of every layer.
        num_eleatt_layers: m, the layers with an attention gate (they come first).
        num_plain_layers: n, plain torch layers after them.
        gate_activation: "sigmoid" (the paper's) or "softmax".
        dropout: probability of dropout on each layer's output except the last's.

    Attributes:
        eleatt_layers: the m EleAtt layers (``nn.ModuleList``).
        plain: the torch recurrent module holding the n plain layers, or None when n = 0.
        output_size: N, the feature size of the output.

    >>> import torch
    >>> stack = RecurrentStack("gru", input_size=16, hidden_size=8, num_eleatt_layers=1,
    ...                        num_plain_layers=2, dropout=0.0)
    >>> output, states, attentions = stack(torch.randn(3, 7, 16), lengths=torch.tensor([7, 4, 1]))
    >>> output.shape, len(states), len(attentions)
    (torch.Size([3, 7, 8]), 3, 0)
    """

    def __init__(
        self,
        cell: CellType,
        input_size: int,
        hidden_size: int,
        num_eleatt_layers: int = 1,
        num_plain_layers: int = 0,
        gate_activation: GateActivation = "sigmoid",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        eleatt_class, plain_class = CELLS[check_cell(cell)]
        check_gate_activation(gate_activation)
        if (
            num_eleatt_layers < 0
            or num_plain_layers < 0
            or num_eleatt_layers + num_plain_layers < 1
        ):
            raise ValueError(
                "a stack needs at least one layer and no negative counts; got "
                f"num_eleatt_layers={num_eleatt_layers}, num_plain_layers={num_plain_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1); got {dropout}")
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.num_eleatt_layers = num_eleatt_layers
        self.num_plain_layers = num_plain_layers
        self.eleatt_layers = nn.ModuleList(
            eleatt_class(input_size if i == 0 else hidden_size, hidden_size, gate_activation)
            for i in range(num_eleatt_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.plain: nn.RNNBase | None = None
        if num_plain_layers > 0:
            self.plain = plain_class(
                input_size if num_eleatt_layers == 0 else hidden_size,
                hidden_size,
                num_layers=num_plain_layers,
                batch_first=True,
                dropout=dropout if num_plain_layers > 1 else 0.0,
            )

    @property
    def num_layers(self) -> int:
        return self.num_eleatt_layers + self.num_plain_layers

    def layer_names(self) -> list[str]:
        """One name per layer in order, e.g. ["eleatt_gru1", "eleatt_gru2", "gru3"]."""
        return [
            f"eleatt_{self.cell}{i + 1}" if i < self.num_eleatt_layers else f"{self.cell}{i + 1}"
            for i in range(self.num_layers)
        ]

    def parameter_counts(self) -> dict[str, int]:
        """Number of parameters per layer, keyed by :meth:`layer_names`."""
        names = self.layer_names()
        counts = {
            name: sum(p.numel() for p in layer.parameters())
            for name, layer in zip(names, self.eleatt_layers)
        }
        if self.plain is not None:
            for k in range(self.num_plain_layers):
                counts[names[self.num_eleatt_layers + k]] = sum(
                    p.numel()
                    for name, p in self.plain.named_parameters()
                    if name.endswith(f"_l{k}")
                )
        return counts

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | Sequence[int] | None = None,
        mask: Tensor | None = None,
        return_attention: bool = False,
        states: Sequence[State] | None = None,
    ) -> tuple[Tensor, list[State], list[Tensor]]:
        """Run every layer, from zero initial states or from ``states``.

        Passing the final states of one call as ``states`` of the next continues the
        sequences: running a sequence in pieces gives the outputs of running it whole (how a
        stream is stepped, one frame at a time, without re-running its prefix).

        Args:
            x: (B, T, D) input, batch first.
            lengths: (B,) valid lengths in [1, T]; None means all T steps.
            mask: (B, T) bool prefix mask, an alternative to ``lengths``.
            return_attention: collect each EleAtt layer's gate values.
            states: one initial state per layer, in order, as this method returns them
                ((B, N), or (h, c) for the LSTM); None means zeros.

        Returns:
            The last layer's output (B, T, N), zero at padded steps; the final state of every
            layer in order (each sequence's last valid step; (h, c) tuples for the LSTM); and
            the attention (B, T, D_l) of each EleAtt layer (an empty list unless requested).
        """
        first = next(self.parameters())
        check_sequence_input(x, self.input_size, first, type(self).__name__)
        lengths = resolve_lengths(x, lengths, mask, type(self).__name__)
        initial = self._check_states(states)
        finals: list[State] = []
        attentions: list[Tensor] = []
        hidden = x
        for i, layer in enumerate(self.eleatt_layers):
            if i > 0:
                hidden = self.dropout(hidden)
            hidden, state, attention = layer(
                hidden, initial[i], lengths=lengths, return_attention=return_attention
            )
            finals.append(state)
            if return_attention:
                attentions.append(attention)
        if self.plain is not None:
            if self.eleatt_layers:
                hidden = self.dropout(hidden)
            hidden, plain_states = self._run_plain(
                hidden, lengths, initial[self.num_eleatt_layers :]
            )
            finals.extend(plain_states)
        return hidden, finals, attentions

    def _check_states(self, states: Sequence[State] | None) -> list[State | None]:
        """One initial state (or None for zeros) per layer."""
        if states is None:
            return [None] * self.num_layers
        if len(states) != self.num_layers:
            raise ValueError(
                f"{type(self).__name__}: states holds {len(states)} layer state(s) but the stack "
                f"has {self.num_layers} layers ({', '.join(self.layer_names())}); pass the "
                "states a previous call returned"
            )
        return list(states)

    def _run_plain(
        self, x: Tensor, lengths: Tensor | None, states: Sequence[State | None]
    ) -> tuple[Tensor, list[State]]:
        """The torch layers, packed when lengths vary so that padding never enters a state."""
        initial = None
        if states and states[0] is not None:
            # torch takes (num_layers, B, N); an LSTM a tuple (h, c) of those.
            if self.cell == "lstm":
                initial = tuple(torch.stack([s[k] for s in states]).contiguous() for k in (0, 1))
            else:
                initial = torch.stack(list(states)).contiguous()
        if lengths is None:
            output, final = self.plain(x, initial)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_output, final = self.plain(packed, initial)
            output, _ = pad_packed_sequence(
                packed_output, batch_first=True, total_length=x.shape[1]
            )  # (B, T, N), zeros after each length
        # torch's final states are (num_layers, B, N); split them per layer.
        if isinstance(final, tuple):
            return output, [(h, c) for h, c in zip(final[0].unbind(0), final[1].unbind(0))]
        return output, list(final.unbind(0))
