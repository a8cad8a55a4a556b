"""Loading a dataset: a :class:`DatasetSpec` to the :class:`DatasetIndex` its reader builds.

It sits above the readers and their table (:mod:`video_eleatt.datasets.formats`), which sit
above :mod:`video_eleatt.datasets.index`.

>>> index = load_index(DatasetSpec(name="ucf101", root="data/ucf101", split="1"))  # doctest: +SKIP
>>> len(index.subset("train")), index.class_names[0]  # doctest: +SKIP
(9537, 'ApplyEyeMakeup')
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from video_eleatt.datasets.formats import get_format
from video_eleatt.datasets.index import DatasetError, DatasetIndex, DatasetSpec


def load_index(spec: DatasetSpec | Mapping[str, Any]) -> DatasetIndex:
    """Reads a dataset as its authors ship it into a :class:`DatasetIndex`.

    Args:
        spec: dataset name, root, split and (optionally) annotation location; a mapping with
            the same keys is accepted.

    Returns:
        The index: every video (sorted by ``rel_path``), its label and its subset under
        ``spec.split``.

    Raises:
        DatasetError: unknown dataset name or split, missing root or annotation files,
            malformed or duplicate entries, labels outside the class list, listed videos
            absent (except Kinetics, which warns), or an empty split.

    >>> index = load_index({"name": "ntu60", "root": "data/ntu", "split": "cv"})  # doctest: +SKIP
    """
    if not isinstance(spec, DatasetSpec):
        spec = DatasetSpec.from_dict(spec)
    dataset_format = get_format(spec.name)
    split = dataset_format.resolve_split(spec.split)
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"{spec.name} root {str(root)!r} is not a directory; point `root` at the dataset "
            f"folder. Expected layout:\n{dataset_format.layout}"
        )
    annotations = _resolve_annotations(spec.annotations, root)
    index = dataset_format.reader(root, split, annotations)
    if not index.records:
        raise DatasetError(
            f"{spec.name} at {root}: no videos found. Expected layout:\n{dataset_format.layout}"
        )
    return index


def _resolve_annotations(annotations: str | None, root: Path) -> Path | None:
    if annotations is None:
        return None
    path = Path(annotations).expanduser()
    if path.is_absolute() or path.exists():
        return path
    under_root = root / path
    if under_root.exists():
        return under_root
    raise DatasetError(
        f"annotations {annotations!r} not found (looked in the working directory and under "
        f"root {str(root)!r}); give the path of the annotation file or folder"
    )
