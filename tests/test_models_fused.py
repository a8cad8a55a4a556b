"""The fused EleAtt-GRU (video_eleatt.models.fused_gru) against the float64 reference."""

from __future__ import annotations

import functools
import logging

import pytest
import torch
from devices import DEVICES
from eleatt_reference import random_params, reference_eleatt_gru

from video_eleatt.models import cuda_graphs, gru_loop, matmul
from video_eleatt.models import eleatt as eleatt_module
from video_eleatt.models.fused_gru import (
    describe_path,
    eleatt_gru_sequence,
    fused_gru_supported,
    selected_loop,
    use_loop,
)
from video_eleatt.models.gru_loop import loop_ops_available
from video_eleatt.models.matmul import (
    bf16_products_native,
    matmul_backend,
    onednn_available,
    product_dtype,
    use_bf16_products,
    use_matmul_backend,
)

PARAM_NAMES = ("weight_xa", "weight_ha", "bias_a", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
BACKENDS = ("onednn", "torch")
# cpp-aten: the C++ loop with ATen element-wise calls in place of its fused CPU passes (the
# code CUDA runs), so both branches of eleatt_gru_loop.cpp meet the reference here.
LOOPS = ("cpp", "cpp-aten", "python")


def _skip_if_no_loop(loop: str) -> None:
    if loop.startswith("cpp") and not loop_ops_available():
        pytest.skip(f"C++ loop unavailable: {gru_loop.loop_status()}")


def _skip_if_unavailable(backend: str) -> None:
    if backend == "onednn" and not onednn_available():
        pytest.skip("torch.ops.mkldnn linear ops unavailable in this torch build")


def _inputs(batch, steps, input_size, hidden, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    params = random_params(input_size, hidden, 3, generator=generator)
    x = torch.randn(batch, steps, input_size, generator=generator, dtype=torch.float64)
    h0 = torch.randn(batch, hidden, generator=generator, dtype=torch.float64) * 0.5
    return x.to(dtype), h0.to(dtype), {k: v.to(dtype) for k, v in params.items()}


def _loss_weights(batch, steps, input_size, hidden, seed):
    """Random cotangents for output, h_n and attention, so every output feeds the loss."""
    generator = torch.Generator().manual_seed(seed + 1000)
    return (
        torch.randn(batch, steps, hidden, generator=generator, dtype=torch.float64),
        torch.randn(batch, hidden, generator=generator, dtype=torch.float64),
        torch.randn(batch, steps, input_size, generator=generator, dtype=torch.float64),
    )


def _values_and_grads(run, x, h0, params, cotangents):
    """Run ``run(x, h0, params)``; return its outputs and the gradients of a weighted sum."""
    x = x.detach().requires_grad_()
    h0 = h0.detach().requires_grad_()
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    outputs = run(x, h0, params)
    loss = sum((o * c.to(o.dtype)).sum() for o, c in zip(outputs, cotangents))
    grads = torch.autograd.grad(loss, [x, h0, *(params[k] for k in PARAM_NAMES)])
    return [o.detach() for o in outputs], list(grads)


def _fused(gate_activation, lengths):
    def run(x, h0, params):
        return eleatt_gru_sequence(
            x, h0, lengths, *(params[k] for k in PARAM_NAMES), gate_activation, True
        )

    return run


def _reference(gate_activation, lengths):
    def run(x, h0, params):
        return reference_eleatt_gru(x, h0, lengths, params, gate_activation)

    return run


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("gate_activation", ["sigmoid", "softmax"])
def test_gradcheck_float64_variable_lengths(gate_activation, loop):
    _skip_if_no_loop(loop)
    x, h0, params = _inputs(3, 4, 5, 3, seed=1)
    lengths = torch.tensor([4, 1, 3])
    inputs = [t.requires_grad_() for t in (x, h0, *(params[k] for k in PARAM_NAMES))]

    def run(x, h0, *weights):
        return eleatt_gru_sequence(x, h0, lengths, *weights, gate_activation, True)

    assert matmul_backend(x) == "torch"  # float64 always takes the public path
    with use_loop(loop):
        assert selected_loop() == loop.removesuffix("-aten")
        assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("gate_activation", ["sigmoid", "softmax"])
@pytest.mark.parametrize("lengths", [None, [6, 2, 5, 1, 6]], ids=["full", "variable"])
def test_float64_matches_reference(gate_activation, lengths, loop):
    _skip_if_no_loop(loop)
    batch, steps, input_size, hidden = 5, 6, 7, 4
    lengths = None if lengths is None else torch.tensor(lengths)
    x, h0, params = _inputs(batch, steps, input_size, hidden, seed=2)
    cotangents = _loss_weights(batch, steps, input_size, hidden, seed=2)
    with use_loop(loop):
        got, got_grads = _values_and_grads(
            _fused(gate_activation, lengths), x, h0, params, cotangents
        )
    want, want_grads = _values_and_grads(
        _reference(gate_activation, lengths), x, h0, params, cotangents
    )
    for name, g, w in zip(("output", "h_n", "attention"), got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=name)
    for name, g, w in zip(("x", "h0", *PARAM_NAMES), got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=f"grad {name}")
    if lengths is not None:
        assert got[0][3, 1:].eq(0).all() and got[2][3, 1:].eq(0).all()


REALISTIC_LENGTHS = (10, 3, 7, 10, 1, 9)


@functools.cache
def _realistic_case(gate_activation):
    """Inputs (float64) and the reference outputs and gradients, shared by both back ends."""
    batch, steps, input_size, hidden = len(REALISTIC_LENGTHS), 10, 256, 64
    x, h0, params = _inputs(batch, steps, input_size, hidden, seed=3)
    params = {k: v * (0.2 if k.startswith("weight") else 1.0) for k, v in params.items()}
    cotangents = _loss_weights(batch, steps, input_size, hidden, seed=3)
    lengths = torch.tensor(REALISTIC_LENGTHS)
    reference = _values_and_grads(_reference(gate_activation, lengths), x, h0, params, cotangents)
    return x, h0, params, cotangents, reference


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    ("backend", "mkl_min_rows"),
    [("onednn", 10**9), ("onednn", 1), ("torch", 10**9)],
    ids=["onednn", "onednn-mkl-sequence-products", "torch"],
)
@pytest.mark.parametrize("gate_activation", ["sigmoid", "softmax"])
def test_float32_realistic_size_matches_reference(
    backend, mkl_min_rows, gate_activation, loop, monkeypatch
):
    _skip_if_unavailable(backend)
    _skip_if_no_loop(loop)
    # oneDNN's products over all steps go to MKL from MKL_MIN_ROWS rows: run both ways.
    monkeypatch.setattr(matmul, "MKL_MIN_ROWS", mkl_min_rows)
    x, h0, params, cotangents, (want, want_grads) = _realistic_case(gate_activation)
    x32, h32 = x.float(), h0.float()
    params32 = {k: v.float() for k, v in params.items()}
    with use_matmul_backend(backend), use_loop(loop):
        assert matmul_backend(x32) == backend
        got, got_grads = _values_and_grads(
            _fused(gate_activation, torch.tensor(REALISTIC_LENGTHS)),
            x32,
            h32,
            params32,
            cotangents,
        )
    for name, g, w in zip(("output", "h_n", "attention"), got, want):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g.double(), w, rtol=1e-4, atol=1e-5, msg=name)
    for name, g, w in zip(("x", "h0", *PARAM_NAMES), got_grads, want_grads):
        scale = w.abs().max().item()
        torch.testing.assert_close(
            g.double(), w, rtol=1e-4, atol=1e-5 * max(scale, 1.0), msg=f"grad {name}"
        )


