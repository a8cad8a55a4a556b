"""Recurrent layers with an element-wise attention gate (EleAttG): GRU, LSTM and simple RNN.

The gate (Zhang et al., ECCV 2018, "Adding Attentiveness to the Neurons in Recurrent Neural
Networks") rescales each of the D input elements before the recurrent layer sees them::

    a_t  = act(W_xa x_t + W_ha h_{t-1} + b_a)      act = sigmoid (default) or softmax over D
    x~_t = a_t * x_t

and the layer then runs its ordinary update on x~_t. One gate per layer, shared by its N
neurons.

Conventions: the recurrent arithmetic is exactly PyTorch's ``nn.GRU`` / ``nn.LSTM`` /
``nn.RNN`` (tanh), with their parameter layout and gate order (GRU r, z, n; LSTM i, f, g, o)
and their two bias vectors ``bias_ih`` and ``bias_hh``. For the GRU this differs from the
paper, which used Keras: Keras applies the reset gate to h_{t-1} *before* the hidden product,
``n = tanh(W_in x + W_hn (r * h) + b_n)``, with a single bias, while PyTorch applies it
*after*, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``. We follow PyTorch in both arms of
every comparison, so an EleAtt layer whose gate is held at 1 computes exactly the torch layer
with the same weights (tested), and the plain layers of a stack can be torch's own (cuDNN).

Parameters of one layer with input size D, hidden size N and G gate blocks (GRU 3, LSTM 4,
RNN 1): the gate has D(D + N + 1), the recurrent part G·N(D + N + 2).

Initialisation (the paper does not state one): the recurrent weights and biases follow
``nn.GRU`` — uniform(-1/sqrt(N), 1/sqrt(N)). The gate matrices are initialised like an
``nn.Linear`` from [x_t, h_{t-1}] to D — uniform(-1/sqrt(D + N), 1/sqrt(D + N)) — and the gate
bias to ``GATE_BIAS_INIT`` = 1, so a sigmoid gate starts around sigmoid(1) ≈ 0.73: passing most
of the input, while still far from saturation so it can learn in both directions. A softmax
gate ignores the bias's constant (softmax is shift-invariant) and starts near 1/D per element,
which shrinks the input D-fold at first; that is the paper's softmax variant, kept as is.

Variable lengths: pass ``lengths`` (B,) or a prefix ``mask`` (B, T). Sequence b uses steps
0 .. lengths[b]-1; its outputs and attention at later steps are zero and its final state is
the one after its last valid step, so padding a batch further changes nothing valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from video_eleatt.models.fused_gru import eleatt_gru_sequence, fused_gru_supported
from video_eleatt.models.sequence_checks import (
    GateActivation,
    check_gate_activation,
    check_sequence_input,
    resolve_lengths,
)

GATE_BIAS_INIT = 1.0
# GRU and RNN states are (B, N); an LSTM state is a tuple (h, c), each (B, N).
State = Tensor | tuple[Tensor, Tensor]


class _EleAttLayer(nn.Module):
    """Shared parameters, initialisation, validation and the step loop of the EleAtt layers."""

    num_gates: int = 1

    def __init__(
        self, input_size: int, hidden_size: int, gate_activation: GateActivation = "sigmoid"
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"{type(self).__name__} needs input_size and hidden_size >= 1; got "
                f"input_size={input_size}, hidden_size={hidden_size}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.gate_activation = check_gate_activation(gate_activation)
        d, n, g = input_size, hidden_size, self.num_gates
        self.weight_xa = nn.Parameter(torch.empty(d, d))
        self.weight_ha = nn.Parameter(torch.empty(d, n))
        self.bias_a = nn.Parameter(torch.empty(d))
        self.weight_ih = nn.Parameter(torch.empty(g * n, d))
        self.weight_hh = nn.Parameter(torch.empty(g * n, n))
        self.bias_ih = nn.Parameter(torch.empty(g * n))
        self.bias_hh = nn.Parameter(torch.empty(g * n))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as described in the module docstring."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            nn.init.uniform_(weight, -bound, bound)
        gate_bound = 1.0 / math.sqrt(self.input_size + self.hidden_size)
        nn.init.uniform_(self.weight_xa, -gate_bound, gate_bound)
        nn.init.uniform_(self.weight_ha, -gate_bound, gate_bound)
        nn.init.constant_(self.bias_a, GATE_BIAS_INIT)

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"gate_activation={self.gate_activation!r}"
        )

    # --- per-cell pieces -------------------------------------------------------------------
    def _initial_state(self, x: Tensor, state: State | None) -> tuple[Tensor, ...]:
        batch, n = x.shape[0], self.hidden_size
        if state is None:
            return (x.new_zeros(batch, n),)
        return (self._check_state_tensor(state, x, "state"),)

    def _check_state_tensor(self, tensor: Tensor, x: Tensor, what: str) -> Tensor:
        name = type(self).__name__
        expected = (x.shape[0], self.hidden_size)
        if not isinstance(tensor, Tensor) or tuple(tensor.shape) != expected:
            got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            hint = ""
            if isinstance(tensor, Tensor) and tensor.dim() == 3 and tensor.shape[0] == 1:
                hint = " (drop torch's layer dimension: pass h0[0])"
            raise ValueError(
                f"{name}: initial {what} must have shape (B, N) = {expected}; got {got}{hint}"
            )
        if tensor.dtype != x.dtype or tensor.device != x.device:
            raise TypeError(
                f"{name}: initial {what} is {tensor.dtype} on {tensor.device} but the input is "
                f"{x.dtype} on {x.device}; convert it with .to(x)"
            )
        return tensor

    def _final_state(self, state: tuple[Tensor, ...]) -> State:
        return state[0]

    def _cell(self, gi: Tensor, gh: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """One recurrent update from gi = W_ih x~ + b_ih and gh = W_hh h + b_hh, both (B, G*N)."""
        raise NotImplementedError

    # --- the generic step loop -------------------------------------------------------------
    def forward(
        self,
        x: Tensor,
        state: State | None = None,
        lengths: Tensor | Sequence[int] | None = None,
        mask: Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[Tensor, State, Tensor | None]:
        """Run the layer over a batch of sequences.

        Args:
            x: (B, T, D) input, batch first.
            state: initial state, (B, N) for GRU and RNN, a tuple (h, c) of (B, N) for the
                LSTM; zeros when None.
            lengths: (B,) int64 valid lengths in [1, T]; None means all T steps.
            mask: (B, T) bool prefix mask, an alternative to ``lengths``.
            return_attention: also return the gate values a_t.

        Returns:
            output (B, T, N), zero at padded steps; the final state (each sequence's state
            after its last valid step), shaped like ``state``; and the attention (B, T, D),
            zero at padded steps, or None unless ``return_attention``.
        """
        name = type(self).__name__
        check_sequence_input(x, self.input_size, self.weight_ih, name)
        lengths = resolve_lengths(x, lengths, mask, name)
        state0 = self._initial_state(x, state)
        return self._loop(x, state0, lengths, return_attention)

    def _loop(
        self,
        x: Tensor,
        state: tuple[Tensor, ...],
        lengths: Tensor | None,
        return_attention: bool,
    ) -> tuple[Tensor, State, Tensor | None]:
        steps = x.shape[1]
        d, gn = self.input_size, self.num_gates * self.hidden_size
        softmax = check_gate_activation(self.gate_activation) == "softmax"
        # W_xa x_t does not depend on the recurrence: one product for all steps.
        gate_x = torch.addmm(self.bias_a, x.reshape(-1, d), self.weight_xa.t())  # (B*T, D)
        gate_x = gate_x.view(x.shape)  # (B, T, D)
        # Everything that multiplies h_{t-1} in one product per step: [W_ha; W_hh].
        weight_h = torch.cat([self.weight_ha, self.weight_hh]).t()  # (N, D + G*N)
        # b_a was added with W_xa x above, so the gate's part of this product has no bias.
        bias_h = torch.cat([self.bias_a.new_zeros(d), self.bias_hh])  # (D + G*N,)
        weight_i = self.weight_ih.t()  # (D, G*N)
        valid = None
        if lengths is not None:
            valid = torch.arange(steps, device=x.device) < lengths.unsqueeze(1)  # (B, T)
        outputs, attentions = [], []
        for t in range(steps):
            hidden_products = torch.addmm(bias_h, state[0], weight_h)  # (B, D + G*N)
            gate_pre = gate_x[:, t] + hidden_products[:, :d]
            a_t = torch.softmax(gate_pre, dim=1) if softmax else torch.sigmoid(gate_pre)
            gi = torch.addmm(self.bias_ih, a_t * x[:, t], weight_i)  # (B, G*N)
            new_state = self._cell(gi, hidden_products[:, d : d + gn], state)
            if valid is None:
                state = new_state
                outputs.append(new_state[0])
                if return_attention:
                    attentions.append(a_t)
            else:
                valid_t = valid[:, t : t + 1]  # (B, 1)
                state = tuple(torch.where(valid_t, new, old) for new, old in zip(new_state, state))
                outputs.append(torch.where(valid_t, new_state[0], 0.0))
                if return_attention:
                    attentions.append(torch.where(valid_t, a_t, 0.0))
        output = torch.stack(outputs, dim=1)  # (B, T, N)
        attention = torch.stack(attentions, dim=1) if return_attention else None  # (B, T, D)
        return output, self._final_state(state), attention


class EleAttGRU(_EleAttLayer):
    """GRU (``nn.GRU`` arithmetic) with an element-wise attention gate on its input.

    Parameters: ``weight_xa`` (D, D), ``weight_ha`` (D, N), ``bias_a`` (D,) for the gate;
    ``weight_ih`` (3N, D), ``weight_hh`` (3N, N), ``bias_ih`` (3N,), ``bias_hh`` (3N,) in
    ``nn.GRU``'s layout (gates r, z, n).

    On inputs where ``video_eleatt.models.fused_gru.fused_gru_supported`` says so, the
    forward pass runs the fused fast path, which computes the same function with a
    hand-written backward; otherwise an autograd step loop. Set
    ``use_fused=False`` to always use the loop.

    >>> layer = EleAttGRU(input_size=16, hidden_size=8)
    >>> x = torch.randn(2, 5, 16)                       # (B, T, D)
    >>> output, h_n, attention = layer(x, lengths=torch.tensor([5, 3]), return_attention=True)
    >>> output.shape, h_n.shape, attention.shape
    (torch.Size([2, 5, 8]), torch.Size([2, 8]), torch.Size([2, 5, 16]))
    >>> bool(output[1, 3:].eq(0).all())                 # zero after the second sequence ends
    True
    """

    num_gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        gate_activation: GateActivation = "sigmoid",
        use_fused: bool = True,
    ) -> None:
        super().__init__(input_size, hidden_size, gate_activation)
        self.use_fused = use_fused

    def _cell(self, gi: Tensor, gh: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        (h,) = state
        n = self.hidden_size
        reset_update = torch.sigmoid(gi[:, : 2 * n] + gh[:, : 2 * n])  # (B, 2N): r, z
        r, z = reset_update[:, :n], reset_update[:, n:]
        candidate = torch.tanh(gi[:, 2 * n :] + r * gh[:, 2 * n :])
        return (candidate + z * (h - candidate),)  # (1 - z) * n + z * h

    def forward(
        self,
        x: Tensor,
        state: Tensor | None = None,
        lengths: Tensor | Sequence[int] | None = None,
        mask: Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Run the layer over a batch of sequences (fused fast path where supported).

        Args:
            x: (B, T, D) input, batch first.
            state: initial hidden state (B, N); zeros when None.
            lengths: (B,) int64 valid lengths in [1, T]; None means all T steps.
            mask: (B, T) bool prefix mask, an alternative to ``lengths``.
            return_attention: also return the gate values a_t.

        Returns:
            output (B, T, N), zero at padded steps; h_n (B, N), each sequence's state after
            its last valid step; attention (B, T, D), zero at padded steps, or None.
        """
        name = type(self).__name__
        check_sequence_input(x, self.input_size, self.weight_ih, name)
        lengths = resolve_lengths(x, lengths, mask, name)
        (h0,) = self._initial_state(x, state)
        if self.use_fused and fused_gru_supported(x):
            return eleatt_gru_sequence(
                x,
                h0,
                lengths,
                self.weight_xa,
                self.weight_ha,
                self.bias_a,
                self.weight_ih,
                self.weight_hh,
                self.bias_ih,
                self.bias_hh,
                check_gate_activation(self.gate_activation),
                return_attention,
            )
        return self._loop(x, (h0,), lengths, return_attention)


