"""Matrix products of the fused EleAtt-GRU: which library computes them, in which precision.

Back ends (:func:`matmul_backend` picks one per call):

- ``"onednn"``: the per-step products of a sequence through oneDNN with weights reordered
  ("packed") once per sequence (``torch.ops.mkldnn._reorder_linear_weight`` /
  ``_linear_pointwise``, internal torch ops); on the AMD EPYCs this was measured on, torch's
  bundled MKL ran them at about 0.6x oneDNN's rate. The products over all steps at once (the
  gate's input product, the weight gradients, the input gradient) stay with MKL, which ran
  them faster (135-147 vs 72-120 GFLOP/s at the paper's RGB size, float32). Used only when
  the ops exist, ``torch.backends.mkldnn`` is enabled and a one-time self-check against
  ``torch.addmm`` passes (:func:`onednn_available`).
- ``"torch"``: public ``torch.mm`` / ``torch.addmm`` (any dtype and device; float64 for
  gradcheck, CUDA).

Precision (:func:`product_dtype`): under ``torch.autocast(dtype=torch.bfloat16)`` on a device
whose hardware multiplies bfloat16 natively (CUDA with bf16 support; a CPU with AVX512-BF16 or
AMX), the products take bfloat16 operands and accumulate in float32 inside the library; their
results come back as float32, and every non-linearity, the recurrent state and the saved
tensors stay float32 — what autocast does to ``nn.GRU``'s own products. Elsewhere (and
outside autocast) products run in the input's dtype: on a CPU without native bf16, oneDNN
emulates bf16 products at a small fraction of its float32 rate, so float32 is both faster and
more accurate there.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor

from video_eleatt.hardware import cpu_has_native_bfloat16

logger = logging.getLogger(__name__)

BackendName = Literal["auto", "onednn", "torch"]

# oneDNN's packed weights pay off for large layers only. Measured with the C++ loop on the
# 2-core AVX2 EPYC, 2 threads, EleAtt-GRU time / nn.GRU, oneDNN vs torch.mm (MKL):
# (B, T, D, N) = (1, 32, 2048, 512) train 2.19 vs 2.80, inference 2.63 vs 5.41;
# (32, 12, 512, 128) train 2.24 vs 1.69, inference 2.90 vs 2.33;
# (256, 100, 150, 100) train 1.83 vs 1.59, inference 1.56 vs 1.52. The weight is
# 3N x D = 3.1M elements in the first, 197k and 45k in the others.
ONEDNN_MIN_INPUT_WEIGHT = 1 << 20
# From this many rows, a product over all steps at once goes to MKL (see OneDnnMatmul).
MKL_MIN_ROWS = 1024

# What matmul_backend() and product_dtype() pick on "auto"; changed by the context managers.
_choice: dict[str, object] = {"backend": "auto", "bf16": None}


class TorchMatmul:
    """Public-API products: ``linear(x, w) = x @ w^T`` through torch.mm / torch.addmm.

    With ``product_dtype`` set (bfloat16), operands are cast to it and results back to the
    dtype of ``x``; weights are cast once by :meth:`pack`.
    """

    name = "torch"

    def __init__(self, product_dtype: torch.dtype | None = None) -> None:
        self.product_dtype = product_dtype

    def pack(self, weight: Tensor, batch_size: int) -> Tensor:
        return weight if self.product_dtype is None else weight.to(self.product_dtype)

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        if self.product_dtype is not None:
            result = torch.mm(x.to(self.product_dtype), weight.t().to(self.product_dtype))
            result = result.to(x.dtype)
            return result if bias is None else result.add_(bias)
        if bias is None:
            return torch.mm(x, weight.t())
        return torch.addmm(bias, x, weight.t())

    def sequence_linear(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """:meth:`linear` for a product over all steps at once (unpacked ``weight``)."""
        return self.linear(x, weight, bias)

    def linear_add(self, x: Tensor, weight: Tensor, other: Tensor) -> Tensor:
        """``x @ weight^T + other``; may write into ``other``."""
        if self.product_dtype is not None:
            return other.add_(self.linear(x, weight))
        return other.addmm_(x, weight.t())

    def grad_weight(self, grad: Tensor, inputs: Tensor) -> Tensor:
        """``grad^T @ inputs``: (M, O) and (M, I) -> (O, I), summed over the M rows."""
        # TorchMatmul.linear, not self.linear: OneDnnMatmul reuses this for its float32
        # weight gradients, which must reach MKL, not its own oneDNN linear.
        return TorchMatmul.linear(self, grad.t(), inputs.t())


class OneDnnMatmul(TorchMatmul):
    """CPU products through oneDNN with pre-packed ("reordered") weights."""

    name = "onednn"

    def pack(self, weight: Tensor, batch_size: int) -> Tensor:
        if self.product_dtype is not None:
            weight = weight.to(self.product_dtype)
        if batch_size == 1:
            # One row per product: oneDNN's plain-layout kernel streams the weight at least as
            # fast as the packed one (0.23 vs 0.29 ms for 1536 x 2048 on the EPYC), and the
            # reorder (1.5-4 ms per 12 MiB) would be wasted.
            return weight.contiguous()
        return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), batch_size)

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        if self.product_dtype is not None:
            operand = x.to(self.product_dtype)
            if weight.dtype != self.product_dtype:
                weight = weight.to(self.product_dtype)
            result = torch.ops.mkldnn._linear_pointwise(operand, weight, None, "none", [], "")
            result = result.to(x.dtype)
            return result if bias is None else result.add_(bias)
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")

    # Products over all steps at once: MKL computed the weight gradients faster than oneDNN
    # at every size measured (2-core EPYC, 2 threads; 127-147 vs 72-120 GFLOP/s at
    # T*B = 512 and 2048 rows), and x @ W^T from MKL_MIN_ROWS rows up (2048 rows: 136-140 vs
    # 148-157 ms for D = 2048), while oneDNN was faster below that (32 rows: 3.5-4.1 vs
    # 4.2-5.3 ms). oneDNN keeps the per-step products.

    def sequence_linear(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        if self.product_dtype is None and x.shape[0] >= MKL_MIN_ROWS:
            return TorchMatmul.linear(self, x, weight, bias)
        return self.linear(x, weight, bias)

    def linear_add(self, x: Tensor, weight: Tensor, other: Tensor) -> Tensor:
        if self.product_dtype is None and x.shape[0] >= MKL_MIN_ROWS:
            return TorchMatmul.linear_add(self, x, weight, other)
        if self.product_dtype is not None:
            return other.add_(self.linear(x, weight))
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, None, "add")

    def grad_weight(self, grad: Tensor, inputs: Tensor) -> Tensor:
        if self.product_dtype is None:
            return TorchMatmul.grad_weight(self, grad, inputs)
        # Both operands are passed as transposed views of dense (M, .) matrices: the weight
        # operand is reordered into oneDNN's blocked layout (cheap for any dense layout), the
        # source is copied. Copy the narrower one and transpose the (small) result if needed.
        # (A weight with padded rows, e.g. a column slice, falls on a very slow path.)
        grad, inputs = grad.contiguous(), inputs.contiguous()
        if inputs.shape[1] < grad.shape[1]:
            return self.linear(inputs.t(), grad.t()).t().contiguous()
        return self.linear(grad.t(), inputs.t())


_BACKEND_CLASSES = {"torch": TorchMatmul, "onednn": OneDnnMatmul}
_ONEDNN = OneDnnMatmul()


def onednn_bf16_available() -> bool:
    """Whether oneDNN takes bf16 operands here (it needs AVX512BW/VL/DQ or AVX-NE-CONVERT)."""
    checker = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(checker is not None and checker())
    except RuntimeError:
        return False


def get_matmul(name: str, product_dtype: torch.dtype | None = None) -> TorchMatmul:
    """The product back end ``name`` (``"onednn"`` or ``"torch"``) in ``product_dtype``.

    bf16 products on a CPU whose oneDNN refuses bf16 go through ``torch.mm`` instead.
    """
    if name == "onednn" and product_dtype is not None and not onednn_bf16_available():
        name = "torch"
    return _BACKEND_CLASSES[name](product_dtype)


@functools.cache
def onednn_available() -> bool:
    """Whether the internal oneDNN linear ops exist here and compute correct products.

    Checked once per process against ``torch.addmm`` in float64: packed and unpacked weights,
    a bias, a batch size other than the one the weights were packed for, a non-contiguous
    input and the fused add (float32 weight gradients go to MKL, not oneDNN). A failure is
    logged and the public ``torch.mm`` path is used instead.
    """
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(24, 7, generator=generator).t()  # (7, 24), non-contiguous
        weight = torch.randn(40, 24, generator=generator)
        bias = torch.randn(40, generator=generator)
        expected = torch.addmm(bias.double(), x.double(), weight.double().t())
        packed = _ONEDNN.pack(weight, 16)
        results = [
            _ONEDNN.linear(x, packed, bias),
            _ONEDNN.linear(x.contiguous(), weight, bias),
            _ONEDNN.linear(x[:3].contiguous(), packed) + bias,
            _ONEDNN.linear_add(x, weight, bias.expand(7, 40).contiguous()),
        ]
        expected_rows = [expected, expected, expected[:3], expected]
        errors = [(r.double() - e).abs().max().item() for r, e in zip(results, expected_rows)]
    except AttributeError as err:  # this torch build has no such ops
        logger.info("oneDNN linear ops unavailable (%s); using torch.mm", err)
        return False
    except Exception as err:  # any other failure of an internal op: do not rely on it
        logger.warning("oneDNN linear self-check raised %r; using torch.mm", err)
        return False
    if max(errors) > 1e-3:
        logger.warning(
            "oneDNN linear self-check failed (max abs error %.3g vs torch.addmm); using torch.mm",
            max(errors),
        )
        return False
    return True


@contextlib.contextmanager
def use_matmul_backend(name: BackendName) -> Iterator[None]:
    """Force a back end for the products inside the ``with`` block (tests, benchmarks).

    Args:
        name: ``"auto"`` (the default rule of :func:`matmul_backend`), ``"onednn"`` (error
            if it is unavailable) or ``"torch"``.
    """
    if name not in ("auto", *_BACKEND_CLASSES):
        raise ValueError(
            f"unknown matmul back end {name!r}; expected one of 'auto', 'onednn', 'torch'"
        )
    previous = _choice["backend"]
    _choice["backend"] = name
    try:
        yield
    finally:
        _choice["backend"] = previous


def matmul_backend(x: Tensor, input_weight_elements: int | None = None) -> str:
    """The back end the fused GRU uses for input ``x``: ``"onednn"`` or ``"torch"``.

    ``"onednn"`` on ``"auto"`` when ``x`` is float32 on CPU, ``torch.backends.mkldnn`` is
    available and enabled, :func:`onednn_available` passes and the layer's input weight
    ``W_ih`` (3N x D) has at least ``ONEDNN_MIN_INPUT_WEIGHT`` elements (or its size is not
    given); otherwise ``"torch"``.
    """
    eligible = (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
    )
    large = input_weight_elements is None or input_weight_elements >= ONEDNN_MIN_INPUT_WEIGHT
    choice = _choice["backend"]
    if choice == "torch":
        return "torch"
    if choice == "onednn":
        if not (eligible and onednn_available()):
            raise RuntimeError(
                f"matmul back end 'onednn' was forced but does not apply to a {x.dtype} input "
                f"on {x.device} (needs float32 on CPU with working torch.ops.mkldnn linear "
                "ops); use 'auto' or 'torch'"
            )
        return "onednn"
    return "onednn" if eligible and large and onednn_available() else "torch"


def bf16_products_native(device: torch.device | str) -> bool:
    """Whether ``device`` multiplies bfloat16 in hardware (CUDA bf16; AVX512-BF16 or AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bfloat16()


@contextlib.contextmanager
def use_bf16_products(enabled: bool | None) -> Iterator[None]:
    """Force bfloat16 products on (True) or off (False) under bf16 autocast; None = auto.

    For tests and benchmarks: on a CPU without native bf16 the automatic rule keeps float32.
    """
    previous = _choice["bf16"]
    _choice["bf16"] = enabled
    try:
        yield
    finally:
        _choice["bf16"] = previous


def product_dtype(x: Tensor) -> torch.dtype | None:
    """bfloat16 when the fused GRU's products of float32 input ``x`` should run in bf16.

    That is when bf16 autocast is on for ``x``'s device and the device multiplies bf16 in
    hardware (or :func:`use_bf16_products` forces it); None means the input's own dtype.
    """
    device = x.device.type
    if x.dtype != torch.float32 or device not in ("cpu", "cuda"):
        return None
    if not torch.is_autocast_enabled(device) or torch.get_autocast_dtype(device) != torch.bfloat16:
        return None
    forced = _choice["bf16"]
    native = bf16_products_native(x.device) if forced is None else forced
    return torch.bfloat16 if native else None
