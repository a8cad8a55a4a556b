"""Opening features for reading, whatever names them: a cache directory, its packed form, or
the extract config that made it.

>>> features = open_features("configs/extract/ucf101_resnet50.yaml")  # doctest: +SKIP
>>> features.feature_dim  # doctest: +SKIP
2048
"""

from __future__ import annotations

import warnings
from pathlib import Path

from video_eleatt.config_files import ConfigNameError, find_config
from video_eleatt.features.cache import FeatureCache
from video_eleatt.features.identity import decode_staleness
from video_eleatt.features.layout import CONFIG_NAME, PACKED_DIR, CacheError, read_config
from video_eleatt.features.locate import find_cache
from video_eleatt.features.packed import INDEX_NAME, PackedFeatureCache


def open_features(path: str | Path, prefer_packed: bool = True) -> FeatureCache:
    """Opens features for reading: a cache dir, its ``packed`` dir, or an extract config YAML.

    An extract config is resolved by :func:`~video_eleatt.features.locate.find_cache` (no
    backbone is built). A cache dir with a current packed form opens packed (when
    ``prefer_packed``); a stale packed form is ignored with a warning. Both forms offer
    ``ok_keys()``, ``load(rel_path)``, ``feature_dim`` and ``class_names``.

    Raises:
        CacheError: when the path is none of these (the message says what was expected).
    """
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        try:
            # configs/extract/<name>.yaml reads the shipped config outside a checkout
            path = find_config(path, what="the extract config")
        except ConfigNameError as err:
            raise CacheError(str(err)) from err
        path = find_cache(path)
    if path.name == PACKED_DIR and (path / INDEX_NAME).exists():
        return PackedFeatureCache(path.parent)
    if not (path / CONFIG_NAME).exists():
        raise CacheError(
            f"{path} is not a feature cache: expected a directory with {CONFIG_NAME} (made by "
            "`video-eleatt extract` or `import-features`), its packed/ folder, or an extract "
            "config .yaml"
        )
    stale = decode_staleness(read_config(path))
    if stale:
        warnings.warn(
            f"feature cache {path} was made {stale}. Re-extract it: `video-eleatt extract "
            "--config <the extract config that made it>` (the new cache gets its own folder)",
            stacklevel=2,
        )
    if prefer_packed and (path / PACKED_DIR / INDEX_NAME).exists():
        packed = PackedFeatureCache(path)
        if packed.is_current():
            return packed
        warnings.warn(
            f"{path / PACKED_DIR} is older than the cache's manifest; reading the per-video "
            f"files instead. Rebuild it with `video-eleatt pack {path}`.",
            stacklevel=2,
        )
    return FeatureCache(path)
