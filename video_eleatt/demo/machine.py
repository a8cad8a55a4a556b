"""What the demo ran on: the CPU features that change its floating-point results.

A demo figure depends on the code path the hardware takes: AVX2 vs AVX512 kernels, native
bfloat16 or not (extraction's ``auto`` precision), torch's vectorised kernels
(``ATEN_CPU_CAPABILITY``) and MKL's code path (``MKL_CBWR``). :func:`describe_machine`
records them in ``demo_summary.json``, and the README's demo table states them.

>>> sorted(describe_machine())  # doctest: +NORMALIZE_WHITESPACE
['avx2', 'avx512', 'cpu', 'cpu_capability', 'cpu_count', 'environment', 'native_bf16',
 'threads', 'torch']
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from video_eleatt.hardware import cpu_has_native_bfloat16

# Environment variables that change which kernels run (hence the rounding), recorded when set.
ROUNDING_ENVIRONMENT = (
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "DNNL_MAX_CPU_ISA",
)


def describe_machine() -> dict[str, Any]:
    """The processor and the kernel choices of this process (JSON-safe).

    Returns:
        ``cpu`` (model name), ``cpu_count``, ``threads`` (torch's intra-op threads), ``avx2``,
        ``avx512``, ``native_bf16`` (AVX512-BF16 or AMX), ``cpu_capability`` (the kernels
        torch dispatches to: ``AVX2``, ``AVX512``, ``DEFAULT``), ``torch`` (version) and
        ``environment`` (the variables of :data:`ROUNDING_ENVIRONMENT` that are set).
    """

    def supported(name: str) -> bool:
        check = getattr(torch.cpu, name, None)
        return bool(check is not None and check())

    return {
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "avx2": supported("_is_avx2_supported"),
        "avx512": supported("_is_avx512_supported"),
        "native_bf16": cpu_has_native_bfloat16(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "environment": {
            name: os.environ[name] for name in ROUNDING_ENVIRONMENT if os.environ.get(name)
        },
    }


def cpu_model_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
