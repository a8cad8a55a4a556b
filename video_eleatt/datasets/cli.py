"""``video-eleatt datasets`` (the supported formats) and ``video-eleatt describe`` (counts)."""

from __future__ import annotations

import json
import sys
import textwrap
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from video_eleatt.datasets.formats import FORMATS, get_format
from video_eleatt.datasets.index import SUBSETS, DatasetError, DatasetIndex, DatasetSpec
from video_eleatt.datasets.load import load_index

# Where a dataset spec may sit in a YAML config: extraction configs hold it at the top,
# training configs under the DataModule's arguments.
SPEC_PLACES: tuple[tuple[str, ...], ...] = (
    ("dataset",),
    ("data", "dataset"),
    ("data", "init_args", "dataset"),
)


def datasets_main(argv: list[str]) -> int:
    """Prints the supported dataset formats: summary, splits, subsets, class ids, layout."""
    # Plain argparse: nothing here is configurable, and jsonargparse marks `names` required.
    import argparse

    parser = argparse.ArgumentParser(
        prog="video-eleatt datasets",
        description="List the supported dataset formats and the layout each expects under root.",
    )
    parser.add_argument("names", nargs="*", help="formats to describe (default: all)")
    args = parser.parse_args(argv)
    try:
        names = [name.lower() for name in args.names if get_format(name)] or list(FORMATS)
    except DatasetError as err:
        print(f"video-eleatt datasets: error: {err}", file=sys.stderr)
        return 2
    print(format_formats(names))
    return 0


def format_formats(names: list[str]) -> str:
    """The text of ``video-eleatt datasets`` for the formats ``names``."""
    width = max(len(name) for name in names)
    lines = ["Supported datasets (config: dataset: {name: NAME, root: DIR, split: S}):", ""]
    lines += [f"  {name:<{width}}  {get_format(name).summary}" for name in names]
    for name in names:
        dataset_format = get_format(name)
        if dataset_format.splits:
            splits = ", ".join(dataset_format.splits) + f" (default {dataset_format.splits[0]})"
        elif dataset_format.free_split:
            splits = "none, or any name S selecting {train,val,test}_S.txt"
        else:
            splits = "one official partition (no split)"
        lines += [
            "",
            f"{name}: {dataset_format.summary}",
            f"  splits:    {splits}",
            f"  subsets:   {dataset_format.subsets}",
            f"  class ids: {dataset_format.class_ids}",
            "  layout:",
            textwrap.indent(dataset_format.layout, "  "),
        ]
    return "\n".join(lines)


def describe_main(argv: list[str]) -> int:
    """Prints a dataset's counts per subset and per class, and what is missing."""
    # Imported when the command runs, not at the top: `video-eleatt datasets` and the
    # top-level help start without loading jsonargparse.
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(
        prog="video-eleatt describe",
        description="Counts per subset and class of a dataset, from a config holding a "
        "dataset spec (top-level `dataset:` or `data: [init_args:] dataset:`) or from "
        "--dataset.name/--dataset.root (as extract and check name them).",
    )
    add_dataset_arguments(parser)
    parser.add_argument("--per_class", type=bool, default=True, help="print the class table")
    args = parser.parse_args(rename_old_dataset_flags(argv, "video-eleatt describe"))
    if args.config is None and (args.dataset.name is None or args.dataset.root is None):
        parser.error(NO_DATASET)
    try:
        spec = spec_from_arguments(args)
        with warnings.catch_warnings():
            # The description reports what the warnings would say (notes, missing).
            warnings.simplefilter("ignore")
            index = load_index(spec)
    except DatasetError as err:
        print(f"video-eleatt describe: error: {err}", file=sys.stderr)
        return 1
    print(format_description(index, per_class=args.per_class))
    return 0


NO_DATASET = "give --config FILE.yaml, or --dataset.name NAME and --dataset.root DIR"

# The options' names before they were extract's and check's (`--dataset.name`, ...): they still
# work, with a one-line note.
RENAMED_DATASET_FLAGS = {
    "--dataset": "--dataset.name",
    "--root": "--dataset.root",
    "--split": "--dataset.split",
    "--annotations": "--dataset.annotations",
}
SPEC_KEYS = ("name", "root", "split", "annotations")


def rename_old_dataset_flags(argv: list[str], prog: str) -> list[str]:
    """``argv`` with the old option names (``--dataset NAME``, ``--root``, ``--split``,
    ``--annotations``) replaced by ``--dataset.name`` and its siblings, noting each on stderr."""
    renamed = []
    for arg in argv:
        flag, equals, value = arg.partition("=")
        if flag in RENAMED_DATASET_FLAGS:
            new_flag = RENAMED_DATASET_FLAGS[flag]
            print(f"{prog}: note: {flag} is now {new_flag}", file=sys.stderr)
            arg = new_flag + equals + value
        renamed.append(arg)
    return renamed


def add_dataset_arguments(parser: Any, root_help: str = "dataset root") -> None:
    """The options that name a dataset: ``--config`` (a YAML holding a dataset spec) or
    ``--dataset.name``/``--dataset.root``, refined by ``--dataset.split`` and
    ``--dataset.annotations`` (the names extract and check use); read them back with
    :func:`spec_from_arguments`."""
    parser.add_argument("--config", type=str | None, default=None, help="YAML with a dataset")
    parser.add_argument("--dataset.name", type=str | None, default=None, help="format name")
    parser.add_argument("--dataset.root", type=str | None, default=None, help=root_help)
    parser.add_argument(
        "--dataset.split",
        type=str | None,
        default=None,
        help="official split, e.g. 1, cs, csub (default: the dataset's first)",
    )
    parser.add_argument(
        "--dataset.annotations",
        type=str | None,
        default=None,
        help="annotation file or folder, if elsewhere",
    )


