"""Speed of one EleAtt-GRU layer against ``nn.GRU`` of the same size, side by side.

Usage::

    .venv/bin/python scripts/bench_layers.py               # the 5 x 3 table, 2-4 min on 2 cores
    .venv/bin/python scripts/bench_layers.py --quick       # demo size only, a few seconds
    .venv/bin/python scripts/bench_layers.py --sizes demo skeleton --columns train
    .venv/bin/python scripts/bench_layers.py --device cuda # EleAtt-GRU vs cuDNN nn.GRU
    .venv/bin/python scripts/bench_layers.py --memory      # also peak memory of fp32 fwd+bwd

For each size of ``SIZES`` and each column of ``COLUMNS`` it times the public ``EleAttGRU``
layer (which picks its own path: see the "path" lines) and ``nn.GRU`` with the same (D, N),
back to back inside each round, after warm-up, and prints the median times, the median over
rounds of the time ratio EleAtt-GRU / nn.GRU (with its lowest and highest round) and that
ratio divided by the FLOP ratio. The target (issue 15) is a ratio at most ``TARGET`` = 1.1 x
the FLOP ratio in every cell.

Columns:

- ``train``: float32 forward + backward (the input requires grad, as in a stacked layer);
- ``infer``: float32 forward under ``torch.inference_mode``;
- ``bf16``: forward under ``torch.autocast(dtype=bfloat16)`` + backward, as Lightning's
  ``bf16-mixed`` runs it. On a CPU without native bf16 (no AVX512-BF16/AMX: see the
  "bf16 hardware" line) nn.GRU's bf16 products are emulated and tens of times slower, so this
  column runs ``--bf16-repeats`` (default 1) rounds without warm-up there.

FLOPs count matrix products only, 2*M*N*K each: EleAtt-GRU forward =
2*B*T*(D*D + (D + 3N)*N + 3N*D), nn.GRU forward = 2*B*T*(3N*D + 3N*N); their ratio is
1 + D/(3N) and is the same for every column. Element-wise work is not counted.

The machine's best large product (2048^3 float32 through torch.mm and through oneDNN with a
packed weight) is timed in the rounds of the first size, for reference. The load average is
printed at start and end: on 2 shared cores other processes move single figures by 20 % or
more; the medians of interleaved rounds keep the ratios steadier than the times.
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
from dataclasses import dataclass, field

import torch
from torch import nn

from video_eleatt.models.cuda_graphs import use_cuda_graphs
from video_eleatt.models.eleatt import EleAttGRU
from video_eleatt.models.fused_gru import describe_path, use_loop
from video_eleatt.models.matmul import bf16_products_native, onednn_available

# name -> (B, T, D, N)
SIZES = {
    "rgb": (64, 32, 2048, 512),  # the paper's RGB layer, ResNet-50 features
    "small_batch": (8, 64, 2048, 512),
    "infer_b1": (1, 32, 2048, 512),
    "skeleton": (256, 100, 150, 100),  # the paper's skeleton layer
    "demo": (32, 12, 512, 128),  # this project's demo
}
COLUMNS = ("train", "infer", "bf16")
COLUMN_TITLES = {
    "train": "train fp32",
    "infer": "inference fp32",
    "bf16": "train bf16 autocast",
}
TARGET = 1.1  # time ratio / FLOP ratio, every cell


def eleatt_gru_flops(batch: int, steps: int, input_size: int, hidden: int) -> int:
    """Matrix-product FLOPs of one EleAtt-GRU forward pass (2*M*N*K per product)."""
    per_row = input_size * input_size + (input_size + 3 * hidden) * hidden + 3 * hidden * input_size
    return 2 * batch * steps * per_row


def gru_flops(batch: int, steps: int, input_size: int, hidden: int) -> int:
    """Matrix-product FLOPs of one ``nn.GRU`` forward pass."""
    return 2 * batch * steps * (3 * hidden * input_size + 3 * hidden * hidden)


@dataclass
class Cell:
    """Samples (seconds) of one size and column for both models."""

    eleatt: list[float] = field(default_factory=list)
    gru: list[float] = field(default_factory=list)

    def ratios(self) -> list[float]:
        """Per-round ratios: the two models of one round ran back to back."""
        return sorted(e / g for e, g in zip(self.eleatt, self.gru))

    def ratio(self) -> float:
        """Median of the per-round ratios: steadier than a ratio of medians when the load
        of other processes changes between rounds."""
        return statistics.median(self.ratios())

    def spread(self) -> str:
        """The lowest and highest per-round ratio: how noisy this cell was."""
        ratios = self.ratios()
        return f"{ratios[0]:.2f}-{ratios[-1]:.2f}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _runner(model: nn.Module, x: torch.Tensor, column: str, device: torch.device):
    """A function that runs one pass of ``column`` on ``model`` and returns its seconds."""
    params = list(model.parameters())

    def forward():
        output = model(x)
        return output[0], output[1]

    def run() -> float:
        x.grad = None
        for p in params:
            p.grad = None
        _sync(device)
        start = time.perf_counter()
        if column == "infer":
            with torch.inference_mode():
                forward()
        else:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=column == "bf16"):
                output, h_n = forward()
            (output.float().sum() + h_n.float().sum()).backward()
        _sync(device)
        return time.perf_counter() - start

    return run


def matmul_rates(device: torch.device, size: int) -> dict[str, Callable[[], object]]:
    """A size^3 float32 product through each path torch offers here."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    paths: dict[str, Callable[[], object]] = {"torch.mm": lambda: torch.mm(a, b)}
    if device.type == "cpu" and onednn_available():
        packed = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), size)
        paths["oneDNN"] = lambda: torch.ops.mkldnn._linear_pointwise(
            a, packed, None, "none", [], ""
        )
    return paths


