"""Classify raw videos with a trained checkpoint, through the pipeline its training data took.

Each video goes through the same steps as the training data did, rebuilt from what the
checkpoint records (``video_eleatt.data.cache_config``: the feature cache's ``config.json``;
:mod:`video_eleatt.inference.checkpoints`): decode
(:class:`~video_eleatt.video.decode.VideoReader`), sample frames by time (the cache's
:class:`~video_eleatt.video.sampling.SamplingConfig`), resize/crop/normalise (the cache's
preprocessing), the backbone (rebuilt from the cache's identity, in the cache's precision and
storage dtype), then the trained recurrent model with the run's evaluation protocol (full
sequence, or the mean of softmax over clips). An overlay draws the first EleAtt layer's
attention over the frames (:mod:`video_eleatt.inference.spatial`; our extension, not the
paper's). The command is :mod:`video_eleatt.inference.cli` (``video-eleatt predict
--checkpoint``).

>>> predictor = load_predictor("runs/demo/runs/eleatt_gru/split-default/seed-0/checkpoints/"
...                            "last.ckpt")  # doctest: +SKIP
>>> predict_video(predictor, "data/demo/motion/UCF-101/Grow/v_Grow_g01_c01.mp4").top_k
... # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from video_eleatt.features.backbones import BackboneError, build_backbone
from video_eleatt.features.preprocess import FramePreprocess, PreprocessConfig
from video_eleatt.features.runner import FeatureRunner
from video_eleatt.fileio import safe_name
from video_eleatt.inference.checkpoints import (
    backbone_config_from_cache,
    checkpoint_cache_config,
    preprocess_from_cache,
    sampling_from_cache,
)
from video_eleatt.inference.errors import AttentionError, PredictError
from video_eleatt.inference.gates import first_layer_attention
from video_eleatt.inference.spatial import draw_overlay_grid, evenly_spaced, frame_attention_maps
from video_eleatt.training.data import clip_positions, segment_steps, window_start
from video_eleatt.training.module import CHECKPOINT_KEY, ActionClassifier
from video_eleatt.video.decode import read_frames
from video_eleatt.video.sampling import SamplingConfig, sample_frame_indices


@dataclass
class VideoPrediction:
    """The result for one video.

    Attributes:
        video: The path as given.
        probabilities: (C,) class probabilities (sum 1), float64.
        top_k: ``(class_name, probability)`` of the most probable classes, best first.
        num_steps: Frames sampled and fed to the model.
        duration: Video length in seconds.
        frame_indices: (T,) the sampled frame numbers.
        overlay: The attention overlay PNG, when one was asked for and drawn.
    """

    video: str
    probabilities: np.ndarray
    top_k: list[tuple[str, float]]
    num_steps: int
    duration: float
    frame_indices: np.ndarray
    overlay: Path | None = None


@dataclass
class Predictor:
    """A trained classifier with the feature pipeline its training data came from.

    Build it with :func:`load_predictor`.
    """

    checkpoint: Path
    module: ActionClassifier  # eval mode
    runner: FeatureRunner
    preprocess: PreprocessConfig
    sampling: SamplingConfig
    storage_dtype: torch.dtype
    class_names: list[str]
    protocol: dict[str, Any]
    device: torch.device
    notes: list[str] = field(default_factory=list)
    cache_dir: str | None = None  # the feature cache it was trained on, when known


def load_predictor(
    checkpoint: str | Path,
    device: str = "cpu",
    cache: str | None = None,
    backbone_weights: str | None = None,
) -> Predictor:
    """The model of ``checkpoint`` and the feature pipeline recorded with it.

    Args:
        checkpoint: A ``.ckpt`` written by ``video-eleatt fit`` or ``compare``.
        device: "cpu" or "cuda[:N]".
        cache: The feature cache to take the extraction configuration from, when the
            checkpoint holds none.
        backbone_weights: The backbone's weights file, when the features were extracted with
            weights from a file (the cache records only its sha256).

    Raises:
        PredictError: unusable checkpoint, configuration or backbone (with the fix).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise PredictError(
            f"--checkpoint {str(path)!r} is not a file; give a .ckpt written by `video-eleatt "
            "fit` or `compare` (e.g. <run_dir>/checkpoints/last.ckpt)"
        )
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise PredictError(f"--device {device}: no CUDA GPU is visible; use --device cpu")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        module = ActionClassifier.load_from_checkpoint(
            path, map_location=target, weights_only=True
        ).eval()
    except Exception as err:
        raise PredictError(
            f"cannot load checkpoint {path}: {type(err).__name__}: {err}. Expected a .ckpt "
            "written by `video-eleatt fit` or `compare`"
        ) from err
    video_record = record.get(CHECKPOINT_KEY) or {}
    cache_config = checkpoint_cache_config(path, video_record, cache)
    features = cache_config["features"]
    data = video_record.get("data") or {}
    input_size = int(module.hparams.input_size)
    feature_dim = int(cache_config.get("feature_dim") or features.get("feature_dim") or 0)
    if feature_dim != input_size:
        raise PredictError(
            f"the extraction configuration gives {feature_dim}-d features but the model of "
            f"{path} takes {input_size}-d input; pass --cache <the cache it was trained on>"
        )
    try:
        backbone_config = backbone_config_from_cache(cache_config, backbone_weights)
        backbone = build_backbone(backbone_config)
        preprocess = preprocess_from_cache(cache_config)
    except (AttentionError, BackboneError) as err:
        raise PredictError(f"cannot rebuild the feature backbone of {path}: {err}") from err
    notes = []
    if backbone.untrained:
        notes.append(
            f"the features come from {backbone_config.name} with RANDOM weights (untrained), as "
            "in training: predictions mean something only on data like the training data"
        )
    precision = str(features.get("precision") or "float32")
    if precision == "float16" and target.type == "cpu":
        notes.append("features were extracted in float16 on a GPU; computing them in float32")
        precision = "float32"
    class_names = list(data.get("class_names") or cache_config.get("class_names") or [])
    num_classes = int(module.hparams.num_classes)
    if len(class_names) != num_classes:
        class_names = [str(i) for i in range(num_classes)]
    protocol = dict(data.get("protocol") or {"eval_sampling": "full"})
    return Predictor(
        checkpoint=path,
        module=module,
        runner=FeatureRunner(backbone, target, precision),
        preprocess=preprocess,
        sampling=sampling_from_cache(features),
        storage_dtype=torch.float16 if features.get("dtype") == "float16" else torch.float32,
        class_names=class_names,
        protocol=protocol,
        device=target,
        notes=notes,
        cache_dir=cache or data.get("cache_dir"),
    )


