"""The demo dataset folder: UCF101 layout, H.264 files, written resumably and in one piece.

:func:`generate_dataset` renders every clip (:mod:`video_eleatt.demo.render`), encodes it
reproducibly (:func:`write_video`), writes the UCF101 lists and ``demo_dataset.json`` (the
parameters, and the size and sha256 of every file) into a temporary sibling folder, and renames
it into place: the root is absent, complete, or an interrupted run's that is regenerated. A
complete dataset with the same parameters is found and left as it is.

>>> result = generate_dataset("data/demo/motion", SynthConfig(videos_per_class=4))  # doctest: +SKIP
>>> result.num_train, result.num_test  # doctest: +SKIP
(16, 16)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from video_eleatt.demo.render import render_video
from video_eleatt.demo.synth_config import CLASSES, SynthConfig
from video_eleatt.fileio import file_sha256

GENERATOR_VERSION = 1
DEFAULT_ROOT = "data/demo/motion"
INFO_FILE = "demo_dataset.json"
VIDEO_DIR = "UCF-101"
LIST_DIR = "ucfTrainTestlist"


class DemoDataError(RuntimeError):
    """The demo dataset cannot be written at the requested place or with these parameters."""


def video_rel_path(class_name: str, group: int, clip: int) -> str:
    """Path of a clip relative to the dataset root, UCF101 style."""
    return f"{VIDEO_DIR}/{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.mp4"


def write_video(path: str | Path, frames: np.ndarray, fps: int, crf: int = 18) -> None:
    """Encodes frames as H.264 (yuv420p) in an .mp4 file with PyAV.

    Args:
        path: output file.
        frames: (T, H, W, 3) uint8 RGB, H and W even.
        fps: frame rate (constant).
        crf: x264 constant rate factor.
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames {frames.shape} {frames.dtype}: expected (T, H, W, 3) uint8")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # One thread: videos are encoded in parallel processes instead. mbtree off: x264's
        # macroblock-tree lookahead made the same frames encode to different files from run
        # to run (it reads memory it did not write); without it the files are reproducible.
        stream.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "threads": "1",
            "x264-params": "mbtree=0",
        }
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            _zero_row_padding(frame)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _zero_row_padding(frame) -> None:
    """Zeroes the bytes past each row's end in a frame's planes (swscale leaves them
    uninitialised, and SIMD code may read them), so the encoder only ever sees our data."""
    for plane in frame.planes:
        if plane.line_size > plane.width:
            rows = np.frombuffer(memoryview(plane), dtype=np.uint8)
            rows = rows[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)
            rows[:, plane.width :] = 0


@dataclass
class DemoDataset:
    """What :func:`generate_dataset` found or wrote.

    Attributes:
        root: the dataset folder (UCF101 layout; read it with ``DatasetSpec("ucf101", root)``).
        created: False when a complete dataset with the same parameters was already there.
        config: its parameters.
        class_names: in class-id order.
        num_train: videos in ``trainlist01.txt``.
        num_test: videos in ``testlist01.txt``.
        seconds: time spent generating (0 when nothing was written).
    """

    root: Path
    created: bool
    config: SynthConfig
    class_names: list[str]
    num_train: int
    num_test: int
    seconds: float = 0.0


def _write_one(args: tuple[SynthConfig, str, int, int, str]) -> tuple[str, int, str, int]:
    config, class_name, group, clip, path = args
    frames = render_video(class_name, config, group, clip)
    write_video(path, frames, config.fps, config.crf)
    file = Path(path)
    return path, file.stat().st_size, file_sha256(file), len(frames)


def read_info(root: str | Path) -> dict | None:
    """The ``demo_dataset.json`` of a folder, or None if it has none (or it is unreadable)."""
    info_path = Path(root) / INFO_FILE
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(root: str | Path, info: dict | None = None) -> bool:
    """Whether every video and list recorded in the folder's ``demo_dataset.json`` is there,
    with the recorded size."""
    root = Path(root)
    info = read_info(root) if info is None else info
    if not info or "files" not in info:
        return False
    for rel_path, entry in info["files"].items():
        file = root / rel_path
        if not file.is_file() or file.stat().st_size != entry["bytes"]:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(root: Path) -> None:
    """Removes temporary folders of earlier runs for ``root`` whose process has ended."""
    for leftover in root.parent.glob(f".{root.name}.partial-*"):
        pid_text = leftover.name.rsplit("-", 1)[-1]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(leftover, ignore_errors=True)


def _config_differences(recorded: dict, config: SynthConfig) -> list[str]:
    wanted = config.to_dict()
    return [
        f"{key}={recorded.get(key)!r} (asked {value!r})"
        for key, value in wanted.items()
        if recorded.get(key) != value
    ]


