"""The devices a test runs on: the CPU always, CUDA when this machine has one.

``@pytest.mark.parametrize("device", DEVICES)`` runs a test's logic on the CPU everywhere and
again on the GPU where there is one; without CUDA the ``cuda`` case is listed as skipped, so a
CPU-only run says what it did not check.
"""

from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device here")),
]
