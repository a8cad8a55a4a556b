"""The manifest of a cache: one JSON row per video, appended as each video finishes.

``manifest.jsonl`` is append-only, later lines win: {"rel_path", "label", "status":
"ok"|"failed", "num_steps", "feature_dim", "error"} (an "ok" row also holds "sha256" and how
the video was decoded). Each rank of a multi-process run appends to its own
``manifest.rank{r}.jsonl``; :func:`compact_manifest` folds them in at the end. A row is
appended only after its file is in place, and a line torn by a kill is skipped on reading and
cut off before the next append.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from video_eleatt.features.layout import MANIFEST_NAME, atomic_write_bytes, write_error

_PART_PATTERN = re.compile(r"^manifest\.rank(\d+)\.jsonl$")


def manifest_row(
    rel_path: str,
    label: int | None,
    status: str,
    num_steps: int | None = None,
    feature_dim: int | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One manifest row; ``status`` is "ok" or "failed"."""
    if status not in ("ok", "failed"):
        raise ValueError(f"status {status!r}: expected 'ok' or 'failed'")
    return {
        "rel_path": rel_path,
        "label": None if label is None else int(label),
        "status": status,
        "num_steps": num_steps,
        "feature_dim": feature_dim,
        "error": error,
    }


def _read_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of one manifest file and the number of unreadable lines skipped."""
    rows, skipped = [], 0
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return rows, 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            skipped += 1  # a torn line: the writer was killed mid-append
            continue
        if isinstance(row, dict) and isinstance(row.get("rel_path"), str):
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped


def manifest_part_paths(cache_dir: str | Path) -> list[Path]:
    """The per-rank manifest parts ``manifest.rank{r}.jsonl``, in rank order."""
    parts = []
    for path in Path(cache_dir).glob("manifest.rank*.jsonl"):
        match = _PART_PATTERN.match(path.name)
        if match:
            parts.append((int(match.group(1)), path))
    return [path for _, path in sorted(parts)]


def read_manifest(cache_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The latest row per relative path: ``manifest.jsonl``, then unmerged rank parts.

    Lines that are not complete JSON objects (a line torn by a kill) are skipped.
    """
    latest: dict[str, dict[str, Any]] = {}
    for path in [Path(cache_dir) / MANIFEST_NAME, *manifest_part_paths(cache_dir)]:
        rows, _ = _read_rows(path)
        for row in rows:
            latest[row["rel_path"]] = row
    return latest


class ManifestWriter:
    """Appends rows to one manifest file, one fsync'ed line per row.

    A torn last line left by a killed writer is cut off when the file is opened, so the next
    row starts on a line of its own.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "ab+")  # noqa: SIM115 (closed in close())
            size = self._handle.seek(0, os.SEEK_END)
            if size:
                self._handle.seek(max(0, size - 1))
                if self._handle.read(1) != b"\n":
                    self._handle.seek(0)
                    data = self._handle.read()
                    self._handle.truncate(data.rfind(b"\n") + 1)
                    self._handle.seek(0, os.SEEK_END)
        except OSError as err:
            raise write_error(self.path, err) from err

    def append(self, row: Mapping[str, Any]) -> None:
        """Appends one row and makes it durable."""
        line = json.dumps(dict(row), sort_keys=True) + "\n"
        try:
            self._handle.write(line.encode())
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as err:
            raise write_error(self.path, err) from err

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compact_manifest(cache_dir: str | Path) -> int:
    """Folds rank parts into ``manifest.jsonl`` and rewrites it as one row per video.

    Rows are sorted by relative path, so two runs that end in the same state leave the same
    bytes. Done by the single writer at the end of a run; atomic. Returns the row count.
    """
    cache_dir = Path(cache_dir)
    latest = read_manifest(cache_dir)
    text = "".join(json.dumps(latest[key], sort_keys=True) + "\n" for key in sorted(latest))
    atomic_write_bytes(cache_dir / MANIFEST_NAME, text.encode())
    for part in manifest_part_paths(cache_dir):
        part.unlink()
    return len(latest)
