"""Generic datasets: an mmaction2-style list file, or a folder per class."""

from __future__ import annotations

import warnings
from pathlib import Path, PurePosixPath

from video_eleatt.datasets._common import (
    FileTree,
    raise_offenders,
    read_lines,
    resolve_listed,
)
from video_eleatt.datasets.index import (
    SUBSETS,
    DatasetError,
    DatasetIndex,
    DatasetWarning,
    VideoRecord,
)

LIST_LAYOUT = """\
  root/<any path to a video>                 videos, listed relative to root
  root/{train,val,test}.txt                  "relative/path.mp4 <0-based label>" or just the path
      (with a split S: root/{train,val,test}_S.txt; any of the three may be absent;
       `annotations` = their folder, or one list file: its subset is train, val or test when
       its name starts with that word, else test)
  root/classes.txt                           optional, one class name per line (line 1 = id 0);
      without it classes are named "0" .. "<max label>\""""
LIST_CLASS_IDS = "the labels in the lists (0-based); names from classes.txt if present"
FOLDER_LAYOUT = """\
  root/<class>/<video>                        every video in subset train, or
  root/{train,val,test}/<class>/<video>       when root holds only train/val/test folders
      (videos may sit in subfolders of the class folder; any video extension)"""
FOLDER_CLASS_IDS = "class folder names sorted (union over train/val/test)"
SUBSET_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


def read_list(root: Path, split: str | None, annotations: Path | None) -> DatasetIndex:
    """Reads videos listed in mmaction2-style list files ("path [label]" per line).

    A line's last token is its label when it is an integer, else the whole line is the path
    (paths may hold spaces). A file is labelled throughout or not at all; unlabelled videos
    get label ``None``.

    Args:
        root: folder the listed paths are relative to.
        split: optional suffix selecting ``{subset}_{split}.txt``.
        annotations: the list folder or a single list file, if not ``root``.
    """
    list_files = _list_files(root, split, annotations)
    list_dir = list_files[0][1].parent
    classes_file = list_dir / "classes.txt"
    class_names: list[str] | None = None
    if classes_file.is_file():
        class_names = [text for _, text in read_lines(classes_file, "class list", "")]

    entries: list[tuple[str, str]] = []
    labels: list[int | None] = []
    subsets: list[str] = []
    for subset, list_file in list_files:
        lines = read_lines(list_file, "list file", "")
        if not lines:
            raise DatasetError(f"{list_file} lists no videos; the {subset} subset would be empty")
        parsed: list[tuple[int, str, int | None]] = []
        for number, line in lines:
            tokens = line.rsplit(maxsplit=1)
            if len(tokens) == 2 and tokens[1].lstrip("-").isdigit():
                parsed.append((number, tokens[0], int(tokens[1])))
            else:
                parsed.append((number, line, None))
        labelled = [item for item in parsed if item[2] is not None]
        if labelled and len(labelled) != len(parsed):
            unlabelled = [f"line {n}: {path!r}" for n, path, label in parsed if label is None]
            raise_offenders(
                unlabelled,
                f"line(s) without a label while {len(labelled)} others have one",
                list_file,
                "Give every line of a file a label ('path label') or none.",
            )
        num_classes = len(class_names) if class_names is not None else None
        outside = [
            f"line {n}: label {label} of {path}"
            for n, path, label in labelled
            if label < 0 or (num_classes is not None and label >= num_classes)
        ]
        raise_offenders(
            outside,
            "label(s) outside the class list",
            list_file,
            f"Labels are 0-based ids below {num_classes or 'the class count'}"
            + (f" (classes.txt lists {num_classes})." if num_classes is not None else "."),
        )
        for number, path, label in parsed:
            entries.append((f"{list_file.name}:{number}", path.replace("\\", "/").lstrip("/")))
            labels.append(label)
            subsets.append(subset)

    if class_names is None:
        num_classes = max((label for label in labels if label is not None), default=-1) + 1
        class_names = [str(class_id) for class_id in range(num_classes)]
    sources = ", ".join(str(path) for _, path in list_files)
    stored = resolve_listed(FileTree(root), entries, sources, "Fix the paths (relative to root).")
    where_listed: dict[str, list[str]] = {}
    for (where, _), rel_path in zip(entries, stored):
        where_listed.setdefault(rel_path, []).append(where)
    duplicates = [f"{p} (at {', '.join(w)})" for p, w in where_listed.items() if len(w) > 1]
    raise_offenders(duplicates, "duplicate entries", sources, "List each video once.")
    records = [VideoRecord(p, label, s) for p, label, s in zip(stored, labels, subsets)]
    records.sort(key=lambda record: record.rel_path)
    notes = [f"read {sources}"]
    return DatasetIndex("list", root, split, class_names, records, notes=notes)


def _list_files(root: Path, split: str | None, annotations: Path | None) -> list[tuple[str, Path]]:
    if annotations is not None and annotations.is_file():
        name = annotations.name.lower()
        subset = next((s for s in SUBSETS if name.startswith(s)), "test")
        return [(subset, annotations)]
    folder = annotations or root
    suffix = f"_{split}" if split is not None else ""
    found = [(s, folder / f"{s}{suffix}.txt") for s in SUBSETS]
    found = [(subset, path) for subset, path in found if path.is_file()]
    if not found:
        raise DatasetError(
            f"list: none of {', '.join(f'{s}{suffix}.txt' for s in SUBSETS)} in {folder}; "
            "write the lists there or set `annotations` to a list file or its folder"
        )
    return found


def read_folder(root: Path, split: str | None, annotations: Path | None) -> DatasetIndex:
    """Reads a folder-per-class tree (see ``FOLDER_LAYOUT``).

    Args:
        root: the tree.
        split: must be ``None``.
        annotations: must be ``None``.
    """
    if annotations is not None:
        raise DatasetError(
            f"folder takes no annotations (got {str(annotations)!r}): classes are the folder "
            "names; use name: list for list files"
        )
    top = sorted(path.name for path in root.iterdir() if path.is_dir())
    by_subset = bool(top) and all(name.lower() in SUBSET_FOLDERS for name in top)
    tree = FileTree(root)
    rows: list[tuple[str, str, str]] = []  # (rel_path, class name, subset)
    loose: list[str] = []
    for rel_path in tree.videos():
        parts = PurePosixPath(rel_path).parts
        if by_subset:
            if len(parts) < 3:
                loose.append(rel_path)
                continue
            rows.append((rel_path, parts[1], SUBSET_FOLDERS[parts[0].lower()]))
        else:
            if len(parts) < 2:
                loose.append(rel_path)
                continue
            rows.append((rel_path, parts[0], "train"))
    if not rows:
        raise DatasetError(
            f"folder: no video in a class folder below {root}; expected layout:\n{FOLDER_LAYOUT}"
        )
    class_names = sorted({class_name for _, class_name, _ in rows})
    class_ids = {name: class_id for class_id, name in enumerate(class_names)}
    records = [VideoRecord(p, class_ids[name], subset) for p, name, subset in rows]
    notes = [
        "subsets from the train/val/test folders" if by_subset else "flat tree: all videos train"
    ]
    if loose:
        notes.append(
            f"ignored {len(loose)} video file(s) outside a class folder, e.g. "
            f"{', '.join(loose[:3])}"
        )
        warnings.warn(f"folder at {root}: {notes[-1]}", DatasetWarning, stacklevel=3)
    return DatasetIndex("folder", root, split, class_names, records, notes=notes)
