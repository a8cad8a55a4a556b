"""What an extraction run is asked to do: :class:`ExtractConfig`, read from YAML or arguments,
and the videos it names (a dataset's index, a list file or a folder).

Parsing lives here, not in the command line, so that extraction, training (an extract config
as ``data.cache``) and the demo read an extract config the same way ``video-eleatt extract``
does, without importing a command-line module.

>>> config = as_extract_config("configs/extract/tiny_random.yaml")  # doctest: +SKIP
>>> len(resolve_source(config).tasks)  # doctest: +SKIP
12
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ActionConfigFile, ArgumentParser

from video_eleatt.datasets import DatasetSpec, load_index
from video_eleatt.datasets._common import VIDEO_EXTENSIONS
from video_eleatt.features.backbones import BackboneConfig
from video_eleatt.video.info import MAX_LOST_FRACTION
from video_eleatt.video.sampling import SamplingConfig


def _default_sampling() -> SamplingConfig:
    return SamplingConfig(mode="fps", fps=8.0)


@dataclass
class ExtractConfig:
    """Everything an extraction run needs (the YAML of ``video-eleatt extract --config``).

    Input, one of: ``dataset`` (a DatasetSpec; every video of the dataset, labels from its
    index) or ``videos`` (a list file, one "path [label]" per line, paths relative to ``root``
    or the list's folder; or a folder, searched recursively for video files, unlabelled).

    Attributes:
        dataset: the dataset to extract (all its videos, whatever the split).
        videos: a list file or a folder of videos, when there is no dataset spec.
        root: folder the list file's paths are relative to (default: the list's folder).
        name: cache name prefix for ``videos`` input (default: the list/folder name).
        backbone: model name, library and weights.
        sampling: which frames of each video (mode "all", "fps", "uniform", "segments").
        batch_size: frames per backbone batch (every batch is full; the last is padded).
        num_workers: decode worker processes.
        timeout_s: wall-clock seconds one video may take to decode before its worker is
            killed and the video recorded as failed.
        chunk_size: frames per decoded chunk sent from a worker.
        dtype: storage dtype of the features ("float16" or "float32").
        precision: compute precision: "auto" (the fastest the hardware offers whose features
            pass the parity check: float16 autocast on CUDA, bfloat16 autocast on CPUs with
            native bfloat16 (AVX512-BF16/AMX), else float32), or "float32", "bfloat16" or
            "float16" (autocast) as given.
        parity_threshold: "auto" keeps reduced precision only where the smallest per-frame
            cosine similarity between its features and float32 NCHW features of the same
            frames is at least this (see :func:`parity_check`).
        parity_check: only run the parity check on frames of the first videos, print the
            report and exit (``video-eleatt extract ... --parity_check``).
        tune_malloc: stop glibc from returning large buffers to the OS after every forward
            pass (``mallopt``; the decode workers get ``MALLOC_MMAP_MAX_``): at batch 32 a
            resnet50 on CPU otherwise spends much of its time re-faulting activation memory.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        output_root: caches go to ``<output_root>/<dataset>_<backbone>_<hash8>``.
        cache_dir: an explicit cache directory instead (still refused on a config mismatch).
        strict: exit non-zero when any video failed.
        retry_failed: on a rerun, try videos that failed before again.
        on_damage: "keep" (default): a video with decode errors is its clean frames, and its
            manifest row and feature file say what was lost (count, first and last time);
            "fail": the first lost frame fails the video (the strict behaviour).
        max_lost_fraction: a video that loses more than this share of its frames fails
            ("mostly damaged"); 0.5 keeps a video while most of its time is still there.
        num_processes: local processes to spread the videos over (each with its own decode
            workers and device); under ``torchrun`` the ranks come from the environment.
        threads: torch threads per process on CPU; 0 (default) divides this process's CPU
            cores among the local processes (2 cores, 2 processes: 1 thread each), so that
            several ranks on one CPU do not oversubscribe it.
        limit: extract only the first N videos (sorted by path): smoke tests.
        progress: show a progress bar.
    """

    dataset: DatasetSpec | None = None
    videos: str | None = None
    root: str | None = None
    name: str | None = None
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    sampling: SamplingConfig = field(default_factory=_default_sampling)
    batch_size: int = 32
    num_workers: int = 2
    timeout_s: float = 120.0
    chunk_size: int = 16
    dtype: Literal["float16", "float32"] = "float16"
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    parity_threshold: float = 0.999
    parity_check: bool = False
    tune_malloc: bool = True
    device: str = "auto"
    output_root: str = "features"
    cache_dir: str | None = None
    strict: bool = False
    retry_failed: bool = True
    on_damage: Literal["keep", "fail"] = "keep"
    max_lost_fraction: float = MAX_LOST_FRACTION
    num_processes: int = 1
    threads: int = 0
    limit: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class VideoTask:
    """One video to extract."""

    rel_path: str
    path: str
    label: int | None


@dataclass
class VideoSource:
    """The resolved input of a run."""

    name: str
    tasks: list[VideoTask]  # sorted by rel_path
    class_names: list[str] | None
    dataset: dict[str, Any] | None
    description: dict[str, Any]


# --------------------------------------------------------------------------- parsing

EXTRACT_DESCRIPTION = (
    "Extract per-frame CNN features of a dataset, a list file or a folder of videos into "
    "a resumable cache. Rerun the same command to resume after an interruption."
)
BARE_FLAGS = (
    "--strict",
    "--retry_failed",
    "--progress",
    "--parity_check",
    "--tune_malloc",
)


def extract_parser(
    prog: str = "video-eleatt extract", description: str = EXTRACT_DESCRIPTION
) -> ArgumentParser:
    """The options of :class:`ExtractConfig` (``--config`` a YAML of them); ``check`` builds
    on the same parser."""
    parser = ArgumentParser(prog=prog, description=description, default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="extract config YAML")
    parser.add_class_arguments(ExtractConfig)
    return parser


def expand_bare_flags(argv: list[str], flags: Sequence[str] = BARE_FLAGS) -> list[str]:
    """``--strict`` alone means ``--strict true`` (jsonargparse booleans take a value)."""
    expanded = []
    for position, arg in enumerate(argv):
        expanded.append(arg)
        following = argv[position + 1] if position + 1 < len(argv) else None
        if arg in flags and (following is None or following.startswith("-")):
            expanded.append("true")
    return expanded


def config_from_namespace(parser: ArgumentParser, namespace: Any) -> ExtractConfig:
    """The :class:`ExtractConfig` of a namespace parsed by :func:`extract_parser`."""
    namespace = parser.instantiate(namespace)
    config = ExtractConfig(**{f.name: getattr(namespace, f.name) for f in fields(ExtractConfig)})
    if not 0.0 <= config.max_lost_fraction <= 1.0:
        parser.error(
            f"max_lost_fraction must be a share of a video's frames, in [0, 1]; got "
            f"{config.max_lost_fraction} (0.5 fails a video that loses more than half)"
        )
    return config


def parse_extract_config(argv: list[str]) -> ExtractConfig:
    """An :class:`ExtractConfig` from command-line arguments (``["--config", "x.yaml", ...]``).

    Raises:
        SystemExit: on an invalid option or value (jsonargparse prints the error).
    """
    parser = extract_parser()
    return config_from_namespace(parser, parser.parse_args(expand_bare_flags(argv)))


def as_extract_config(config: ExtractConfig | str | Path) -> ExtractConfig:
    """``config`` itself, or the :class:`ExtractConfig` of the YAML file it names."""
    if isinstance(config, ExtractConfig):
        return config
    return parse_extract_config(["--config", str(config)])


# --------------------------------------------------------------------------- inputs


def source_name(config: ExtractConfig) -> str:
    """The name a run's cache directory starts with: the dataset's name, else ``name``, else
    the stem of the ``videos`` list or folder. Read from the config alone (no file is read)."""
    if config.dataset is not None:
        return getattr(config.dataset, "name", None) or dict(config.dataset)["name"]
    return config.name or Path(config.videos or "videos").stem


def resolve_source(config: ExtractConfig) -> VideoSource:
    """The videos of a run: from the dataset index, a list file or a folder.

    Raises:
        ValueError: when neither or both of ``dataset`` and ``videos`` are given, or the list
            file or folder does not exist.
    """
    if (config.dataset is None) == (config.videos is None):
        raise ValueError(
            "give exactly one input: `dataset: {name: ..., root: ...}` or `videos: <list file "
            f"or folder>` (got dataset={config.dataset!r}, videos={config.videos!r})"
        )
    if config.dataset is not None:
        spec = config.dataset
        if not isinstance(spec, DatasetSpec):
            spec = DatasetSpec.from_dict(spec)
        index = load_index(spec)
        tasks = [
            VideoTask(record.rel_path, str(index.path(record)), record.label)
            for record in index.records
        ]
        # Recorded with absolute paths: training reads the dataset's lists through this record
        # (data.cache alone), from whatever folder it runs in.
        recorded = spec.to_dict()
        for key in ("root", "annotations"):
            if recorded[key] is not None:
                recorded[key] = os.path.abspath(recorded[key])
        return VideoSource(
            name=source_name(config),
            tasks=sorted(tasks, key=lambda task: task.rel_path),
            class_names=list(index.class_names),
            dataset=recorded,
            description={"kind": "dataset", "num_videos": len(tasks)},
        )
    source = Path(config.videos)  # type: ignore[arg-type]
    if source.is_dir():
        root = source
        tasks = [
            VideoTask(path.relative_to(root).as_posix(), str(path), None)
            for path in sorted(root.rglob("*"))
            if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file()
        ]
        class_names = None
        kind = "folder"
    elif source.is_file():
        root = Path(config.root) if config.root else source.parent
        tasks, class_names = _read_video_list(source, root)
        kind = "list"
    else:
        raise ValueError(
            f"videos={str(source)!r} is neither a list file nor a folder; expected a text file "
            "with one 'relative/path.mp4 [label]' per line, or a folder of videos"
        )
    if not tasks:
        raise ValueError(f"no videos found in {source}")
    return VideoSource(
        name=source_name(config),
        tasks=sorted(tasks, key=lambda task: task.rel_path),
        class_names=class_names,
        dataset=None,
        description={"kind": kind, "path": str(source), "root": str(root)},
    )


def _read_video_list(list_file: Path, root: Path) -> tuple[list[VideoTask], list[str] | None]:
    tasks = []
    for number, raw in enumerate(list_file.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.rsplit(maxsplit=1)
        label = None
        if len(tokens) == 2 and tokens[1].lstrip("-").isdigit():
            line, label = tokens[0], int(tokens[1])
        path = Path(line)
        if path.is_absolute():
            try:
                rel_path = path.relative_to(root.resolve()).as_posix()
            except ValueError as err:
                raise ValueError(
                    f"{list_file}:{number}: {line} is not under root {root}; list paths relative "
                    "to root, or set root"
                ) from err
        else:
            rel_path = Path(line).as_posix()
        tasks.append(VideoTask(rel_path, str(root / rel_path), label))
    labels = [task.label for task in tasks if task.label is not None]
    class_names = [str(i) for i in range(max(labels) + 1)] if labels else None
    return tasks, class_names
