"""``verify``: check every entry of a cache against its manifest row and its file.

>>> report = verify_cache("features/ucf101_resnet50_1a2b3c4d")  # doctest: +SKIP
>>> report.problems  # doctest: +SKIP
{}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from video_eleatt.features.entry_file import load_entry_file, read_safetensors_header
from video_eleatt.features.identity import decode_staleness
from video_eleatt.features.layout import (
    FEATURES_DIR,
    SUFFIX,
    TEMP_PATTERN,
    feature_path,
    read_config,
)
from video_eleatt.features.manifest import read_manifest
from video_eleatt.fileio import file_sha256


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