def test_inference_and_no_input_grad_paths_match_training_path():
    batch, steps, input_size, hidden = 4, 5, 16, 8
    lengths = torch.tensor([5, 2, 4, 3])
    x, h0, params = _inputs(batch, steps, input_size, hidden, seed=4, dtype=torch.float32)
    weights = [params[k].requires_grad_() for k in PARAM_NAMES]
    trained = eleatt_gru_sequence(x, h0, lengths, *weights, "sigmoid", True)
    with torch.no_grad():
        inferred = eleatt_gru_sequence(x, h0, lengths, *weights, "sigmoid", True)
    for a, b in zip(trained, inferred):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)
    # x and h0 without requires_grad: the backward skips dx but the weight grads are the same.
    (trained[0].sum() + trained[1].sum()).backward()
    grads_no_x = [w.grad.clone() for w in weights]
    for w in weights:
        w.grad = None
    x_grad = x.clone().requires_grad_()
    out, h_n, _ = eleatt_gru_sequence(x_grad, h0, lengths, *weights, "sigmoid", False)
    (out.sum() + h_n.sum()).backward()
    for g, w in zip(grads_no_x, weights):
        torch.testing.assert_close(g, w.grad, rtol=1e-6, atol=1e-7)
    assert x_grad.grad is not None and x_grad.grad[1, 2:].eq(0).all()


