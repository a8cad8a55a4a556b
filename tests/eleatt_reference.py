"""Reference EleAtt recurrent layers written straight from the equations (for tests only).

Deliberately slow and plain: one sample and one time step at a time, with Python loops and
vector arithmetic, so each line can be checked against ../shared/PAPER.md and torch's
documentation of ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN``. Use float64 inputs and parameters.

Conventions (the same as ``video_eleatt.models.eleatt``):

- gate:        a_t = act(W_xa x_t + W_ha h_{t-1} + b_a),  act = sigmoid, or softmax over D
- modulation:  x~_t = a_t * x_t
- GRU (torch gate order r, z, n; reset gate applied after the hidden product):
      r = sigmoid(W_ir x~ + b_ir + W_hr h + b_hr)
      z = sigmoid(W_iz x~ + b_iz + W_hz h + b_hz)
      n = tanh(W_in x~ + b_in + r * (W_hn h + b_hn))
      h' = (1 - z) * n + z * h
- LSTM (torch gate order i, f, g, o):
      c' = f * c + i * g,  h' = o * tanh(c')
- RNN: h' = tanh(W_ih x~ + b_ih + W_hh h + b_hh)

Variable length: sample b uses only steps t < lengths[b]; its outputs and attention at later
steps are zero and its final state is the state after step lengths[b] - 1.

``params`` is a dict keyed by the layer's parameter names: weight_xa (D, D), weight_ha (D, N),
bias_a (D,), weight_ih (G*N, D), weight_hh (G*N, N), bias_ih (G*N,), bias_hh (G*N,).
"""

from __future__ import annotations

import torch
from torch import Tensor


def reference_gate(x_t: Tensor, h_prev: Tensor, params: dict[str, Tensor], gate_activation: str):
    """a_t for one sample: x_t (D,), h_prev (N,) -> (D,)."""
    pre = params["weight_xa"] @ x_t + params["weight_ha"] @ h_prev + params["bias_a"]
    if gate_activation == "sigmoid":
        return torch.sigmoid(pre)
    if gate_activation == "softmax":
        return torch.softmax(pre, dim=0)
    raise ValueError(f"unknown gate activation {gate_activation!r}")


def _gru_cell(x_mod: Tensor, h: Tensor, params: dict[str, Tensor]) -> Tensor:
    n_hidden = h.shape[0]
    gi = params["weight_ih"] @ x_mod + params["bias_ih"]  # (3N,)
    gh = params["weight_hh"] @ h + params["bias_hh"]  # (3N,)
    i_r, i_z, i_n = gi[:n_hidden], gi[n_hidden : 2 * n_hidden], gi[2 * n_hidden :]
    h_r, h_z, h_n = gh[:n_hidden], gh[n_hidden : 2 * n_hidden], gh[2 * n_hidden :]
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def _lstm_cell(x_mod: Tensor, h: Tensor, c: Tensor, params: dict[str, Tensor]):
    n_hidden = h.shape[0]
    g_all = params["weight_ih"] @ x_mod + params["bias_ih"] + params["weight_hh"] @ h
    g_all = g_all + params["bias_hh"]  # (4N,)
    i = torch.sigmoid(g_all[:n_hidden])
    f = torch.sigmoid(g_all[n_hidden : 2 * n_hidden])
    g = torch.tanh(g_all[2 * n_hidden : 3 * n_hidden])
    o = torch.sigmoid(g_all[3 * n_hidden :])
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new


def _rnn_cell(x_mod: Tensor, h: Tensor, params: dict[str, Tensor]) -> Tensor:
    pre = params["weight_ih"] @ x_mod + params["bias_ih"] + params["weight_hh"] @ h
    return torch.tanh(pre + params["bias_hh"])


def _run(x, states, lengths, params, gate_activation, step):
    """Shared loop. states: list of (B, N) tensors (h first); step(x_mod, *state) -> state."""
    batch, steps, input_size = x.shape
    n_hidden = params["weight_hh"].shape[1]
    lengths = [steps] * batch if lengths is None else [int(v) for v in lengths]
    outputs, attentions, finals = [], [], [[] for _ in states]
    for b in range(batch):
        state = [s[b] for s in states]
        out_b, att_b = [], []
        for t in range(steps):
            if t < lengths[b]:
                a_t = reference_gate(x[b, t], state[0], params, gate_activation)
                new = step(a_t * x[b, t], *state)
                state = list(new) if isinstance(new, tuple) else [new]
                out_b.append(state[0])
                att_b.append(a_t)
            else:
                out_b.append(x.new_zeros(n_hidden))
                att_b.append(x.new_zeros(input_size))
        outputs.append(torch.stack(out_b))
        attentions.append(torch.stack(att_b))
        for k, s in enumerate(state):
            finals[k].append(s)
    final_states = [torch.stack(f) for f in finals]
    return torch.stack(outputs), final_states, torch.stack(attentions)


