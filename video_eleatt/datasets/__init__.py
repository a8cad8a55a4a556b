"""Dataset readers: every supported format becomes one :class:`DatasetIndex`.

>>> from video_eleatt.datasets import DatasetSpec, load_index
>>> index = load_index(DatasetSpec(name="hmdb51", root="data/hmdb51", split="1"))  # doctest: +SKIP
"""

from video_eleatt.datasets.index import (
    DatasetError,
    DatasetIndex,
    DatasetSpec,
    DatasetWarning,
    VideoRecord,
)
from video_eleatt.datasets.load import load_index

__all__ = [
    "DatasetError",
    "DatasetIndex",
    "DatasetSpec",
    "DatasetWarning",
    "VideoRecord",
    "load_index",
]
