"""Atomic file writes, shared by the feature cache, run directories and checkpoints.

A reader of a file written here sees the previous content or the whole new one, never a
prefix: the bytes go to a temporary file in the same folder, which is flushed and fsync'ed and
then renamed over the target; the folder is fsync'ed so the rename survives a power cut. A
failed write removes its temporary file and raises the ``OSError``; callers say what the file
was and what to do (:func:`write_failure_reason` words the common causes).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
}


def write_failure_reason(err: OSError) -> str:
    """Plain words for why a write failed ("the disk is full", ...), else the OS's text."""
    return _REASONS.get(err.errno or 0, err.strerror or str(err))


def atomic_write_bytes(path: str | Path, data: bytes | Iterable[Any]) -> None:
    """Writes ``data`` to ``path`` atomically (see the module docstring).

    Args:
        path: the file to (re)place; missing parent folders are created.
        data: the content, or bytes-like parts (``bytes``, C-contiguous numpy arrays) written
            one after the other, so a large array goes to the file with no joined copy.

    Raises:
        OSError: the folder cannot be created or the file written; nothing is left behind.
    """
    path = Path(path)
    parts = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            for part in parts:
                handle.write(part)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: str | Path) -> None:
    """Makes a rename inside ``directory`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