def _zeros_state(x: Tensor, params: dict[str, Tensor]) -> Tensor:
    return x.new_zeros(x.shape[0], params["weight_hh"].shape[1])


def reference_eleatt_gru(
    x: Tensor,
    h0: Tensor | None,
    lengths: Tensor | None,
    params: dict[str, Tensor],
    gate_activation: str = "sigmoid",
) -> tuple[Tensor, Tensor, Tensor]:
    """EleAtt-GRU. x (B, T, D), h0 (B, N) or None -> output (B, T, N), h_n (B, N), a (B, T, D)."""
    h0 = _zeros_state(x, params) if h0 is None else h0
    output, (h_n,), attention = _run(
        x, [h0], lengths, params, gate_activation, lambda xm, h: _gru_cell(xm, h, params)
    )
    return output, h_n, attention


def reference_eleatt_lstm(
    x: Tensor,
    state: tuple[Tensor, Tensor] | None,
    lengths: Tensor | None,
    params: dict[str, Tensor],
    gate_activation: str = "sigmoid",
) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor]:
    """EleAtt-LSTM. state (h0, c0), each (B, N), or None -> output, (h_n, c_n), attention."""
    if state is None:
        state = (_zeros_state(x, params), _zeros_state(x, params))
    output, (h_n, c_n), attention = _run(
        x,
        list(state),
        lengths,
        params,
        gate_activation,
        lambda xm, h, c: _lstm_cell(xm, h, c, params),
    )
    return output, (h_n, c_n), attention


def reference_eleatt_rnn(
    x: Tensor,
    h0: Tensor | None,
    lengths: Tensor | None,
    params: dict[str, Tensor],
    gate_activation: str = "sigmoid",
) -> tuple[Tensor, Tensor, Tensor]:
    """EleAtt-sRNN (tanh). Same shapes as :func:`reference_eleatt_gru`."""
    h0 = _zeros_state(x, params) if h0 is None else h0
    output, (h_n,), attention = _run(
        x, [h0], lengths, params, gate_activation, lambda xm, h: _rnn_cell(xm, h, params)
    )
    return output, h_n, attention


def random_params(
    input_size: int,
    hidden_size: int,
    num_gates: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    scale: float = 0.5,
) -> dict[str, Tensor]:
    """Random parameters in the layers' layout (num_gates: GRU 3, LSTM 4, RNN 1)."""
    d, n, g = input_size, hidden_size, num_gates
    shapes = {
        "weight_xa": (d, d),
        "weight_ha": (d, n),
        "bias_a": (d,),
        "weight_ih": (g * n, d),
        "weight_hh": (g * n, n),
        "bias_ih": (g * n,),
        "bias_hh": (g * n,),
    }
    return {
        name: (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * scale
        for name, shape in shapes.items()
    }


def assert_close(actual: Tensor, expected: Tensor, atol: float, rtol: float = 0.0, name: str = ""):
    """Elementwise |actual - expected| <= atol + rtol * |expected| (NaN fails), in float64.

    Used instead of ``torch.testing.assert_close``, whose first call imports
    ``torch.distributed.tensor`` (about 5 s on the 2-core machine).
    """
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    )
    actual, expected = actual.detach().double(), expected.detach().double()
    error = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    if not bool((error <= bound).all()):
        worst = int(torch.nan_to_num(error - bound, nan=float("inf")).argmax())
        got, want = actual.flatten()[worst].item(), expected.flatten()[worst].item()
        raise AssertionError(
            f"{name}: {int((~(error <= bound)).sum())} of {error.numel()} elements differ; "
            f"max abs error {error.max().item():.3g} (atol {atol}, rtol {rtol}); worst at flat "
            f"index {worst}: {got!r} vs {want!r}"
        )


def reference_plain_gru(x: Tensor, h0: Tensor | None, params: dict[str, Tensor]) -> Tensor:
    """A plain GRU (``nn.GRU``) layer: the GRU cell on x_t itself, no gate. x (B, T, D) ->
    output (B, T, N). ``params`` holds weight_ih (3N, D), weight_hh (3N, N), bias_ih, bias_hh."""
    h0 = _zeros_state(x, params) if h0 is None else h0
    outputs = []
    for b in range(x.shape[0]):
        h, out_b = h0[b], []
        for t in range(x.shape[1]):
            h = _gru_cell(x[b, t], h, params)
            out_b.append(h)
        outputs.append(torch.stack(out_b))
    return torch.stack(outputs)
