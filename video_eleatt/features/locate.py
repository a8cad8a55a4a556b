"""Which cache directory an extract config names: the one ``extract`` will write, or the one it
made.

- :func:`plan_cache_dir`: where ``extract`` writes, ``<output_root>/<source>_<backbone>_<hash8>``
  with the hash of the features identity. That identity holds the feature size and
  preprocessing, which only the model knows, so planning builds the backbone's architecture
  (no weights download). Extraction itself uses :func:`cache_dir_for` with the identity of the
  backbone it has built.
- :func:`find_cache`: the cache an extract config made, for readers (training's
  ``data.cache: <extract yaml>``, ``verify <extract yaml>``, :func:`open_features`). It reads
  the YAML and the caches' small JSON files only: no backbone, no video. Extraction records
  each config's :func:`~video_eleatt.features.identity.extract_request` in the cache's
  ``requests.json``; a config finds the caches whose recorded requests hold its own.

>>> find_cache("configs/extract/ucf101_resnet50.yaml")  # doctest: +SKIP
PosixPath('features/ucf101_resnet50_1a2b3c4d')
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from video_eleatt.features.backbones import build_backbone
from video_eleatt.features.cache import config_differences
from video_eleatt.features.config import ExtractConfig, as_extract_config, source_name
from video_eleatt.features.identity import (
    PIPELINE_VERSION,
    cache_dir_name,
    decode_staleness,
    extract_request,
    features_hash,
    features_identity,
)
from video_eleatt.features.layout import (
    CONFIG_NAME,
    REQUESTS_NAME,
    CacheError,
    atomic_write_bytes,
    read_config,
)
from video_eleatt.features.precision import candidate_precision, resolve_precision
from video_eleatt.features.tuning import resolve_device

# --------------------------------------------------------------------------- where extract writes


def cache_dir_for(config: ExtractConfig, source_name: str, identity: dict[str, Any]) -> Path:
    """``cache_dir`` if set, else ``<output_root>/<source>_<backbone>_<hash8>``."""
    if config.cache_dir:
        return Path(config.cache_dir)
    return Path(config.output_root) / cache_dir_name(
        source_name, config.backbone.name, features_hash(identity)
    )


def plan_cache_dir(config: ExtractConfig | str | Path) -> Path:
    """The cache directory ``extract`` would write for ``config`` on this machine.

    Reads no video and downloads no weights, but builds the backbone's architecture to learn
    its feature size and preprocessing (both in the directory's hash). To find a cache that
    exists, use :func:`find_cache`, which builds nothing.

    Args:
        config: the extract config or the path of its YAML.
    """
    config = as_extract_config(config)
    if config.cache_dir:
        return Path(config.cache_dir)
    backbone = build_backbone(config.backbone, load_weights=False)
    precision = resolve_precision(config, resolve_device(config))
    identity = features_identity(config, backbone, precision)
    return cache_dir_for(config, source_name(config), identity)


def caches_differing_only_in(cache_dir: Path, identity: dict[str, Any], key: str) -> list[Path]:
    """Caches beside ``cache_dir`` (same name prefix) whose identity equals ``identity`` in
    everything but ``key`` (e.g. "precision", or "decode": made by an older decode path)."""
    prefix = cache_dir.name.rsplit("_", 1)[0] + "_"
    wanted = {name: value for name, value in identity.items() if name != key}
    matches = []
    for candidate in sorted(cache_dir.parent.glob(prefix + "*")):
        if candidate == cache_dir:
            continue
        try:
            features = json.loads((candidate / CONFIG_NAME).read_text())["features"]
        except (OSError, ValueError, KeyError):
            continue
        if {name: value for name, value in features.items() if name != key} == wanted:
            matches.append(candidate)
    return matches


# --------------------------------------------------------------------------- requests.json


def recorded_requests(cache_dir: str | Path) -> list[dict[str, Any]] | None:
    """The extract requests recorded in a cache's ``requests.json``; None when it has none
    (made before requests were recorded, or imported).

    Raises:
        CacheError: the file is not the JSON extraction writes.
    """
    path = Path(cache_dir) / REQUESTS_NAME
    try:
        return list(json.loads(path.read_text())["requests"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CacheError(
            f"{path} is unreadable ({type(err).__name__}: {err}); delete it and rerun "
            "`video-eleatt extract --config <the config>` to record it again"
        ) from err


def record_request(cache_dir: str | Path, request: dict[str, Any]) -> None:
    """Adds ``request`` to the cache's ``requests.json`` (atomic; nothing when it is there).

    Raises:
        CacheWriteError: the file cannot be written.
    """
    requests = recorded_requests(cache_dir) or []
    if request in requests:
        return
    text = json.dumps({"requests": [*requests, request]}, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(Path(cache_dir) / REQUESTS_NAME, text.encode())


# --------------------------------------------------------------------------- finding a cache


def find_cache(config: ExtractConfig | str | Path) -> Path:
    """The existing cache an extract config made, found without building its backbone.

    Looks among ``<output_root>/<source>_<backbone>_*`` for the caches of this build's
    extraction pipeline whose ``requests.json`` holds this config's
    :func:`~video_eleatt.features.identity.extract_request`. A configured precision must be
    the cache's; with ``precision: auto`` (a cache per kind of machine: float16 on CUDA,
    float32 or bfloat16 on CPU) several may match, and the one in the precision this machine
    would try first wins. Caches made before frame-exact decoding only count to say so.

    Args:
        config: the extract config or the path of its YAML.

    Raises:
        CacheError: no such cache yet (run ``extract``); only caches made before frame-exact
            decoding ("Re-extract"); only caches from before requests were recorded (run
            ``extract`` once to record it); or several this cannot choose between (named,
            with their differences).
    """
    config = as_extract_config(config)
    if config.cache_dir:
        if not Path(config.cache_dir).exists():
            raise CacheError(_not_extracted_yet(config.cache_dir))
        return Path(config.cache_dir)
    request = extract_request(config)
    root = Path(config.output_root)
    prefix = cache_dir_name(request["source"], config.backbone.name, "")
    made, unrecorded, other_precision = _caches_with_prefix(root, prefix, request, config)
    current = [
        (path, made_config) for path, made_config in made if not decode_staleness(made_config)
    ]
    if not current:
        if made:
            stale_dir, stale_config = made[0]
            raise CacheError(
                f"{stale_dir} was made from this config {decode_staleness(stale_config)}. "
                "Re-extract: `video-eleatt extract --config <this config>` writes a new cache "
                "beside it"
            )
        if unrecorded:
            raise CacheError(
                f"{', '.join(map(str, unrecorded))}: made before caches recorded the extract "
                "config that made them; run `video-eleatt extract --config <this config>` once "
                "to record it (videos already in the cache are skipped)"
            )
        also = (
            f"; made in another precision: {', '.join(other_precision)}" if other_precision else ""
        )
        raise CacheError(_not_extracted_yet(f"{root / prefix}<hash8>") + also)
    if len(current) > 1 and config.precision == "auto":
        preferred = candidate_precision(resolve_device(config))
        on_this_machine = [
            (path, made_config)
            for path, made_config in current
            if made_config["features"].get("precision") == preferred
        ]
        current = on_this_machine if len(on_this_machine) == 1 else current
    if len(current) > 1:
        first_dir, first = current[0]
        differences = "; ".join(
            f"{path.name}: {', '.join(config_differences(first, made_config))}"
            for path, made_config in current[1:]
        )
        raise CacheError(
            f"several caches were made from this extract config: "
            f"{', '.join(str(path) for path, _ in current)} (compared with {first_dir.name}: "
            f"{differences}); set `precision:` in the config, or name one directory "
            "(`cache_dir:`, or `data.cache: <dir>`), or delete those you no longer need"
        )
    return current[0][0]


def _caches_with_prefix(
    root: Path, prefix: str, request: dict[str, Any], config: ExtractConfig
) -> tuple[list[tuple[Path, dict[str, Any]]], list[Path], list[str]]:
    """The extraction caches ``<root>/<prefix><hash8>``, sorted into: made from ``request``
    in an acceptable precision (with their config.json), made before requests were recorded,
    and made from ``request`` in another precision than the configured one (described)."""
    made, unrecorded, other_precision = [], [], []
    for candidate in sorted(root.glob(prefix + "*")):
        if not re.fullmatch(re.escape(prefix) + "[0-9a-f]{8}", candidate.name):
            continue
        try:
            cache_config = read_config(candidate)
        except CacheError:
            continue
        features = cache_config.get("features") or {}
        if features.get("pipeline") != PIPELINE_VERSION:
            continue  # imported, or another extraction pipeline: not this config's
        requests = recorded_requests(candidate)
        if requests is None:
            unrecorded.append(candidate)
        elif request not in requests:
            continue
        elif config.precision in ("auto", features.get("precision")):
            made.append((candidate, cache_config))
        else:
            other_precision.append(f"{candidate} ({features.get('precision')})")
    return made, unrecorded, other_precision


def _not_extracted_yet(cache_dir: str | Path) -> str:
    return (
        f"the extract config names cache {cache_dir}, which does not exist yet; run "
        "`video-eleatt extract --config <that config>` first"
    )
