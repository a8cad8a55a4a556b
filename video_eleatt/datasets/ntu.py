"""NTU RGB+D 60 (Shahroudy et al. 2016) and 120 (Liu et al. 2019), RGB videos.

Labels and splits come from the file names ``SsssCcccPpppRrrrAaaa_rgb.avi``: setup, camera,
performer (subject), replication, action; label = A - 1.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path, PurePosixPath

from video_eleatt.datasets._common import FileTree, raise_offenders
from video_eleatt.datasets.index import DatasetError, DatasetIndex, DatasetWarning, VideoRecord

LAYOUT = """\
  root/**/SsssCcccPpppRrrrAaaa_rgb.avi   videos anywhere below root, e.g. root/nturgb+d_rgb/
      as nturgbd_rgb_s0NN.zip extracts (any video extension; the _rgb suffix is optional).
      No annotation files: label and splits come from the name."""
CLASS_IDS = "action number minus 1 (A001 'drink water' = 0)"

# Cross-subject training subjects (NTU RGB+D, Shahroudy et al. 2016, Sec. 4.1).
TRAIN_SUBJECTS_60 = frozenset(
    {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}
)
# NTU RGB+D 120 cross-subject adds these (Liu et al. 2019, Sec. 5.1).
TRAIN_SUBJECTS_120 = TRAIN_SUBJECTS_60 | frozenset(
    {45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85}
    | {86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103}
)
TRAIN_CAMERAS = frozenset({2, 3})  # cross-view: cameras 2 and 3 train, camera 1 tests
NUM_SETUPS = {"ntu60": 17, "ntu120": 32}
DEFAULT_SPLITS = {"ntu60": "cs", "ntu120": "csub"}
NUM_ACTIONS = {"ntu60": 60, "ntu120": 120}
NAME_PATTERN = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})(?:_rgb)?")

ACTION_NAMES = [
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup",
    "throw", "sitting down", "standing up (from sitting position)", "clapping", "reading",
    "writing", "tear up paper", "wear jacket", "take off jacket", "wear a shoe",
    "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone",
    "playing with phone/tablet", "typing on a keyboard", "pointing to something with finger",
    "taking a selfie", "check time (from watch)", "rub two hands together", "nod head/bow",
    "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling",
    "touch head (headache)", "touch chest (stomachache/heart pain)", "touch back (backache)",
    "touch neck (neckache)", "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person",
    "point finger at the other person", "hugging other person",
    "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    # NTU RGB+D 120 only
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball",
    "tennis bat swing", "juggling table tennis balls", "hush (quite)", "flick hair",
    "thumb up", "thumb down", "make ok sign", "make victory sign", "staple book",
    "counting money", "cutting nails", "cutting paper (using scissors)", "snapping fingers",
    "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper",
    "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag",
    "take off bag", "put something into a bag", "take something out of a bag", "open a box",
    "move heavy objects", "shake fist", "throw up cap/hat", "hands up (both hands)",
    "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself",
    "blow nose", "hit other person with something", "wield knife towards other person",
    "knock over other person (hit with body)", "grab other person's stuff",
    "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person",
    "follow other person", "whisper in other person's ear",
    "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
]  # fmt: skip


def read_ntu60(root: Path, split: str | None, annotations: Path | None) -> DatasetIndex:
    """Reads NTU RGB+D 60: setups S001-S017, actions A001-A060.

    Files of NTU RGB+D 120 (S018+ or A061+) found below root are not NTU60 samples: they are
    ignored, counted in a warning and in ``DatasetIndex.notes``.

    Args:
        root: dataset folder (see ``LAYOUT``).
        split: ``"cs"`` (cross-subject: subjects in ``TRAIN_SUBJECTS_60`` train, the rest
            test) or ``"cv"`` (cross-view: cameras 2 and 3 train, camera 1 tests).
        annotations: not used (must be ``None``).
    """
    return read_ntu("ntu60", root, split, annotations)


def read_ntu120(root: Path, split: str | None, annotations: Path | None) -> DatasetIndex:
    """Reads NTU RGB+D 120: setups S001-S032, actions A001-A120.

    Args:
        root: dataset folder (see ``LAYOUT``).
        split: ``"csub"`` (cross-subject: subjects in ``TRAIN_SUBJECTS_120`` train) or
            ``"cset"`` (cross-setup: even setup numbers train, odd ones test).
        annotations: not used (must be ``None``).
    """
    return read_ntu("ntu120", root, split, annotations)


def ntu_subset(split: str, setup: int, camera: int, subject: int) -> str:
    """``"train"`` or ``"test"`` of one sample under an NTU split (cs, cv, csub, cset)."""
    if split == "cs":
        is_train = subject in TRAIN_SUBJECTS_60
    elif split == "cv":
        is_train = camera in TRAIN_CAMERAS
    elif split == "csub":
        is_train = subject in TRAIN_SUBJECTS_120
    elif split == "cset":
        is_train = setup % 2 == 0
    else:
        raise DatasetError(f"unknown NTU split {split!r}; expected cs, cv, csub or cset")
    return "train" if is_train else "test"


def read_ntu(name: str, root: Path, split: str | None, annotations: Path | None) -> DatasetIndex:
    """Reads NTU RGB+D ``name`` (``"ntu60"`` or ``"ntu120"``) from the file names below root."""
    if annotations is not None:
        raise DatasetError(
            f"{name} takes no annotations (got {str(annotations)!r}): labels and splits come "
            "from the file names; remove `annotations` and point `root` at the videos"
        )
    split = split or DEFAULT_SPLITS[name]
    num_setups, num_actions = NUM_SETUPS[name], NUM_ACTIONS[name]
    records: list[VideoRecord] = []
    where_by_sample: dict[str, list[str]] = {}
    unnamed: list[str] = []
    other_dataset: list[str] = []
    problems: list[str] = []
    for rel_path in FileTree(root).videos():
        match = NAME_PATTERN.fullmatch(PurePosixPath(rel_path).stem)
        if match is None:
            unnamed.append(rel_path)
            continue
        setup, camera, subject, _, action = (int(group) for group in match.groups())
        if name == "ntu60" and (setup > num_setups or action > num_actions):
            other_dataset.append(rel_path)
            continue
        if not (1 <= setup <= num_setups and 1 <= camera <= 3 and 1 <= action <= num_actions):
            problems.append(
                f"{rel_path}: setup {setup}, camera {camera} or action {action} outside "
                f"1..{num_setups}, 1..3, 1..{num_actions}"
            )
            continue
        sample = match.group(0)[:20]
        where_by_sample.setdefault(sample, []).append(rel_path)
        records.append(VideoRecord(rel_path, action - 1, ntu_subset(split, setup, camera, subject)))
    raise_offenders(
        problems, "file name(s) outside the dataset", root, f"Remove them or use another {name}."
    )
    duplicates = [
        f"{sample}: {', '.join(paths)}"
        for sample, paths in where_by_sample.items()
        if len(paths) > 1
    ]
    raise_offenders(duplicates, "samples found twice", root, "Keep one file per sample.")
    notes: list[str] = []
    if other_dataset:
        notes.append(
            f"ignored {len(other_dataset)} NTU RGB+D 120 file(s) (setup > 17 or action > 60), "
            f"e.g. {', '.join(other_dataset[:3])}; use name ntu120 to read them"
        )
    if unnamed:
        notes.append(
            f"ignored {len(unnamed)} video file(s) not named SsssCcccPpppRrrrAaaa, "
            f"e.g. {', '.join(unnamed[:3])}"
        )
    for note in notes:
        warnings.warn(f"{name} at {root}: {note}", DatasetWarning, stacklevel=3)
    if not records:
        raise DatasetError(
            f"{name}: no video named SsssCcccPpppRrrrAaaa[_rgb].<ext> below {root}; "
            f"expected layout:\n{LAYOUT}"
        )
    for subset in ("train", "test"):
        if not any(record.subset == subset for record in records):
            raise DatasetError(
                f"{name} split {split}: no video of {root} falls in {subset}; the split is "
                f"empty (found {len(records)} videos)"
            )
    records.sort(key=lambda record: record.rel_path)
    class_names = ACTION_NAMES[:num_actions]
    return DatasetIndex(name, root, split, class_names, records, notes=notes)