def test_padding_further_changes_no_valid_output():
    x, h0, params = _inputs(3, 4, 6, 5, seed=5, dtype=torch.float32)
    weights = [params[k] for k in PARAM_NAMES]
    lengths = torch.tensor([4, 2, 3])
    out, h_n, att = eleatt_gru_sequence(x, h0, lengths, *weights, "sigmoid", True)
    padded = torch.cat([x, torch.randn(3, 3, 6)], dim=1)  # (3, 7, 6), junk after the end
    out_p, h_n_p, att_p = eleatt_gru_sequence(padded, h0, lengths, *weights, "sigmoid", True)
    torch.testing.assert_close(out_p[:, :4], out, rtol=0, atol=1e-6)
    torch.testing.assert_close(h_n_p, h_n, rtol=0, atol=1e-6)
    torch.testing.assert_close(att_p[:, :4], att, rtol=0, atol=1e-6)
    assert out_p[:, 4:].eq(0).all() and att_p[:, 4:].eq(0).all()


def test_selection_rule(monkeypatch):
    x32 = torch.randn(2, 3, 4)
    assert fused_gru_supported(x32) and fused_gru_supported(x32.double())
    assert not fused_gru_supported(x32.half())
    assert not fused_gru_supported(x32.bfloat16())
    assert not fused_gru_supported(torch.randn(0, 3, 4))
    assert not fused_gru_supported(torch.randn(3, 4))
    assert matmul_backend(x32.double()) == "torch"
    assert matmul_backend(x32) == ("onednn" if onednn_available() else "torch")
    # Small layers (W_ih below ONEDNN_MIN_INPUT_WEIGHT elements) take torch.mm.
    large = matmul.ONEDNN_MIN_INPUT_WEIGHT
    assert matmul_backend(x32, large) == ("onednn" if onednn_available() else "torch")
    assert matmul_backend(x32, large - 1) == "torch"
    with monkeypatch.context() as patch:
        patch.setattr(torch.backends.mkldnn, "enabled", False)
        assert matmul_backend(x32) == "torch"
    with use_matmul_backend("torch"):
        assert matmul_backend(x32) == "torch"
    with pytest.raises(RuntimeError, match="'onednn' was forced"), use_matmul_backend("onednn"):
        matmul_backend(x32.double())
    with pytest.raises(ValueError, match="unknown matmul back end 'mkl'"):
        use_matmul_backend("mkl").__enter__()


