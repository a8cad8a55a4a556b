"""Check that the installed stack imports; run by ``scripts/setup.sh``.

Stops with a message naming the broken package and the fix, rather than letting the first
real command fail deep inside timm or torchvision.
"""

from __future__ import annotations

import importlib
import sys

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
