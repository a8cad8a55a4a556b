"""Fused EleAtt-GRU over a whole sequence, with a hand-written backward through time.

An autograd step loop (the fallback of :class:`~video_eleatt.models.eleatt.EleAttGRU`) runs
several small products per step forward and twice as many in autograd's backward. This module
computes the same function with as much of the arithmetic as possible in large matrix
products, and the rest in as few per-step operations as it can:

Forward (time-major, sequences sorted by length so that the active rows are a prefix):

- ``A = X W_xa^T + b_a`` for all steps at once (one (T*B, D) x (D, D) product);
- per step, ONE product of ``h_{t-1}`` with ``[W_ha; W_hh]`` stacked ((D + 3N) rows), the gate
  ``a_t = act(A_t + W_ha h_{t-1})``, ``x~_t = a_t * x_t``, and ONE product of ``x~_t``
  with ``W_ih`` (its bias carries ``b_hr`` and ``b_hz`` too); then the GRU update in
  ``nn.GRU``'s convention (gates r, z, n; ``n = tanh(W_in x~ + b_in + r * (W_hn h + b_hn))``,
  ``h = (1 - z) * n + z * h``), with n computed in h_t's contiguous rows.

Backward: per step only the two products that carry the gradient back through time
(``dx~_t = dG_i W_ih`` and ``dh_{t-1} = [da_pre, dG_h] [W_ha; W_hh]``) and a few element-wise
products of ``dh`` with factors computed for all steps before the loop; the weight gradients
of all steps and the ``W_xa`` part of ``dx`` are large products after the loop. Saved for
backward: the time-major input, the attention, the hidden states and r, z, n,
``W_hn h + b_hn`` per step (``x~`` is recomputed).

Where the work runs, chosen automatically per call (:func:`describe_path` says which):

- time loops: in C++ (``eleatt_gru_loop.cpp``: no interpreter cost per operation, and on CPU
  each step's element-wise work in a few fused vector passes; built once by
  ``scripts/setup.sh`` or on first use,
  :mod:`video_eleatt.models.gru_loop`), else the Python loops of this module, which compute
  the same thing; on CUDA, replayed from CUDA graphs (:mod:`video_eleatt.models.cuda_graphs`);
- products: the per-step ones through oneDNN with packed weights for large float32 CPU
  layers, ``torch.mm`` otherwise, and the products over all steps through ``torch.mm``;
  in bfloat16 under bf16 autocast where the hardware multiplies bf16 natively, with float32
  results, state and non-linearities (:mod:`video_eleatt.models.matmul`). Autocast itself is
  switched off inside: it would cast the products behind the back end's back.

Variable lengths are exact: outputs and attention are zero after each sequence's length,
its state is frozen there, and ``h_n`` is the state after its last valid step. The backward
is not itself differentiable (no double backward).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from video_eleatt.models.cuda_graphs import graphed_call
from video_eleatt.models.gru_loop import loop_ops_available, loop_status
from video_eleatt.models.matmul import TorchMatmul, get_matmul, matmul_backend, product_dtype
from video_eleatt.models.sequence_checks import GATE_ACTIVATIONS, resolve_lengths

_SUPPORTED_DTYPES = (torch.float32, torch.float64)
LoopName = Literal["auto", "cpp", "cpp-aten", "python"]
_loop_choice: dict[str, str] = {"name": "auto"}


def fused_gru_supported(x: Tensor) -> bool:
    """True where :func:`eleatt_gru_sequence` applies to input ``x`` (B, T, D).

    Float32 or float64 on CPU or CUDA, with at least one sample and one step, outside
    ``torch.compile`` tracing (its Python loop over steps would break the graph).
    """
    return (
        isinstance(x, Tensor)
        and x.dim() == 3
        and x.shape[0] > 0
        and x.shape[1] > 0
        and x.dtype in _SUPPORTED_DTYPES
        and x.device.type in ("cpu", "cuda")
        and not torch.compiler.is_compiling()
    )


def _steps_and_order(lengths: Tensor | None, batch: int, steps: int):
    """Active batch size per step, the sort order (or None) and its inverse.

    Returns:
        ``batch_sizes`` (list of T ints, non-increasing), ``order`` (B,) int64 such that the
        sorted batch is ``x[order]`` (None when every sequence has T steps), ``inverse`` with
        ``sorted[inverse] == original``, and the sorted lengths (B,) on CPU.
    """
    if lengths is None:
        return [batch] * steps, None, None, None
    lengths_cpu = lengths.detach().to("cpu", torch.int64)
    if int(lengths_cpu.min()) == steps:
        return [batch] * steps, None, None, None
    sorted_lengths, order = torch.sort(lengths_cpu, descending=True, stable=True)
    batch_sizes = (sorted_lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(batch)
    return batch_sizes.tolist(), order, inverse, sorted_lengths


def _to_sorted_time_major(tensor: Tensor, order: Tensor | None) -> Tensor:
    """(B, T, ...) batch-first -> (T, B, ...) contiguous, rows in ``order``."""
    time_major = tensor.transpose(0, 1)
    if order is None:
        return time_major.contiguous()
    return time_major.index_select(1, order.to(tensor.device))


def _to_batch_first(tensor: Tensor, inverse: Tensor | None) -> Tensor:
    """(T, B, ...) sorted time-major -> (B, T, ...) contiguous in the original order."""
    batch_first = tensor.transpose(0, 1)
    if inverse is None:
        return batch_first.contiguous()
    return batch_first.index_select(0, inverse.to(tensor.device))


def _activate_gate(pre: Tensor, softmax: bool) -> None:
    """In place: the gate's pre-activation (b, D) -> a_t."""
    if softmax:
        pre.copy_(torch.softmax(pre, dim=1))
    else:
        pre.sigmoid_()


