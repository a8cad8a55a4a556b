"""EleAtt layers against the float64 reference, torch's own layers, padding, and bad input."""

from __future__ import annotations

import pytest
import torch
from eleatt_reference import (
    assert_close,
    reference_eleatt_gru,
    reference_eleatt_lstm,
    reference_eleatt_rnn,
)
from torch import nn

from video_eleatt.models import eleatt as eleatt_module
from video_eleatt.models.eleatt import GATE_BIAS_INIT, EleAttGRU, EleAttLSTM, EleAttRNN
from video_eleatt.models.fused_gru import fused_gru_supported

CELLS = {
    "gru": (EleAttGRU, reference_eleatt_gru, nn.GRU),
    "lstm": (EleAttLSTM, reference_eleatt_lstm, nn.LSTM),
    "rnn": (EleAttRNN, reference_eleatt_rnn, nn.RNN),
}
# (cell, path): the GRU runs through the fused fast path and through the autograd loop.
CELL_PATHS = [("gru", "fused"), ("gru", "loop"), ("lstm", "loop"), ("rnn", "loop")]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make_layer(cell, path, input_size, hidden_size, gate_activation, x_example, dtype):
    """The layer on the requested path; skips when the fused path is absent or unsupported."""
    layer_class = CELLS[cell][0]
    layer = layer_class(input_size, hidden_size, gate_activation).to(dtype)
    if cell == "gru":
        layer.use_fused = path == "fused"
    if path == "fused" and not fused_gru_supported(x_example):
        pytest.skip(f"fused path does not support {x_example.dtype} {x_example.device}")
    return layer


def random_state(cell, batch, hidden_size, dtype, generator):
    h0 = torch.randn(batch, hidden_size, dtype=dtype, generator=generator)
    if cell == "lstm":
        return h0, torch.randn(batch, hidden_size, dtype=dtype, generator=generator)
    return h0


def state_tensors(state):
    return list(state) if isinstance(state, tuple) else [state]