def test_onednn_back_end_sends_products_over_all_steps_to_mkl(monkeypatch):
    """float32 weight gradients always, x @ W^T and the fused add from MKL_MIN_ROWS rows:
    through torch.mm/addmm, never oneDNN's linear (measured slower for them)."""

    def refuse(*args, **kwargs):
        raise AssertionError("oneDNN linear called for a product over all steps")

    onednn = matmul.OneDnnMatmul()
    monkeypatch.setattr(matmul.OneDnnMatmul, "linear", refuse)
    rows = matmul.MKL_MIN_ROWS
    grad, inputs, weight = torch.randn(rows, 6), torch.randn(rows, 5), torch.randn(6, 5)
    other = torch.randn(rows, 6)
    exact = {
        "grad_weight": grad.double().t() @ inputs.double(),
        "sequence_linear": inputs.double() @ weight.double().t(),
        "linear_add": inputs.double() @ weight.double().t() + other.double(),
    }
    got = {
        "grad_weight": onednn.grad_weight(grad, inputs),
        "sequence_linear": onednn.sequence_linear(inputs, weight),
        "linear_add": onednn.linear_add(inputs, weight, other.clone()),
    }
    for name, value in got.items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value.double(), exact[name], rtol=1e-5, atol=1e-4, msg=name)
    with pytest.raises(AssertionError, match="oneDNN linear called"):
        onednn.sequence_linear(inputs[: rows - 1], weight)  # below the threshold: oneDNN


@pytest.mark.parametrize("failure", ["missing", "wrong"])
def test_falls_back_to_torch_when_onednn_is_missing_or_wrong(monkeypatch, caplog, failure):
    def missing(*args, **kwargs):
        raise AttributeError("'_OpNamespace' 'mkldnn' object has no attribute '_linear_pointwise'")

    def wrong(x, weight, bias=None):
        return torch.zeros(x.shape[0], weight.shape[0])

    monkeypatch.setattr(matmul._ONEDNN, "linear", missing if failure == "missing" else wrong)
    onednn_available.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger=matmul.__name__):
            assert not onednn_available()
        assert ("self-check failed" if failure == "wrong" else "unavailable") in caplog.text
        x, h0, params = _inputs(2, 3, 8, 4, seed=6)
        assert matmul_backend(x.float()) == "torch"
        weights = [params[k] for k in PARAM_NAMES]
        got = eleatt_gru_sequence(x.float(), h0.float(), None, *(w.float() for w in weights),
                                  "sigmoid", True)  # fmt: skip
        want = reference_eleatt_gru(x, h0, None, params, "sigmoid")
        for g, w in zip(got, want):
            torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-6)
    finally:
        onednn_available.cache_clear()


def test_eleatt_gru_layer_dispatches_to_fused_path(monkeypatch):
    """The layer calls the fused sequence function by default and not when told otherwise;
    both paths match the float64 reference on the layer's own weights."""
    calls = []
    real = eleatt_module.eleatt_gru_sequence

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(eleatt_module, "eleatt_gru_sequence", counted)
    torch.manual_seed(7)
    layer = eleatt_module.EleAttGRU(12, 6)
    x = torch.randn(3, 5, 12)
    lengths = torch.tensor([5, 1, 3])
    params = {name: p.detach().double() for name, p in layer.named_parameters()}
    want = reference_eleatt_gru(x.double(), None, lengths, params, "sigmoid")
    for use_fused, expected_calls in ((True, [x.shape]), (False, [])):
        calls.clear()
        layer.use_fused = use_fused
        got = layer(x, lengths=lengths, return_attention=True)
        assert calls == expected_calls
        for name, g, w in zip(("output", "h_n", "attention"), got, want):
            torch.testing.assert_close(g.double(), w, rtol=1e-4, atol=1e-6, msg=name)