class EleAttLSTM(_EleAttLayer):
    """LSTM (``nn.LSTM`` arithmetic, gates i, f, g, o) with an element-wise attention gate.

    Parameters as :class:`EleAttGRU` with 4N rows in the recurrent weights. The state is a
    tuple (h, c), each (B, N); the gate reads h_{t-1}.
    """

    num_gates = 4

    def _initial_state(self, x: Tensor, state: State | None) -> tuple[Tensor, ...]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            return zeros, zeros
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(
                f"EleAttLSTM: initial state must be a tuple (h0, c0), each (B, N); got "
                f"{type(state).__name__}"
            )
        return (
            self._check_state_tensor(state[0], x, "hidden state h0"),
            self._check_state_tensor(state[1], x, "cell state c0"),
        )

    def _final_state(self, state: tuple[Tensor, ...]) -> State:
        return state[0], state[1]

    def _cell(self, gi: Tensor, gh: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        _, c = state
        n = self.hidden_size
        gates = gi + gh  # (B, 4N): i, f, g, o
        input_gate = torch.sigmoid(gates[:, :n])
        forget_gate = torch.sigmoid(gates[:, n : 2 * n])
        candidate = torch.tanh(gates[:, 2 * n : 3 * n])
        output_gate = torch.sigmoid(gates[:, 3 * n :])
        c_new = forget_gate * c + input_gate * candidate
        return output_gate * torch.tanh(c_new), c_new


class EleAttRNN(_EleAttLayer):
    """Simple tanh RNN (``nn.RNN``, the paper's sRNN) with an element-wise attention gate.

    Parameters as :class:`EleAttGRU` with N rows in the recurrent weights; state (B, N).
    """

    num_gates = 1

    def _cell(self, gi: Tensor, gh: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return (torch.tanh(gi + gh),)