def _forward_steps_python(
    x_seq, attention, hidden_all, gates, weight_h, bias_hn, weight_ih, bias_i,
    batch_sizes, softmax, keep, mm,
) -> None:  # fmt: skip
    """The forward time loop, in place on ``attention``, ``hidden_all`` and ``gates``.

    ``attention`` (T, B, D) holds ``W_xa x_t + b_a`` on entry and ``a_t`` on exit;
    ``hidden_all`` (T + 1, B, N) holds h_0 in row 0 and gets h_1 .. h_T; ``gates`` gets
    r, z, n and ``W_hn h + b_hn`` per step (one reused row when not ``keep``: then n is not
    stored). ``weight_h`` is ``[W_ha; W_hh]`` without bias: ``b_a`` is already in
    ``attention``, ``b_hr`` and ``b_hz`` are in ``bias_i`` (with ``b_i``), and ``bias_hn``
    is added here. The C++ op ``video_eleatt_gru::forward_steps`` (eleatt_gru_loop.cpp)
    computes the same (line for line with ``fuse = false``).
    """
    steps, batch, input_size = x_seq.shape
    hidden = hidden_all.shape[2]
    for t in range(steps):
        rows = batch_sizes[t]
        h_prev = hidden_all[t, :rows]  # (b, N)
        projected = mm.linear(h_prev, weight_h)  # (b, D + 3N)
        gate = attention[t, :rows]  # (b, D)
        gate.add_(projected[:, :input_size])
        _activate_gate(gate, softmax)
        x_mod = gate * x_seq[t, :rows]  # (b, D)
        gi = mm.linear(x_mod, weight_ih, bias_i)  # (b, 3N)
        gh = projected[:, input_size:]  # (b, 3N)
        step_gates = gates[t if keep else 0, :rows]  # (b, 4N)
        reset_update = step_gates[:, : 2 * hidden]
        hidden_part = step_gates[:, 3 * hidden :]
        torch.add(gi[:, : 2 * hidden], gh[:, : 2 * hidden], out=reset_update).sigmoid_()
        torch.add(gh[:, 2 * hidden :], bias_hn, out=hidden_part)
        # n is computed in h_t's own (contiguous) rows: tanh runs several times slower on a
        # strided view. Then h_t = n + z * (h_{t-1} - n).
        h_next = hidden_all[t + 1, :rows]
        torch.mul(reset_update[:, :hidden], hidden_part, out=h_next)
        h_next.add_(gi[:, 2 * hidden :]).tanh_()
        if keep:
            step_gates[:, 2 * hidden : 3 * hidden] = h_next
        torch.lerp(h_next, h_prev, reset_update[:, hidden:], out=h_next)
        if rows < batch:
            attention[t, rows:].zero_()
            hidden_all[t + 1, rows:].zero_()
            gates[t if keep else 0, rows:].zero_()


