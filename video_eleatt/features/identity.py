"""What identifies a cache's features, and the names that follow from it.

Two records, kept apart on purpose:

- the *features identity* (:func:`features_identity`): everything that changes the features,
  resolved (the weights' exact tag or digest, feature size and preprocessing read from the
  model, the precision this machine chose). It goes into ``config.json`` and its hash names the
  directory; a directory is never reused for another identity.
- the *extract request* (:func:`extract_request`): the options that decide the features as the
  user wrote them, nothing resolved (``weights: pretrained``, no feature size). Extraction
  records it in ``requests.json`` so that an extract config finds its cache by reading YAML
  alone, without building a backbone (``locate.find_cache``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from video_eleatt.features.backbones import Backbone, file_sha256, weights_kind
from video_eleatt.features.config import ExtractConfig, VideoSource, source_name
from video_eleatt.video.decode import DECODE_VERSION

# Part of every identity (and so of every cache's hash): the text must not change unless the
# features do. It names the module extraction lived in when the version was introduced.
PIPELINE_VERSION = "video_eleatt.features.extract/1"


def features_hash(features_identity: Mapping[str, Any]) -> str:
    """Short (8 hex digits) sha256 of the canonical JSON of what changes the features."""
    text = json.dumps(features_identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def cache_dir_name(dataset_name: str, backbone_name: str, digest: str) -> str:
    """``<dataset>_<backbone>_<hash8>`` with characters other than ``[A-Za-z0-9.-]`` as ``-``."""

    def clean(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9.\-]+", "-", text).strip("-") or "x"

    return f"{clean(dataset_name)}_{clean(backbone_name)}_{digest}"


def features_identity(config: ExtractConfig, backbone: Backbone, precision: str) -> dict[str, Any]:
    """Everything that changes the features; its hash names the cache directory."""
    return {
        "pipeline": PIPELINE_VERSION,
        "decode": DECODE_VERSION,
        "backbone": backbone.identity,
        "feature_dim": backbone.feature_dim,
        "preprocess": backbone.preprocess.to_dict(),
        "sampling": sampling_dict(config.sampling),
        "dtype": config.dtype,
        "precision": precision,
    }


def sampling_dict(sampling: Any) -> dict[str, Any]:
    """The canonical form of a sampling config (only the fields its mode uses)."""
    return sampling.to_dict() if hasattr(sampling, "to_dict") else asdict(sampling)


def cache_config(
    config: ExtractConfig, backbone: Backbone, source: VideoSource, precision: str
) -> dict[str, Any]:
    """The config.json of the cache a run writes."""
    identity = features_identity(config, backbone, precision)
    return {
        "features": identity,
        "features_hash": features_hash(identity),
        "feature_dim": backbone.feature_dim,
        "class_names": source.class_names,
        "dataset": source.dataset,
        "source": source.description,
        "untrained": backbone.untrained,
        "note": (
            "UNTRAINED: random backbone weights; the features carry no learned information"
            if backbone.untrained
            else None
        ),
    }


def extract_request(config: ExtractConfig) -> dict[str, Any]:
    """The options of ``config`` that decide its features, as written, in canonical JSON form.

    Nothing is resolved against the libraries or the machine: ``weights: pretrained`` stays
    "pretrained" (no model is built to learn its tag or feature size). A weights file is named
    by its sha256, so moving the file keeps its caches and changing it does not. Precision is
    left out: the cache's identity records the precision it was made in, and
    ``locate.find_cache`` matches a configured precision against that.

    >>> extract_request(ExtractConfig(videos="clips/"))["backbone"]  # doctest: +SKIP
    {'library': 'timm', 'name': 'resnet50', 'weights': 'pretrained'}
    """
    backbone = config.backbone
    weights = backbone.weights
    if weights_kind(weights) == "file":
        weights = f"file sha256:{file_sha256(weights)}"
    requested: dict[str, Any] = {
        "library": backbone.library,
        "name": backbone.name,
        "weights": weights,
    }
    if backbone.weights == "random":
        requested["seed"] = backbone.seed
    if backbone.model_kwargs:
        requested["model_kwargs"] = dict(sorted(backbone.model_kwargs.items()))
    request = {
        "source": source_name(config),
        "backbone": requested,
        "sampling": sampling_dict(config.sampling),
        "dtype": config.dtype,
    }
    return json.loads(json.dumps(request, sort_keys=True))  # JSON types, as read back


def decode_staleness(config: Mapping[str, Any]) -> str | None:
    """Why a cache's frames may be wrong, or None: made by an extraction before frame-exact
    decoding (:data:`~video_eleatt.video.decode.DECODE_VERSION`). Imported caches say nothing
    of how they were decoded and are not judged."""
    features = config.get("features") or {}
    if "pipeline" not in features or features.get("decode") == DECODE_VERSION:
        return None
    made_with = features.get("decode")
    when = (
        "before frame-exact decoding (decord random access, container timestamps taken on trust)"
        if made_with is None
        else f"with decode path {made_with!r}, not this build's {DECODE_VERSION!r}"
    )
    return (
        f"{when}: on MPEG-4 AVIs with B-frames, edit lists and damaged files its features can "
        "hold the wrong frames"
    )
