"""J-HMDB (Jhuang et al. 2013): 928 clips of 21 HMDB classes, three HMDB-style splits."""

from __future__ import annotations

from pathlib import Path

from video_eleatt.datasets.hmdb51 import read_hmdb_style
from video_eleatt.datasets.index import DatasetIndex

LAYOUT = """\
  root/ReCompress_Videos/<class>/<video>.avi  videos, as JHMDB_video.zip extracts
      (or root/videos/<class>/, or root/<class>/)
  root/splits/<class>_test_split{1,2,3}.txt   "<video>.avi <tag>", tag 1 = train, 2 = test
      (as splits.zip extracts; `annotations` = the split folder when it is elsewhere)"""
CLASS_IDS = "class names (from the split file names) sorted (brush_hair = 0 ... wave = 20)"


def read_jhmdb(root: Path, split: str | None, annotations: Path | None) -> DatasetIndex:
    """Reads J-HMDB with HMDB-style split files (1 = train, 2 = test, 0 = unused).

    Args:
        root: dataset folder (see ``LAYOUT``).
        split: ``"1"``, ``"2"`` or ``"3"``; the paper reports the mean over the three.
        annotations: the folder of split files, if not the default.
    """
    return read_hmdb_style(
        "jhmdb",
        root,
        split,
        annotations,
        video_dirs=("ReCompress_Videos", "videos"),
        split_dirs=("splits",),
        fix="J-HMDB's split files come in splits.zip from the J-HMDB site; extract it under "
        "root or set `annotations` to the folder.",
    )