@contextlib.contextmanager
def use_loop(name: LoopName) -> Iterator[None]:
    """Force the time loop inside the ``with`` block (tests, benchmarks).

    Args:
        name: ``"auto"`` (C++ where it is built, else Python), ``"cpp"`` (error if the C++
            loop cannot be built here), ``"cpp-aten"`` (the C++ loop with ATen's element-wise
            kernels instead of its fused passes, as it runs on CUDA) or ``"python"``.
    """
    names = ("auto", "cpp", "cpp-aten", "python")
    if name not in names:
        raise ValueError(f"unknown time loop {name!r}; expected one of {', '.join(names)}")
    previous = _loop_choice["name"]
    _loop_choice["name"] = name
    try:
        yield
    finally:
        _loop_choice["name"] = previous


def selected_loop() -> str:
    """``"cpp"`` or ``"python"``: the time loop the next call runs."""
    choice = _loop_choice["name"]
    if choice == "python":
        return "python"
    if choice in ("cpp", "cpp-aten") and not loop_ops_available():
        raise RuntimeError(f"the C++ time loop was forced but is unavailable: {loop_status()}")
    return "cpp" if loop_ops_available() else "python"


def _run_steps(kind: str, tensors: tuple, mutated: tuple[int, ...], options: tuple, mm) -> None:
    """Run the forward or backward time loop on ``tensors`` (in place on those in ``mutated``).

    C++ where it is built, else Python; on CUDA, replayed from a CUDA graph once a shape has
    been seen before (:func:`video_eleatt.models.cuda_graphs.graphed_call`), so that the GPU
    does not wait for the CPU to launch a dozen kernels per step.
    """
    if selected_loop() == "cpp":
        op = getattr(torch.ops.video_eleatt_gru, f"{kind}_steps")
        backend = 1 if mm.name == "onednn" else 0
        fuse = _loop_choice["name"] != "cpp-aten"

        def loop(*args):
            op(*args, list(options[0]), *options[1:], backend, mm.product_dtype is not None, fuse)
    else:
        python_loop = _forward_steps_python if kind == "forward" else _backward_steps_python

        def loop(*args):
            python_loop(*args, *options, mm)

    device = next(t for t in tensors if t is not None).device
    if device.type == "cuda":
        key = (kind, mm.name, mm.product_dtype, tuple(options[0]), *options[1:])
        graphed_call(loop, tensors, mutated, key)
    else:
        loop(*tensors)


def describe_path(x: Tensor, training: bool = True, hidden_size: int | None = None) -> str:
    """One line: which path :class:`~video_eleatt.models.eleatt.EleAttGRU` takes for ``x``.

    Call it in the context the layer runs in (e.g. under ``torch.autocast``): it names the
    time loop, the product back end (which depends on the layer's size: give
    ``hidden_size``) and the products' precision.
    """
    if not fused_gru_supported(x):
        return f"autograd step loop (the fused path does not take {x.dtype} on {x.device})"
    loop = "Python loop (forced)" if _loop_choice["name"] == "python" else loop_status()
    if x.device.type == "cuda":
        loop += ", CUDA graph per shape after its first call"
    weight_elements = None if hidden_size is None else 3 * hidden_size * x.shape[-1]
    products = f"{matmul_backend(x, weight_elements)} products in {product_dtype(x) or x.dtype}"
    if product_dtype(x) is None and torch.is_autocast_enabled(x.device.type):
        products += " (bf16 autocast, but this device has no native bf16 products)"
    backward = "hand-written backward" if training else "no graph kept"
    return f"fused: {loop}; {products}; {backward}"


