"""A full disk at each step of an atomic write (``video_eleatt.fileio.atomic_write_bytes``).

``inject_disk_full(monkeypatch, stage)`` makes the next atomic write fail with ``ENOSPC``:

- ``"write"``: half of the first write's bytes reach the temporary file, then the disk is
  full (it fills while the data is being written);
- ``"fsync"``: every byte is written, then flushing it to the disk fails;
- ``"rename"``: the temporary file is complete and synced, moving it over the target fails.

The faults are the OS's own ``OSError(errno.ENOSPC)``, raised where the OS would raise it.
"""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from video_eleatt import fileio

STAGES = ("write", "fsync", "rename")


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FillingFile:
    """A real file on a disk that fills during the first write: half of that write's bytes
    are stored, then the write fails."""

    def __init__(self, handle: Any):
        self._handle = handle

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._handle.write(view[: len(view) // 2])
        self._handle.flush()
        raise _disk_full()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def filling_open(only: Path | None = None) -> Any:
    """An ``open`` whose files opened for writing or appending (all, or only ``only``) are on a
    disk that fills during their first write. Set it as a module's ``open``: a module looks the
    name up in its globals before the builtins."""

    def open_(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = builtins.open(path, mode, *args, **kwargs)  # noqa: SIM115 (closed by caller)
        chosen = only is None or Path(path) == Path(only)
        return _FillingFile(handle) if chosen and ("w" in mode or "a" in mode) else handle

    return open_


def inject_disk_full(monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    """Atomic writes fail with ENOSPC at ``stage`` until ``monkeypatch.undo()``."""
    if stage == "write":
        monkeypatch.setattr(fileio, "open", filling_open(), raising=False)
    elif stage == "fsync":

        def failing_fsync(fd: int) -> None:
            raise _disk_full()

        monkeypatch.setattr(fileio.os, "fsync", failing_fsync)
    elif stage == "rename":

        def failing_replace(src: Any, dst: Any) -> None:
            raise _disk_full()

        monkeypatch.setattr(fileio.os, "replace", failing_replace)
    else:
        raise ValueError(f"stage {stage!r}: expected one of {STAGES}")


def temporary_files(folder: Any) -> list[str]:
    """Names of atomic-write temporary files (``.<name>.tmp<pid>``) under ``folder``."""
    return sorted(
        path.name for path in Path(folder).rglob(".*") if ".tmp" in path.name and path.is_file()
    )
