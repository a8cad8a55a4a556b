"""UCF101 (Soomro et al. 2012) with its three official train/test splits."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from video_eleatt.datasets._common import (
    FileTree,
    check_unique,
    raise_offenders,
    read_lines,
    resolve_listed,
    unlisted_note,
)
from video_eleatt.datasets.index import DatasetError, DatasetIndex, VideoRecord

LAYOUT = """\
  root/UCF-101/<Class>/<video>            videos, any extension (root/<Class>/ without UCF-101/)
  root/ucfTrainTestlist/classInd.txt      "1 ApplyEyeMakeup" ... (1-based)
  root/ucfTrainTestlist/trainlist0N.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
  root/ucfTrainTestlist/testlist0N.txt    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
  (`annotations` = the list folder when it is elsewhere)"""
CLASS_IDS = "classInd.txt order minus 1 (ApplyEyeMakeup = 0 ... YoYo = 100)"
LIST_FIX = (
    "UCF101's lists come in UCF101TrainTestSplits-RecognitionTask.zip (folder "
    "ucfTrainTestlist/); put it under root or set `annotations` to the folder."
)


def read_ucf101(root: Path, split: str | None, annotations: Path | None) -> DatasetIndex:
    """Reads UCF101: classes from ``classInd.txt``, subsets from split N's two lists.

    The label of a list line is its class folder matched case-insensitively against
    ``classInd.txt`` (test lists carry no label; one class is spelled HandstandPushups in the
    lists and HandStandPushups in file names). A train-list label that disagrees with the
    folder is an error. Subsets: ``train`` (trainlist0N), ``test`` (testlist0N).

    Args:
        root: dataset folder (see ``LAYOUT``).
        split: ``"1"``, ``"2"`` or ``"3"``.
        annotations: the folder holding ``classInd.txt`` and the lists, if not the default.
    """
    list_dir = annotations
    if list_dir is None:
        list_dir = root / "ucfTrainTestlist"
        if not list_dir.is_dir() and (root / "classInd.txt").is_file():
            list_dir = root
    if list_dir.is_file():
        raise DatasetError(
            f"ucf101 annotations {list_dir} is a file; expected the folder holding "
            "classInd.txt, trainlist0N.txt and testlist0N.txt"
        )
    class_names = read_class_ind(list_dir / "classInd.txt")
    class_by_lower = {name.lower(): class_id for class_id, name in enumerate(class_names)}

    video_dir = "UCF-101" if (root / "UCF-101").is_dir() else ""
    prefix = video_dir + "/" if video_dir else ""
    tree = FileTree(root, video_dir)

    subsets: list[str] = []
    labels: list[int] = []
    entries: list[tuple[str, str]] = []
    for subset, stem in (("train", "trainlist"), ("test", "testlist")):
        list_file = list_dir / f"{stem}{int(split or 1):02d}.txt"
        lines = read_lines(list_file, f"UCF101 split {split} list", LIST_FIX)
        if not lines:
            raise DatasetError(f"{list_file} lists no videos: split {split} {subset} is empty")
        problems: list[str] = []
        for number, line in lines:
            where = f"{list_file.name}:{number}"
            tokens = line.split()
            if len(tokens) > 2 or (len(tokens) == 2 and not tokens[1].isdigit()):
                problems.append(f"line {number}: {line!r} (expected 'Class/video [label]')")
                continue
            video = tokens[0].replace("\\", "/")
            class_name = _class_of(video)
            class_id = class_by_lower.get(class_name.lower())
            if class_id is None:
                problems.append(f"line {number}: class {class_name!r} of {video} not in classInd")
                continue
            if len(tokens) == 2 and int(tokens[1]) - 1 != class_id:
                listed = _name(class_names, int(tokens[1]) - 1)
                problems.append(
                    f"line {number}: label {tokens[1]} ({listed}) disagrees with the folder of "
                    f"{video} ({class_id + 1} {class_names[class_id]})"
                )
                continue
            if "/" not in video:  # a bare file name: the video sits in its class folder
                video = f"{class_names[class_id]}/{video}"
            subsets.append(subset)
            labels.append(class_id)
            entries.append((where, prefix + video))
        raise_offenders(
            problems,
            "malformed line(s) or label(s) outside classInd.txt",
            list_file,
            "Lines are 'Class/v_Class_gNN_cNN.ext' (test lists) or that plus a 1-based label "
            "(train lists), with Class as in classInd.txt.",
        )

    stored = resolve_listed(
        tree,
        entries,
        str(list_dir),
        f"Put the videos under {root / video_dir} as <Class>/<video> (the UCF-101 folder of "
        "UCF101.rar), or fix the lists.",
    )
    check_unique(entries, stored, str(list_dir))
    records = [VideoRecord(p, label, s) for p, label, s in zip(stored, labels, subsets)]
    records.sort(key=lambda record: record.rel_path)
    notes = unlisted_note(tree, stored, str(root / video_dir))
    return DatasetIndex("ucf101", root, split, class_names, records, notes=notes)


def read_class_ind(path: Path) -> list[str]:
    """Class names from a ``classInd.txt`` ("<1-based id> <name>" per line), by id."""
    lines = read_lines(path, "UCF101 class list classInd.txt", LIST_FIX)
    by_id: dict[int, str] = {}
    problems: list[str] = []
    for number, line in lines:
        tokens = line.split()
        if len(tokens) != 2 or not tokens[0].isdigit():
            problems.append(f"line {number}: {line!r} (expected '<id> <ClassName>')")
        elif int(tokens[0]) in by_id:
            problems.append(f"line {number}: id {tokens[0]} given twice")
        elif tokens[1].lower() in {name.lower() for name in by_id.values()}:
            problems.append(f"line {number}: class {tokens[1]!r} given twice")
        else:
            by_id[int(tokens[0])] = tokens[1]
    raise_offenders(problems, "malformed line(s)", path, "Fix the class list.")
    expected = list(range(1, len(by_id) + 1))
    if sorted(by_id) != expected:
        raise DatasetError(
            f"{path}: class ids {sorted(by_id)[:5]}... are not 1..{len(by_id)} without gaps; "
            "classInd.txt numbers its classes from 1"
        )
    if not by_id:
        raise DatasetError(f"{path} lists no classes")
    return [by_id[class_id] for class_id in expected]


def _class_of(video: str) -> str:
    """Class of a listed video: its folder, else the <Class> of ``v_<Class>_gNN_cNN``."""
    path = PurePosixPath(video)
    if len(path.parts) > 1:
        return path.parts[0]
    stem = path.stem
    if stem.startswith("v_") and stem.count("_") >= 3:
        return stem[2:].rsplit("_", 2)[0]
    return stem


def _name(class_names: list[str], class_id: int) -> str:
    return class_names[class_id] if 0 <= class_id < len(class_names) else "not in classInd"
