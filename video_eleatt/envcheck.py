"""Check that the installed stack imports (run by ``scripts/setup.sh``), and report its versions
(``video-eleatt --version``).

Stops with a message naming the broken package and the fix, rather than letting the first
real command fail deep inside timm or torchvision.
"""

from __future__ import annotations

import importlib
import platform
import sys
from pathlib import Path

import video_eleatt

REQUIRED = ("torch", "torchvision", "timm", "decord", "av", "pytorch_lightning", "torchmetrics")

FIXES = {
    "torchvision": (
        "torch and torchvision are not a matched pair (a CPU-only torch wheel with PyPI's "
        "torchvision fails with 'operator torchvision::nms does not exist'). Reinstall both "
        "together: `.venv/bin/uv pip install --python .venv/bin/python --reinstall torch "
        "torchvision`, or delete .venv and rerun scripts/setup.sh."
    ),
}


def check() -> list[str]:
    """Import every required package; returns one message per failure (empty when fine)."""
    problems = []
    for name in REQUIRED:
        try:
            module = importlib.import_module(name)
            if name == "torchvision":
                import torchvision.ops  # noqa: F401  (registers the C++ operators)
        except Exception as err:  # any import-time failure is a setup problem to report
            fix = FIXES.get(name, "delete .venv and rerun scripts/setup.sh")
            problems.append(f"cannot import {name}: {type(err).__name__}: {err}\n  fix: {fix}")
            continue
        if name == "timm":
            try:
                module.create_model("resnet18", pretrained=False, num_classes=0)
            except Exception as err:
                problems.append(f"timm imports but cannot build resnet18: {err}")
    return problems


# (module, distribution, label) of what a bug report needs: `video-eleatt --version`.
REPORTED = (
    ("torch", "torch", "torch"),
    ("torchvision", "torchvision", "torchvision"),
    ("timm", "timm", "timm"),
    ("decord", "decord", "decord"),
    ("av", "av", "PyAV"),
)


def _installed(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _version_line(module_name: str, distribution: str, label: str) -> str:
    """``<label> <version>``: the imported module's own version (torch's carries its build,
    e.g. ``+cu132`` or ``+cpu``), or the installed one and why it does not import."""
    installed = _installed(distribution)
    if installed == "not installed":
        return f"{label} not installed"
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # reported, not raised: a broken package is what a report is for
        return f"{label} {installed} (does not import: {type(err).__name__}: {err})"
    line = f"{label} {getattr(module, '__version__', installed)}"
    if module_name == "av":
        libavcodec = getattr(module, "library_versions", {}).get("libavcodec")
        if libavcodec:
            line += f" (FFmpeg libavcodec {'.'.join(map(str, libavcodec))})"
    return line


def version_report() -> str:
    """``video-eleatt --version``: this package, Python, torch, torchvision, timm, decord, PyAV
    and whether CUDA is available, one line each (a few seconds: it imports them)."""
    location = Path(video_eleatt.__file__).resolve().parent
    lines = [
        f"video_eleatt {video_eleatt.__version__} ({location})",
        f"python {platform.python_version()} ({sys.executable}, {platform.platform()})",
    ]
    lines += [_version_line(*reported) for reported in REPORTED]
    lines.append(f"CUDA available: {_cuda_line()}")
    return "\n".join(lines)


def _cuda_line() -> str:
    try:
        import torch
    except Exception as err:  # reported, not raised: a broken torch is what the user asks about
        return f"unknown (torch does not import: {type(err).__name__}: {err})"
    built = torch.version.cuda
    if not torch.cuda.is_available():
        return f"no (torch built for CUDA {built})" if built else "no (CPU-only torch build)"
    count = torch.cuda.device_count()
    return f"yes, {count} GPU(s): {torch.cuda.get_device_name(0)} (CUDA {built})"


def main() -> int:
    problems = check()
    if problems:
        print("[setup] FAILED: the environment is not usable:", file=sys.stderr)
        for problem in problems:
            print("  - " + problem, file=sys.stderr)
        return 1
    import torch
    import torchvision

    print(
        f"[setup] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{torch.get_num_threads()} CPU threads, CUDA available: {torch.cuda.is_available()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
