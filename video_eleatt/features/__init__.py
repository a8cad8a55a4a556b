"""Per-frame CNN features: backbones, preprocessing, the feature cache and extraction.

The cache is read with :func:`open_features` (a cache dir, its packed form, or an extract
config) and written with :func:`write_entry`; ``video-eleatt extract`` fills it from videos.

>>> from video_eleatt.features import open_features
>>> features = open_features("features/ucf101_resnet50_1a2b3c4d")  # doctest: +SKIP
>>> features.load(features.ok_keys()[0]).features.shape  # doctest: +SKIP
torch.Size([61, 2048])
"""

from video_eleatt.features.cache import (
    CacheError,
    CacheWriteError,
    FeatureCache,
    VideoFeatures,
    create_cache,
    open_features,
    read_manifest,
    verify_cache,
    write_entry,
    write_failure,
)

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
