"""Spatial attention overlays (inference.spatial): the maps' premise, hand-computed values,
and the drawn files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from video_eleatt.inference.errors import AttentionError
from video_eleatt.inference.spatial import (
    attention_overlay_maps,
    draw_overlay_grid,
    relative_attention_map,
    save_overlay_gif,
    spatial_feature_maps,
)


def test_relative_attention_map_hand_computed():
    attended = np.array([[[2.0, 0.0], [3.0, 1.0]]])  # (1, 2, 2)
    unweighted = np.array([[[4.0, 0.0], [3.0, 2.0]]])
    # 2/4, no feature mass (-> overall 6/9), 3/3, 1/2
    np.testing.assert_allclose(
        relative_attention_map(attended, unweighted), [[[0.5, 6 / 9], [1.0, 0.5]]]
    )
    assert relative_attention_map(attended, -unweighted) is None


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