def generate_dataset(
    root: str | Path = DEFAULT_ROOT,
    config: SynthConfig | None = None,
    num_workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> DemoDataset:
    """Writes the demo dataset in UCF101 layout, or finds it already complete.

    The dataset is written into a temporary sibling folder and renamed into place, so
    ``root`` is either absent, complete, or a folder of an earlier interrupted run that is
    regenerated. Layout::

        root/UCF-101/<Class>/v_<Class>_gXX_cYY.mp4
        root/ucfTrainTestlist/classInd.txt     "1 Grow" ...
        root/ucfTrainTestlist/trainlist01.txt  "Grow/v_Grow_g04_c01.mp4 1" ...
        root/ucfTrainTestlist/testlist01.txt   "Grow/v_Grow_g01_c01.mp4" ...
        root/demo_dataset.json                 parameters, seed, file sizes and sha256

    Args:
        root: the dataset folder.
        config: parameters (defaults: :class:`SynthConfig`).
        num_workers: processes rendering and encoding videos (1 = in this process).
        progress: called with ``(videos_done, videos_total)`` after each video.

    Returns:
        What is at ``root`` now.

    Raises:
        DemoDataError: ``root`` is a file, a non-empty folder that is not a demo dataset, a
            complete demo dataset with other parameters, or cannot be written.
    """
    config = config or SynthConfig()
    root = Path(root).expanduser()
    start = time.perf_counter()
    if root.exists() and not root.is_dir():
        raise DemoDataError(f"demo dataset root {root} is a file; pass a folder (--root DIR)")
    replace_existing = False
    if root.is_dir() and any(root.iterdir()):
        info = read_info(root)
        if info is None or info.get("generator") != "video_eleatt.demo":
            raise DemoDataError(
                f"{root} is not empty and holds no {INFO_FILE}: it does not look like a demo "
                "dataset, and it is left alone. Pass --root to an empty or new folder."
            )
        if is_complete(root, info):
            differences = _config_differences(info.get("config", {}), config)
            if info.get("version") != GENERATOR_VERSION:
                differences.append(
                    f"generator version {info.get('version')} (now {GENERATOR_VERSION})"
                )
            if differences:
                raise DemoDataError(
                    f"{root} holds a complete demo dataset made with other parameters: "
                    f"{'; '.join(differences)}. Pass --root to another folder, or delete {root} "
                    "to regenerate it."
                )
            return _describe(root, info, created=False)
        replace_existing = True  # ours but incomplete: regenerate

    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(root)
        partial = root.parent / f".{root.name}.partial-{os.getpid()}"
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir()
    except OSError as err:
        raise DemoDataError(
            f"cannot write the demo dataset at {root}: {err}. Pass --root to a writable folder."
        ) from err

    try:
        info = _write_dataset(partial, config, num_workers, progress)
        if replace_existing:
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            root.rename(old)
            partial.rename(root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if root.is_dir():
                root.rmdir()  # empty, checked above
            partial.rename(root)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise DemoDataError(
            f"writing the demo dataset at {root} failed: {err}. Nothing was left in place; "
            "free space or pass --root to a writable folder."
        ) from err
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return _describe(root, info, created=True, seconds=time.perf_counter() - start)


def _write_dataset(
    folder: Path,
    config: SynthConfig,
    num_workers: int,
    progress: Callable[[int, int], None] | None,
) -> dict:
    jobs = []
    train_lines, test_lines = [], []
    for label, class_name in enumerate(config.classes, start=1):
        (folder / VIDEO_DIR / class_name).mkdir(parents=True)
        for group, clip in config.clips():
            rel_path = video_rel_path(class_name, group, clip)
            listed = rel_path.split("/", 1)[1]
            if group <= config.test_groups:
                test_lines.append(listed)
            else:
                train_lines.append(f"{listed} {label}")
            jobs.append((config, class_name, group, clip, str(folder / rel_path)))

    files: dict[str, dict] = {}
    frame_counts: dict[str, int] = {}
    total = len(jobs)
    if num_workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # An executor, not a Pool: a worker that dies raises BrokenProcessPool here instead
        # of hanging. Spawned workers: no forked copies of a parent's threads or torch state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(num_workers, mp_context=context) as executor:
            results = executor.map(_write_one, jobs, chunksize=4)
            for done, result in enumerate(results, start=1):
                _record(folder, result, files, frame_counts)
                if progress:
                    progress(done, total)
    else:
        for done, job in enumerate(jobs, start=1):
            _record(folder, _write_one(job), files, frame_counts)
            if progress:
                progress(done, total)

    list_dir = folder / LIST_DIR
    list_dir.mkdir()
    texts = {
        f"{LIST_DIR}/classInd.txt": "".join(
            f"{label} {name}\n" for label, name in enumerate(config.classes, start=1)
        ),
        f"{LIST_DIR}/trainlist01.txt": "".join(line + "\n" for line in train_lines),
        f"{LIST_DIR}/testlist01.txt": "".join(line + "\n" for line in test_lines),
    }
    for rel_path, text in texts.items():
        (folder / rel_path).write_text(text, encoding="utf-8")
        data = text.encode("utf-8")
        files[rel_path] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    info = {
        "generator": "video_eleatt.demo",
        "version": GENERATOR_VERSION,
        "config": config.to_dict(),
        "classes": [
            {"id": class_id, "name": name, "family": CLASSES[name][0], "pattern": CLASSES[name][1]}
            for class_id, name in enumerate(config.classes)
        ],
        "split": {
            "test_groups": list(range(1, config.test_groups + 1)),
            "train_groups": list(range(config.test_groups + 1, config.num_groups + 1)),
            "num_train": len(train_lines),
            "num_test": len(test_lines),
        },
        "frames": frame_counts,
        "files": dict(sorted(files.items())),
    }
    # Written last: its presence with every listed file marks the folder complete.
    (folder / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def _record(folder: Path, result, files: dict, frame_counts: dict) -> None:
    path, size, digest, num_frames = result
    rel_path = Path(path).relative_to(folder).as_posix()
    files[rel_path] = {"bytes": size, "sha256": digest}
    frame_counts[rel_path] = num_frames


def _describe(root: Path, info: dict, created: bool, seconds: float = 0.0) -> DemoDataset:
    config = SynthConfig.from_dict(info["config"])
    return DemoDataset(
        root=root,
        created=created,
        config=config,
        class_names=list(config.classes),
        num_train=info["split"]["num_train"],
        num_test=info["split"]["num_test"],
        seconds=seconds,
    )
