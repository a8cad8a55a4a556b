"""The read-optimised form of a cache: one contiguous array per group, memory-mapped.

Built by ``video-eleatt pack <cache_dir>`` from the per-video files, inside the cache::

    <cache_dir>/packed/index.json                  format, feature_dim, dtype, the manifest
                                                   digest it was built from, groups
    <cache_dir>/packed/<group>.features.npy        (N, D) float16 (the cache's dtype), every
                                                   video's steps one after another
    <cache_dir>/packed/<group>.frame_indices.npy   (N,) int64
    <cache_dir>/packed/<group>.timestamps.npy      (N,) float64 seconds
    <cache_dir>/packed/<group>.videos.json         rel_paths, offsets, lengths, labels, fps,
                                                   num_frames, duration (row i of the group
                                                   is features[offsets[i]:offsets[i]+lengths[i]])

Groups are "all" by default, or the dataset's subsets ("train", "val", "test", "unused").
``open_features`` uses the packed form when its manifest digest matches the cache's
manifest, and falls back to the per-video files (with a warning) when it is stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from video_eleatt.features.cache import FeatureCache, VideoFeatures
from video_eleatt.features.entry_file import load_entry_file
from video_eleatt.features.layout import (
    PACKED_DIR,
    CacheError,
    atomic_write_bytes,
    feature_path,
    write_error,
)

INDEX_NAME = "index.json"
ARRAYS = ("features", "frame_indices", "timestamps")


def manifest_digest(manifest: Mapping[str, Mapping[str, Any]]) -> str:
    """sha256 of the "ok" rows (what a packed form must agree with)."""
    ok = [
        [key, row.get("num_steps"), row.get("feature_dim"), row.get("label")]
        for key, row in sorted(manifest.items())
        if row.get("status") == "ok"
    ]
    return hashlib.sha256(json.dumps(ok).encode()).hexdigest()


def pack_cache(cache_dir: str | Path, groups: Mapping[str, list[str]] | None = None) -> Path:
    """Builds ``<cache_dir>/packed`` from the per-video files of every "ok" entry.

    Written to a temporary directory and swapped in at the end: a reader sees the old packed
    form or the whole new one. Memory use is one video at a time.

    Args:
        cache_dir: the cache.
        groups: group name -> relative paths (e.g. per subset); default one group "all".

    Returns:
        The packed directory.
    """
    cache = FeatureCache(cache_dir)
    ok = cache.ok_keys()
    if groups is None:
        groups = {"all": ok}
    ok_set = set(ok)
    packed_dir = cache.cache_dir / PACKED_DIR
    tmp_dir = cache.cache_dir / f".{PACKED_DIR}.tmp{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    dtype = np.dtype(cache.config.get("features", {}).get("dtype", "float16"))
    index: dict[str, Any] = {
        "format_version": 1,
        "feature_dim": cache.feature_dim,
        "dtype": dtype.name,
        "manifest_digest": manifest_digest(cache.manifest),
        "groups": {},
    }
    try:
        tmp_dir.mkdir(parents=True)
        for group, keys in groups.items():
            keys = sorted(key for key in keys if key in ok_set)
            lengths = [int(cache.manifest[key]["num_steps"]) for key in keys]
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            total = int(offsets[-1])
            arrays = {
                "features": np.lib.format.open_memmap(
                    tmp_dir / f"{group}.features.npy", "w+", dtype, (total, cache.feature_dim)
                ),
                "frame_indices": np.lib.format.open_memmap(
                    tmp_dir / f"{group}.frame_indices.npy", "w+", np.int64, (total,)
                ),
                "timestamps": np.lib.format.open_memmap(
                    tmp_dir / f"{group}.timestamps.npy", "w+", np.float64, (total,)
                ),
            }
            videos: dict[str, list[Any]] = {
                name: [] for name in ("labels", "fps", "num_frames", "duration")
            }
            for key, start, length in zip(keys, offsets[:-1], lengths):
                tensors, metadata = load_entry_file(feature_path(cache.cache_dir, key))
                if tuple(tensors["features"].shape) != (length, cache.feature_dim):
                    raise CacheError(
                        f"{key}: file holds {tuple(tensors['features'].shape)}, manifest says "
                        f"({length}, {cache.feature_dim}); run `video-eleatt verify`"
                    )
                for name in ARRAYS:
                    arrays[name][start : start + length] = tensors[name].numpy()
                videos["labels"].append(cache.manifest[key].get("label"))
                videos["fps"].append(float(metadata.get("fps", "nan")))
                videos["num_frames"].append(int(metadata.get("num_frames", "0")))
                videos["duration"].append(float(metadata.get("duration", "nan")))
            for array in arrays.values():
                array.flush()
                _fsync_file(array.filename)
            del arrays
            listing = {"rel_paths": keys, "offsets": offsets[:-1].tolist(), "lengths": lengths}
            listing.update(videos)
            atomic_write_bytes(tmp_dir / f"{group}.videos.json", json.dumps(listing).encode())
            index["groups"][group] = {"num_videos": len(keys), "num_steps": total}
        atomic_write_bytes(tmp_dir / INDEX_NAME, json.dumps(index, indent=2).encode())
        old_dir = cache.cache_dir / f".{PACKED_DIR}.old{os.getpid()}"
        if packed_dir.exists():
            os.replace(packed_dir, old_dir)
        os.replace(tmp_dir, packed_dir)
        shutil.rmtree(old_dir, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise write_error(packed_dir, err) from err
    return packed_dir


def _fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PackedFeatureCache(FeatureCache):
    """The same interface as :class:`FeatureCache`, reading the packed arrays.

    Arrays are memory-mapped on first use in each process (safe to pickle into DataLoader
    workers: the maps are reopened there).
    """

    def __init__(self, cache_dir: str | Path):
        super().__init__(cache_dir)
        self.packed_dir = self.cache_dir / PACKED_DIR
        try:
            self.index = json.loads((self.packed_dir / INDEX_NAME).read_text())
        except FileNotFoundError as err:
            raise CacheError(
                f"{self.cache_dir} has no packed form; build it with "
                f"`video-eleatt pack {self.cache_dir}`"
            ) from err
        self._locations: dict[str, tuple[str, int, int, int]] = {}
        self._videos: dict[str, dict[str, list[Any]]] = {}
        for group in self.index["groups"]:
            listing = json.loads((self.packed_dir / f"{group}.videos.json").read_text())
            self._videos[group] = listing
            for i, (key, offset, length) in enumerate(
                zip(listing["rel_paths"], listing["offsets"], listing["lengths"])
            ):
                self._locations[key] = (group, i, offset, length)
        self._arrays: dict[str, dict[str, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state

    @property
    def groups(self) -> list[str]:
        """Group names, e.g. ["all"] or ["test", "train"]."""
        return list(self.index["groups"])

    def is_current(self) -> bool:
        """True when the packed form matches the cache's manifest."""
        return self.index.get("manifest_digest") == manifest_digest(self.manifest)

    def ok_keys(self) -> list[str]:
        """Relative paths in the packed form, sorted."""
        return sorted(self._locations)

    def _group_arrays(self, group: str) -> dict[str, np.ndarray]:
        if group not in self._arrays:
            self._arrays[group] = {
                name: np.load(self.packed_dir / f"{group}.{name}.npy", mmap_mode="r")
                for name in ARRAYS
            }
        return self._arrays[group]

    def group_features(self, group: str) -> np.ndarray:
        """The whole (N, D) memory-mapped array of a group (for bulk readers)."""
        return self._group_arrays(group)["features"]

    def load(self, rel_path: str) -> VideoFeatures:
        """The features of one video (copied out of the memory map)."""
        try:
            group, i, offset, length = self._locations[rel_path]
        except KeyError as err:
            raise KeyError(f"{rel_path!r} is not in the packed form of {self.cache_dir}") from err
        arrays = self._group_arrays(group)
        listing = self._videos[group]
        window = slice(offset, offset + length)
        return VideoFeatures(
            features=torch.from_numpy(np.array(arrays["features"][window])),
            frame_indices=torch.from_numpy(np.array(arrays["frame_indices"][window])),
            timestamps=torch.from_numpy(np.array(arrays["timestamps"][window])),
            fps=float(listing["fps"][i]),
            num_frames=int(listing["num_frames"][i]),
            duration=float(listing["duration"][i]),
            label=listing["labels"][i],
        )
