"""The supported dataset formats: one dict from name to reader and its documentation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from video_eleatt.datasets import generic, hmdb51, jhmdb, kinetics, ntu, ssv2, ucf101
from video_eleatt.datasets.index import DatasetError, DatasetIndex

# reader(root, split, annotations) -> DatasetIndex; split already resolved and validated.
Reader = Callable[[Path, "str | None", "Path | None"], DatasetIndex]


@dataclass(frozen=True)
class DatasetFormat:
    """A dataset format: its reader and what ``video-eleatt datasets`` says about it.

    Attributes:
        reader: builds the index from root, split and annotation location.
        summary: one line.
        splits: official split names, the first is the default; empty = one partition.
        subsets: which subsets the splits fill.
        class_ids: how class ids are assigned.
        layout: expected files under root.
        split_aliases: other accepted spellings of split names.
        free_split: any split name is accepted (generic lists).
    """

    reader: Reader
    summary: str
    splits: tuple[str, ...]
    subsets: str
    class_ids: str
    layout: str
    split_aliases: dict[str, str] = field(default_factory=dict)
    free_split: bool = False

    def resolve_split(self, split: str | None) -> str | None:
        """The split to read: ``split`` validated, or the default one when ``None``."""
        if split is None:
            return self.splits[0] if self.splits else None
        split = str(split).strip()
        split = self.split_aliases.get(split.lower(), split)
        if self.free_split or split in self.splits:
            return split
        if not self.splits:
            raise DatasetError(
                f"split {split!r} given, but this dataset has one official partition; "
                "remove `split`"
            )
        raise DatasetError(f"unknown split {split!r}; expected one of {list(self.splits)}")


_NUMBERED_ALIASES = {f"split{n}": str(n) for n in (1, 2, 3)} | {f"0{n}": str(n) for n in (1, 2, 3)}

FORMATS: dict[str, DatasetFormat] = {
    "ucf101": DatasetFormat(
        reader=ucf101.read_ucf101,
        summary="UCF101, 101 classes, 13,320 videos; three official train/test splits",
        splits=("1", "2", "3"),
        subsets="train (trainlist0N), test (testlist0N)",
        class_ids=ucf101.CLASS_IDS,
        layout=ucf101.LAYOUT,
        split_aliases=_NUMBERED_ALIASES,
    ),
    "hmdb51": DatasetFormat(
        reader=hmdb51.read_hmdb51,
        summary="HMDB51, 51 classes, 6,766 videos; three splits of 70 train / 30 test per class",
        splits=("1", "2", "3"),
        subsets="train (tag 1), test (tag 2); tag 0 videos are indexed with subset None",
        class_ids=hmdb51.CLASS_IDS,
        layout=hmdb51.LAYOUT,
        split_aliases=_NUMBERED_ALIASES,
    ),
    **{
        f"kinetics{classes}": DatasetFormat(
            reader=partial(kinetics.read_kinetics, f"kinetics{classes}"),
            summary=f"Kinetics-{classes} (CSV annotations; absent clips are counted and "
            "warned, not fatal)",
            splits=(),
            subsets="train, val (validate.csv), test (unlabelled where the CSV has no label)",
            class_ids=kinetics.CLASS_IDS,
            layout=kinetics.LAYOUT,
        )
        for classes in (400, 600, 700)
    },
    "ssv2": DatasetFormat(
        reader=ssv2.read_ssv2,
        summary="Something-Something v2, 174 classes (label templates), JSON annotations",
        splits=(),
        subsets="train, val (validation JSON), test (test JSON if present, unlabelled)",
        class_ids=ssv2.CLASS_IDS,
        layout=ssv2.LAYOUT,
    ),
    "ntu60": DatasetFormat(
        reader=ntu.read_ntu60,
        summary="NTU RGB+D 60 RGB videos, 60 classes (S001-S017, A001-A060; other files ignored)",
        splits=("cs", "cv"),
        subsets="cs: training subjects train, others test; cv: cameras 2, 3 train, 1 test",
        class_ids=ntu.CLASS_IDS,
        layout=ntu.LAYOUT,
        split_aliases={"xsub": "cs", "xview": "cv"},
    ),
    "ntu120": DatasetFormat(
        reader=ntu.read_ntu120,
        summary="NTU RGB+D 120 RGB videos, 120 classes; labels and splits from file names",
        splits=("csub", "cset"),
        subsets="csub: 53 training subjects train, others test; cset: even setups train",
        class_ids=ntu.CLASS_IDS,
        layout=ntu.LAYOUT,
        split_aliases={"xsub": "csub", "xset": "cset"},
    ),
    "jhmdb": DatasetFormat(
        reader=jhmdb.read_jhmdb,
        summary="J-HMDB, 21 classes, 928 clips; three HMDB-style splits",
        splits=("1", "2", "3"),
        subsets="train (tag 1), test (tag 2); tag 0 videos are indexed with subset None",
        class_ids=jhmdb.CLASS_IDS,
        layout=jhmdb.LAYOUT,
        split_aliases=_NUMBERED_ALIASES,
    ),
    "list": DatasetFormat(
        reader=generic.read_list,
        summary="mmaction2-style list files 'relative/path [label]' (labels optional)",
        splits=(),
        subsets="train, val, test: one list file each",
        class_ids=generic.LIST_CLASS_IDS,
        layout=generic.LIST_LAYOUT,
        free_split=True,
    ),
    "folder": DatasetFormat(
        reader=generic.read_folder,
        summary="a folder per class (optionally inside train/val/test folders)",
        splits=(),
        subsets="train, or train/val/test from the top-level folders",
        class_ids=generic.FOLDER_CLASS_IDS,
        layout=generic.FOLDER_LAYOUT,
    ),
}


def get_format(name: str) -> DatasetFormat:
    """The format called ``name``; the error lists the valid names."""
    try:
        return FORMATS[str(name).lower()]
    except KeyError as err:
        raise DatasetError(
            f"unknown dataset {name!r}; choose one of: {', '.join(FORMATS)} "
            "(`video-eleatt datasets` describes each)"
        ) from err
