"""Attention analysis: statistics on a tiny model, time heatmaps, and the frame overlay."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from video_eleatt.compare.attention import (
    AttentionAccumulator,
    AttentionError,
    attention_overlay_maps,
    collect_attention,
    draw_overlay_grid,
    first_layer_attention,
    most_variable_dims,
    plot_attention_over_time,
    relative_attention_map,
    save_overlay_gif,
    spatial_feature_maps,
    write_attention_stats,
)
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


def test_relative_attention_map_hand_computed():
    attended = np.array([[[2.0, 0.0], [3.0, 1.0]]])  # (1, 2, 2)
    unweighted = np.array([[[4.0, 0.0], [3.0, 2.0]]])
    # 2/4, no feature mass (-> overall 6/9), 3/3, 1/2
    np.testing.assert_allclose(
        relative_attention_map(attended, unweighted), [[[0.5, 6 / 9], [1.0, 0.5]]]
    )
    assert relative_attention_map(attended, -unweighted) is None


def test_most_variable_dims():
    attention = np.zeros((4, 5))
    attention[:, 3] = [0.0, 1.0, 0.0, 1.0]
    attention[:, 1] = [0.0, 0.5, 0.0, 0.5]
    assert most_variable_dims(attention, 2).tolist() == [1, 3]
    assert most_variable_dims(attention, 0).tolist() == [0, 1, 2, 3, 4]


class TinyCNN(torch.nn.Module):
    """Torchvision-style backbone: conv trunk, AdaptiveAvgPool2d, flatten (no forward_features)."""

    def __init__(self, channels=6):
        super().__init__()
        self.trunk = torch.nn.Sequential(
            torch.nn.Conv2d(3, channels, 3, stride=4, padding=1), torch.nn.ReLU()
        )
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, images):
        return self.avgpool(self.trunk(images)).flatten(1)  # (N, C)


def moving_square_frames(num_frames=4, size=64):
    """A bright square moving left to right on a dark background, (T, size, size, 3) uint8."""
    frames = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, 20:40, 8 + 12 * t : 28 + 12 * t] = 255
    return frames


def test_overlay_on_tiny_backbone(tmp_path):
    torch.manual_seed(0)
    backbone = TinyCNN().eval()
    frames = moving_square_frames()
    images = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    maps = spatial_feature_maps(backbone, images)  # (4, 6, 16, 16) via the pooling hook
    with torch.no_grad():
        pooled = backbone(images)  # (4, 6)
    assert tuple(maps.shape) == (4, 6, 16, 16)
    # the premise of the overlay: the cached feature is the spatial mean of these maps
    torch.testing.assert_close(maps.mean(dim=(2, 3)), pooled, rtol=1e-5, atol=1e-6)

    attention = np.random.default_rng(0).uniform(size=(4, 6)).astype(np.float32)
    attended, unweighted = attention_overlay_maps(maps, attention, (16, 16))
    # at the maps' own size: the spatial mean of sum_c a_c F_c is sum_c a_c x_c
    expected = (torch.from_numpy(attention) * pooled).sum(dim=1)
    np.testing.assert_allclose(attended.mean(axis=(1, 2)), expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(unweighted.mean(axis=(1, 2)), pooled.sum(1).numpy(), rtol=1e-5)
    # attention 0 on every channel but one: the map is that channel's map
    only_two = np.zeros((4, 6), dtype=np.float32)
    only_two[:, 2] = 1.0
    single, _ = attention_overlay_maps(maps, only_two, (16, 16))
    np.testing.assert_allclose(single, maps[:, 2].numpy(), rtol=1e-5, atol=1e-6)

    attended, unweighted = attention_overlay_maps(maps, attention, (64, 64))
    assert attended.shape == (4, 64, 64)
    relative = relative_attention_map(attended, unweighted)  # post-ReLU maps: defined
    assert relative.shape == (4, 64, 64)
    assert attention.min() - 1e-6 <= relative.min() and relative.max() <= attention.max() + 1e-6
    grid = draw_overlay_grid(
        frames, attended, unweighted, tmp_path / "overlay.png", "demo", [0.0, 0.5, 1.0, 1.5], 3
    )
    gif = save_overlay_gif(frames, attended, tmp_path / "overlay.gif")
    assert grid.stat().st_size > 5000 and gif.read_bytes()[:6] == b"GIF89a"

    with pytest.raises(AttentionError, match="one attention value per channel"):
        attention_overlay_maps(maps, attention[:, :4], (64, 64))


def test_attention_pipeline_on_a_real_video(tmp_path):
    """Generated video -> tiny timm backbone -> cache -> EleAtt model -> every output file."""
    from video_factory import write_index_video

    from video_eleatt.compare.attention_run import (
        analyse_attention,
        backbone_config_from_cache,
        overlay_video,
        preprocess_from_cache,
    )
    from video_eleatt.features.backbones import BackboneConfig, build_backbone
    from video_eleatt.features.cache import FeatureCache, create_cache, write_entry
    from video_eleatt.features.preprocess import FramePreprocess, normalize_frames
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