def _forward(x, h0, lengths, weights, softmax: bool, mm: TorchMatmul, keep_for_backward: bool):
    """The forward recursion. Returns output, h_n, attention (T, B, D) and saved state."""
    weight_xa, weight_ha, bias_a, weight_ih, weight_hh, bias_ih, bias_hh = weights
    batch, steps, input_size = x.shape
    hidden = weight_hh.shape[1]
    batch_sizes, order, inverse, sorted_lengths = _steps_and_order(lengths, batch, steps)

    x_seq = _to_sorted_time_major(x, order)  # (T, B, D)
    h_first = h0 if order is None else h0.index_select(0, order.to(h0.device))
    weight_h = torch.cat([weight_ha, weight_hh])  # (D + 3N, N): [W_ha; W_hh]
    packed_h = mm.pack(weight_h, batch)
    packed_ih = mm.pack(weight_ih, batch)
    # The biases go where they cost nothing per step: b_a into the product below, b_hr and
    # b_hz into W_ih's bias; only b_hn (multiplied by r) is added in the loop.
    bias_i = torch.cat([bias_ih[: 2 * hidden] + bias_hh[: 2 * hidden], bias_ih[2 * hidden :]])
    bias_hn = bias_hh[2 * hidden :]

    # Gate pre-activations from the input, all steps at once; a_t is written over them.
    attention = mm.sequence_linear(x_seq.view(steps * batch, input_size), weight_xa, bias_a)
    attention = attention.view(steps, batch, input_size)  # (T, B, D)
    hidden_all = x.new_empty(steps + 1, batch, hidden)  # (T + 1, B, N): h_0 .. h_T
    hidden_all[0] = h_first
    # r, z, n and W_hn h + b_hn per step, for the backward pass.
    gates = x.new_empty(steps if keep_for_backward else 1, batch, 4 * hidden)  # (T, B, 4N)
    loop_args = (x_seq, attention, hidden_all, gates, packed_h, bias_hn, packed_ih, bias_i)
    _run_steps("forward", loop_args, (1, 2, 3), (batch_sizes, softmax, keep_for_backward), mm)

    if order is None:
        h_last = hidden_all[steps].clone()
    else:
        # Sorted row i ends after step sorted_lengths[i]; index H[length, row] per sample.
        device = x.device
        h_last = hidden_all[sorted_lengths.to(device), torch.arange(batch, device=device)]
        h_last = h_last.index_select(0, inverse.to(device))
    output = _to_batch_first(hidden_all[1:], inverse)  # (B, T, N)
    saved = (x_seq, attention, hidden_all, gates, batch_sizes, order, inverse)
    return output, h_last, saved


