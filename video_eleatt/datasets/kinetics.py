"""Kinetics-400/600/700 (Kay et al. 2017; Carreira et al. 2018, 2019) from the official CSVs.

Local copies are always incomplete (YouTube videos disappear), so clips listed in the CSVs
but absent below root are counted, warned about and listed in ``DatasetIndex.missing``,
not treated as an error.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
import warnings
from pathlib import Path, PurePosixPath

from video_eleatt.datasets._common import FileTree, raise_offenders, show
from video_eleatt.datasets.index import DatasetError, DatasetIndex, DatasetWarning, VideoRecord

LAYOUT = """\
  root/annotations/{train,validate,test}.csv  label,youtube_id,time_start,time_end,split[,is_cc]
      (or the CSVs directly in root; `annotations` = a CSV folder or one CSV file)
  root/<split>/<label>/{youtube_id}_{start:06d}_{end:06d}.mp4  (ActivityNet crawler layout)
  root/<split>/{youtube_id}_{start:06d}_{end:06d}.mp4          (cvdfoundation tarballs)
      clips are found by file name anywhere below root, any video extension"""
CLASS_IDS = "CSV label names sorted (e.g. Kinetics-400: abseiling = 0 ... zumba = 399)"
CSV_NAMES = ("train.csv", "validate.csv", "val.csv", "test.csv")
SPLIT_VALUES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end")


def normalise_label(label: str) -> str:
    """Class name of a CSV label: surrounding quotes dropped, runs of whitespace made one space.

    Case, inner spaces and punctuation are kept: ``' "passing American  football (in game)"'``
    becomes ``'passing American football (in game)'``.
    """
    return " ".join(label.strip().strip("\"'").split())


def folder_key(name: str) -> str:
    """Key matching a label to a class folder: lower case, letters and digits only.

    ``passing_American_football_(in_game)`` and ``passing american football (in game)`` share
    the key ``passingamericanfootballingame``.
    """
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def clip_name(youtube_id: str, time_start: int, time_end: int) -> str:
    """File stem of a clip: ``{youtube_id}_{start:06d}_{end:06d}``."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def read_kinetics(
    name: str, root: Path, split: str | None, annotations: Path | None
) -> DatasetIndex:
    """Reads Kinetics ``name`` (kinetics400, kinetics600 or kinetics700).

    Subsets come from each row's ``split`` column (train, val/validate, test), or from the CSV
    file name when the column is absent; test rows without a label get label ``None``.
    A clip is found by its stem anywhere below root; when several files share it, the one in
    a folder matching the label (see :func:`folder_key`) wins, else the first in path order.

    Args:
        name: dataset name for the index and messages.
        root: dataset folder (see ``LAYOUT``).
        split: must be ``None`` (Kinetics has one official partition).
        annotations: a folder of CSVs or one CSV file, if not the default.
    """
    csv_files = _csv_files(name, root, annotations)
    rows: list[tuple[str, str, str | None, str]] = []  # (clip stem, subset, label, where)
    where_by_clip: dict[str, list[str]] = {}
    for csv_file in csv_files:
        for clip, subset, label, where in _read_csv(csv_file):
            where_by_clip.setdefault(clip, []).append(where)
            rows.append((clip, subset, label, where))
    duplicates = [
        f"{clip} (at {', '.join(places)})"
        for clip, places in where_by_clip.items()
        if len(places) > 1
    ]
    raise_offenders(
        duplicates,
        "duplicate entries",
        ", ".join(str(path) for path in csv_files),
        "Each clip (youtube_id, time_start, time_end) must be listed once.",
    )
    class_names = sorted({label for _, _, label, _ in rows if label is not None})
    if not class_names:
        raise DatasetError(
            f"{name}: no labelled rows in {[str(path) for path in csv_files]}; the class list "
            "comes from the 'label' column of train.csv / validate.csv"
        )
    class_ids = {label: class_id for class_id, label in enumerate(class_names)}

    files_by_stem: dict[str, list[str]] = {}
    for rel_path in FileTree(root).videos():
        stem = os.path.splitext(posixpath.basename(rel_path))[0]
        files_by_stem.setdefault(stem, []).append(rel_path)

    records: list[VideoRecord] = []
    missing: list[str] = []
    for clip, subset, label, _ in rows:
        candidates = files_by_stem.get(clip)
        if not candidates:
            folder = label if label is not None else ""
            missing.append(str(PurePosixPath(subset, folder, clip + ".mp4")))
            continue
        rel_path = _pick(candidates, label)
        records.append(VideoRecord(rel_path, None if label is None else class_ids[label], subset))
    records.sort(key=lambda record: record.rel_path)
    notes: list[str] = []
    if missing:
        note = (
            f"{len(missing)} of {len(rows)} clips listed in the {name} CSVs are absent below "
            f"{root} and left out of the index (DatasetIndex.missing)"
        )
        notes.append(note)
        warnings.warn(f"{name}: {note}, e.g.:\n{show(missing)}", DatasetWarning, stacklevel=3)
    return DatasetIndex(name, root, split, class_names, records, missing=missing, notes=notes)


