"""The feature cache: create one, write a video's entry, read entries back.

One safetensors file per video (:mod:`~video_eleatt.features.entry_file`), a manifest row per
video (:mod:`~video_eleatt.features.manifest`) and the ``config.json`` that made them; the
directory layout is described in :mod:`~video_eleatt.features.layout`.

Every file is written atomically (temporary file in the same directory, fsync, ``os.replace``)
and its manifest row is appended only after the file is in place, so a row saying "ok" always
points at a complete file, whatever moment the writer was killed at.

>>> cache = FeatureCache("features/ucf101_resnet50_1a2b3c4d")  # doctest: +SKIP
>>> cache.load(cache.ok_keys()[0]).features.shape  # doctest: +SKIP
torch.Size([61, 2048])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from video_eleatt.datasets import DatasetSpec
from video_eleatt.features.entry_file import (
    load_entry_file,
    read_safetensors_header,
    safetensors_parts,
)
from video_eleatt.features.identity import features_hash
from video_eleatt.features.layout import (
    CONFIG_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    CacheError,
    atomic_write_bytes,
    feature_path,
    read_config,
    write_error,
)
from video_eleatt.features.manifest import ManifestWriter, manifest_row, read_manifest
from video_eleatt.video.decode import DECODE_REVISION

# config.json keys compared when a directory is reused; the dataset root, split and list files
# may change (a moved dataset, another split of the same videos) without changing the features.
IDENTITY_KEYS = ("format_version", "features", "feature_dim", "class_names", "dataset.name")


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


# --------------------------------------------------------------------------- writing entries


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
            "rotation": degrees, "decode_revision": n, "damage": {...}}``): kept as the
            file's ``decode`` metadata (JSON) and in the manifest row.

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
        raise write_error(path, err) from err
    row = manifest_row(rel_path, label, "failed", error=error)
    row["decode_revision"] = DECODE_REVISION  # a later revision retries it (extract)
    _append(cache_dir, row, manifest)


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
