"""The C++ time loops of the fused EleAtt-GRU: build once, load, or say why not.

``eleatt_gru_loop.cpp`` (next to this file) holds the per-step loops of
:mod:`video_eleatt.models.fused_gru` as ATen calls in C++, without the Python interpreter's cost
per operation. It is compiled with ``torch.utils.cpp_extension`` (g++ and ninja, about a
minute on 2 cores) the first time it is needed -- ``scripts/setup.sh`` does this at set-up --
and cached under torch's extension folder (``$TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``), where torch rebuilds it only when the source or torch changes.

Where no compiler is found or the build fails, :func:`loop_ops_available` returns False, a
warning says why and what to install, and the fused GRU runs the same loops in Python
(the same arithmetic to float rounding, slower at small sizes). Where torch's CPU capability
has AVX2, the build uses those instructions (as torch's own compiler does) for the loop's
fused element-wise passes, under its own name (``..._avx2``). :func:`loop_status` gives the
one-line answer the benchmark prints.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("eleatt_gru_loop.cpp")
EXTENSION_NAME = "video_eleatt_gru_loop"
# Where torch's CPU capability is one of these, the build uses AVX2 (inductor's flags for it).
# Elsewhere the build is generic and the loop keeps ATen's element-wise kernels
# (eleatt_gru_loop.cpp, kVectorBuild).
_AVX2_CAPABILITIES = ("AVX2", "AVX512")
_AVX2_FLAGS = ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2"]
_status: dict[str, str] = {"text": "not loaded yet"}


def _ninja_dir() -> str | None:
    """The folder of the pip package ``ninja``'s binary (a dependency), if it is installed."""
    try:
        import ninja  # the pip package; its binary is not on PATH unless the venv is active
    except ImportError:
        return None
    return getattr(ninja, "BIN_DIR", None)


def _has_build_tools() -> str | None:
    """None when a C++ compiler and ninja can be found, else what is missing."""
    missing = [tool for tool in ("c++", "ninja") if shutil.which(tool) is None]
    if "ninja" in missing and _ninja_dir() is not None:
        missing.remove("ninja")
    return None if not missing else ", ".join(missing)


@contextlib.contextmanager
def _ninja_on_path():
    """Put the ninja package's binary on PATH for the build (torch runs ``ninja`` by name)."""
    ninja_dir = _ninja_dir() if shutil.which("ninja") is None else None
    if ninja_dir is None:
        yield
        return
    previous = os.environ.get("PATH", "")
    os.environ["PATH"] = ninja_dir + os.pathsep + previous
    try:
        yield
    finally:
        os.environ["PATH"] = previous


@contextlib.contextmanager
def _quiet_cpp_extension():
    """Hide cpp_extension's "No CUDA runtime is found" warning: this extension has no CUDA."""
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    previous = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        cpp_logger.setLevel(previous)


def _build_variant() -> tuple[str, list[str]]:
    """The extension's name and extra compiler flags for this CPU.

    A vector build gets its own name (``..._avx2``), so that a torch extension cache shared
    by machines with different CPUs never loads it where the instructions are missing.
    """
    if torch.backends.cpu.get_cpu_capability() not in _AVX2_CAPABILITIES:
        return EXTENSION_NAME, []
    return f"{EXTENSION_NAME}_avx2", list(_AVX2_FLAGS)


@functools.cache
def loop_ops_available() -> bool:
    """Build (first time) and load the C++ loops; False, with a warning, when that fails."""
    if not SOURCE.is_file():
        _status["text"] = f"Python loop ({SOURCE.name} is not installed)"
        logger.warning("EleAtt-GRU: %s", _status["text"])
        return False
    missing = _has_build_tools()
    if missing:
        _status["text"] = f"Python loop (no {missing} on PATH to build {SOURCE.name})"
        logger.warning(
            "EleAtt-GRU: %s; install a C++ compiler (e.g. apt-get install g++) and ninja "
            "(pip install ninja) for the faster C++ loop",
            _status["text"],
        )
        return False
    start = time.perf_counter()
    try:
        with _ninja_on_path(), _quiet_cpp_extension():
            # Imported here: torch.utils.cpp_extension is slow to import and warns about CUDA.
            from torch.utils import cpp_extension

            name, flags = _build_variant()
            cpp_extension.load(
                name=name,
                sources=[str(SOURCE)],
                extra_cflags=["-O2", *flags],
                is_python_module=False,
                verbose=False,
            )
    except Exception as err:  # a failed build must not stop training: fall back, loudly
        _status["text"] = f"Python loop (building {SOURCE.name} failed: {err!r:.300})"
        logger.warning("EleAtt-GRU: %s", _status["text"])
        return False
    seconds = time.perf_counter() - start
    _status["text"] = f"C++ loop ({name}, loaded in {seconds:.1f} s)"
    logger.info("EleAtt-GRU: %s", _status["text"])
    return hasattr(torch.ops.video_eleatt_gru, "forward_steps")


def loop_status() -> str:
    """Which loop the fused GRU runs ("C++ loop ..." or "Python loop (why)")."""
    loop_ops_available()
    return _status["text"]
