"""The feature cache: one safetensors file per video, a manifest, and the config that made them.

Layout of a cache directory::

    <cache_dir>/config.json        everything that changes the features (the ``features``
                                   section, hashed into the directory name), the dataset spec,
                                   class names, feature_dim
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
and its manifest row is appended only after the file is in place, so a row saying "ok" always
points at a complete file, whatever moment the writer was killed at. Files are encoded here
with sorted keys (the safetensors library orders metadata at random), so the same features
always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from video_eleatt import fileio
from video_eleatt.config_files import ConfigNameError, find_config
from video_eleatt.fileio import write_failure_reason
from video_eleatt.video.decode import DECODE_VERSION

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
MANIFEST_NAME = "manifest.jsonl"
FEATURES_DIR = "features"
PACKED_DIR = "packed"
SUFFIX = ".safetensors"
_PART_PATTERN = re.compile(r"^manifest\.rank(\d+)\.jsonl$")
TEMP_PATTERN = re.compile(r"^\..+\.tmp\d+$")  # atomic_write_bytes' temporary files
# config.json keys compared when a directory is reused; the dataset root, split and list files
# may change (a moved dataset, another split of the same videos) without changing the features.
IDENTITY_KEYS = ("format_version", "features", "feature_dim", "class_names", "dataset.name")

_SAFETENSORS_DTYPES = {
    np.dtype("float16"): "F16",
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
}
STORAGE_DTYPES = ("float16", "float32")


class CacheError(RuntimeError):
    """A feature cache is missing, malformed or was made with another configuration."""


class CacheWriteError(CacheError):
    """Writing to the cache failed (disk full, read-only or unwritable directory)."""


@dataclass
class VideoFeatures:
    """The cached features of one video.

    Attributes:
        features: (T, D) per-step features, float16 or float32 as stored.
        frame_indices: (T,) int64 source frame index of each step.
        timestamps: (T,) float64 time of each step in seconds.
        fps: the video's average frame rate.
        num_frames: the video's frame count.
        duration: the video's duration in seconds.
        label: 0-based class id, None when unknown.
    """

    features: torch.Tensor
    frame_indices: torch.Tensor
    timestamps: torch.Tensor
    fps: float
    num_frames: int
    duration: float
    label: int | None = None


# --------------------------------------------------------------------------- paths and names


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


def features_hash(features_identity: Mapping[str, Any]) -> str:
    """Short (8 hex digits) sha256 of the canonical JSON of what changes the features."""
    text = json.dumps(features_identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def cache_dir_name(dataset_name: str, backbone_name: str, digest: str) -> str:
    """``<dataset>_<backbone>_<hash8>`` with characters other than ``[A-Za-z0-9.-]`` as ``-``."""

    def clean(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9.\-]+", "-", text).strip("-") or "x"

    return f"{clean(dataset_name)}_{clean(backbone_name)}_{digest}"


# --------------------------------------------------------------------------- atomic writes


def _write_error(path: Path, err: OSError) -> CacheWriteError:
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
        raise _write_error(Path(path), err) from err


# --------------------------------------------------------------------------- safetensors


def safetensors_parts(
    tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]
) -> list[bytes | np.ndarray]:
    """The safetensors encoding of ``tensors`` as parts: the header, then each array's bytes.

    The arrays are the callers' own memory (no copy when they are C-contiguous and
    little-endian, as extraction's are), so writing the parts one after the other costs no
    memory in proportion to the video's length. Keys are sorted (deterministic bytes).
    """
    header: dict[str, Any] = {"__metadata__": {key: str(metadata[key]) for key in sorted(metadata)}}
    arrays: list[np.ndarray] = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype not in _SAFETENSORS_DTYPES:
            raise CacheError(
                f"tensor {name!r} has dtype {array.dtype}; expected one of "
                f"{sorted(str(d) for d in _SAFETENSORS_DTYPES)}"
            )
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        arrays.append(array.reshape(-1).view(np.uint8))  # (nbytes,): a flat view, no copy
        offset += array.nbytes
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    return [struct.pack("<Q", len(header_bytes)) + header_bytes, *arrays]


def encode_safetensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Serialises arrays to the safetensors format with sorted keys (deterministic bytes).

    Readable by ``safetensors.safe_open`` / ``safetensors.torch.load_file``. Builds the whole
    file in memory; :func:`write_entry` writes :func:`safetensors_parts` instead.
    """
    return b"".join(bytes(part) for part in safetensors_parts(tensors, metadata))


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """Reads and checks the header of a safetensors file without loading the tensors.

    Raises:
        CacheError: when the file is shorter than its header says or the header is not JSON.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CacheError(f"{path} is truncated ({size} bytes): not a safetensors file")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(size - 8, 100_000_000):
            raise CacheError(f"{path} is truncated or corrupt: header of {header_len} bytes")
        try:
            header = json.loads(handle.read(header_len))
        except ValueError as err:
            raise CacheError(f"{path} has a corrupt header: {err}") from err
    data_end = max(
        (entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"),
        default=0,
    )
    if 8 + header_len + data_end != size:
        raise CacheError(
            f"{path} is truncated or corrupt: {size} bytes on disk, "
            f"{8 + header_len + data_end} expected from its header"
        )
    return header


def _entry_arrays(
    features: Any, frame_indices: Any, timestamps: Any, dtype: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def to_numpy(value: Any) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy()
        return np.asarray(value)

    features = to_numpy(features)
    if features.ndim != 2:
        raise CacheError(f"features have shape {features.shape}; expected (num_steps, feature_dim)")
    target = np.dtype(dtype) if dtype else features.dtype
    if target not in (np.float16, np.float32):
        target = np.dtype(np.float32)
    features = features.astype(target, copy=False)
    frame_indices = to_numpy(frame_indices).astype(np.int64, copy=False).reshape(-1)
    timestamps = to_numpy(timestamps).astype(np.float64, copy=False).reshape(-1)
    num_steps = features.shape[0]
    if frame_indices.shape != (num_steps,) or timestamps.shape != (num_steps,):
        raise CacheError(
            f"features have {num_steps} steps but frame_indices {frame_indices.shape} and "
            f"timestamps {timestamps.shape}; expected ({num_steps},) each"
        )
    return features, frame_indices, timestamps


# --------------------------------------------------------------------------- manifest


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
            raise _write_error(self.path, err) from err

    def append(self, row: Mapping[str, Any]) -> None:
        """Appends one row and makes it durable."""
        line = json.dumps(dict(row), sort_keys=True) + "\n"
        try:
            self._handle.write(line.encode())
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as err:
            raise _write_error(self.path, err) from err

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


# --------------------------------------------------------------------------- config


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def config_differences(
    old: Mapping[str, Any], new: Mapping[str, Any], keys: Iterable[str] = IDENTITY_KEYS
) -> list[str]:
    """Dotted keys under ``keys`` whose values differ, as ``"key: old -> new"`` lines."""
    old_flat, new_flat = _flatten(dict(old)), _flatten(dict(new))
    differences = []
    for name in sorted(set(old_flat) | set(new_flat)):
        if not any(name == key or name.startswith(key + ".") for key in keys):
            continue
        if old_flat.get(name, "<absent>") != new_flat.get(name, "<absent>"):
            differences.append(
                f"{name}: {old_flat.get(name, '<absent>')!r} -> {new_flat.get(name, '<absent>')!r}"
            )
    return differences


def create_cache(cache_dir: str | Path, config: Mapping[str, Any]) -> Path:
    """Creates a cache directory with its ``config.json``, or checks an existing one.

    ``config`` must hold ``features`` (the dict of everything that changes the features) and
    ``feature_dim``; ``class_names``, ``dataset`` (a DatasetSpec as dict), ``source`` and
    anything else are recorded as given.

    Raises:
        CacheError: when the directory holds a config.json that differs in ``IDENTITY_KEYS``
            (the message names each differing key).
        CacheWriteError: when the directory cannot be written.
    """
    cache_dir = Path(cache_dir)
    config = {"format_version": FORMAT_VERSION, **dict(config)}
    for key in ("features", "feature_dim"):
        if key not in config:
            raise CacheError(f"a cache config needs {key!r}; got keys {sorted(config)}")
    config.setdefault("features_hash", features_hash(config["features"]))
    config_path = cache_dir / CONFIG_NAME
    if config_path.exists():
        existing = json.loads(config_path.read_text())
        differences = config_differences(existing, json.loads(json.dumps(config)))
        if differences:
            raise CacheError(
                f"{cache_dir} holds features made with another configuration; refusing to mix "
                "them. Differences (cached -> requested):\n  "
                + "\n  ".join(differences)
                + "\nUse another output directory, or delete this one to start over."
            )
        return cache_dir
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(config_path, text.encode())
    return cache_dir


def decode_staleness(config: Mapping[str, Any]) -> str | None:
    """Why a cache's frames may be wrong, or None: made by an extraction before frame-exact
    decoding (:data:`~video_eleatt.video.decode.DECODE_VERSION`). Imported caches say nothing
    of how they were decoded and are not judged."""
    features = config.get("features") or {}
    if "pipeline" not in features or features.get("decode") == DECODE_VERSION:
        return None
    made_with = features.get("decode")
    when = (
        "before frame-exact decoding (decord random access, container timestamps taken on trust)"
        if made_with is None
        else f"with decode path {made_with!r}, not this build's {DECODE_VERSION!r}"
    )
    return (
        f"{when}: on MPEG-4 AVIs with B-frames, edit lists and damaged files its features can "
        "hold the wrong frames"
    )


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


# --------------------------------------------------------------------------- writing entries


def write_entry(
    cache_dir: str | Path,
    rel_path: str,
    features: Any,
    frame_indices: Any,
    timestamps: Any,
    fps: float,
    num_frames: int,
    duration: float,
    label: int | None,
    *,
    dtype: str | None = None,
    manifest: ManifestWriter | None = None,
    decode: dict[str, Any] | None = None,
) -> None:
    """Writes one video's features atomically, then appends its "ok" manifest row.

    Args:
        cache_dir: the cache directory (``create_cache`` makes its config.json).
        rel_path: the video's POSIX path relative to the dataset root (the key).
        features: (T, D) array or tensor.
        frame_indices: (T,) source frame indices.
        timestamps: (T,) seconds.
        fps: the video's average frame rate.
        num_frames: the video's frame count.
        duration: the video's duration in seconds.
        label: 0-based class id or None.
        dtype: "float16" or "float32"; default: the cache's ``features.dtype`` from its
            config.json if there is one, else the dtype of ``features``.
        manifest: an open writer to append to (e.g. a rank's part); default ``manifest.jsonl``.
        decode: how the video was decoded (``{"timestamps": "container" | "derived",
            "rotation": degrees, "partial": {...}}``): kept as the file's ``decode`` metadata
            (JSON) and in the manifest row.

    >>> write_entry(cache, "walk/v1.avi", np.zeros((4, 8)), [0, 5, 10, 15],
    ...             [0.0, 0.2, 0.4, 0.6], 25.0, 16, 0.64, 3)  # doctest: +SKIP
    """
    if dtype is None:
        config_path = Path(cache_dir) / CONFIG_NAME
        if config_path.exists():
            dtype = json.loads(config_path.read_text()).get("features", {}).get("dtype")
    features, frame_indices, timestamps = _entry_arrays(features, frame_indices, timestamps, dtype)
    metadata = {
        "fps": repr(float(fps)),
        "num_frames": str(int(num_frames)),
        "duration": repr(float(duration)),
        "rel_path": rel_path,
        "label": "" if label is None else str(int(label)),
    }
    if decode is not None:
        metadata["decode"] = json.dumps(decode, sort_keys=True)
    tensors = {"features": features, "frame_indices": frame_indices, "timestamps": timestamps}
    # streamed from the arrays: encoding to one bytes object held the features 3 more times
    parts = safetensors_parts(tensors, metadata)
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    atomic_write_bytes(feature_path(cache_dir, rel_path), parts)
    row = manifest_row(rel_path, label, "ok", features.shape[0], features.shape[1])
    # what `verify` checks the file against: a flipped byte or a file changed after its row
    # was written gives another digest
    row["sha256"] = digest.hexdigest()
    if decode is not None:
        row.update(decode)
    _append(cache_dir, row, manifest)


def write_failure(
    cache_dir: str | Path,
    rel_path: str,
    label: int | None,
    error: str,
    *,
    manifest: ManifestWriter | None = None,
) -> None:
    """Appends a "failed" manifest row with the reason; an old features file is removed."""
    path = feature_path(cache_dir, rel_path)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        raise _write_error(path, err) from err
    _append(cache_dir, manifest_row(rel_path, label, "failed", error=error), manifest)


def _append(cache_dir: str | Path, row: dict[str, Any], manifest: ManifestWriter | None) -> None:
    if manifest is not None:
        manifest.append(row)
        return
    with ManifestWriter(Path(cache_dir) / MANIFEST_NAME) as writer:
        writer.append(row)


def entry_is_complete(cache_dir: str | Path, row: Mapping[str, Any] | None) -> bool:
    """True when the row says "ok" and its file is whole with shape (num_steps, feature_dim).

    Reads only the file's header: cheap enough to run on every video when resuming.
    """
    if not row or row.get("status") != "ok":
        return False
    try:
        header = read_safetensors_header(feature_path(cache_dir, row["rel_path"]))
    except (OSError, CacheError):
        return False
    entry = header.get("features")
    num_steps = row.get("num_steps")
    return (
        isinstance(entry, dict)
        and entry.get("dtype") in ("F16", "F32")
        and entry.get("shape") == [num_steps, row.get("feature_dim")]
        and header.get("frame_indices", {}).get("shape") == [num_steps]
        and header.get("timestamps", {}).get("shape") == [num_steps]
    )


# --------------------------------------------------------------------------- reading


def load_entry_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of one entry file (safe: safetensors, no pickle)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    return tensors, metadata


class FeatureCache:
    """Read access to a cache directory of per-video safetensors files.

    Attributes:
        cache_dir: the directory.
        config: its config.json.
        feature_dim: D of every entry.
        class_names: class id -> name, or None when the source had no labels.
        dataset: the DatasetSpec the features were extracted from, or None.

    >>> cache = FeatureCache("features/ucf101_resnet50_1a2b3c4d")  # doctest: +SKIP
    >>> cache.load(cache.ok_keys()[0]).features.shape  # doctest: +SKIP
    torch.Size([61, 2048])
    """

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        self.config = read_config(self.cache_dir)
        self.feature_dim = int(self.config["feature_dim"])
        self.class_names = self.config.get("class_names")
        self._manifest: dict[str, dict[str, Any]] | None = None

    @property
    def dataset(self) -> Any:
        """The DatasetSpec of the source dataset, or None (list file, folder, import)."""
        spec = self.config.get("dataset")
        if not spec:
            return None
        from video_eleatt.datasets import DatasetSpec

        return DatasetSpec(**spec)

    @property
    def manifest(self) -> dict[str, dict[str, Any]]:
        """Latest manifest row per relative path (read once)."""
        if self._manifest is None:
            self._manifest = read_manifest(self.cache_dir)
        return self._manifest

    def ok_keys(self) -> list[str]:
        """Relative paths whose status is "ok", sorted."""
        return sorted(key for key, row in self.manifest.items() if row.get("status") == "ok")

    def failed(self) -> dict[str, str]:
        """Relative path -> error text of the videos that failed."""
        return {
            key: str(row.get("error"))
            for key, row in sorted(self.manifest.items())
            if row.get("status") == "failed"
        }

    def label(self, rel_path: str) -> int | None:
        """The label recorded in the manifest."""
        return self.manifest[rel_path].get("label")

    def load(self, rel_path: str) -> VideoFeatures:
        """The features of one video.

        Raises:
            KeyError: when the video has no "ok" entry.
            CacheError: when its file is missing or unreadable (run ``video-eleatt verify``).
        """
        row = self.manifest.get(rel_path)
        if not row or row.get("status") != "ok":
            state = "not in the manifest" if not row else f"status {row.get('status')!r}"
            raise KeyError(f"{rel_path!r} has no features in {self.cache_dir} ({state})")
        path = feature_path(self.cache_dir, rel_path)
        try:
            tensors, metadata = load_entry_file(path)
        except Exception as err:
            raise CacheError(
                f"cannot read {path}: {err}. Run `video-eleatt verify {self.cache_dir}` and "
                "rerun the extraction to redo broken entries."
            ) from err
        return VideoFeatures(
            features=tensors["features"],
            frame_indices=tensors["frame_indices"],
            timestamps=tensors["timestamps"],
            fps=float(metadata.get("fps", "nan")),
            num_frames=int(metadata.get("num_frames", "0")),
            duration=float(metadata.get("duration", "nan")),
            label=row.get("label"),
        )

    def __len__(self) -> int:
        return len(self.ok_keys())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.cache_dir)!r}, videos={len(self)}, "
            f"feature_dim={self.feature_dim})"
        )


# --------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    """What ``verify_cache`` found.

    Attributes:
        ok: relative paths whose entries are sound.
        failed: relative path -> extraction error recorded in the manifest.
        problems: relative path -> what is wrong with an entry the manifest calls "ok"
            (missing, unloadable, non-finite, or a row out of date: its step count or sha256
            no longer describes the file).
        orphans: feature files that no "ok" row points at (e.g. left by a kill; harmless).
        temp_files: leftover temporary files from interrupted writes (harmless).
        stale: why every entry may hold wrong frames (the whole cache was made before
            frame-exact decoding, see :func:`decode_staleness`), or None. Not about single
            rows: a row out of date is listed in ``problems``.
    """

    ok: list[str]
    failed: dict[str, str]
    problems: dict[str, str]
    orphans: list[str]
    temp_files: list[str]
    stale: str | None = None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_entry(cache_dir: str | Path, row: Mapping[str, Any], feature_dim: int) -> str | None:
    """What is wrong with one "ok" entry, or None: file, loadability, shapes, finite values,
    and whether the manifest row still describes the file (its step count and, for rows that
    record one, the sha256 of the file's bytes). A row that no longer describes its file is
    *out of date* (the file was changed or replaced after the row was written), which is not
    the cache-wide staleness of :func:`decode_staleness`."""
    rel_path = row["rel_path"]
    path = feature_path(cache_dir, rel_path)
    if not path.exists():
        return f"file missing: {path}"
    try:
        read_safetensors_header(path)
        tensors, metadata = load_entry_file(path)
    except Exception as err:
        return f"cannot load {path}: {err}"
    features = tensors.get("features")
    if features is None:
        return "no 'features' tensor"
    expected = (row.get("num_steps"), feature_dim)
    if tuple(features.shape) != expected or row.get("feature_dim") != feature_dim:
        return (
            f"manifest row out of date: features shape {tuple(features.shape)} in {path}, "
            f"manifest/config say {expected}"
        )
    num_steps = features.shape[0]
    for name in ("frame_indices", "timestamps"):
        if name not in tensors or tuple(tensors[name].shape) != (num_steps,):
            shape = tuple(tensors[name].shape) if name in tensors else None
            return f"{name} shape {shape}; expected ({num_steps},)"
    if num_steps == 0:
        return "zero steps"
    if not bool(torch.isfinite(features.float()).all()):
        bad = int((~torch.isfinite(features.float())).sum())
        return f"{bad} non-finite feature values (NaN or inf)"
    if metadata.get("rel_path") != rel_path:
        return f"file records rel_path {metadata.get('rel_path')!r}"
    recorded = row.get("sha256")
    if recorded is not None:
        actual = file_sha256(path)
        if actual != recorded:
            return (
                f"content differs from its manifest row: {path} has sha256 {actual[:16]}..., "
                f"the row recorded {str(recorded)[:16]}... (a corrupted byte, or the file was "
                "replaced after the row was written)"
            )
    return None


def verify_cache(cache_dir: str | Path) -> VerifyReport:
    """Checks every manifest entry of a cache against its file.

    For each "ok" row: the file exists, loads, ``features`` is (num_steps, feature_dim),
    its bytes have the sha256 the row recorded (rows written before digests were recorded
    are not checked for it), the index and timestamp vectors are (num_steps,), all values
    are finite.
    """
    cache_dir = Path(cache_dir)
    config = read_config(cache_dir)
    feature_dim = int(config["feature_dim"])
    manifest = read_manifest(cache_dir)
    report = VerifyReport(
        ok=[], failed={}, problems={}, orphans=[], temp_files=[], stale=decode_staleness(config)
    )
    for rel_path in sorted(manifest):
        row = manifest[rel_path]
        if row.get("status") != "ok":
            report.failed[rel_path] = str(row.get("error"))
            continue
        problem = check_entry(cache_dir, row, feature_dim)
        if problem:
            report.problems[rel_path] = problem
        else:
            report.ok.append(rel_path)
    features_root = cache_dir / FEATURES_DIR
    if features_root.exists():
        ok = {key for key, row in manifest.items() if row.get("status") == "ok"}
        for path in sorted(features_root.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(features_root).as_posix()
            if TEMP_PATTERN.match(path.name):
                report.temp_files.append(relative)
            elif relative.endswith(SUFFIX) and relative[: -len(SUFFIX)] not in ok:
                report.orphans.append(relative)
    return report


# --------------------------------------------------------------------------- opening


def open_features(path: str | Path, prefer_packed: bool = True) -> FeatureCache:
    """Opens features for reading: a cache dir, its ``packed`` dir, or an extract config YAML.

    A cache dir with a current packed form opens packed (when ``prefer_packed``); a stale
    packed form is ignored with a warning. Both forms offer ``ok_keys()``, ``load(rel_path)``,
    ``feature_dim`` and ``class_names``.

    Raises:
        CacheError: when the path is none of these (the message says what was expected).

    >>> features = open_features("configs/extract/ucf101_resnet50.yaml")  # doctest: +SKIP
    >>> features.feature_dim  # doctest: +SKIP
    2048
    """
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        from video_eleatt.features.extract import resolve_cache_dir

        try:
            # configs/extract/<name>.yaml reads the shipped config outside a checkout
            path = find_config(path, what="the extract config")
        except ConfigNameError as err:
            raise CacheError(str(err)) from err

        path = resolve_cache_dir(path, existing=True)
        if not path.exists():
            raise CacheError(
                f"the extract config names cache {path}, which does not exist yet; run "
                "`video-eleatt extract --config <that config>` first"
            )
    from video_eleatt.features.packed import INDEX_NAME, PackedFeatureCache

    if path.name == PACKED_DIR and (path / INDEX_NAME).exists():
        return PackedFeatureCache(path.parent)
    if not (path / CONFIG_NAME).exists():
        raise CacheError(
            f"{path} is not a feature cache: expected a directory with {CONFIG_NAME} (made by "
            "`video-eleatt extract` or `import-features`), its packed/ folder, or an extract "
            "config .yaml"
        )
    stale = decode_staleness(read_config(path))
    if stale:
        warnings.warn(
            f"feature cache {path} was made {stale}. Re-extract it: `video-eleatt extract "
            "--config <the extract config that made it>` (the new cache gets its own folder)",
            stacklevel=2,
        )
    if prefer_packed and (path / PACKED_DIR / INDEX_NAME).exists():
        packed = PackedFeatureCache(path)
        if packed.is_current():
            return packed
        warnings.warn(
            f"{path / PACKED_DIR} is older than the cache's manifest; reading the per-video "
            f"files instead. Rebuild it with `video-eleatt pack {path}`.",
            stacklevel=2,
        )
    return FeatureCache(path)