def compare_with_reference(cell, path, gate_activation, sizes, dtype, atol, rtol, seed=0):
    """Forward values and all gradients of the layer vs the float64 reference."""
    batch, steps, input_size, hidden_size = sizes
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, input_size, dtype=dtype, generator=generator)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps  # at least one full-length sequence, at least one short one
    lengths[-1] = max(1, steps // 2)
    state = random_state(cell, batch, hidden_size, dtype, generator)
    torch.manual_seed(seed)
    layer = make_layer(cell, path, input_size, hidden_size, gate_activation, x, dtype)
    with torch.no_grad():  # random gate weights of a useful size, not just the init
        layer.weight_xa.mul_(2.0)
        layer.bias_a.uniform_(-1.0, 1.0, generator=generator)

    inputs = [x, *state_tensors(state)]
    for tensor in inputs:
        tensor.requires_grad_(True)
    output, final, attention = layer(x, state, lengths=lengths, return_attention=True)

    # Reference in float64 on detached copies of the same values.
    ref_inputs = [t.detach().double().requires_grad_(True) for t in inputs]
    ref_params = {
        name: p.detach().double().requires_grad_(True) for name, p in layer.named_parameters()
    }
    ref_state = tuple(ref_inputs[1:]) if cell == "lstm" else ref_inputs[1]
    reference = CELLS[cell][1]
    ref_output, ref_final, ref_attention = reference(
        ref_inputs[0], ref_state, lengths, ref_params, gate_activation
    )

    assert output.shape == (batch, steps, hidden_size)
    assert attention.shape == (batch, steps, input_size)
    assert_close(output, ref_output, atol=atol, rtol=rtol, name="output")
    assert_close(attention, ref_attention, atol=atol, rtol=rtol, name="attention")
    for mine, theirs in zip(state_tensors(final), state_tensors(ref_final)):
        assert_close(mine, theirs, atol=atol, rtol=rtol, name="final state")

    # One scalar that weighs every output, final state and attention value differently.
    weights = [
        torch.randn(t.shape, dtype=torch.float64, generator=generator)
        for t in [output, attention, *state_tensors(final)]
    ]

    def scalar(tensors):
        return sum((t.double() * w).sum() for t, w in zip(tensors, weights))

    params = list(layer.parameters())
    grads = torch.autograd.grad(
        scalar([output, attention, *state_tensors(final)]), [*inputs, *params]
    )
    ref_grads = torch.autograd.grad(
        scalar([ref_output, ref_attention, *state_tensors(ref_final)]),
        [*ref_inputs, *ref_params.values()],
    )
    names = ["x", "h0", "c0"][: len(inputs)] + [name for name, _ in layer.named_parameters()]
    for name, mine, theirs in zip(names, grads, ref_grads):
        assert_close(mine, theirs, atol=atol, rtol=rtol, name=f"grad {name}")


@pytest.mark.parametrize("gate_activation", ["sigmoid", "softmax"])
@pytest.mark.parametrize(("cell", "path"), CELL_PATHS)
def test_float64_matches_reference(cell, path, gate_activation):
    compare_with_reference(
        cell, path, gate_activation, (3, 5, 4, 3), torch.float64, atol=1e-10, rtol=1e-9
    )


@pytest.mark.parametrize(("cell", "path"), CELL_PATHS)
def test_float32_matches_reference_at_realistic_size(cell, path):
    compare_with_reference(
        cell, path, "sigmoid", (4, 12, 256, 128), torch.float32, atol=2e-4, rtol=1e-3, seed=1
    )


@pytest.mark.parametrize(
    ("cell", "path", "gate_activation"),
    [
        ("gru", "loop", "sigmoid"),
        ("gru", "loop", "softmax"),
        ("gru", "fused", "sigmoid"),
        ("lstm", "loop", "sigmoid"),
        ("rnn", "loop", "softmax"),
    ],
)
def test_gradcheck(cell, path, gate_activation):
    batch, steps, input_size, hidden_size = 2, 3, 3, 2
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(batch, steps, input_size, dtype=torch.float64, generator=generator)
    state = random_state(cell, batch, hidden_size, torch.float64, generator)
    lengths = torch.tensor([3, 2])
    layer = make_layer(cell, path, input_size, hidden_size, gate_activation, x, torch.float64)
    names = [name for name, _ in layer.named_parameters()]
    state_list = state_tensors(state)

    def function(x, *rest):
        state_now = rest[: len(state_list)]
        params = dict(zip(names, rest[len(state_list) :]))
        state_arg = tuple(state_now) if cell == "lstm" else state_now[0]
        output, final, attention = torch.func.functional_call(
            layer, params, (x, state_arg), {"lengths": lengths, "return_attention": True}
        )
        return output, *state_tensors(final), attention

    inputs = [x, *state_list, *(p.detach() for p in layer.parameters())]
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-7)


def copy_into_torch_layer(layer, torch_layer):
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(torch_layer, f"{name}_l0").copy_(getattr(layer, name))