def _backward_steps_python(
    grad_h, grad_out_seq, factors_i, factors_h, gate_factor, gate_extra, attention, update,
    grad_projected, grad_gi, grad_x_mod, weight_h_t, weight_ih_t, batch_sizes, softmax, mm,
) -> None:  # fmt: skip
    """The backward time loop, in place on ``grad_h``, ``grad_projected``, ``grad_gi`` and
    ``grad_x_mod`` (see :func:`_backward`). The C++ op ``video_eleatt_gru::backward_steps``
    (eleatt_gru_loop.cpp) computes the same (line for line with ``fuse = false``)."""
    steps, batch, _, hidden = factors_i.shape
    input_size = attention.shape[2]
    for t in range(steps - 1, -1, -1):
        rows = batch_sizes[t]
        dh = grad_h[:rows]  # (b, N)
        if grad_out_seq is not None:
            dh.add_(grad_out_seq[t, :rows])
        dh_blocks = dh.unsqueeze(1)  # (b, 1, N)
        dgi = grad_gi[t, :rows]  # (b, 3N)
        torch.mul(dh_blocks, factors_i[t, :rows], out=dgi.view(rows, 3, hidden))
        dgh = grad_projected[t, :rows, input_size:]  # (b, 3N)
        torch.mul(dh_blocks, factors_h[t, :rows], out=dgh.view(rows, 3, hidden))
        d_x_mod = mm.linear(dgi, weight_ih_t)  # (b, D)
        if grad_x_mod is not None:
            grad_x_mod[t, :rows] = d_x_mod
        d_gate_pre = grad_projected[t, :rows, :input_size]  # (b, D)
        if gate_extra is None:
            torch.mul(d_x_mod, gate_factor[t, :rows], out=d_gate_pre)
        else:
            torch.addcmul(gate_extra[t, :rows], d_x_mod, gate_factor[t, :rows], out=d_gate_pre)
        if softmax:
            gate = attention[t, :rows]
            total = d_gate_pre.sum(dim=1, keepdim=True)  # (b, 1)
            d_gate_pre.addcmul_(gate, total, value=-1)
        # dh_{t-1} = dh * z + [da_pre, dG_h] [W_ha; W_hh]
        d_h_prev = mm.linear(grad_projected[t, :rows], weight_h_t)  # (b, N)
        torch.addcmul(d_h_prev, dh, update[t, :rows], out=dh)
        if rows < batch:
            grad_projected[t, rows:].zero_()
            grad_gi[t, rows:].zero_()
            if grad_x_mod is not None:
                grad_x_mod[t, rows:].zero_()


