"""Something-Something v2 (Goyal et al. 2017) from its labels and train/validation JSONs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from video_eleatt.datasets._common import (
    FileTree,
    first_dir,
    raise_offenders,
    resolve_listed,
    unlisted_note,
)
from video_eleatt.datasets.index import DatasetError, DatasetIndex, VideoRecord

LAYOUT = """\
  root/20bn-something-something-v2/<id>.webm            videos (or root/videos/<id>.<ext>)
  root/labels/something-something-v2-labels.json        {"<template>": "<id>", ...}
  root/labels/something-something-v2-{train,validation,test}.json
      [{"id": "78687", "template": "Holding [something] next to [something]", ...}, ...]
      (test optional and unlabelled; `annotations` = the labels folder when it is elsewhere)"""
CLASS_IDS = "the ids of something-something-v2-labels.json (174 templates, 0..173)"
PREFIX = "something-something-v2-"
SUBSET_FILES = (("train", "train"), ("val", "validation"), ("test", "test"))
FIX = "The JSON files come in the 20BN/Qualcomm download (labels.zip); set `annotations` to "


def template_class(template: str) -> str:
    """Class name of a template: its brackets removed.

    >>> template_class("Putting [something] on [something]")
    'Putting something on something'
    """
    return " ".join(template.replace("[", "").replace("]", "").split())


def read_ssv2(root: Path, split: str | None, annotations: Path | None) -> DatasetIndex:
    """Reads Something-Something v2: subsets train, val (validation JSON), test (unlabelled).

    An entry's class is its ``template`` without brackets, looked up in the labels JSON
    (exactly, else ignoring case).

    Args:
        root: dataset folder (see ``LAYOUT``).
        split: must be ``None`` (one official partition).
        annotations: the folder of the JSON files, if not the default.
    """
    label_dir = annotations or root / "labels"
    if not label_dir.is_dir():
        raise DatasetError(f"ssv2: label folder {label_dir} not found. {FIX}the folder.")
    class_names = read_labels(label_dir / f"{PREFIX}labels.json")
    class_ids = {name: class_id for class_id, name in enumerate(class_names)}
    class_ids_lower = {name.lower(): class_id for class_id, name in enumerate(class_names)}

    video_dir_path = first_dir(root / name for name in ("20bn-something-something-v2", "videos"))
    video_dir = video_dir_path.name if video_dir_path is not None else ""
    prefix = video_dir + "/" if video_dir else ""
    tree = FileTree(root, video_dir)

    entries: list[tuple[str, str]] = []
    labels: list[int | None] = []
    subsets: list[str] = []
    where_by_id: dict[str, list[str]] = {}
    for subset, file_part in SUBSET_FILES:
        list_file = label_dir / f"{PREFIX}{file_part}.json"
        if subset == "test" and not list_file.is_file():
            continue
        items = _load_json(list_file, list)
        if not items:
            raise DatasetError(f"{list_file} lists no videos; the {subset} subset would be empty")
        problems: list[str] = []
        for position, item in enumerate(items):
            where = f"{list_file.name} entry {position}"
            video_id = str(item.get("id", "")).strip() if isinstance(item, dict) else ""
            if not video_id:
                problems.append(f"entry {position}: {item!r} has no 'id'")
                continue
            label: int | None = None
            if subset != "test":
                template = item.get("template")
                if not isinstance(template, str):
                    problems.append(f"entry {position} (id {video_id}): no 'template'")
                    continue
                class_name = template_class(template)
                label = class_ids.get(class_name, class_ids_lower.get(class_name.lower()))
                if label is None:
                    problems.append(
                        f"entry {position} (id {video_id}): class {class_name!r} (template "
                        f"{template!r}) is not in {PREFIX}labels.json"
                    )
                    continue
            where_by_id.setdefault(video_id, []).append(where)
            entries.append((where, f"{prefix}{video_id}.webm"))
            labels.append(label)
            subsets.append(subset)
        raise_offenders(
            problems,
            "malformed entries or labels outside the class list",
            list_file,
            'Entries are {"id": "<video id>", "template": "<label template>", ...}.',
        )
    duplicates = [
        f"id {video_id} (at {', '.join(places)})"
        for video_id, places in where_by_id.items()
        if len(places) > 1
    ]
    raise_offenders(duplicates, "duplicate entries", label_dir, "Each video must be listed once.")
    stored = resolve_listed(
        tree,
        entries,
        str(label_dir),
        f"Put the videos under {root / video_dir} as <id>.webm (any video extension).",
    )
    records = [VideoRecord(p, label, s) for p, label, s in zip(stored, labels, subsets)]
    records.sort(key=lambda record: record.rel_path)
    notes = unlisted_note(tree, stored, str(root / video_dir))
    return DatasetIndex("ssv2", root, split, class_names, records, notes=notes)


def read_labels(path: Path) -> list[str]:
    """Class names by id from ``something-something-v2-labels.json`` (template -> "id")."""
    mapping = _load_json(path, dict)
    by_id: dict[int, str] = {}
    problems: list[str] = []
    for name, value in mapping.items():
        try:
            class_id = int(value)
        except (TypeError, ValueError):
            problems.append(f"{name!r}: id {value!r} is not an integer")
            continue
        if class_id in by_id:
            problems.append(f"{name!r}: id {class_id} also names {by_id[class_id]!r}")
            continue
        by_id[class_id] = template_class(name)
    raise_offenders(problems, "malformed entries", path, 'Entries are "<template>": "<id>".')
    if sorted(by_id) != list(range(len(by_id))) or not by_id:
        raise DatasetError(
            f"{path}: class ids {sorted(by_id)[:5]}... are not 0..{len(by_id) - 1} without gaps"
        )
    return [by_id[class_id] for class_id in range(len(by_id))]


def _load_json(path: Path, kind: type) -> Any:
    if not path.is_file():
        raise DatasetError(f"missing ssv2 annotation file {path}. {FIX}its folder.")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
    if not isinstance(value, kind):
        raise DatasetError(f"{path}: expected a JSON {kind.__name__}, got {type(value).__name__}")
    return value