@pytest.mark.parametrize(("cell", "path"), CELL_PATHS)
def test_gate_held_at_one_equals_torch_layer(cell, path):
    """W_xa = W_ha = 0 and a large b_a: a_t == 1.0 exactly in float64, so x~ = x."""
    batch, steps, input_size, hidden_size = 3, 4, 5, 4
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(batch, steps, input_size, dtype=torch.float64, generator=generator)
    state = random_state(cell, batch, hidden_size, torch.float64, generator)
    torch.manual_seed(4)
    layer = make_layer(cell, path, input_size, hidden_size, "sigmoid", x, torch.float64)
    with torch.no_grad():
        layer.weight_xa.zero_()
        layer.weight_ha.zero_()
        layer.bias_a.fill_(50.0)
    torch_layer = CELLS[cell][2](input_size, hidden_size, batch_first=True).double()
    copy_into_torch_layer(layer, torch_layer)

    x_mine, x_torch = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    s_mine = [t.clone().requires_grad_(True) for t in state_tensors(state)]
    s_torch = [t.clone().unsqueeze(0).requires_grad_(True) for t in state_tensors(state)]
    output, final, attention = layer(
        x_mine, tuple(s_mine) if cell == "lstm" else s_mine[0], return_attention=True
    )
    torch_output, torch_final = torch_layer(
        x_torch, tuple(s_torch) if cell == "lstm" else s_torch[0]
    )
    assert torch.equal(attention, torch.ones_like(attention))
    assert_close(output, torch_output, atol=1e-12, rtol=0)
    for mine, theirs in zip(state_tensors(final), state_tensors(torch_final)):
        assert_close(mine, theirs[0], atol=1e-12, rtol=0)

    weight = torch.randn(output.shape, dtype=torch.float64, generator=generator)
    final_weight = torch.randn(hidden_size, dtype=torch.float64, generator=generator)
    (output * weight).sum().add((state_tensors(final)[0] * final_weight).sum()).backward()
    (torch_output * weight).sum().add(
        (state_tensors(torch_final)[0] * final_weight).sum()
    ).backward()
    assert_close(x_mine.grad, x_torch.grad, atol=1e-12, rtol=0)
    for mine, theirs in zip(s_mine, s_torch):
        assert_close(mine.grad, theirs.grad[0], atol=1e-12, rtol=0)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert_close(
            getattr(layer, name).grad, getattr(torch_layer, f"{name}_l0").grad, atol=1e-12, rtol=0
        )


@pytest.mark.parametrize("gate_activation", ["sigmoid", "softmax"])
@pytest.mark.parametrize(("cell", "path"), CELL_PATHS)
def test_padding_invariance_and_attention_range(cell, path, gate_activation):
    batch, steps, input_size, hidden_size = 4, 6, 5, 3
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(batch, steps, input_size, dtype=torch.float64, generator=generator)
    lengths = torch.tensor([6, 1, 4, 3])
    state = random_state(cell, batch, hidden_size, torch.float64, generator)
    layer = make_layer(cell, path, input_size, hidden_size, gate_activation, x, torch.float64)
    output, final, attention = layer(x, state, lengths=lengths, return_attention=True)

    # Garbage after each length and three more garbage steps change nothing valid.
    garbage = 100 * torch.randn(
        batch, steps + 3, input_size, dtype=torch.float64, generator=generator
    )
    valid = torch.arange(steps + 3) < lengths.unsqueeze(1)  # (B, T + 3)
    padded = torch.where(valid.unsqueeze(2), torch.cat([x, x[:, :3]], dim=1), garbage)
    padded_output, padded_final, padded_attention = layer(
        padded, state, lengths=lengths, return_attention=True
    )
    assert_close(padded_output[:, :steps], output, atol=1e-12, rtol=0)
    assert_close(padded_attention[:, :steps], attention, atol=1e-12, rtol=0)
    for mine, theirs in zip(state_tensors(padded_final), state_tensors(final)):
        assert_close(mine, theirs, atol=1e-12, rtol=0)
    assert torch.all(padded_output[~valid] == 0)
    assert torch.all(padded_attention[~valid] == 0)

    # Each sequence alone, unpadded, gives the same outputs and final state.
    for b, length in enumerate(lengths.tolist()):
        alone_state = tuple(s[b : b + 1] for s in state_tensors(state))
        alone_output, alone_final, _ = layer(
            x[b : b + 1, :length], alone_state if cell == "lstm" else alone_state[0]
        )
        assert_close(alone_output[0], output[b, :length], atol=1e-12, rtol=0)
        for mine, theirs in zip(state_tensors(alone_final), state_tensors(final)):
            assert_close(mine[0], theirs[b], atol=1e-12, rtol=0)

    valid_attention = attention[valid[:, :steps]]  # (valid steps, D)
    if gate_activation == "softmax":
        assert_close(
            valid_attention.sum(dim=1),
            torch.ones(len(valid_attention), dtype=torch.float64),
            atol=1e-12,
        )
    else:
        assert torch.all((valid_attention > 0) & (valid_attention < 1))