def _backward(grad_output, grad_h_last, grad_attention, saved, weights, softmax, mm, need_x):
    """Backward through time. Returns the gradients in the order of the Function inputs."""
    x_seq, attention, hidden_all, gates, batch_sizes, order, inverse = saved
    weight_xa, weight_ha, weight_ih, weight_hh = weights
    steps, batch, input_size = x_seq.shape
    hidden = weight_hh.shape[1]
    device = x_seq.device

    # Transposed weights for the two products per step that carry gradients backwards.
    weight_h = torch.cat([weight_ha, weight_hh])  # (D + 3N, N)
    packed_h_t = mm.pack(weight_h.t(), batch)  # as a linear weight: (N, D + 3N)
    packed_ih_t = mm.pack(weight_ih.t(), batch)  # (D, 3N)

    def sorted_time_major(grad: Tensor | None) -> Tensor | None:
        if grad is None:
            return None
        time_major = grad.transpose(0, 1)  # (T, B, ...)
        return time_major if order is None else time_major.index_select(1, order.to(device))

    grad_out_seq = sorted_time_major(grad_output)  # (T, B, N)
    grad_att_seq = sorted_time_major(grad_attention)  # (T, B, D)
    if grad_h_last is None:
        grad_h = x_seq.new_zeros(batch, hidden)
    elif order is None:
        grad_h = grad_h_last.clone()
    else:
        grad_h = grad_h_last.index_select(0, order.to(device))

    # Everything in the step gradients that does not depend on dh is computed here for all
    # steps at once, so that each step is dh times a stored factor:
    #   dG_i = dh * [s_r, s_z, s_n],  dG_h = dh * [s_r, s_z, s_n * r]   (pre-activations)
    #   s_n = (1 - z)(1 - n^2),  s_z = (h_prev - n) z (1 - z),  s_r = s_n (W_hn h + b_hn) r (1 - r)
    reset, update = gates[..., :hidden], gates[..., hidden : 2 * hidden]
    candidate, hidden_part = gates[..., 2 * hidden : 3 * hidden], gates[..., 3 * hidden :]
    factors_i = x_seq.new_empty(steps, batch, 3, hidden)  # (T, B, 3, N): s_r, s_z, s_n
    factors_h = x_seq.new_empty(steps, batch, 3, hidden)  # (T, B, 3, N): s_r, s_z, s_n * r
    s_r, s_z, s_n = factors_i.unbind(2)
    one_minus_update = 1 - update
    torch.mul(candidate, candidate, out=s_n)
    s_n.neg_().add_(1).mul_(one_minus_update)
    torch.sub(hidden_all[:steps], candidate, out=s_z)
    s_z.mul_(update).mul_(one_minus_update)
    del one_minus_update
    torch.mul(s_n, hidden_part, out=s_r)
    s_r.mul_(reset).mul_(1 - reset)
    factors_h[:, :, :2].copy_(factors_i[:, :, :2])
    torch.mul(s_n, reset, out=factors_h[:, :, 2])
    # The gate: da_pre = dx~ * x * a (1 - a) (sigmoid), or, with u = dx~ * x * a,
    # u - a * sum(u) (softmax); plus the attention output's own gradient.
    gate_factor = attention * x_seq  # (T, B, D): x~ (zero on padded rows)
    if softmax:
        gate_extra = None if grad_att_seq is None else grad_att_seq * attention
    else:
        gate_factor.addcmul_(gate_factor, attention, value=-1)  # x * a (1 - a)
        gate_extra = None
        if grad_att_seq is not None:
            gate_extra = grad_att_seq * attention * (1 - attention)

    # Step gradients; zero on padded rows so the products after the loop can run over all
    # T * B rows.
    grad_projected = x_seq.new_empty(steps, batch, input_size + 3 * hidden)  # [da_pre, dG_h]
    grad_gi = x_seq.new_empty(steps, batch, 3 * hidden)  # dG_i: (T, B, 3N)
    grad_x_mod = x_seq.new_empty(steps, batch, input_size) if need_x else None  # (T, B, D)
    loop_args = (
        grad_h, grad_out_seq, factors_i, factors_h, gate_factor, gate_extra, attention,
        update, grad_projected, grad_gi, grad_x_mod, packed_h_t, packed_ih_t,
    )  # fmt: skip
    _run_steps("backward", loop_args, (0, 8, 9, 10), (batch_sizes, softmax), mm)
    del loop_args  # its step factors must not outlive the loop (peak memory)
    x_mod = gate_factor if softmax else None  # softmax's factor is x~ itself
    del factors_i, factors_h, gate_factor, gate_extra

    # Weight gradients of all steps at once: dW = sum over the T * B rows of grad^T inputs.
    rows_all = steps * batch
    grad_projected_2d = grad_projected.view(rows_all, input_size + 3 * hidden)
    grad_gate_pre = grad_projected_2d[:, :input_size].contiguous()  # (T*B, D)
    grad_weight_h = mm.grad_weight(
        grad_projected_2d, hidden_all[:steps].view(rows_all, hidden)
    )  # (D + 3N, N)
    grad_bias_h = grad_projected_2d.sum(0)  # (D + 3N,)
    del grad_projected, grad_projected_2d
    if x_mod is None:
        x_mod = attention * x_seq  # (T, B, D): x~ again
    grad_gi_2d = grad_gi.view(rows_all, 3 * hidden)
    grad_weight_ih = mm.grad_weight(grad_gi_2d, x_mod.view(rows_all, input_size))  # (3N, D)
    grad_bias_ih = grad_gi_2d.sum(0)
    del x_mod, grad_gi, grad_gi_2d
    grad_weight_xa = mm.grad_weight(grad_gate_pre, x_seq.view(rows_all, input_size))  # (D, D)

    grad_x = None
    if need_x:
        # dx = a * dx~ + da_pre W_xa
        direct = grad_x_mod.mul_(attention).view(rows_all, input_size)
        del grad_x_mod
        grad_x_seq = mm.linear_add(grad_gate_pre, weight_xa.t(), direct)  # (T*B, D)
        del direct, grad_gate_pre
        grad_x = _to_batch_first(grad_x_seq.view(steps, batch, input_size), inverse)  # (B, T, D)
    grad_h0 = grad_h if order is None else grad_h.index_select(0, inverse.to(device))
    return (
        grad_x,
        grad_h0,
        grad_weight_xa,
        grad_weight_h[:input_size],
        grad_bias_h[:input_size],
        grad_weight_ih,
        grad_weight_h[input_size:],
        grad_bias_ih,
        grad_bias_h[input_size:],
    )


