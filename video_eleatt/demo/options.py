"""The options of ``video-eleatt demo`` (:class:`DemoOptions`), apart from the demo itself.

Its own module so that the command can parse them and print its help without loading the
whole pipeline (:mod:`video_eleatt.demo.cli`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class DemoOptions:
    """Options of ``video-eleatt demo``.

    Attributes:
        output_dir: The folder everything goes under (default: the current folder):
            ``data/demo/`` (the dataset and its feature caches) and ``runs/demo/`` (runs,
            report, figures, attention), with a suffix naming every option that changes the
            results (e.g. ``runs/demo_quick``, ``runs/demo_v40_s0-9``).
        data_dir: Folder of the demo dataset (``<data_dir>/motion``) and its feature caches
            (``<data_dir>/features``); default ``<output_dir>/data/demo``.
        videos_per_class: Clips per class of the generated dataset (default: the generator's).
        seeds: Seeds per variant (default: those of ``configs/demo/compare.yaml``).
        epochs: Training epochs per run (default: those of ``configs/demo/train.yaml``).
        device: "cpu", or "cuda" to extract and train on the GPU (when available).
        precision: Extraction precision. "float32" (the default) on every machine, so that
            the demo's features, hence its figures, do not depend on whether the CPU has
            native bfloat16; "auto" lets extraction pick bfloat16 where the hardware has it
            (faster there, other figures), "bfloat16" forces it (emulated on CPUs without
            it: the demo's 640 clips took 969 s instead of 62 s on 2 shared AVX2 cores).
        pretrained: Use the backbone's pretrained ImageNet weights (needs internet or timm's
            cache) instead of random weights.
        backbone_weights: A local weights file (.safetensors / .pth) for the backbone
            (resnet18 unless ``--quick``), instead of random weights.
        quick: Smoke-test size: a few videos per class, a tiny backbone, 2 seeds, 2 epochs.
        parallel: Comparison runs at once (each on its own CPU core).
        num_workers: Processes generating and decoding videos.
        attention: Draw the first-layer attention of one EleAtt run (with frame overlays).
    """

    output_dir: str = "."
    data_dir: str | None = None
    videos_per_class: int | None = None
    seeds: list[int] | None = None
    epochs: int | None = None
    device: Literal["cpu", "cuda"] = "cpu"
    precision: Literal["float32", "bfloat16", "auto"] = "float32"
    pretrained: bool = False
    backbone_weights: str | None = None
    quick: bool = False
    parallel: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    num_workers: int = 2
    attention: bool = True
