"""What this machine's processor computes natively, asked once per process.

Shared by feature extraction (the ``auto`` precision) and the fused EleAtt-GRU (whether its
products run in bfloat16 under bf16 autocast): both must agree on which CPUs multiply
bfloat16 in hardware, as emulated bfloat16 is slower than float32.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def cpu_has_native_bfloat16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX on x86, BF16 on
    Arm); elsewhere oneDNN emulates it and bfloat16 is slower than float32.

    Asks torch's own CPU checks and, where torch has none for this architecture, the flags
    of ``/proc/cpuinfo``.
    """
    checks = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", None),
        getattr(torch.cpu, "_is_amx_tile_supported", None),
    )
    if any(check is not None and check() for check in checks):
        return True
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