# ----------------------------------------------------------------------------- one video


def video_features(
    predictor: Predictor, video: str | Path, batch_size: int = 32
) -> tuple[Tensor, Tensor, np.ndarray, np.ndarray, float]:
    """Decode, sample, preprocess and run the backbone, as the extraction did.

    Returns:
        ``(features, frames, frame_indices, timestamps, duration)``: features (T, D) float32
        (rounded through the cache's storage dtype), frames (T, 3, h, w) uint8 as the backbone
        saw them, frame indices (T,) int64, timestamps (T,) seconds, duration in seconds.

    Raises:
        VideoDecodeError: the file is missing or cannot be decoded.
    """

    def choose(info, timestamps):
        return sample_frame_indices(info.num_frames, info.fps, predictor.sampling, timestamps)

    info, frame_indices, timestamps, decoded = read_frames(video, choose, batch_size)
    transform = FramePreprocess(predictor.preprocess, output="uint8")
    frames = torch.cat(
        [transform(decoded[i : i + batch_size]) for i in range(0, len(decoded), batch_size)]
    )  # (T, 3, h, w) uint8, in frame_indices order (sorted)
    outputs = [
        predictor.runner(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)
    ]
    features = torch.cat(outputs).to(predictor.storage_dtype).float()  # (T, D)
    return features, frames, frame_indices, timestamps, float(info.duration)


