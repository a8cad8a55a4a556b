"""Per-frame CNN features: backbones, preprocessing, the feature cache and extraction.

The cache is read with :func:`open_features` (a cache dir, its packed form, or an extract
config) and written with :func:`write_entry`; ``video-eleatt extract`` fills it from videos.

Modules, from the bottom up: ``preprocess``, ``backbones``; ``config`` (what a run is asked
to do), ``runner`` (batches through the backbone), ``tuning`` (device, threads, allocator),
``precision`` (precision choice and parity check), ``identity`` (what names a cache),
``layout``/``entry_file``/``manifest``/``cache`` (the cache on disk), ``locate`` (the cache an
extract config names), ``extract`` (the run), ``verify``, ``packed``, ``importer``,
``opening`` (:func:`open_features`); ``cli`` on top.

>>> from video_eleatt.features import open_features
>>> features = open_features("features/ucf101_resnet50_1a2b3c4d")  # doctest: +SKIP
>>> features.load(features.ok_keys()[0]).features.shape  # doctest: +SKIP
torch.Size([61, 2048])
"""

from video_eleatt.features.cache import (
    FeatureCache,
    VideoFeatures,
    create_cache,
    write_entry,
    write_failure,
)
from video_eleatt.features.layout import CacheError, CacheWriteError
from video_eleatt.features.manifest import read_manifest
from video_eleatt.features.opening import open_features
from video_eleatt.features.verify import verify_cache

__all__ = [
    "CacheError",
    "CacheWriteError",
    "FeatureCache",
    "VideoFeatures",
    "create_cache",
    "open_features",
    "read_manifest",
    "verify_cache",
    "write_entry",
    "write_failure",
]
