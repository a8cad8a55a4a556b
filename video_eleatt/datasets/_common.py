"""Helpers shared by the readers: reading list files, finding videos, reporting offenders."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from video_eleatt.datasets.index import DatasetError, DatasetWarning

VIDEO_EXTENSIONS = frozenset(
    {
        ".avi",
        ".mp4",
        ".mkv",
        ".webm",
        ".mov",
        ".m4v",
        ".mpg",
        ".mpeg",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
        ".ts",
    }
)
MAX_SHOWN = 5


def is_video_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def show(items: Sequence[str], limit: int = MAX_SHOWN) -> str:
    """The first few offenders, one per line, and how many more there are."""
    lines = [f"  {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines)


def raise_offenders(offenders: Sequence[str], what: str, source: Path | str, fix: str) -> None:
    """Raises a DatasetError listing the first offenders, if there are any."""
    if offenders:
        raise DatasetError(f"{source}: {len(offenders)} {what}:\n{show(offenders)}\n{fix}")


def read_lines(path: Path, what: str, fix: str) -> list[tuple[int, str]]:
    """Non-blank lines of a text file as ``(line_number, stripped_text)``, 1-based.

    Raises:
        DatasetError: the file is missing or not UTF-8 text; ``what`` and ``fix`` say which
            file was expected and where it comes from.
    """
    if not path.is_file():
        raise DatasetError(f"missing {what}: {path} does not exist. {fix}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path} is not UTF-8 text ({err}); expected the {what}") from err
    return [
        (number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()
    ]


def first_dir(candidates: Iterable[Path]) -> Path | None:
    return next((path for path in candidates if path.is_dir()), None)


def relative_posix(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


class FileTree:
    """All files below ``root / subdir``, found once, keyed by POSIX path relative to root.

    Listed videos are found by their exact path, else case-insensitively (UCF101 spells one
    class HandstandPushups in its lists and HandStandPushups in file names), else by the same
    name with another video extension (a transcoded copy).
    """

    def __init__(self, root: Path, subdir: str = "") -> None:
        self.root = root
        self.files: set[str] = set()
        start = root / subdir if subdir else root
        for directory, dirnames, filenames in os.walk(start, followlinks=True):
            dirnames.sort()
            relative = Path(directory).relative_to(root).as_posix()
            prefix = "" if relative == "." else relative + "/"
            self.files.update(prefix + name for name in filenames if not name.startswith("."))
        self._lower: dict[str, list[str]] | None = None
        self._stems: dict[str, list[str]] | None = None

    def resolve(self, rel_path: str) -> str | None:
        """The stored path of ``rel_path`` (see class docstring), ``None`` when absent."""
        if rel_path in self.files:
            return rel_path
        if self._lower is None:
            self._lower = {}
            self._stems = {}
            for path in sorted(self.files):
                self._lower.setdefault(path.lower(), []).append(path)
                if is_video_name(path):
                    stem = os.path.splitext(path.lower())[0]
                    self._stems.setdefault(stem, []).append(path)
        matches = self._lower.get(rel_path.lower())
        if matches is None:
            stem = os.path.splitext(rel_path.lower())[0]
            matches = self._stems.get(stem) if self._stems is not None else None
        return matches[0] if matches and len(matches) == 1 else None

    def videos(self) -> list[str]:
        """Every file with a video extension, sorted."""
        return sorted(path for path in self.files if is_video_name(path))


def resolve_listed(
    tree: FileTree, entries: Sequence[tuple[str, str]], source: str, fix: str
) -> list[str]:
    """Finds each listed video in ``tree``.

    Args:
        tree: the files of the video folder.
        entries: ``(where, rel_path)`` per listed video; ``where`` says which file and line
            listed it.
        source: the annotation file(s), for the error message.
        fix: what the user should do when videos are absent.

    Returns:
        The stored rel_path of each entry, in order.

    Raises:
        DatasetError: some listed videos are absent; the first few are shown with their line.
    """
    found: list[str] = []
    absent: list[str] = []
    for where, rel_path in entries:
        stored = tree.resolve(rel_path)
        if stored is None:
            absent.append(f"{where}: {rel_path}")
        else:
            found.append(stored)
    raise_offenders(absent, f"listed video(s) not found under {tree.root}", source, fix)
    return found


def check_unique(entries: Sequence[tuple[str, str]], stored: Sequence[str], source: str) -> None:
    """Raises when two entries resolve to the same video file.

    Args:
        entries: ``(where, rel_path)`` per listed video, as given to ``resolve_listed``.
        stored: what ``resolve_listed`` returned for them.
        source: the annotation file(s), for the error message.
    """
    where: dict[str, list[str]] = {}
    for (place, _), rel_path in zip(entries, stored):
        where.setdefault(rel_path, []).append(place)
    duplicates = [
        f"{rel_path} (listed at {', '.join(places)})"
        for rel_path, places in where.items()
        if len(places) > 1
    ]
    raise_offenders(duplicates, "duplicate entries", source, "Each video must be listed once.")


def unlisted_note(tree: FileTree, listed: Iterable[str], folder: str) -> list[str]:
    """Counts video files on disk that no annotation lists (not indexed): a note, warned."""
    listed_set = set(listed)
    unlisted = [path for path in tree.videos() if path not in listed_set]
    if not unlisted:
        return []
    note = (
        f"{len(unlisted)} video file(s) under {folder} are listed by no annotation file and "
        f"are not indexed, e.g. {', '.join(unlisted[:3])}"
    )
    warnings.warn(note, DatasetWarning, stacklevel=3)
    return [note]