def test_bad_arguments_name_the_problem():
    x, h0, params = _inputs(2, 3, 8, 4, seed=8)
    weights = [params[k] for k in PARAM_NAMES]
    with pytest.raises(ValueError, match="gate_activation must be one of"):
        eleatt_gru_sequence(x, h0, None, *weights, "relu", False)
    bad = [*weights]
    bad[3] = bad[3][:, :5]
    with pytest.raises(ValueError, match=r"weight_ih must have shape \(12, 8\)"):
        eleatt_gru_sequence(x, h0, None, *bad, "sigmoid", False)
    with pytest.raises(ValueError, match=r"weight_xa is torch\.float32"):
        eleatt_gru_sequence(x, h0, None, weights[0].float(), *weights[1:], "sigmoid", False)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=3\]"):
        eleatt_gru_sequence(x, h0, torch.tensor([0, 3]), *weights, "sigmoid", False)
    with pytest.raises(ValueError, match="non-empty"):
        eleatt_gru_sequence(x[:0], None, None, *weights, "sigmoid", False)


@functools.cache
def _small_case():
    """Inputs (float64) and the reference outputs and gradients, on the CPU."""
    lengths = torch.tensor([6, 2, 5, 4])
    x, h0, params = _inputs(4, 6, 32, 16, seed=9)
    cotangents = _loss_weights(4, 6, 32, 16, seed=9)
    reference = _values_and_grads(_reference("sigmoid", lengths), x, h0, params, cotangents)
    return lengths, x, h0, params, cotangents, reference


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("device", DEVICES)
def test_each_device_matches_the_float64_reference(device, dtype):
    """The fused path on each device, in float64 and in the float32 that training uses there,
    against the float64 reference computed on the CPU (not against another of our paths)."""
    if dtype == torch.float64:
        lengths, x, h0, params, cotangents, (want, want_grads) = _small_case()
        rtol, atol = 1e-9, 1e-10
    else:
        x, h0, params, cotangents, (want, want_grads) = _realistic_case("sigmoid")
        lengths = torch.tensor(REALISTIC_LENGTHS)
        rtol, atol = 1e-4, 1e-5
    target = torch.device(device)
    got, got_grads = _values_and_grads(
        _fused("sigmoid", lengths.to(target)),
        x.to(target, dtype),
        h0.to(target, dtype),
        {k: v.to(target, dtype) for k, v in params.items()},
        [c.to(target) for c in cotangents],
    )
    for name, g, w in zip(("output", "h_n", "attention"), got, want):
        assert g.device.type == target.type and g.dtype == dtype
        torch.testing.assert_close(g.cpu().double(), w, rtol=rtol, atol=atol, msg=name)
    for name, g, w in zip(("x", "h0", *PARAM_NAMES), got_grads, want_grads):
        scale = max(w.abs().max().item(), 1.0)
        torch.testing.assert_close(
            g.cpu().double(), w, rtol=rtol, atol=atol * scale, msg=f"grad {name}"
        )


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bf16_products_under_autocast_match_the_float64_reference(backend, loop):
    """Forced bf16 products (the automatic choice where the hardware has them): float32
    outputs, gradients and state, within bf16 rounding of the float64 reference, and not the
    float32-product result (so the products really ran in bf16)."""
    _skip_if_unavailable(backend)
    _skip_if_no_loop(loop)
    if backend == "onednn" and not matmul.onednn_bf16_available():
        pytest.skip("this CPU's oneDNN takes no bf16 operands (needs AVX512BW/VL/DQ)")
    x, h0, params, cotangents, (want, want_grads) = _realistic_case("sigmoid")
    x32, h32 = x.float(), h0.float()
    params32 = {k: v.float() for k, v in params.items()}
    run = _fused("sigmoid", torch.tensor(REALISTIC_LENGTHS))
    with use_matmul_backend(backend), use_loop(loop):
        with use_bf16_products(True), torch.autocast("cpu", dtype=torch.bfloat16):
            assert product_dtype(x32) == torch.bfloat16
            assert "products in torch.bfloat16" in describe_path(x32)
            got, got_grads = _values_and_grads(run, x32, h32, params32, cotangents)
        fp32, _ = _values_and_grads(run, x32, h32, params32, cotangents)
    for name, g, w, f in zip(("output", "h_n", "attention"), got, want, fp32):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g.double(), w, rtol=0.05, atol=0.03, msg=name)
        assert (g - f).abs().max() > 1e-4, f"{name}: bf16 products gave the float32 result"
    for name, g, w in zip(("x", "h0", *PARAM_NAMES), got_grads, want_grads):
        assert g.dtype == torch.float32
        scale = max(w.abs().max().item(), 1.0)
        torch.testing.assert_close(g.double(), w, rtol=0.05, atol=0.03 * scale, msg=f"grad {name}")


