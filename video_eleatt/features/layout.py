"""Where things are in a feature cache directory, and how a file gets there safely.

Layout of a cache directory::

    <cache_dir>/config.json        everything that changes the features (the ``features``
                                   section, hashed into the directory name), the dataset spec,
                                   class names, feature_dim
    <cache_dir>/requests.json      the extract requests (options as written, canonicalised)
                                   that name this cache: how an extract config finds it
                                   without building its backbone (``locate.find_cache``)
    <cache_dir>/manifest.jsonl     append-only, one JSON object per line, later lines win:
                                   {"rel_path", "label", "status": "ok"|"failed",
                                    "num_steps", "feature_dim", "error"}; an "ok" row also
                                   holds "sha256", the digest of its file's bytes
    <cache_dir>/manifest.rank{r}.jsonl   per-rank parts while a multi-process run is going;
                                   merged into manifest.jsonl when it ends
    <cache_dir>/features/<rel_path>.safetensors
        tensors "features" (T, D) float16|float32, "frame_indices" (T,) int64,
        "timestamps" (T,) float64 seconds; string metadata "fps", "num_frames", "duration",
        "rel_path", "label"
    <cache_dir>/packed/            read-optimised form (see ``video_eleatt.features.packed``)

Every file is written atomically (temporary file in the same directory, fsync, ``os.replace``)
and a failed write raises :class:`CacheWriteError` naming the path and the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from video_eleatt import fileio
from video_eleatt.fileio import write_failure_reason

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
REQUESTS_NAME = "requests.json"
MANIFEST_NAME = "manifest.jsonl"
FEATURES_DIR = "features"
PACKED_DIR = "packed"
SUFFIX = ".safetensors"
TEMP_PATTERN = re.compile(r"^\..+\.tmp\d+$")  # atomic_write_bytes' temporary files


class CacheError(RuntimeError):
    """A feature cache is missing, malformed or was made with another configuration."""


class CacheWriteError(CacheError):
    """Writing to the cache failed (disk full, read-only or unwritable directory)."""


# --------------------------------------------------------------------------- paths


def check_rel_path(rel_path: str) -> str:
    """Returns ``rel_path`` if it is a safe POSIX path relative to the dataset root.

    Raises:
        CacheError: for absolute paths, backslashes, empty parts, ``.`` or ``..``.
    """
    parts = rel_path.split("/")
    if (
        not rel_path
        or rel_path.startswith("/")
        or "\\" in rel_path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise CacheError(
            f"bad relative path {rel_path!r}: expected a POSIX path relative to the dataset "
            "root such as 'class/video.avi' (no leading '/', no '..', no backslashes)"
        )
    return rel_path


def feature_path(cache_dir: str | Path, rel_path: str) -> Path:
    """Where the features of ``rel_path`` live: ``<cache_dir>/features/<rel_path>.safetensors``.

    Keyed by the whole relative path (``a/v.avi`` and ``b/v.avi`` are different files),
    never by file stem.
    """
    return Path(cache_dir) / FEATURES_DIR / (check_rel_path(rel_path) + SUFFIX)


# --------------------------------------------------------------------------- atomic writes


def write_error(path: Path, err: OSError) -> CacheWriteError:
    return CacheWriteError(
        f"cannot write {path}: {write_failure_reason(err)} ({type(err).__name__}: {err}). Free "
        "space or choose a writable output_root; entries written so far are kept and a rerun "
        "resumes from them."
    )


def atomic_write_bytes(path: str | Path, data: bytes | Iterable[Any]) -> None:
    """:func:`video_eleatt.fileio.atomic_write_bytes` for cache files.

    ``data`` may be parts written one after the other: a video's (T, D) features go to the
    file straight from their array (see :func:`write_entry`).

    Raises:
        CacheWriteError: naming the path when the directory cannot be created or written.
    """
    try:
        fileio.atomic_write_bytes(path, data)
    except OSError as err:
        raise write_error(Path(path), err) from err


def read_config(cache_dir: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a cache.

    Raises:
        CacheError: when there is none (the path is not a cache).
    """
    path = Path(cache_dir) / CONFIG_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise CacheError(
            f"{cache_dir} is not a feature cache: no {CONFIG_NAME}. Expected a directory made "
            "by `video-eleatt extract` or `video-eleatt import-features` (or create_cache())."
        ) from err
    except ValueError as err:
        raise CacheError(f"{path} is not valid JSON: {err}") from err