def time_size(
    size: tuple[int, int, int, int],
    columns: list[str],
    device: torch.device,
    repeats: int,
    warmup: int,
    bf16_repeats: int,
    products: dict[str, Callable[[], object]] | None,
) -> tuple[dict[str, Cell], dict[str, float]]:
    """Interleaved rounds of every column for both models; product rates (GFLOP/s) if asked."""
    batch, steps, input_size, hidden = size
    torch.manual_seed(0)
    eleatt = EleAttGRU(input_size, hidden).to(device)
    gru = nn.GRU(input_size, hidden, batch_first=True).to(device)
    x = torch.randn(batch, steps, input_size, device=device, requires_grad=True)
    runs = {
        column: (_runner(eleatt, x, column, device), _runner(gru, x, column, device))
        for column in columns
    }
    cells = {column: Cell() for column in columns}
    product_samples: dict[str, list[float]] = {name: [] for name in products or {}}
    for round_index in range(warmup + repeats):
        keep = round_index >= warmup
        for name, product in (products or {}).items():
            _sync(device)
            start = time.perf_counter()
            product()
            _sync(device)
            if keep:
                product_samples[name].append(time.perf_counter() - start)
        for column, (run_eleatt, run_gru) in runs.items():
            slow_bf16 = column == "bf16" and not bf16_products_native(device)
            if slow_bf16 and (not keep or round_index >= warmup + bf16_repeats):
                continue
            # Alternate which model goes first, so neither always follows the other.
            order = (run_eleatt, run_gru) if round_index % 2 else (run_gru, run_eleatt)
            times = {id(run): run() for run in order}
            if keep:
                cells[column].eleatt.append(times[id(run_eleatt)])
                cells[column].gru.append(times[id(run_gru)])
    rates = {
        name: 2 * 2048**3 / statistics.median(samples) / 1e9
        for name, samples in product_samples.items()
    }
    return cells, rates


def print_paths(size: tuple[int, int, int, int], device: torch.device, columns: list[str]) -> None:
    """The path EleAttGRU takes in each column (it selects automatically)."""
    batch, steps, input_size, hidden = size
    probe = torch.zeros(batch, steps, input_size, device=device)
    for column in columns:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=column == "bf16"):
            text = describe_path(probe, training=column != "infer", hidden_size=hidden)
        print(f"  path, {COLUMN_TITLES[column]}: {text}")


def summary_table(results: dict[str, dict[str, Cell]], columns: list[str]) -> list[str]:
    """Markdown rows: ratio (ratio / FLOP ratio) per cell, the README's layout."""
    header = "| size (B, T, D, N) | FLOP ratio | " + " | ".join(COLUMN_TITLES[c] for c in columns)
    lines = [header + " |", "|---|---|" + "---|" * len(columns)]
    for name, cells in results.items():
        size = SIZES[name]
        flop_ratio = eleatt_gru_flops(*size) / gru_flops(*size)
        row = f"| {name} {size} | {flop_ratio:.2f} |"
        for column in columns:
            ratio = cells[column].ratio()
            mark = "" if ratio / flop_ratio <= TARGET else " **over**"
            row += f" {ratio:.2f}x ({ratio / flop_ratio:.2f}){mark} |"
        lines.append(row)
    return lines


def _memory_child(spec: str) -> None:
    """Subprocess body: print the peak memory growth (bytes) of one float32 forward + backward.

    CPU: peak resident set during the pass minus the resident set before it (Linux VmHWM,
    reset through /proc/self/clear_refs); CUDA: ``max_memory_allocated`` growth. Includes
    the saved tensors and the gradients of the parameters and the input.
    """
    model_name, size, device_name = json.loads(spec)
    device = torch.device(device_name)
    batch, steps, input_size, hidden = size
    if model_name == "eleatt":
        model: nn.Module = EleAttGRU(input_size, hidden).to(device)
    else:
        model = nn.GRU(input_size, hidden, batch_first=True).to(device)
    x = torch.randn(batch, steps, input_size, device=device, requires_grad=True)
    run = _runner(model, x, "train", device)
    describe_path(x)  # loads the C++ loop and runs oneDNN's self-check outside the measurement
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        rss_before = _proc_status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        run()
        peak = (_proc_status_kib("VmHWM") - rss_before) * 1024
    print(json.dumps({"peak_bytes": peak}))


