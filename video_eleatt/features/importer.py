"""Import features made by other tools: per-video ``.npy`` arrays (T, D) + labels -> a cache.

Made for v-iashin/video_features output (``<stem>_<feature>.npy`` with optional
``<stem>_fps.npy`` and ``<stem>_timestamps_ms.npy`` beside it) and for any folder that mirrors
the dataset (``<rel_path without extension>.npy`` or ``<rel_path>.npy``).

Labels come from a dataset spec (its index) or a label list:

- mmaction2 style, one ``relative/path.avi <label id>`` per line (a rawframes list
  ``path num_frames label`` works too: the last token is the label);
- CSV with a header naming a path column (``rel_path``, ``path``, ``video``, ``filename``,
  ``video_id`` or ``youtube_id``) and a label column (``label``, ``class``, ``label_id`` or
  ``class_id``), ids or class names (names are numbered in sorted order).

Each video's array is looked up as ``<features_dir>/<rel_path minus extension>.npy``, then
``<features_dir>/<rel_path>.npy``, then by file stem anywhere under ``features_dir``
(``<stem>.npy`` or ``<stem>_<suffix>.npy``, sidecar ``_fps``/``_timestamps_ms`` files
excluded); a stem matching several files is recorded as failed ("ambiguous"), never guessed.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from video_eleatt.features.cache import create_cache, write_entry, write_failure
from video_eleatt.features.identity import cache_dir_name, features_hash
from video_eleatt.features.layout import MANIFEST_NAME
from video_eleatt.features.manifest import ManifestWriter, compact_manifest

PATH_COLUMNS = ("rel_path", "path", "video", "filename", "video_id", "youtube_id")
LABEL_COLUMNS = ("label", "class", "label_id", "class_id")
SIDECARS = ("_fps", "_timestamps_ms")


@dataclass
class ImportSummary:
    cache_dir: str
    ok: int
    failures: dict[str, str]


def read_label_list(path: str | Path) -> tuple[list[tuple[str, int | None]], list[str] | None]:
    """(rel_path, label) pairs and class names from an mmaction2-style list or a CSV.

    Raises:
        ValueError: naming the file and line when a line cannot be read.
    """
    path = Path(path)
    text = path.read_text()
    first = text.splitlines()[0] if text.strip() else ""
    if path.suffix.lower() == ".csv" or "," in first:
        return _read_csv(path)
    entries: list[tuple[str, int | None]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) >= 2 and tokens[-1].lstrip("-").isdigit():
            entries.append((tokens[0], int(tokens[-1])))
        elif len(tokens) == 1:
            entries.append((tokens[0], None))
        else:
            raise ValueError(
                f"{path}:{number}: {line!r}: expected 'relative/path.avi <label id>' (mmaction2 "
                "list) or a CSV with a header"
            )
    labels = [label for _, label in entries if label is not None]
    class_names = [str(i) for i in range(max(labels) + 1)] if labels else None
    return entries, class_names


def _read_csv(path: Path) -> tuple[list[tuple[str, int | None]], list[str] | None]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} has no rows")
    columns = {name.strip().lower(): name for name in rows[0]}
    path_column = next((columns[c] for c in PATH_COLUMNS if c in columns), None)
    label_column = next((columns[c] for c in LABEL_COLUMNS if c in columns), None)
    if path_column is None:
        raise ValueError(
            f"{path}: no path column among {list(rows[0])}; expected one of {PATH_COLUMNS}"
        )
    raw = [(row[path_column].strip(), (row.get(label_column) or "").strip()) for row in rows]
    if label_column is None or all(not label for _, label in raw):
        return [(rel_path, None) for rel_path, _ in raw], None
    if all(label.lstrip("-").isdigit() for _, label in raw):
        entries = [(rel_path, int(label)) for rel_path, label in raw]
        return entries, [str(i) for i in range(max(label for _, label in entries) + 1)]
    class_names = sorted({label for _, label in raw})
    ids = {name: i for i, name in enumerate(class_names)}
    return [(rel_path, ids[label]) for rel_path, label in raw], class_names


def _stem_table(features_dir: Path) -> dict[str, list[Path]]:
    table: dict[str, list[Path]] = defaultdict(list)
    for path in features_dir.rglob("*.npy"):
        name = path.stem
        if name.endswith(SIDECARS):
            continue
        table[name].append(path)
        if "_" in name:
            table[name.rsplit("_", 1)[0] + "_*"].append(path)
    return table


def find_array(features_dir: Path, rel_path: str, stems: dict[str, list[Path]]) -> Path:
    """The .npy file of one video (see the module docstring for the search order).

    Raises:
        FileNotFoundError: none found, or several (ambiguous), with the candidates.
    """
    relative = PurePosixPath(rel_path)
    for candidate in (
        features_dir / relative.with_suffix(".npy"),
        features_dir / (rel_path + ".npy"),
    ):
        if candidate.is_file():
            return candidate
    stem = relative.stem
    matches = stems.get(stem) or stems.get(stem + "_*") or []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(str(m) for m in sorted(matches)[:5])
        raise FileNotFoundError(f"ambiguous: stem {stem!r} matches {len(matches)} files ({shown})")
    raise FileNotFoundError(
        f"no .npy for {rel_path} under {features_dir} (tried {relative.with_suffix('.npy')}, "
        f"{rel_path}.npy, {stem}.npy, {stem}_*.npy)"
    )


def _sidecar(array_path: Path, suffix: str) -> np.ndarray | None:
    stem = array_path.stem
    base = stem.rsplit("_", 1)[0] if "_" in stem else stem
    for name in (f"{base}{suffix}.npy", f"{stem}{suffix}.npy"):
        candidate = array_path.with_name(name)
        if candidate.is_file():
            return np.load(candidate, allow_pickle=False)
    return None


def import_npy_features(
    features_dir: str | Path,
    entries: list[tuple[str, int | None]],
    class_names: list[str] | None,
    output_dir: str | Path | None = None,
    output_root: str | Path = "features",
    name: str = "imported",
    fps: float | None = None,
    dtype: str = "float16",
    dataset: dict[str, Any] | None = None,
    description: str | None = None,
) -> ImportSummary:
    """Turns a folder of per-video (T, D) .npy arrays into a feature cache.

    Args:
        features_dir: the folder of arrays.
        entries: (rel_path, label) per video, rel_path relative to the dataset root.
        class_names: class id -> name, or None.
        output_dir: the cache directory; default ``<output_root>/<name>_imported_<hash8>``.
        output_root: where the default directory goes.
        name: prefix of the default directory (e.g. the dataset name).
        fps: the rate the features were sampled at, when no ``_fps.npy``/``_timestamps_ms.npy``
            sidecar says; timestamps are ``step / fps`` (NaN when unknown).
        dtype: storage dtype, "float16" or "float32".
        dataset: the DatasetSpec (as dict) the features belong to, if known.
        description: free text recorded in config.json (e.g. the tool that made them).

    Returns:
        Counts and the per-video failures (missing, ambiguous, bad shape).
    """
    features_dir = Path(features_dir).resolve()
    if not features_dir.is_dir():
        raise FileNotFoundError(f"features_dir {features_dir} is not a folder of .npy files")
    stems = _stem_table(features_dir)
    located: dict[str, Path] = {}
    failures: dict[str, str] = {}
    feature_dim = None
    for rel_path, _ in entries:
        try:
            located[rel_path] = find_array(features_dir, rel_path, stems)
        except FileNotFoundError as err:
            failures[rel_path] = str(err)
            continue
        if feature_dim is None:
            shape = np.load(located[rel_path], mmap_mode="r", allow_pickle=False).shape
            if len(shape) == 2:
                feature_dim = int(shape[1])
    if feature_dim is None:
        raise ValueError(
            f"none of the {len(entries)} listed videos has a (T, D) array under {features_dir}; "
            f"first problems: {list(failures.items())[:3]}"
        )
    identity = {
        "pipeline": "video_eleatt.features.import/1",
        "imported_from": str(features_dir),
        "feature_dim": feature_dim,
        "dtype": dtype,
        "fps": fps,
    }
    if output_dir is None:
        output_dir = Path(output_root) / cache_dir_name(name, "imported", features_hash(identity))
    cache_dir = create_cache(
        output_dir,
        {
            "features": identity,
            "feature_dim": feature_dim,
            "class_names": class_names,
            "dataset": dataset,
            "source": {"kind": "import", "path": str(features_dir), "note": description},
            "untrained": False,
            "note": f"imported from {features_dir}" + (f" ({description})" if description else ""),
        },
    )
    ok = 0
    with ManifestWriter(Path(cache_dir) / MANIFEST_NAME) as manifest:
        for rel_path, label in entries:
            if rel_path not in located:
                write_failure(cache_dir, rel_path, label, failures[rel_path], manifest=manifest)
                continue
            array_path = located[rel_path]
            try:
                features = np.load(array_path, allow_pickle=False)
            except Exception as err:
                failures[rel_path] = f"cannot load {array_path}: {err}"
                write_failure(cache_dir, rel_path, label, failures[rel_path], manifest=manifest)
                continue
            if features.ndim != 2 or features.shape[1] != feature_dim or not len(features):
                failures[rel_path] = (
                    f"{array_path} has shape {features.shape}; expected (T, {feature_dim}), T>0"
                )
                write_failure(cache_dir, rel_path, label, failures[rel_path], manifest=manifest)
                continue
            num_steps = features.shape[0]
            video_fps = _sidecar(array_path, "_fps")
            stamps_ms = _sidecar(array_path, "_timestamps_ms")
            rate = float(np.ravel(video_fps)[0]) if video_fps is not None else fps
            if stamps_ms is not None and np.shape(stamps_ms) == (num_steps,):
                timestamps = np.asarray(stamps_ms, np.float64) / 1000.0
            elif fps is not None:
                timestamps = np.arange(num_steps, dtype=np.float64) / fps
            else:
                timestamps = np.full(num_steps, np.nan)
            write_entry(
                cache_dir,
                rel_path,
                features,
                np.arange(num_steps),  # source frame indices are unknown: step numbers
                timestamps,
                fps=rate if rate is not None else float("nan"),
                num_frames=num_steps,
                duration=num_steps / rate if rate else float("nan"),
                label=label,
                dtype=dtype,
                manifest=manifest,
            )
            ok += 1
    compact_manifest(cache_dir)
    return ImportSummary(cache_dir=str(cache_dir), ok=ok, failures=failures)
