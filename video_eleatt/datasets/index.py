"""The dataset index: every video of a dataset with its label and split membership.

Every reader (UCF101, HMDB51, Kinetics, Something-Something v2, NTU RGB+D, JHMDB, generic
lists and folder trees) produces one :class:`DatasetIndex`. Extraction keys the feature cache
by :attr:`VideoRecord.rel_path`, and training selects records by :attr:`VideoRecord.subset`,
so both read the same videos the same way. :func:`video_eleatt.datasets.load.load_index`
picks the reader for a :class:`DatasetSpec`; the readers import this module, and this module
imports none of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

SUBSETS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset or its annotations cannot be read as the named format.

    The message names the file (and line) at fault, the first few offending entries and the
    fix.
    """


class DatasetWarning(UserWarning):
    """A tolerated problem, e.g. Kinetics clips listed in the CSV but absent locally."""


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset.

    Attributes:
        rel_path: POSIX path of the video file relative to the dataset root, the same for
            every split of the dataset; the key of the feature cache.
        label: 0-based class id (an index into ``DatasetIndex.class_names``), ``None`` when
            unknown (unlabelled test sets).
        subset: ``"train"``, ``"val"`` or ``"test"`` under the selected split; ``None`` when
            the split does not use the video (e.g. HMDB51 tag 0).
    """

    rel_path: str
    label: int | None
    subset: str | None


@dataclass
class DatasetSpec:
    """What a config names to select a dataset.

    In YAML: ``dataset: {name: ucf101, root: data/ucf101, split: 1}``.

    Attributes:
        name: dataset format, one of ``video-eleatt datasets`` (e.g. ``ucf101``, ``ntu60``).
        root: the dataset folder as its authors ship it.
        split: official split, ``"1"``, ``"2"``, ``"3"`` (UCF101, HMDB51, JHMDB), ``"cs"``,
            ``"cv"`` (NTU60), ``"csub"``, ``"cset"`` (NTU120); an int becomes its string;
            ``None`` selects the first (default) split of the dataset.
        annotations: annotation file or folder when it is not at the format's default place;
            a relative path is taken from the working directory if it exists there, else from
            ``root``.
    """

    name: str
    root: str
    # int accepted because YAML reads `split: 1` as one; stored as a string.
    split: str | int | None = None
    annotations: str | None = None

    def __post_init__(self) -> None:
        if self.split is not None and not isinstance(self.split, str):
            self.split = str(self.split)
        self.root = str(self.root)
        if self.annotations is not None:
            self.annotations = str(self.annotations)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DatasetSpec:
        """Builds a spec from a config mapping, naming unknown keys in the error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DatasetError(
                f"unknown dataset option(s) {unknown}; expected keys {sorted(known)} "
                f"(e.g. {{name: ucf101, root: data/ucf101, split: 1}})"
            )
        missing = [key for key in ("name", "root") if values.get(key) in (None, "")]
        if missing:
            raise DatasetError(
                f"dataset spec {dict(values)} lacks {missing}; give at least name and root "
                f"(e.g. {{name: ucf101, root: data/ucf101, split: 1}})"
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, str | None]:
        """Plain dict for JSON/YAML (the feature cache's ``config.json``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class DatasetIndex:
    """Every video of a dataset, in a stable order (sorted by ``rel_path``).

    Attributes:
        name: dataset format name, e.g. ``"ucf101"``.
        root: dataset root; ``root / record.rel_path`` is the video file.
        split: the selected split (the default one when the spec gave none), ``None`` for
            datasets with a single official partition.
        class_names: class names, position = class id.
        records: every video found, whether or not the split uses it.
        missing: videos listed by the annotations but absent from the local copy, where the
            format tolerates that (Kinetics); they are not in ``records``.
        notes: things the reader did that a user should know (files ignored, layout found).
    """

    name: str
    root: Path
    split: str | None
    class_names: list[str]
    records: list[VideoRecord]
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def path(self, record: VideoRecord | str) -> Path:
        """The video file of ``record`` (a record or its ``rel_path``): ``root / rel_path``."""
        rel_path = record.rel_path if isinstance(record, VideoRecord) else record
        return self.root / PurePosixPath(rel_path)

    def subset(self, name: str) -> list[VideoRecord]:
        """Records of one subset (``"train"``, ``"val"`` or ``"test"``), in index order."""
        if name not in SUBSETS:
            raise DatasetError(f"unknown subset {name!r}; expected one of {list(SUBSETS)}")
        return [record for record in self.records if record.subset == name]

    def subset_names(self) -> list[str]:
        """Subsets with at least one record, in the order train, val, test."""
        present = {record.subset for record in self.records}
        return [name for name in SUBSETS if name in present]

    def record(self, rel_path: str) -> VideoRecord:
        """The record whose ``rel_path`` is ``rel_path``."""
        lookup = self.__dict__.get("_by_rel_path")
        if lookup is None or len(lookup) != len(self.records):
            lookup = {record.rel_path: record for record in self.records}
            self.__dict__["_by_rel_path"] = lookup
        try:
            return lookup[rel_path]
        except KeyError as err:
            raise KeyError(
                f"{rel_path!r} is not a video of the {self.name} index at {self.root}"
            ) from err

    def counts(self) -> dict[str | None, Counter[int | None]]:
        """Videos per subset (``None`` = unused by the split) and class id."""
        table: dict[str | None, Counter[int | None]] = {}
        for record in self.records:
            table.setdefault(record.subset, Counter())[record.label] += 1
        return table