def test_precision_rule():
    """bf16 products only under bf16 autocast, and there only where the hardware has them."""
    x32 = torch.randn(2, 3, 4)
    assert product_dtype(x32) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.bfloat16 if bf16_products_native("cpu") else None
        assert product_dtype(x32) == expected
        assert product_dtype(x32.double()) is None
        with use_bf16_products(False):
            assert product_dtype(x32) is None
        with use_bf16_products(True):
            assert product_dtype(x32) == torch.bfloat16
    with use_bf16_products(True):
        assert product_dtype(x32) is None  # no autocast, no bf16


def test_autocast_keeps_float32_results_and_state():
    """Whatever the precision chosen, outputs are float32 under bf16 autocast (as nn.GRU's)."""
    torch.manual_seed(11)
    layer = eleatt_module.EleAttGRU(12, 6)
    x = torch.randn(3, 5, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, h_n, attention = layer(x, return_attention=True)
    assert output.dtype == h_n.dtype == attention.dtype == torch.float32
    (output.sum() + h_n.sum()).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in layer.parameters())


def test_cpp_loop_unavailable_falls_back_to_python_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(gru_loop, "_has_build_tools", lambda: "c++")
    monkeypatch.setitem(gru_loop._status, "text", "")
    with caplog.at_level(logging.WARNING, logger=gru_loop.__name__):
        assert not gru_loop.loop_ops_available.__wrapped__()
    assert "Python loop (no c++ on PATH" in gru_loop._status["text"]
    assert "install a C++ compiler" in caplog.text
    monkeypatch.setattr(gru_loop, "loop_ops_available", lambda: False)
    monkeypatch.setattr("video_eleatt.models.fused_gru.loop_ops_available", lambda: False)
    assert selected_loop() == "python"
    with pytest.raises(RuntimeError, match=r"C\+\+ time loop was forced"), use_loop("cpp"):
        selected_loop()
    with pytest.raises(ValueError, match="unknown time loop 'numba'"):
        use_loop("numba").__enter__()


@pytest.mark.parametrize(
    ("capability", "name", "flag"),
    [
        ("AVX2", "video_eleatt_gru_loop_avx2", "-mavx2"),
        ("AVX512", "video_eleatt_gru_loop_avx2", "-DCPU_CAPABILITY_AVX2"),
        ("DEFAULT", "video_eleatt_gru_loop", None),
        ("SVE256", "video_eleatt_gru_loop", None),
    ],
)
def test_vector_build_only_where_the_cpu_has_avx2_and_under_its_own_name(
    monkeypatch, capability, name, flag
):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    got_name, flags = gru_loop._build_variant()
    assert got_name == name
    assert (flag in flags) if flag else flags == []


