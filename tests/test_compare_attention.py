"""Attention analysis: statistics on a tiny model, time heatmaps, and the whole `attention`
pipeline on a real video (the overlay itself: tests/test_inference_spatial.py)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from video_eleatt.compare.attention import (
    AttentionAccumulator,
    collect_attention,
    most_variable_dims,
    plot_attention_over_time,
    write_attention_stats,
)
from video_eleatt.inference.errors import AttentionError
from video_eleatt.inference.gates import first_layer_attention
from video_eleatt.inference.spatial import spatial_feature_maps
from video_eleatt.models.classifier import ClassifierConfig, SequenceClassifier


def test_accumulator_hand_computed():
    accumulator = AttentionAccumulator(feature_dim=2, num_classes=3)
    accumulator.add(np.array([[0.2, 1.0], [0.4, 1.0]]), label=0)
    accumulator.add(np.array([[0.6, 0.5]]), label=1)
    stats = accumulator.result()
    assert (stats.num_videos, stats.num_steps) == (2, 3)
    np.testing.assert_allclose(stats.mean, [0.4, 2.5 / 3])
    # dim 0 steps 0.2, 0.4, 0.6 -> sample std 0.2; video means 0.3 and 0.6 -> 0.3 / sqrt(2)
    np.testing.assert_allclose(stats.std_steps[0], 0.2)
    np.testing.assert_allclose(stats.std_videos, [0.3 / np.sqrt(2), 0.5 / np.sqrt(2)])
    np.testing.assert_allclose(stats.class_mean[:2], [[0.3, 1.0], [0.6, 0.5]])
    assert np.isnan(stats.class_mean[2]).all() and stats.class_counts.tolist() == [1, 1, 0]


def tiny_model(num_eleatt_layers=1, feature_dim=8):
    torch.manual_seed(0)
    config = ClassifierConfig(
        input_size=feature_dim,
        num_classes=3,
        hidden_size=6,
        num_eleatt_layers=num_eleatt_layers,
        num_plain_layers=1 - num_eleatt_layers if num_eleatt_layers < 1 else 0,
        dropout=0.5,
    )
    return SequenceClassifier(config)


def test_collect_attention_matches_unpadded_runs():
    model = tiny_model()
    generator = torch.Generator().manual_seed(1)
    videos = [
        (f"c{i % 3}/v{i}.mp4", torch.randn(length, 8, generator=generator), i % 3)
        for i, length in enumerate([5, 2, 7, 3, 4])
    ]
    stats, kept = collect_attention(model, videos, num_classes=3, keep=["c1/v1.mp4"], batch_size=2)
    # reference: each video alone, no padding, in eval mode (dropout off)
    alone = [first_layer_attention(model, f.unsqueeze(0))[0] for _, f, _ in videos]
    steps = np.concatenate(alone).astype(np.float64)  # (21, 8)
    np.testing.assert_allclose(stats.mean, steps.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.std_steps, steps.std(axis=0, ddof=1), rtol=1e-4)
    video_means = np.stack([a.mean(axis=0) for a in alone])
    np.testing.assert_allclose(stats.std_videos, video_means.std(axis=0, ddof=1), rtol=1e-4)
    assert stats.num_steps == 21 and stats.num_videos == 5
    assert kept["c1/v1.mp4"].shape == (2, 8)
    np.testing.assert_allclose(kept["c1/v1.mp4"], alone[1], rtol=1e-5)
    assert ((steps > 0) & (steps < 1)).all()  # sigmoid gate
    assert model.training  # the caller's mode is restored


def test_collect_attention_bad_input():
    with pytest.raises(AttentionError, match="no EleAtt layer"):
        collect_attention(tiny_model(num_eleatt_layers=0), [], num_classes=3)
    videos = [("a.mp4", torch.randn(3, 8), 0)]
    with pytest.raises(AttentionError, match=r"\['b.mp4'\] were asked for"):
        collect_attention(tiny_model(), videos, num_classes=3, keep=["b.mp4"])


def test_attention_files(tmp_path):
    accumulator = AttentionAccumulator(feature_dim=4, num_classes=2)
    rng = np.random.default_rng(0)
    for label in (0, 1, 1):
        accumulator.add(rng.uniform(size=(6, 4)), label=label)
    files = write_attention_stats(accumulator.result(), tmp_path, class_names=["a", "b"])
    assert [f.name for f in files] == [
        "attention_per_dim.csv",
        "attention_per_class.csv",
        "attention_per_dim.png",
        "attention_per_class.png",
    ]
    rows = list(csv.DictReader((tmp_path / "attention_per_dim.csv").open()))
    assert len(rows) == 4 and float(rows[0]["mean"]) == pytest.approx(
        accumulator.result().mean[0], rel=1e-5
    )
    heatmap = plot_attention_over_time(
        rng.uniform(size=(10, 100)), tmp_path / "v.png", "v.mp4", np.arange(10) / 5.0, top_k=16
    )
    assert heatmap.stat().st_size > 2000


def test_most_variable_dims():
    attention = np.zeros((4, 5))
    attention[:, 3] = [0.0, 1.0, 0.0, 1.0]
    attention[:, 1] = [0.0, 0.5, 0.0, 0.5]
    assert most_variable_dims(attention, 2).tolist() == [1, 3]
    assert most_variable_dims(attention, 0).tolist() == [0, 1, 2, 3, 4]


def test_attention_pipeline_on_a_real_video(tmp_path):
    """Generated video -> tiny timm backbone -> cache -> EleAtt model -> every output file."""
    from video_factory import write_index_video

    from video_eleatt.compare.attention_run import analyse_attention
    from video_eleatt.features.backbones import BackboneConfig, build_backbone
    from video_eleatt.features.cache import FeatureCache, create_cache, write_entry
    from video_eleatt.features.preprocess import FramePreprocess, normalize_frames
    from video_eleatt.inference.checkpoints import backbone_config_from_cache, preprocess_from_cache
    from video_eleatt.inference.spatial import overlay_video
    from video_eleatt.video.decode import VideoReader

    backbone = build_backbone(BackboneConfig("test_resnet", "timm", weights="random", seed=0))
    video = write_index_video(tmp_path / "data" / "walk" / "v0.mp4", num_frames=12, fps=6.0)
    cache_dir = tmp_path / "cache"
    create_cache(
        cache_dir,
        {
            "features": {
                "backbone": backbone.identity,
                "preprocess": backbone.preprocess.to_dict(),
            },
            "feature_dim": backbone.feature_dim,
            "class_names": ["walk", "run"],
            "dataset": {"name": "list", "root": str(tmp_path / "data"), "split": None},
        },
    )
    frame_indices = np.arange(0, 12, 2)  # 6 steps
    frames = torch.cat([f for _, f in VideoReader(video).iter_frames(frame_indices)])
    images = normalize_frames(FramePreprocess(backbone.preprocess)(frames), backbone.preprocess)
    with torch.no_grad():
        features = backbone.model(images)  # (6, 96)
    # the premise of the overlay holds for the timm backbone (forward_features path)
    maps = spatial_feature_maps(backbone.model, images)  # (6, 96, H', W')
    torch.testing.assert_close(maps.mean(dim=(2, 3)), features, rtol=1e-4, atol=1e-5)
    write_entry(
        cache_dir, "walk/v0.mp4", features, frame_indices, frame_indices / 6.0, 6.0, 12, 2.0, 0
    )
    cache = FeatureCache(cache_dir)
    # the cache's recorded identity rebuilds the same backbone
    rebuilt = backbone_config_from_cache(cache.config)
    assert (rebuilt.name, rebuilt.weights, rebuilt.seed) == ("test_resnet", "random", 0)

    classifier = tiny_model(feature_dim=backbone.feature_dim).eval()
    outcome = analyse_attention(
        classifier, cache, [("walk/v0.mp4", 0)], tmp_path / "out", ["walk/v0.mp4"], ["walk", "run"]
    )
    names = {path.name for path in outcome.files}
    assert {"attention.md", "attention_per_dim.csv", "time_walk_v0.png"} <= names
    files, warning = overlay_video(
        classifier,
        build_backbone(rebuilt).model,
        preprocess_from_cache(cache.config),
        cache,
        "walk/v0.mp4",
        video,
        tmp_path / "out",
        max_frames=3,
        gif=True,
    )
    assert warning is None  # recomputed features match the cached ones
    assert [f.name for f in files] == ["overlay_walk_v0.png", "overlay_walk_v0.gif"]
    assert all(f.stat().st_size > 1000 for f in files)
    with pytest.raises(AttentionError, match="not among the 1 analysed videos"):
        analyse_attention(classifier, cache, [("walk/v0.mp4", 0)], tmp_path, ["x.mp4"])
