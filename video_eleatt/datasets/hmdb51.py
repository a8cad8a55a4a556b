"""HMDB51 (Kuehne et al. 2011) and the HMDB-style split files it shares with JHMDB."""

from __future__ import annotations

from pathlib import Path

from video_eleatt.datasets._common import (
    FileTree,
    check_unique,
    first_dir,
    raise_offenders,
    read_lines,
    resolve_listed,
    unlisted_note,
)
from video_eleatt.datasets.index import DatasetError, DatasetIndex, VideoRecord

LAYOUT = """\
  root/videos/<class>/<video>.avi           videos (or root/hmdb51_org/<class>/, or root/<class>/)
  root/splits/<class>_test_split{1,2,3}.txt "<video>.avi <tag>", tag 1 = train, 2 = test, 0 = unused
      (or root/testTrainMulti_7030_splits/, as test_train_splits.rar extracts;
       `annotations` = the split folder when it is elsewhere)"""
CLASS_IDS = "class names (from the split file names) sorted (brush_hair = 0 ... wave = 50)"
TAG_SUBSETS = {"1": "train", "2": "test", "0": None}


def read_hmdb51(root: Path, split: str | None, annotations: Path | None) -> DatasetIndex:
    """Reads HMDB51: one split file per class and split, tags 1 = train, 2 = test, 0 = unused.

    Every video of a split file is indexed; tag 0 videos get subset ``None``.

    Args:
        root: dataset folder (see ``LAYOUT``).
        split: ``"1"``, ``"2"`` or ``"3"``.
        annotations: the folder of split files, if not the default.
    """
    return read_hmdb_style(
        "hmdb51",
        root,
        split,
        annotations,
        video_dirs=("videos", "hmdb51_org"),
        split_dirs=("splits", "testTrainMulti_7030_splits"),
        fix="HMDB51's split files come in test_train_splits.rar; extract it under root or set "
        "`annotations` to the folder.",
    )


def read_hmdb_style(
    name: str,
    root: Path,
    split: str | None,
    annotations: Path | None,
    video_dirs: tuple[str, ...],
    split_dirs: tuple[str, ...],
    fix: str,
) -> DatasetIndex:
    """Reads a dataset with HMDB-style split files ``<class>_test_split<N>.txt``.

    Args:
        name: dataset name for the index and messages.
        root: dataset root.
        split: split number as a string.
        annotations: split-file folder overriding ``split_dirs``.
        video_dirs: candidate video folders under root, first existing wins (else root).
        split_dirs: candidate split-file folders under root, first existing wins.
        fix: where the split files come from, for the error message.
    """
    split_dir = annotations or first_dir(root / candidate for candidate in split_dirs)
    if split_dir is None or not split_dir.is_dir():
        looked = split_dir or ", ".join(str(root / candidate) for candidate in split_dirs)
        raise DatasetError(f"{name}: no split-file folder found (looked at {looked}). {fix}")
    suffix = f"_test_split{split}.txt"
    split_files = sorted(path for path in split_dir.iterdir() if path.name.endswith(suffix))
    if not split_files:
        raise DatasetError(
            f"{name}: no '<class>{suffix}' files in {split_dir} (it holds "
            f"{sorted(p.name for p in split_dir.iterdir())[:5]}...). {fix}"
        )
    class_names = sorted(path.name[: -len(suffix)] for path in split_files)

    video_dir_path = first_dir(root / candidate for candidate in video_dirs)
    video_dir = video_dir_path.name if video_dir_path is not None else ""
    prefix = video_dir + "/" if video_dir else ""
    tree = FileTree(root, video_dir)

    subsets: list[str | None] = []
    labels: list[int] = []
    entries: list[tuple[str, str]] = []
    where_by_name: dict[str, list[str]] = {}
    for class_id, class_name in enumerate(class_names):
        split_file = split_dir / f"{class_name}{suffix}"
        lines = read_lines(split_file, f"{name} split file", fix)
        if not lines:
            raise DatasetError(f"{split_file} lists no videos; expected '<video> <tag>' lines")
        problems: list[str] = []
        for number, line in lines:
            tokens = line.rsplit(maxsplit=1)
            if len(tokens) != 2 or tokens[1] not in TAG_SUBSETS:
                problems.append(f"line {number}: {line!r}")
                continue
            video = tokens[0]
            where = f"{split_file.name}:{number}"
            where_by_name.setdefault(video.lower(), []).append(where)
            subsets.append(TAG_SUBSETS[tokens[1]])
            labels.append(class_id)
            entries.append((where, f"{prefix}{class_name}/{video}"))
        raise_offenders(
            problems,
            "malformed line(s)",
            split_file,
            "Expected '<video file> <tag>' with tag 0 (unused), 1 (train) or 2 (test).",
        )
    duplicates = [
        f"{video} (at {', '.join(places)})"
        for video, places in where_by_name.items()
        if len(places) > 1
    ]
    raise_offenders(duplicates, "duplicate entries", split_dir, "Each video must be listed once.")
    for subset in ("train", "test"):
        if subset not in subsets:
            raise DatasetError(
                f"{name} split {split}: the '<class>{suffix}' files in {split_dir} put no video "
                f"in {subset} (tag {'1' if subset == 'train' else '2'}); the split is empty"
            )

    stored = resolve_listed(
        tree,
        entries,
        str(split_dir),
        f"Put the videos under {root / video_dir} as <class>/<video>, or fix the split files.",
    )
    check_unique(entries, stored, str(split_dir))
    records = [VideoRecord(p, label, s) for p, label, s in zip(stored, labels, subsets)]
    records.sort(key=lambda record: record.rel_path)
    notes = unlisted_note(tree, stored, str(root / video_dir))
    return DatasetIndex(name, root, split, class_names, records, notes=notes)
