#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with a matched torch/torchvision
# pair and this package installed in editable mode.
#
# Why uv: the machine's pip configuration may point at a CPU-only torch wheel that has no
# matching torchvision on PyPI ("operator torchvision::nms does not exist"). uv ignores
# pip's configuration and resolves torch and torchvision from PyPI as one matched pair.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
    echo "[setup] installing uv into .venv"
    .venv/bin/python -m pip install --isolated --quiet --disable-pip-version-check uv
fi
echo "[setup] installing video_eleatt and its dependencies (first run downloads torch, ~5 GB)"
# --compile-bytecode: the environment may set PYTHONDONTWRITEBYTECODE, and without .pyc files
# every process recompiles torch (about 20 s per test run).
.venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -e ".[dev]"
.venv/bin/python -m video_eleatt.envcheck
# EleAtt-GRU's C++ time loop (video_eleatt/models/eleatt_gru_loop.cpp): built once here (about
# 30 s; needs g++ and ninja) so that the first training run does not pay for it. Where it
# cannot be built, this prints why and the layer runs the same loop in Python.
.venv/bin/python -c "from video_eleatt.models.gru_loop import loop_status
print('[setup] EleAtt-GRU time loop:', loop_status())" || true
