"""Speed of one EleAtt-GRU layer against ``nn.GRU`` of the same size, side by side.

Usage::

    .venv/bin/python scripts/bench_layers.py            # full run, about a minute on 2 cores
    .venv/bin/python scripts/bench_layers.py --quick    # a few seconds, smallest size only
    .venv/bin/python scripts/bench_layers.py --device cuda

For each (B, T, D, N) it times, interleaved and after warm-up, the forward pass (with the
autograd graph, as in training) and forward + backward of:

- ``EleAttGRU`` (the public layer, which dispatches to the fused path),
- ``eleatt_gru_sequence`` called directly, through each matrix-product back end,
- ``nn.GRU`` (MKL on CPU, cuDNN on CUDA),

and prints medians, the ratio to ``nn.GRU``, the achieved GFLOP/s and the peak memory of
forward + backward. FLOPs count only matrix products, 2*M*N*K each:
EleAtt-GRU forward = 2*B*T*(D*D + (D + 3N)*N + 3N*D), nn.GRU forward = 2*B*T*(3N*D + 3N*N);
forward + backward = 3x forward (the input and weight gradients of every product; the input
requires grad in this benchmark). Element-wise work is not counted for either.

Peak memory on CPU is the peak resident set during one forward + backward minus the resident
set just before it (Linux: VmHWM of /proc/self/status, reset through /proc/self/clear_refs),
in a fresh subprocess per model and size whose inputs and parameters already exist, with
glibc's mmap threshold fixed so that freed tensors leave the resident set; on CUDA it is
``torch.cuda.max_memory_allocated`` minus the memory allocated before the pass. It includes
the autograd graph's saved tensors and the gradients of the parameters and the input.

The machine's best large matrix-product rate is the faster of a 2048^3 float32 product through
``torch.mm`` and through oneDNN (``torch.ops.mkldnn._linear_pointwise`` with a reordered
weight), timed in the same interleaved rounds as the models of each size. The script warns
when the load average says other processes are running: on 2 shared cores their timings
(and ratios) mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from video_eleatt.models.fused_gru import (
    eleatt_gru_sequence,
    fused_gru_supported,
    matmul_backend,
    onednn_available,
    use_matmul_backend,
)

CONFIGS = [(64, 32, 2048, 512), (8, 64, 2048, 512), (32, 16, 512, 256)]  # (B, T, D, N)
TARGET_CONFIG = CONFIGS[0]
TARGET_FRACTION_OF_PEAK = 0.70  # CPU, forward + backward at TARGET_CONFIG
TARGET_RATIO_TRAIN = {"cpu": 1.3, "cuda": 1.5}  # EleAtt-GRU / nn.GRU, forward + backward
TARGET_RATIO_FORWARD = {"cpu": 1.5}


def eleatt_gru_flops(batch: int, steps: int, input_size: int, hidden: int) -> int:
    """Matrix-product FLOPs of one EleAtt-GRU forward pass (2*M*N*K per product)."""
    per_row = input_size * input_size + (input_size + 3 * hidden) * hidden + 3 * hidden * input_size
    return 2 * batch * steps * per_row


def gru_flops(batch: int, steps: int, input_size: int, hidden: int) -> int:
    """Matrix-product FLOPs of one ``nn.GRU`` forward pass."""
    return 2 * batch * steps * (3 * hidden * input_size + 3 * hidden * hidden)


@dataclass
class Candidate:
    """One model to time: ``run()`` returns the tensors whose sum is the loss."""

    name: str
    kind: str  # "eleatt" or "gru", for FLOPs and ratios
    run: Callable[[], tuple[torch.Tensor, ...]]
    params: list[torch.Tensor]


def _eleatt_layer(input_size: int, hidden: int, device: torch.device):
    """The public EleAttGRU layer, or None while models/eleatt.py is not there."""
    try:
        from video_eleatt.models.eleatt import EleAttGRU
    except ImportError:
        return None
    return EleAttGRU(input_size, hidden).to(device)


def _gate_weights(input_size: int, hidden: int, device: torch.device) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shapes = [
        (input_size, input_size),
        (input_size, hidden),
        (input_size,),
        (3 * hidden, input_size),
        (3 * hidden, hidden),
        (3 * hidden,),
        (3 * hidden,),
    ]
    weights = []
    for shape in shapes:
        bound = shape[-1] ** -0.5 if len(shape) == 2 else 0.1
        weight = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        weights.append(weight.to(device).requires_grad_())
    return weights


def build_candidates(config, device: torch.device) -> tuple[torch.Tensor, list[Candidate]]:
    """Input ``x`` (B, T, D) requiring grad, and the models to time on it."""
    batch, steps, input_size, hidden = config
    torch.manual_seed(0)
    x = torch.randn(batch, steps, input_size, device=device, requires_grad=True)
    candidates = []
    layer = _eleatt_layer(input_size, hidden, device)
    if layer is not None:
        candidates.append(
            Candidate("EleAttGRU layer", "eleatt", lambda: layer(x)[:2], list(layer.parameters()))
        )
    weights = _gate_weights(input_size, hidden, device)
    backends = ["onednn", "torch"] if device.type == "cpu" and onednn_available() else ["torch"]
    for backend in backends:

        def run(backend=backend):
            with use_matmul_backend(backend):
                return eleatt_gru_sequence(x, None, None, *weights, "sigmoid", False)[:2]

        label = {"onednn": "fused fn, oneDNN", "torch": "fused fn, torch.mm"}[backend]
        candidates.append(Candidate(label, "eleatt", run, weights))
    gru = nn.GRU(input_size, hidden, batch_first=True).to(device)
    backend_name = "cuDNN" if device.type == "cuda" else "CPU"
    candidates.append(
        Candidate(f"nn.GRU ({backend_name})", "gru", lambda: gru(x), list(gru.parameters()))
    )
    return x, candidates


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_forward(candidate: Candidate, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    outputs = candidate.run()
    _sync(device)
    elapsed = time.perf_counter() - start
    del outputs
    return elapsed


def _time_train(candidate: Candidate, x: torch.Tensor, device: torch.device) -> float:
    x.grad = None
    for p in candidate.params:
        p.grad = None
    _sync(device)
    start = time.perf_counter()
    outputs = candidate.run()
    loss = sum(o.sum() for o in outputs)
    loss.backward()
    _sync(device)
    return time.perf_counter() - start


def matmul_paths(device: torch.device, size: int) -> dict[str, Callable[[], torch.Tensor]]:
    """A size^3 float32 product through each path torch offers here."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    paths: dict[str, Callable[[], torch.Tensor]] = {"torch.mm": lambda: torch.mm(a, b)}
    if device.type == "cpu" and onednn_available():
        packed = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), size)
        paths["oneDNN"] = lambda: torch.ops.mkldnn._linear_pointwise(
            a, packed, None, "none", [], ""
        )
    return paths