@pytest.mark.parametrize(("cell", "path"), CELL_PATHS)
def test_mask_equals_lengths_and_zero_state_default(cell, path):
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(3, 5, 4, dtype=torch.float64, generator=generator)
    lengths = torch.tensor([5, 2, 3])
    layer = make_layer(cell, path, 4, 3, "sigmoid", x, torch.float64)
    mask = torch.arange(5) < lengths.unsqueeze(1)
    by_lengths = layer(x, lengths=lengths, return_attention=True)
    by_mask = layer(x, mask=mask, return_attention=True)
    zeros = torch.zeros(3, 3, dtype=torch.float64)
    by_zero_state = layer(x, (zeros, zeros) if cell == "lstm" else zeros, lengths=lengths)
    assert torch.equal(by_lengths[0], by_mask[0])
    assert torch.equal(by_lengths[2], by_mask[2])
    assert_close(by_lengths[0], by_zero_state[0], atol=1e-14, rtol=0)
    assert layer(x)[2] is None  # attention only on request


def test_float32_layer_as_constructed_matches_the_reference():
    """``EleAttGRU(D, N)`` as a user builds it (default path, initialisation and zero state),
    in float32, against the float64 reference on the same weights: values and input grads."""
    torch.manual_seed(5)
    layer = EleAttGRU(32, 16)
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(5, 7, 32, generator=generator).requires_grad_(True)
    lengths = torch.tensor([7, 3, 1, 7, 5])
    output, h_n, attention = layer(x, lengths=lengths, return_attention=True)
    params = {name: p.detach().double() for name, p in layer.named_parameters()}
    x64 = x.detach().double().requires_grad_(True)
    ref_output, ref_h_n, ref_attention = reference_eleatt_gru(x64, None, lengths, params)
    for name, mine, theirs in (
        ("output", output, ref_output),
        ("h_n", h_n, ref_h_n),
        ("attention", attention, ref_attention),
    ):
        assert mine.dtype == torch.float32
        assert_close(mine, theirs, atol=1e-5, rtol=1e-4, name=name)
    weights = torch.randn(output.shape, dtype=torch.float64, generator=generator)
    (grad,) = torch.autograd.grad((output.double() * weights).sum(), [x])
    (ref_grad,) = torch.autograd.grad((ref_output * weights).sum(), [x64])
    assert_close(grad, ref_grad, atol=1e-5, rtol=1e-4, name="grad x")


# --- dispatch to the fused module --------------------------------------------------------


def fake_fused_path(monkeypatch, supported: bool, calls: list) -> None:
    """Replace the fused functions the layer calls with a recorder that says ``supported``."""

    def eleatt_gru_sequence(*args):
        calls.append(args)
        x, h0 = args[0], args[1]
        return x.new_zeros(x.shape[0], x.shape[1], h0.shape[1]), h0, None

    monkeypatch.setattr(eleatt_module, "fused_gru_supported", lambda x: supported)
    monkeypatch.setattr(eleatt_module, "eleatt_gru_sequence", eleatt_gru_sequence)