def test_graphed_call_copies_in_and_out_and_captures_on_the_second_call(monkeypatch):
    """The CUDA-graph plumbing, with the graph replaced by a recorder (no GPU needed): the
    caller's tensors end as after an eager call, a key is captured on its second use, and
    at most MAX_GRAPHS are kept."""
    captured = []

    class FakeGraphedLoop:
        def __init__(self, loop, tensors):
            self.loop = loop
            self.static = [t.clone() for t in tensors]
            captured.append(len(tensors))

        def __call__(self, tensors, mutated):
            for static, tensor in zip(self.static, tensors):
                static.copy_(tensor)
            self.loop(*self.static)
            for index in mutated:
                tensors[index].copy_(self.static[index])

    def loop(source, target):
        target.copy_(source * 2)

    monkeypatch.setattr(cuda_graphs, "_GraphedLoop", FakeGraphedLoop)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    monkeypatch.setattr(cuda_graphs, "_graphs", type(cuda_graphs._graphs)())
    for call in range(3):
        source, target = torch.full((2, 3), float(call)), torch.zeros(2, 3)
        cuda_graphs.graphed_call(loop, (source, target), (1,), ("key",))
        assert target.eq(2.0 * call).all() and source.eq(float(call)).all()
        assert len(captured) == (0 if call == 0 else 1)
    for index in range(cuda_graphs.MAX_GRAPHS + 2):
        cuda_graphs.graphed_call(loop, (source, target), (1,), ("key", index))
    assert len(cuda_graphs._graphs) == cuda_graphs.MAX_GRAPHS


def test_a_refused_graph_capture_runs_the_loop_eagerly_and_says_so(monkeypatch):
    """A capture the device refuses (never seen: no GPU here) must not stop a run: the loop
    runs eagerly with the same result, a warning names the error, and no further capture is
    tried in this process."""
    attempts = []

    def refuse(loop, tensors):
        attempts.append(1)
        raise RuntimeError("operation not permitted when stream is capturing")

    def loop(source, target):
        target.copy_(source + 1)

    monkeypatch.setattr(cuda_graphs, "_GraphedLoop", refuse)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    monkeypatch.setattr(cuda_graphs, "_graphs", type(cuda_graphs._graphs)())
    monkeypatch.setitem(cuda_graphs._enabled, "graphs", True)
    source, target = torch.full((2, 3), 4.0), torch.zeros(2, 3)
    cuda_graphs.graphed_call(loop, (source, target), (1,), ("key",))  # seen once: eager
    target.zero_()
    with pytest.warns(UserWarning, match="capture of the EleAtt-GRU time loop failed"):
        cuda_graphs.graphed_call(loop, (source, target), (1,), ("key",))
    assert target.eq(5.0).all() and attempts == [1]
    target.zero_()
    cuda_graphs.graphed_call(loop, (source, target), (1,), ("key",))
    assert target.eq(5.0).all() and attempts == [1] and not cuda_graphs._enabled["graphs"]


@pytest.mark.parametrize("device", DEVICES)
def test_describe_path_names_loop_back_end_and_precision(device):
    x = torch.zeros(2, 3, 4, device=device)
    text = describe_path(x)
    assert text.startswith("fused: ") and "products in torch.float32" in text
    assert ("C++ loop" in text) == (selected_loop() == "cpp")
    assert describe_path(x.half()).startswith("autograd step loop")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("loop", LOOPS)
def test_cuda_graph_replays_match_the_float64_reference(loop):
    """Forward and backward three times on one shape: the first call runs eagerly, the second
    captures CUDA graphs, the third replays them; all match the float64 reference."""
    _skip_if_no_loop(loop)
    lengths, x, h0, params, cotangents, (want, want_grads) = _small_case()
    cuda_graphs.clear_graphs()
    with use_loop(loop):
        for call in range(3):
            got, got_grads = _values_and_grads(
                _fused("sigmoid", lengths.cuda()),
                x.cuda(),
                h0.cuda(),
                {k: v.cuda() for k, v in params.items()},
                [c.cuda() for c in cotangents],
            )
            for name, g, w in zip(("output", "h_n", "attention"), got, want):
                torch.testing.assert_close(g.cpu(), w, rtol=1e-9, atol=1e-10, msg=f"{call} {name}")
            for name, g, w in zip(("x", "h0", *PARAM_NAMES), got_grads, want_grads):
                torch.testing.assert_close(
                    g.cpu(), w, rtol=1e-9, atol=1e-10, msg=f"{call} grad {name}"
                )
    captured = [graph for graph in cuda_graphs._graphs.values() if graph is not None]
    assert len(captured) == 2  # one forward and one backward loop