def _time_call(function: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    function()
    _sync(device)
    return time.perf_counter() - start


def time_config(config, device: torch.device, repeats: int, warmup: int, matmul_size: int):
    """Median seconds per candidate and the matrix-product rates, all in the same rounds.

    Each round times every matrix-product path once, then the forward pass and forward +
    backward of every candidate, so that all of them see the same machine conditions.

    Returns:
        ``{name: {"kind", "forward", "train"}}`` and ``{path: GFLOP/s}``.
    """
    x, candidates = build_candidates(config, device)
    products = matmul_paths(device, matmul_size)
    samples = {c.name: {"forward": [], "train": []} for c in candidates}
    product_samples: dict[str, list[float]] = {name: [] for name in products}
    for round_index in range(warmup + repeats):
        keep = round_index >= warmup
        for name, product in products.items():
            elapsed = _time_call(product, device)
            if keep:
                product_samples[name].append(elapsed)
        for candidate in candidates:
            forward = _time_forward(candidate, device)
            train = _time_train(candidate, x, device)
            if keep:
                samples[candidate.name]["forward"].append(forward)
                samples[candidate.name]["train"].append(train)
    timings = {
        c.name: {
            "kind": c.kind,
            "forward": statistics.median(samples[c.name]["forward"]),
            "train": statistics.median(samples[c.name]["train"]),
        }
        for c in candidates
    }
    rates = {
        name: 2 * matmul_size**3 / statistics.median(t) / 1e9 for name, t in product_samples.items()
    }
    return timings, rates


def _memory_child(model: str, config: list[int], device_name: str, threads: int) -> None:
    """Subprocess body: print the peak memory growth (bytes) of one forward + backward."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    x, candidates = build_candidates(tuple(config), device)
    candidate = next(c for c in candidates if c.name == model)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        _time_train(candidate, x, device)
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        # Peak resident set during the pass minus the resident set before it: reset the
        # kernel's high-water mark (VmHWM), run the pass, read it back.
        rss_before = _proc_status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        _time_train(candidate, x, device)
        peak = (_proc_status_kib("VmHWM") - rss_before) * 1024
    print(json.dumps({"peak_bytes": peak}))


def _proc_status_kib(field: str) -> int:
    """A size field of /proc/self/status (Linux), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def peak_memory(model: str, config, device: torch.device, threads: int) -> float | None:
    """MiB of peak memory growth of one forward + backward, from a fresh subprocess."""
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        json.dumps({"model": model, "config": list(config), "device": str(device)}),
        "--threads",
        str(threads),
    ]
    # A fixed mmap threshold makes glibc return freed tensors to the system at once, so the
    # resident set follows the live allocations instead of the allocator's caches.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        print(f"  (memory of {model} at {config} failed: {result.stderr.strip()[-300:]})")
        return None
    peak = json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"]
    return None if peak is None else peak / 2**20


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smallest size, few repeats")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per size")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        spec = json.loads(args.memory_child)
        _memory_child(spec["model"], spec["config"], spec["device"], args.threads)
        return 0

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    torch.set_num_threads(args.threads)
    configs = [CONFIGS[2]] if args.quick else CONFIGS
    repeats = args.repeats or (3 if args.quick else 7)
    warmup = 1 if args.quick else 2
    matmul_size = 1024 if args.quick else 2048

    load_before = os.getloadavg()
    busy = load_before[0] > 1.0
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    probe = torch.zeros(1, 1, 1, device=device)
    layer_path = "EleAttGRU not importable"
    if _eleatt_layer(1, 1, device) is not None:
        layer_path = "fused" if fused_gru_supported(probe) else "autograd step loop"
    print(f"EleAttGRU layer path: {layer_path}; fused back end: {matmul_backend(probe)}")
    print(f"load average at start: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    if busy:
        print("WARNING: other processes are running; timings on a busy machine are unreliable.")

    results = {}
    peak_rates = {}
    for config in configs:
        batch, steps, input_size, hidden = config
        timings, rates = time_config(config, device, repeats, warmup, matmul_size)
        results[config] = timings
        peak_rates[config] = max(rates.values())
        gru_name = next(name for name, t in timings.items() if t["kind"] == "gru")
        gru = timings[gru_name]
        print(f"\n(B, T, D, N) = {config}, float32, medians of {repeats} interleaved rounds")
        print(
            f"  {matmul_size}^3 float32 product in the same rounds: "
            + ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in rates.items())
        )
        print(
            f"  {'model':<22} {'forward':>10} {'ratio':>6} {'GFLOP/s':>8}   "
            f"{'fwd+bwd':>10} {'ratio':>6} {'GFLOP/s':>8}   {'peak mem':>9}"
        )
        for name, t in timings.items():
            flops_fn = eleatt_gru_flops if t["kind"] == "eleatt" else gru_flops
            flops = flops_fn(batch, steps, input_size, hidden)
            t["forward_gflops"] = flops / t["forward"] / 1e9
            t["train_gflops"] = 3 * flops / t["train"] / 1e9
            t["forward_ratio"] = t["forward"] / gru["forward"]
            t["train_ratio"] = t["train"] / gru["train"]
            memory = None
            measure = not (args.no_memory or args.quick) and (
                name.startswith("EleAttGRU") or name == gru_name
            )
            if measure:
                memory = peak_memory(name, config, device, args.threads)
            memory_text = f"{memory:7.0f} MiB" if memory is not None else f"{'-':>9}"
            print(
                f"  {name:<22} {t['forward'] * 1e3:8.1f}ms {t['forward_ratio']:6.2f} "
                f"{t['forward_gflops']:8.0f}   {t['train'] * 1e3:8.1f}ms {t['train_ratio']:6.2f} "
                f"{t['train_gflops']:8.0f}   {memory_text}"
            )

    load_after = os.getloadavg()
    print(f"\nload average at end: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print("FLOPs: matrix products only, 2*M*N*K each; forward+backward = 3 x forward.")
    if device.type == "cpu":
        print("Peak memory: peak RSS minus RSS before one forward+backward (VmHWM), fresh process.")
    else:
        print("Peak memory: torch.cuda.max_memory_allocated over one forward+backward.")

    print("\nTargets")
    if TARGET_CONFIG not in results:
        print("  not evaluated: the target size", TARGET_CONFIG, "was not run (--quick)")
        return 0
    timings = results[TARGET_CONFIG]
    peak_rate = peak_rates[TARGET_CONFIG]
    name = "EleAttGRU layer" if "EleAttGRU layer" in timings else next(iter(timings))
    eleatt = timings[name]
    kind = device.type
    if kind == "cpu":
        fraction = eleatt["train_gflops"] / peak_rate
        print(
            f"  {name} fwd+bwd at {TARGET_CONFIG}: {eleatt['train_gflops']:.0f} GFLOP/s = "
            f"{fraction:.0%} of the best matrix product ({peak_rate:.0f}); target >= "
            f"{TARGET_FRACTION_OF_PEAK:.0%}: {_verdict(fraction >= TARGET_FRACTION_OF_PEAK)}"
        )
        print(
            f"  forward time / nn.GRU: {eleatt['forward_ratio']:.2f}; target <= "
            f"{TARGET_RATIO_FORWARD[kind]}: "
            f"{_verdict(eleatt['forward_ratio'] <= TARGET_RATIO_FORWARD[kind])}"
        )
    print(
        f"  fwd+bwd time / nn.GRU: {eleatt['train_ratio']:.2f}; target <= "
        f"{TARGET_RATIO_TRAIN[kind]}: {_verdict(eleatt['train_ratio'] <= TARGET_RATIO_TRAIN[kind])}"
    )
    if kind == "cpu":
        print_floor(timings, TARGET_CONFIG, peak_rate)
    if busy or load_after[0] > 1.0:
        print("  (machine busy during the run: rerun on a quiet machine before trusting these)")
    return 0


def print_floor(timings: dict, config, peak_rate: float) -> None:
    """Prints the arithmetic rate each time-ratio target needs, against the machine's best
    product rate: EleAtt-GRU does more arithmetic than nn.GRU, so at nn.GRU's measured rate
    a target ratio r needs (arithmetic ratio / r) x that rate. Above 100 % of the best product
    rate no implementation doing the same arithmetic can meet the target on this machine."""
    gru = next(t for t in timings.values() if t["kind"] == "gru")
    eleatt = next(t for t in timings.values() if t["kind"] == "eleatt")
    arithmetic = eleatt_gru_flops(*config) / gru_flops(*config)
    print(
        f"  what the time targets need: EleAtt-GRU does {arithmetic:.2f} x nn.GRU's arithmetic; "
        f"best product here {peak_rate:.0f} GFLOP/s"
    )
    for phase, key, target in (
        ("forward", "forward_gflops", TARGET_RATIO_FORWARD["cpu"]),
        ("fwd+bwd", "train_gflops", TARGET_RATIO_TRAIN["cpu"]),
    ):
        needed = arithmetic * gru[key] / target
        print(
            f"    {phase} <= {target} x: nn.GRU runs {gru[key]:.0f} GFLOP/s, so EleAtt-GRU needs "
            f"{needed:.0f} GFLOP/s = {needed / peak_rate:.0%} of the best product (it reached "
            f"{eleatt[key]:.0f} = {eleatt[key] / peak_rate:.0%}; lowest ratio at 100 %: "
            f"{arithmetic * gru[key] / peak_rate:.2f})"
        )


if __name__ == "__main__":
    sys.exit(main())
