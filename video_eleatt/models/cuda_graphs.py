"""CUDA graphs over the fused EleAtt-GRU's time loops, so a GPU does not wait on Python.

A time loop launches a dozen small kernels per step; at the sizes of this project a GPU runs
each in microseconds, so an eager loop is bound by the CPU's launch rate. A CUDA graph records
the whole loop once for a given shape and replays it with one launch.

:func:`graphed_call` keeps one graph per key (the loop's kind, shapes, dtypes, the per-step
batch sizes and options). A key is captured the second time it is seen -- a training run
repeats its shapes, while a batch with a new pattern of sequence lengths would pay a capture
for one use -- and at most ``MAX_GRAPHS`` are kept (least recently used goes). Each graph has
static copies of the loop's tensors: inputs are copied in before a replay and the mutated
tensors copied out after it, so the caller's tensors behave exactly as after an eager call and
nothing the autograd graph saved is overwritten by a later replay.

Not used while the caller itself is capturing a graph, nor off CUDA.

This path has never run on a GPU in this project's CI (it has none); ``scripts/gpu_check.sh``
runs the CUDA tests and the benchmark where one is available.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

MAX_GRAPHS = 8

_graphs: OrderedDict[tuple, _GraphedLoop | None] = OrderedDict()
_enabled: dict[str, bool] = {"graphs": True}


@contextlib.contextmanager
def use_cuda_graphs(enabled: bool) -> Iterator[None]:
    """Switch the graphs off (False) inside the ``with`` block: benchmarks compare the two."""
    previous = _enabled["graphs"]
    _enabled["graphs"] = enabled
    try:
        yield
    finally:
        _enabled["graphs"] = previous


def _signature(tensors: Sequence[Tensor | None]) -> tuple:
    return tuple(
        None if t is None else (tuple(t.shape), t.stride(), t.dtype, t.device) for t in tensors
    )


class _GraphedLoop:
    """One captured loop: static tensors, the graph, and the copies in and out."""

    def __init__(self, loop: Callable[..., None], tensors: Sequence[Tensor | None]) -> None:
        self.static = [None if t is None else t.clone() for t in tensors]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up outside the graph, as capture requires
            loop(*self.static)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            loop(*self.static)

    def __call__(self, tensors: Sequence[Tensor | None], mutated: Sequence[int]) -> None:
        for static, tensor in zip(self.static, tensors):
            if tensor is not None:
                static.copy_(tensor)
        self.graph.replay()
        for index in mutated:
            if tensors[index] is not None:
                tensors[index].copy_(self.static[index])


def graphed_call(
    loop: Callable[..., None],
    tensors: Sequence[Tensor | None],
    mutated: Sequence[int],
    key: tuple,
) -> None:
    """Run ``loop(*tensors)`` (in place on ``tensors[i]`` for i in ``mutated``) on CUDA,
    from a graph when this key has been seen before.

    Args:
        loop: a function of the tensors only (other arguments bound, and part of ``key``).
        tensors: its tensor arguments (None for absent optional ones).
        mutated: the indices of the tensors it writes.
        key: everything besides the tensors' shapes that changes the recorded kernels.
    """
    if not _enabled["graphs"] or torch.cuda.is_current_stream_capturing():
        loop(*tensors)
        return
    full_key = (key, _signature(tensors))
    if full_key not in _graphs:
        _graphs[full_key] = None  # seen once: eager this time, captured the next
        _evict()
        loop(*tensors)
        return
    _graphs.move_to_end(full_key)
    graphed = _graphs[full_key]
    if graphed is None:
        try:
            graphed = _GraphedLoop(loop, tensors)
        except RuntimeError as err:
            # Untested on real GPUs so far: a capture this device or driver refuses must not
            # stop a run. The loops then run eagerly (the same arithmetic), and the run says so.
            _enabled["graphs"] = False
            _graphs.clear()
            warnings.warn(
                f"CUDA graph capture of the EleAtt-GRU time loop failed ({err}); running the "
                "loops without graphs for the rest of this process",
                stacklevel=2,
            )
            loop(*tensors)
            return
        _graphs[full_key] = graphed
    graphed(tensors, mutated)


def _evict() -> None:
    while len(_graphs) > MAX_GRAPHS:
        _graphs.popitem(last=False)


def clear_graphs() -> None:
    """Drop every captured graph (frees their static tensors and memory pools)."""
    _graphs.clear()