class _EleAttGRUFunction(torch.autograd.Function):
    """Autograd wrapper: forward and hand-written backward through time."""

    @staticmethod
    def forward(ctx, x, h0, lengths, *args):
        *weights, softmax, return_attention, mm = args
        output, h_last, saved = _forward(x, h0, lengths, weights, softmax, mm, True)
        x_seq, attention, hidden_all, gates, batch_sizes, order, inverse = saved
        weight_xa, weight_ha, _, weight_ih, weight_hh, _, _ = weights
        ctx.save_for_backward(
            x_seq, attention, hidden_all, gates, weight_xa, weight_ha, weight_ih, weight_hh
        )
        ctx.meta = (batch_sizes, order, inverse, softmax, mm)
        attention_out = _to_batch_first(attention, inverse) if return_attention else None
        return output, h_last, attention_out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output, grad_h_last, grad_attention):
        x_seq, attention, hidden_all, gates, *weights = ctx.saved_tensors
        batch_sizes, order, inverse, softmax, mm = ctx.meta
        saved = (x_seq, attention, hidden_all, gates, batch_sizes, order, inverse)
        # Products in the precision the forward pass chose (mm), never autocast's.
        with torch.autocast(x_seq.device.type, enabled=False):
            grad_x, grad_h0, *grad_weights = _backward(
                grad_output,
                grad_h_last,
                grad_attention,
                saved,
                weights,
                softmax,
                mm,
                need_x=ctx.needs_input_grad[0],
            )
        return (grad_x, grad_h0, None, *grad_weights, None, None, None)


