"""``video-eleatt check``: find the videos of a dataset that cannot be decoded, before extracting.

Like mmaction2's ``check_videos``: each video is opened and its first, last and a few random
frames (seeded per video, so reruns check the same frames) are decoded, in parallel worker
processes with a per-video timeout (:class:`~video_eleatt.video.pool.DecodePool`). The
unreadable ones are written, with the reason, to a TSV file (``rel_path<TAB>reason``) and
summarised on stdout; ``--strict`` makes any failure a non-zero exit.

Videos come from one of:

- ``--config FILE.yaml``: a config holding a dataset spec (an extraction or training config,
  ``dataset: {name: ucf101, root: data/ucf101, split: 1}``), read with the dataset index;
- ``--dataset NAME --root DIR [--split S]``: the same spec on the command line;
- ``--list FILE``: one path per line, relative to ``--root`` (default: the list's folder);
  a trailing integer label on a line is ignored;
- ``--folder DIR``: every file under DIR with a video extension (``--extensions``).

Example::

    video-eleatt check --config configs/extract/ucf101_resnet50.yaml --output bad.tsv --strict
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_eleatt.datasets._common import VIDEO_EXTENSIONS
from video_eleatt.video.decode import VideoInfo


@dataclass(frozen=True)
class FirstLastRandom:
    """Frame picker: the first frame, the last frame and ``num_random`` seeded random ones.

    Picklable, for :attr:`video_eleatt.video.pool.DecodeTask.frame_picker`.
    """

    num_random: int = 3
    seed: int = 0

    def __call__(self, info: VideoInfo, timestamps: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        random = rng.integers(0, info.num_frames, size=self.num_random)
        return np.unique(np.concatenate([[0, info.num_frames - 1], random]).astype(np.int64))


@dataclass
class CheckResult:
    """Outcome of checking a set of videos.

    Attributes:
        num_checked: videos checked.
        failures: (rel_path, reason) of every unreadable video, in input order.
        seconds: wall-clock time of the check.
    """

    num_checked: int
    failures: list[tuple[str, str]]
    seconds: float


def video_seed(rel_path: str, seed: int) -> int:
    """A per-video seed that depends only on the video's path and the run's seed."""
    return zlib.crc32(rel_path.encode("utf-8")) ^ (seed & 0xFFFFFFFF)


def check_videos(
    root: str | Path,
    rel_paths: Sequence[str],
    num_workers: int = 2,
    timeout_s: float = 60.0,
    num_random: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> CheckResult:
    """Decode the first, last and ``num_random`` random frames of every video.

    Args:
        root: folder the relative paths are under.
        rel_paths: POSIX paths of the videos relative to ``root``.
        num_workers: decode worker processes.
        timeout_s: seconds a video may take before its worker is killed and it is failed.
        num_random: random frames per video besides the first and last.
        seed: seed of the random frames (combined with each video's path).
        progress: show a progress bar on stderr (when it is a terminal).

    Returns:
        The failures with their reasons, in the order of ``rel_paths``.
    """
    from tqdm import tqdm

    from video_eleatt.video.pool import DecodePool, DecodeTask, VideoFailed, VideoFinished

    root = Path(root)
    start = time.monotonic()
    tasks = [
        DecodeTask(
            key=rel_path,
            path=str(root / rel_path),
            frame_picker=FirstLastRandom(num_random, video_seed(rel_path, seed)),
        )
        for rel_path in rel_paths
    ]
    reasons: dict[str, str] = {}
    bar = tqdm(total=len(tasks), unit="video", disable=None if progress else True, file=sys.stderr)
    # chunk_size covers every picked frame: one get_batch per video
    with DecodePool(num_workers, timeout_s, chunk_size=num_random + 2) as pool:
        for event in pool.imap(tasks):
            if isinstance(event, VideoFailed):
                reasons[event.key] = " ".join(event.reason.split())  # one line, no tabs
            if isinstance(event, VideoFailed | VideoFinished):
                bar.update(1)
                bar.set_postfix(unreadable=len(reasons))
    bar.close()
    failures = [(rel_path, reasons[rel_path]) for rel_path in rel_paths if rel_path in reasons]
    return CheckResult(len(rel_paths), failures, time.monotonic() - start)


def write_failures(path: str | Path, failures: Sequence[tuple[str, str]]) -> None:
    """Write ``rel_path<TAB>reason`` lines under a header (an empty list still writes it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["rel_path\treason"] + [f"{rel_path}\t{reason}" for rel_path, reason in failures]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_list(list_file: Path) -> list[str]:
    """Relative paths of a list file, one video per non-empty, non-# line.

    A line's last token is dropped when it is an integer (a label, mmaction2 style); the rest
    of the line is the path, so paths may hold spaces.
    """
    rel_paths = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        is_label = len(parts) == 2 and parts[1].lstrip("-").isdigit()
        rel_paths.append(parts[0] if is_label else line)
    return rel_paths


def scan_folder(folder: Path, extensions: Sequence[str]) -> list[str]:
    """POSIX paths, relative to ``folder``, of the files under it with one of ``extensions``."""
    wanted = {
        extension.lower() if extension.startswith(".") else f".{extension.lower()}"
        for extension in extensions
    }
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in wanted
    )


def format_summary(result: CheckResult, output: str | None, max_listed: int = 20) -> str:
    """The text printed at the end of a check."""
    bad = len(result.failures)
    lines = [
        f"checked {result.num_checked} videos in {result.seconds:.1f} s: "
        f"{result.num_checked - bad} readable, {bad} unreadable"
    ]
    for rel_path, reason in result.failures[:max_listed]:
        lines.append(f"  {rel_path}: {reason}")
    if bad > max_listed:
        lines.append(f"  ... and {bad - max_listed} more" + (f" (see {output})" if output else ""))
    if output:
        lines.append(f"list of unreadable videos written to {output}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``video-eleatt check``: decode a few frames of every video, list the unreadable ones."""
    from jsonargparse import ActionYesNo, ArgumentParser

    from video_eleatt.datasets.cli import add_dataset_arguments

    parser = ArgumentParser(
        prog="video-eleatt check",
        description="Preflight: decode the first, last and a few random frames of every video "
        "(in parallel, with a per-video timeout) and list the ones that cannot be decoded. "
        "Videos from a config's dataset spec, --dataset/--root, --list or --folder.",
    )
    add_dataset_arguments(
        parser,
        root_help="dataset root, or the folder --list paths are relative to (default: its folder)",
    )
    parser.add_argument("--list", type=str | None, default=None, help="file: one path a line")
    parser.add_argument("--folder", type=str | None, default=None, help="check every video here")
    parser.add_argument(
        "--extensions",
        type=list[str],
        default=sorted(VIDEO_EXTENSIONS),
        help="video file extensions for --folder",
    )
    parser.add_argument("--output", type=str | None, default=None, help="TSV of unreadable ones")
    parser.add_argument("--workers", type=int, default=2, help="decode worker processes")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per video")
    parser.add_argument("--num_random", type=int, default=3, help="random frames per video")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random frames")
    parser.add_argument(
        "--strict", action=ActionYesNo, default=False, help="exit 1 if any video is unreadable"
    )
    args = parser.parse_args(argv)

    sources = [
        args.config is not None or args.dataset is not None,
        args.list is not None,
        args.folder is not None,
    ]
    if sum(sources) != 1:
        parser.error("give exactly one of --config (or --dataset/--root), --list or --folder")
    try:
        root, rel_paths = _videos_to_check(args)
    except (OSError, ValueError) as err:  # DatasetError is a ValueError
        print(f"video-eleatt check: error: {err}", file=sys.stderr)
        return 2
    if not rel_paths:
        print("video-eleatt check: error: no videos to check", file=sys.stderr)
        return 2
    result = check_videos(
        root,
        rel_paths,
        num_workers=args.workers,
        timeout_s=args.timeout,
        num_random=args.num_random,
        seed=args.seed,
    )
    if args.output:
        write_failures(args.output, result.failures)
    print(format_summary(result, args.output))
    return 1 if args.strict and result.failures else 0


def _videos_to_check(args) -> tuple[Path, list[str]]:
    if args.list is not None:
        list_file = Path(args.list)
        if not list_file.is_file():
            raise ValueError(f"list file {list_file} does not exist")
        return Path(args.root) if args.root else list_file.parent, read_list(list_file)
    if args.folder is not None:
        folder = Path(args.folder)
        if not folder.is_dir():
            raise ValueError(f"--folder {folder} is not a directory")
        return folder, scan_folder(folder, args.extensions)
    from video_eleatt.datasets.cli import spec_from_arguments
    from video_eleatt.datasets.index import load_index

    index = load_index(spec_from_arguments(args))
    # videos the annotations list but the local copy lacks (tolerated for Kinetics) are checked
    # too: they fail as missing files, so they appear in the list of unreadable videos
    return index.root, [record.rel_path for record in index.records] + list(index.missing)
