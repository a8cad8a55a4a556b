"""Low file helpers shared by every layer: atomic writes, JSON-safe values, safe file names.

Atomic writes serve the feature cache, run directories, checkpoints and reports.

A reader of a file written here sees the previous content or the whole new one, never a
prefix: the bytes go to a temporary file in the same folder, which is flushed and fsync'ed and
then renamed over the target; the folder is fsync'ed so the rename survives a power cut. A
failed write removes its temporary file and raises the ``OSError``; callers say what the file
was and what to do (:func:`write_failure_reason` words the common causes).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import re
from collections.abc import Iterable, Mapping
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


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes a UTF-8 text file atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """``value`` with what ``json.dumps`` cannot write made plain, recursively.

    Tensors and numpy arrays become (nested) lists, numpy / torch scalars Python numbers,
    NaN and inf ``None``, paths ``str``, mapping keys ``str``. Tensors are recognised by their
    ``tolist`` method, so this module does not import torch.

    >>> json_safe({"loss": float("nan"), 1: (2.5,)})
    {'loss': None, '1': [2.5]}
    """
    if hasattr(value, "tolist") and callable(value.tolist):  # tensors, arrays, numpy scalars
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        return json_safe(value.item())
    return value


def safe_name(rel_path: str) -> str:
    """A file-name-safe form of a video's rel_path, without its extension.

    >>> safe_name("a/b c.avi")
    'a_b_c'
    """
    stem = rel_path.rsplit(".", 1)[0] if "." in rel_path.rsplit("/", 1)[-1] else rel_path
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_") or "video"


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


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