def eleatt_gru_sequence(
    x: Tensor,
    h0: Tensor | None,
    lengths: Tensor | Sequence[int] | None,
    weight_xa: Tensor,
    weight_ha: Tensor,
    bias_a: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor,
    bias_hh: Tensor,
    gate_activation: str,
    return_attention: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run one EleAtt-GRU layer over a batch of sequences (fused fast path).

    Computes, for each sample and each valid step t (``nn.GRU`` arithmetic, gates r, z, n):
    ``a_t = act(W_xa x_t + W_ha h_{t-1} + b_a)``, ``x~_t = a_t * x_t`` and the GRU update of
    ``h`` from ``x~_t``. Differentiable w.r.t. ``x``, ``h0``, all weights and biases (and,
    when returned, through the attention); the backward is hand-written, not autograd's.

    Args:
        x: (B, T, D) batch-first input, float32 or float64.
        h0: (B, N) initial state, or None for zeros.
        lengths: (B,) integers in [1, T] (tensor on any device, or a sequence), or None when
            every sequence has all T steps.
        weight_xa: (D, D) gate weight on the input.
        weight_ha: (D, N) gate weight on the previous state.
        bias_a: (D,) gate bias.
        weight_ih: (3N, D) ``nn.GRU``'s input weights (r, z, n).
        weight_hh: (3N, N) ``nn.GRU``'s hidden weights.
        bias_ih: (3N,) input-side bias.
        bias_hh: (3N,) hidden-side bias.
        gate_activation: ``"sigmoid"`` or ``"softmax"`` (over the D elements).
        return_attention: also return ``a_t``.

    Returns:
        output (B, T, N), zero after each sequence's length; h_n (B, N), the state after each
        sequence's last valid step; attention (B, T, D), zero at padded steps, or None.

    >>> B, T, D, N = 2, 4, 6, 3
    >>> w = [torch.randn(D, D), torch.randn(D, N), torch.randn(D), torch.randn(3 * N, D),
    ...      torch.randn(3 * N, N), torch.randn(3 * N), torch.randn(3 * N)]
    >>> out, h_n, att = eleatt_gru_sequence(torch.randn(B, T, D), None, torch.tensor([4, 2]),
    ...                                     *w, "sigmoid", True)
    >>> out.shape, h_n.shape, att.shape, bool(out[1, 2:].eq(0).all())
    (torch.Size([2, 4, 3]), torch.Size([2, 3]), torch.Size([2, 4, 6]), True)
    """
    if gate_activation not in GATE_ACTIVATIONS:
        raise ValueError(
            f"gate_activation must be one of {GATE_ACTIVATIONS}; got {gate_activation!r}"
        )
    if not fused_gru_supported(x):
        what = f"{x.dtype} {tuple(x.shape)} on {x.device}" if isinstance(x, Tensor) else type(x)
        raise ValueError(
            f"eleatt_gru_sequence: input must be a non-empty (B, T, D) float32/float64 tensor "
            f"on CPU or CUDA; got {what}. Check fused_gru_supported(x) first, or use "
            "EleAttGRU, which falls back to its step loop."
        )
    batch, _, input_size = x.shape
    hidden = weight_hh.shape[1]
    weights = (weight_xa, weight_ha, bias_a, weight_ih, weight_hh, bias_ih, bias_hh)
    expected = {
        "weight_xa": (input_size, input_size),
        "weight_ha": (input_size, hidden),
        "bias_a": (input_size,),
        "weight_ih": (3 * hidden, input_size),
        "weight_hh": (3 * hidden, hidden),
        "bias_ih": (3 * hidden,),
        "bias_hh": (3 * hidden,),
    }
    for (name, shape), weight in zip(expected.items(), weights):
        if tuple(weight.shape) != shape:
            raise ValueError(
                f"eleatt_gru_sequence: {name} must have shape {shape} for D={input_size}, "
                f"N={hidden}; got {tuple(weight.shape)}"
            )
        if weight.dtype != x.dtype or weight.device != x.device:
            raise ValueError(
                f"eleatt_gru_sequence: {name} is {weight.dtype} on {weight.device} but the "
                f"input is {x.dtype} on {x.device}; move the layer with .to(x)"
            )
    if h0 is None:
        h0 = x.new_zeros(batch, hidden)
    elif tuple(h0.shape) != (batch, hidden):
        raise ValueError(
            f"eleatt_gru_sequence: h0 must have shape (B, N) = {(batch, hidden)}; got "
            f"{tuple(h0.shape)}"
        )
    lengths = resolve_lengths(x, lengths, owner="eleatt_gru_sequence")
    softmax = gate_activation == "softmax"
    # Decided in the caller's context (bf16 autocast or not), then autocast is switched off:
    # the products' precision is mm's, and nothing else may be cast behind its back.
    mm = get_matmul(matmul_backend(x, weight_ih.numel()), product_dtype(x))
    tensors = (x, h0, *weights)
    with torch.autocast(x.device.type, enabled=False):
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            output, h_last, attention = _EleAttGRUFunction.apply(
                x, h0, lengths, *weights, softmax, return_attention, mm
            )
            return output, h_last, attention
        # Inference: no graph, no per-step gates kept for a backward pass.
        output, h_last, saved = _forward(x, h0, lengths, weights, softmax, mm, False)
    attention = _to_batch_first(saved[1], saved[6]) if return_attention else None
    return output, h_last, attention