@pytest.mark.parametrize(
    ("supported", "use_fused", "expect_call"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
def test_gru_dispatches_to_fused_when_supported(monkeypatch, supported, use_fused, expect_call):
    calls: list = []
    fake_fused_path(monkeypatch, supported, calls)
    layer = EleAttGRU(4, 3, "softmax", use_fused=use_fused)
    x = torch.randn(2, 3, 4)
    layer(x, lengths=torch.tensor([3, 2]), return_attention=True)
    assert bool(calls) == expect_call
    if expect_call:
        (args,) = calls
        assert args[0] is x and args[1].shape == (2, 3) and args[2].tolist() == [3, 2]
        assert args[3] is layer.weight_xa and args[9] is layer.bias_hh
        assert args[10:] == ("softmax", True)


def test_gru_falls_back_to_loop_where_fused_path_does_not_apply(monkeypatch):
    calls: list = []
    fake_fused_path(monkeypatch, False, calls)
    layer = EleAttGRU(4, 3).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    output, h_n, _ = layer(x)
    params = {name: p.detach() for name, p in layer.named_parameters()}
    ref_output, ref_h_n, _ = reference_eleatt_gru(x, None, None, params, "sigmoid")
    assert_close(output, ref_output, atol=1e-12, rtol=0)
    assert_close(h_n, ref_h_n, atol=1e-12, rtol=0)
    assert calls == []


# --- initialisation ------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_initialisation_and_parameter_shapes(cell):
    layer_class = CELLS[cell][0]
    torch_layer = CELLS[cell][2](20, 8)
    layer = layer_class(20, 8)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert getattr(layer, name).shape == getattr(torch_layer, f"{name}_l0").shape
        assert getattr(layer, name).abs().max() <= 8**-0.5
    assert layer.weight_xa.shape == (20, 20) and layer.weight_ha.shape == (20, 8)
    assert layer.weight_xa.abs().max() <= 28**-0.5 and layer.weight_ha.abs().max() <= 28**-0.5
    assert torch.all(layer.bias_a == GATE_BIAS_INIT)
    assert layer.weight_xa.std() > 0.5 * 28**-0.5 / 3**0.5  # random, not zero


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_bad_inputs_raise_clear_errors(cell):
    layer = CELLS[cell][0](4, 3, use_fused=False) if cell == "gru" else CELLS[cell][0](4, 3)
    x = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"input size D=4 but got input of size 6"):
        layer(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"shape \(B, T, D=4\); got shape \(5, 4\)"):
        layer(torch.randn(5, 4))
    with pytest.raises(
        TypeError, match=r"dtype torch.float64 but its parameters are torch.float32"
    ):
        layer(x.double())
    with pytest.raises(ValueError, match=r"input is on meta but its parameters are on cpu"):
        layer(x.to("meta"))
    with pytest.raises(ValueError, match=r"empty batch: shape \(0, 5, 4\)"):
        layer(torch.randn(0, 5, 4))
    with pytest.raises(ValueError, match=r"empty batch: shape \(2, 0, 4\)"):
        layer(torch.randn(2, 0, 4))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=5\]; got values from 0 to 5"):
        layer(x, lengths=torch.tensor([5, 0]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=5\]; got values from 2 to 6"):
        layer(x, lengths=[6, 2])
    with pytest.raises(
        ValueError, match=r"lengths must have shape \(B,\) = \(2,\).*got shape \(3,\)"
    ):
        layer(x, lengths=torch.tensor([5, 4, 3]))
    with pytest.raises(TypeError, match=r"lengths must be integers.*torch.float32"):
        layer(x, lengths=torch.tensor([5.0, 4.0]))
    with pytest.raises(ValueError, match=r"mask must have shape \(B, T\) = \(2, 5\).*\(3, 5\)"):
        layer(x, mask=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"prefix mask.*rows \[1\]"):
        layer(x, mask=torch.tensor([[True] * 5, [True, False, True, False, False]]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=5\]; got values from 0"):
        layer(x, mask=torch.tensor([[True] * 5, [False] * 5]))
    with pytest.raises(TypeError, match=r"mask must be a bool tensor"):
        layer(x, mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"lengths or mask, not both"):
        layer(x, lengths=[5, 5], mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"unknown gate_activation 'relu'; choose one of sigmoid"):
        CELLS[cell][0](4, 3, "relu")
    if cell == "lstm":
        with pytest.raises(ValueError, match=r"must be a tuple \(h0, c0\)"):
            layer(x, torch.zeros(2, 3))
        with pytest.raises(ValueError, match=r"cell state c0 must have shape \(B, N\) = \(2, 3\)"):
            layer(x, (torch.zeros(2, 3), torch.zeros(2, 4)))
    else:
        with pytest.raises(
            ValueError, match=r"state must have shape \(B, N\) = \(2, 3\); got \(1, 2, 3\).*h0\[0\]"
        ):
            layer(x, torch.zeros(1, 2, 3))
        with pytest.raises(TypeError, match=r"initial state is torch.float64 on cpu"):
            layer(x, torch.zeros(2, 3, dtype=torch.float64))