def _csv_files(name: str, root: Path, annotations: Path | None) -> list[Path]:
    if annotations is not None and annotations.is_file():
        return [annotations]
    folder = annotations
    if folder is None:
        folder = root / "annotations" if (root / "annotations").is_dir() else root
    csv_files = [folder / csv_name for csv_name in CSV_NAMES if (folder / csv_name).is_file()]
    if not csv_files:
        raise DatasetError(
            f"{name}: no annotation CSV ({', '.join(CSV_NAMES)}) in {folder}; download the "
            f"{name} annotations (train.csv, validate.csv, test.csv) into {root / 'annotations'} "
            "or set `annotations` to their folder or to one CSV file"
        )
    return csv_files


def _read_csv(csv_file: Path) -> list[tuple[str, str, str | None, str]]:
    """Rows of one Kinetics CSV as ``(clip stem, subset, label or None, "file:line")``."""
    subset_of_file = SPLIT_VALUES.get(csv_file.stem.lower())
    with csv_file.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        header = [column.strip() for column in reader.fieldnames or []]
        reader.fieldnames = header
        absent = [column for column in REQUIRED_COLUMNS if column not in header]
        if absent:
            raise DatasetError(
                f"{csv_file}:1: header {header} lacks column(s) {absent}; expected "
                "label,youtube_id,time_start,time_end,split (label may be absent for test)"
            )
        if "split" not in header and subset_of_file is None:
            raise DatasetError(
                f"{csv_file}:1: no 'split' column and the file name does not say the subset; "
                "add the column or name the file train.csv, validate.csv or test.csv"
            )
        rows: list[tuple[str, str, str | None, str]] = []
        problems: list[str] = []
        for row in reader:
            number = reader.line_num
            where = f"{csv_file.name}:{number}"
            try:
                youtube_id = (row["youtube_id"] or "").strip()
                time_start = int(float(row["time_start"] or ""))
                time_end = int(float(row["time_end"] or ""))
            except (TypeError, ValueError):
                problems.append(f"line {number}: {_row_text(row)}")
                continue
            subset_value = (row.get("split") or "").strip().lower()
            subset = SPLIT_VALUES.get(subset_value) if subset_value else subset_of_file
            if not youtube_id or subset is None:
                problems.append(f"line {number}: {_row_text(row)}")
                continue
            label = normalise_label(row.get("label") or "") or None
            rows.append((clip_name(youtube_id, time_start, time_end), subset, label, where))
    raise_offenders(
        problems,
        "malformed row(s)",
        csv_file,
        "Rows need a youtube_id, integer time_start and time_end (seconds) and a split of "
        f"{sorted(SPLIT_VALUES)}.",
    )
    if not rows:
        raise DatasetError(f"{csv_file} lists no clips; the subset it holds would be empty")
    return rows


def _pick(candidates: list[str], label: str | None) -> str:
    if len(candidates) > 1 and label is not None:
        key = folder_key(label)
        for rel_path in candidates:
            if folder_key(PurePosixPath(rel_path).parent.name) == key:
                return rel_path
    return candidates[0]


def _row_text(row: dict[str, str | None]) -> str:
    return ",".join(value or "" for key, value in row.items() if key is not None)