def evaluation_batch(features: Tensor, protocol: dict[str, Any]) -> dict[str, Tensor]:
    """One video's features as the test loop would batch them.

    Returns:
        ``{"features": (1, T, D) or (1, N, t, D), "lengths": (1,)}``.
    """
    length = features.shape[0]
    if protocol.get("eval_sampling") != "clips":
        return {"features": features[None], "lengths": torch.tensor([length])}
    num_steps = int(protocol["num_steps"])
    clips = []
    for position in clip_positions(int(protocol["num_eval_clips"]), protocol["train_sampling"]):
        if protocol["train_sampling"] == "segments":
            steps = torch.from_numpy(segment_steps(length, num_steps, None, position))
            clips.append(features[steps])
        else:
            start = window_start(length, num_steps, None, position)
            clips.append(features[start : start + num_steps])
    return {"features": torch.stack(clips)[None], "lengths": torch.tensor([clips[0].shape[0]])}


@torch.no_grad()
def predict_video(
    predictor: Predictor, video: str | Path, top_k: int = 5, overlay: str | Path | None = None
) -> VideoPrediction:
    """Class probabilities of one video, and optionally its attention overlay.

    Raises:
        VideoDecodeError: the video cannot be decoded.
        AttentionError: an overlay was asked from a model without EleAtt layer.
    """
    features, frames, frame_indices, timestamps, duration = video_features(predictor, video)
    batch = evaluation_batch(features.to(predictor.device), predictor.protocol)
    probabilities = predictor.module.video_log_probs(batch).exp()[0].double().cpu().numpy()
    order = np.argsort(-probabilities)[: max(1, min(top_k, len(probabilities)))]
    result = VideoPrediction(
        video=str(video),
        probabilities=probabilities,
        top_k=[(predictor.class_names[i], float(probabilities[i])) for i in order],
        num_steps=int(features.shape[0]),
        duration=duration,
        frame_indices=frame_indices,
    )
    if overlay is not None:
        result.overlay = draw_overlay(predictor, features, frames, timestamps, video, overlay)
    return result


def draw_overlay(
    predictor: Predictor,
    features: Tensor,
    frames: Tensor,
    timestamps: np.ndarray,
    video: str | Path,
    path: str | Path,
    max_frames: int = 8,
) -> Path:
    """The spatial attention overlay (:mod:`video_eleatt.inference.spatial`) of one video.

    Args:
        predictor: With an EleAtt model.
        features: (T, D) the video's features.
        frames: (T, 3, h, w) uint8, the backbone's input frames.
        timestamps: (T,) seconds.
        video: For the title.
        path: Output PNG.
        max_frames: Frames shown.

    Raises:
        AttentionError: the model has no EleAtt layer.
    """
    classifier = predictor.module.classifier
    attention = first_layer_attention(classifier, features[None].to(predictor.device))[0]
    steps = evenly_spaced(features.shape[0], max_frames)
    _, attended, unweighted = frame_attention_maps(
        predictor.runner.model, predictor.preprocess, frames[steps], attention[steps],
        predictor.device,
    )  # fmt: skip
    return draw_overlay_grid(
        frames[steps].permute(0, 2, 3, 1).numpy(),
        attended,
        unweighted,
        path,
        f"{Path(video).name}: first-layer attention over the frames",
        timestamps[steps],
        max_frames,
    )


def overlay_paths(target: str | None, videos: list[str]) -> list[Path | None]:
    """One output PNG per video: ``target`` itself for one video, ``<stem>_<video>.png``
    for several."""
    if target is None:
        return [None] * len(videos)
    base = Path(target)
    if base.suffix.lower() != ".png":
        base = base.with_suffix(".png")
    if len(videos) == 1:
        return [base]
    return [base.with_name(f"{base.stem}_{safe_name(Path(v).name)}.png") for v in videos]