def spec_from_arguments(args: Any) -> DatasetSpec:
    """The dataset spec of :func:`add_dataset_arguments`' options: the config's, with any
    value given on the command line replacing its own (e.g. another split), or
    ``--dataset.name`` with ``--dataset.root``.

    Raises:
        DatasetError: neither a config nor both ``--dataset.name`` and ``--dataset.root``, or
            a bad config.
    """
    given = {key: getattr(args.dataset, key) for key in SPEC_KEYS}
    if args.config is not None:
        spec = spec_from_config(Path(args.config))
        for key, value in given.items():
            if value is not None:
                setattr(spec, key, value)
        return spec
    if given["name"] is None or given["root"] is None:
        raise DatasetError(NO_DATASET)
    return DatasetSpec(**given)


def spec_from_config(path: Path) -> DatasetSpec:
    """The dataset spec of a YAML config.

    Looked for at ``SPEC_PLACES`` as a mapping ``{name, root, split, annotations}`` (or
    jsonargparse's ``{init_args: {...}}``), or as a name beside ``root:``/``split:`` keys. A
    ``split`` beside the spec (the DataModule's own ``data.split``) overrides the spec's.
    Failing those, the dataset recorded in ``config.json`` of a ``cache`` folder named at
    ``data.cache`` or ``data.init_args.cache`` is used.
    """
    import yaml  # here, not at the top: `video-eleatt datasets` does not need it

    if not path.is_file():
        raise DatasetError(f"config {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DatasetError(f"config {path} is not valid YAML: {err}") from err
    for place in SPEC_PLACES:
        parent = _lookup(config, place[:-1])
        value = parent.get(place[-1]) if isinstance(parent, Mapping) else None
        if value is None:
            continue
        assert isinstance(parent, Mapping)
        if isinstance(value, Mapping) and "init_args" in value:
            value = value["init_args"]
        if isinstance(value, str):
            # Flat form: `dataset: ucf101` beside `root:`, `split:`, `annotations:`.
            keys = ("root", "split", "annotations")
            value = {"name": value} | {key: parent[key] for key in keys if key in parent}
        if not isinstance(value, Mapping):
            raise DatasetError(
                f"config {path}: {'.'.join(place)} is {value!r}; expected "
                "{name: ..., root: ..., split: ...}"
            )
        if parent.get("split") is not None:
            value = dict(value) | {"split": parent["split"]}
        try:
            return DatasetSpec.from_dict(value)
        except DatasetError as err:
            raise DatasetError(f"config {path}, {'.'.join(place)}: {err}") from err
    for place in (("data", "cache"), ("data", "init_args", "cache")):
        cache = _lookup(config, place)
        cache_config = Path(str(cache)) / "config.json" if isinstance(cache, str) else None
        if cache_config is not None and cache_config.is_file():
            recorded = json.loads(cache_config.read_text(encoding="utf-8")).get("dataset")
            if isinstance(recorded, Mapping):
                split = _lookup(config, (*place[:-1], "split"))
                spec = DatasetSpec.from_dict(recorded)
                if split is not None:
                    spec.split = str(split)
                return spec
    places = ", ".join(".".join(place) for place in SPEC_PLACES)
    raise DatasetError(
        f"config {path} holds no dataset spec (looked at {places}, and at the dataset recorded "
        "by data.cache); add dataset: {name: ucf101, root: data/ucf101, split: 1}"
    )


def _lookup(config: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        config = config.get(key) if isinstance(config, Mapping) else None
    return config


def format_description(index: DatasetIndex, per_class: bool = True) -> str:
    """Counts of an index per subset and (optionally) per class, as a compact table."""
    counts = index.counts()
    columns = [name for name in SUBSETS if name in counts]
    if None in counts:
        columns.append(None)
    headers = [name or "unused" for name in columns]
    split = f", split {index.split}" if index.split is not None else ""
    lines = [
        f"{index.name} at {index.root}{split}: {index.num_classes} classes, "
        f"{len(index)} videos, {len(index.missing)} missing",
        "",
        "subset   videos",
    ]
    for column, header in zip(columns, headers):
        lines.append(f"{header:<8} {sum(counts[column].values()):>6}")
    if index.missing:
        lines += ["", f"missing (listed but absent): {len(index.missing)}, e.g."]
        lines += [f"  {item}" for item in index.missing[:5]]
    if index.notes:
        lines += ["", "notes:"] + [f"  {note}" for note in index.notes]
    if per_class:
        width = max([len(name) for name in index.class_names] + [5])
        id_width = len(str(max(index.num_classes - 1, 0)))
        cells = "".join(f" {header:>7}" for header in headers)
        lines += ["", f"{'id':>{id_width}} {'class':<{width}}{cells}"]
        for class_id, name in enumerate(index.class_names):
            cells = "".join(f" {counts[column][class_id]:>7}" for column in columns)
            lines.append(f"{class_id:>{id_width}} {name:<{width}}{cells}")
        unlabelled = [counts[column][None] for column in columns]
        if any(unlabelled):
            cells = "".join(f" {count:>7}" for count in unlabelled)
            lines.append(f"{'':>{id_width}} {'(no label)':<{width}}{cells}")
    return "\n".join(lines)