def _proc_status_kib(field: str) -> int:
    """A size field of /proc/self/status (Linux), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def peak_memory_mib(model_name: str, size, device: torch.device, threads: int) -> float | None:
    """MiB of peak memory growth of one forward + backward, from a fresh subprocess."""
    spec = json.dumps([model_name, list(size), str(device)])
    command = [sys.executable, __file__, "--memory-child", spec, "--threads", str(threads)]
    # A fixed mmap threshold makes glibc return freed tensors to the system at once, so the
    # resident set follows the live allocations instead of the allocator's caches.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        print(f"  (memory of {model_name} at {size} failed: {result.stderr.strip()[-300:]})")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"] / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--columns", nargs="+", choices=COLUMNS, default=list(COLUMNS))
    parser.add_argument("--quick", action="store_true", help="demo size, 3 rounds")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7)")
    parser.add_argument(
        "--bf16-repeats",
        type=int,
        default=1,
        help="timed rounds of the bf16 column where bf16 is emulated (default 1)",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "cpp", "cpp-aten", "python"),
        default="auto",
        help="EleAttGRU's time loop (default auto: C++ where built; cpp-aten = C++ without its "
        "fused element-wise passes; python = before issue 15)",
    )
    parser.add_argument(
        "--no-cuda-graphs", action="store_true", help="CUDA: replay no graphs (for comparison)"
    )
    parser.add_argument(
        "--memory", action="store_true", help="also the peak memory of float32 fwd+bwd"
    )
    parser.add_argument("--no-memory", action="store_true", help=argparse.SUPPRESS)  # old flag
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        torch.set_num_threads(args.threads)
        _memory_child(args.memory_child)
        return 0
    with use_loop(args.loop), use_cuda_graphs(not args.no_cuda_graphs):
        return run(args, parser)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The benchmark itself, with the time loop already chosen."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    torch.set_num_threads(args.threads)
    sizes = ["demo"] if args.quick else args.sizes
    repeats = args.repeats or (3 if args.quick else 7)
    warmup = 1 if args.quick else 2

    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    native = bf16_products_native(device)
    print(f"bf16 hardware: {'native' if native else 'emulated (no AVX512-BF16/AMX)'}")
    print(f"load average at start: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")

    results: dict[str, dict[str, Cell]] = {}
    for index, name in enumerate(sizes):
        size = SIZES[name]
        products = matmul_rates(device, 2048) if index == 0 and not args.quick else None
        cells, rates = time_size(
            size, args.columns, device, repeats, warmup, args.bf16_repeats, products
        )
        results[name] = cells
        flop_ratio = eleatt_gru_flops(*size) / gru_flops(*size)
        print(f"\n{name} (B, T, D, N) = {size}, FLOP ratio {flop_ratio:.2f}")
        print_paths(size, device, args.columns)
        if rates:
            text = ", ".join(f"{path} {rate:.0f}" for path, rate in rates.items())
            print(f"  2048^3 float32 product in the same rounds, GFLOP/s: {text}")
        if args.memory:
            eleatt_mib = peak_memory_mib("eleatt", size, device, args.threads)
            gru_mib = peak_memory_mib("gru", size, device, args.threads)
            if eleatt_mib is not None and gru_mib is not None:
                memory = f"EleAtt {eleatt_mib:.0f} MiB, nn.GRU {gru_mib:.0f} MiB"
                print(f"  peak memory, fp32 fwd+bwd: {memory}")
        for column in args.columns:
            cell = cells[column]
            flops = eleatt_gru_flops(*size) * (1 if column == "infer" else 3)
            eleatt_ms = statistics.median(cell.eleatt) * 1e3
            gru_ms = statistics.median(cell.gru) * 1e3
            print(
                f"  {COLUMN_TITLES[column]:<20} EleAtt {eleatt_ms:9.2f} ms "
                f"({flops / eleatt_ms / 1e6:5.0f} GFLOP/s)  nn.GRU {gru_ms:9.2f} ms  "
                f"ratio {cell.ratio():5.2f} (rounds {cell.spread()})  / FLOP ratio "
                f"{cell.ratio() / flop_ratio:5.2f}  ({len(cell.eleatt)} rounds)"
            )
    load_after = os.getloadavg()
    print(f"\nload average at end: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"\nTime ratio EleAtt-GRU / nn.GRU (ratio / FLOP ratio; target <= {TARGET}):\n")
    print("\n".join(summary_table(results, args.columns)))
    if max(load_before[0], load_after[0]) > 1.0:
        print("\n(other processes were running: rerun on a quiet machine before trusting these)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
