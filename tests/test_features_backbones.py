"""Backbones (feature size from the model, weights files, seeded random init) and preprocessing
(against a float64 reference and timm's own PIL eval transform)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from video_eleatt.features.backbones import (
    BackboneConfig,
    BackboneError,
    build_backbone,
    untrained_banner,
)
from video_eleatt.features.preprocess import (
    FramePreprocess,
    PreprocessConfig,
    crop_box,
    normalize_frames,
    resized_size,
)


def _forward(backbone, batch_size=2):
    height, width = backbone.preprocess.crop_size
    with torch.inference_mode():
        return backbone.model(torch.randn(batch_size, 3, height, width))


@pytest.mark.parametrize(
    ("library", "name", "expected_dim"),
    [
        ("timm", "test_resnet", 96),
        # num_features is 288 but the pooled head ends in a 1024-d conv: read from the model
        ("timm", "mobilenetv3_small_050", 1024),
        ("torchvision", "resnet18", 512),
        ("torchvision", "mobilenet_v3_small", 1024),
    ],
)
def test_feature_dim_comes_from_the_model(library, name, expected_dim):
    backbone = build_backbone(BackboneConfig(name, library, weights="random"))
    assert backbone.feature_dim == expected_dim
    assert _forward(backbone).shape == (2, expected_dim)
    assert backbone.untrained
    assert backbone.identity["weights"] == "random-init seed 0"


def test_random_init_is_seeded():
    first = build_backbone(BackboneConfig("test_resnet", "timm", "random", seed=3))
    again = build_backbone(BackboneConfig("test_resnet", "timm", "random", seed=3))
    other = build_backbone(BackboneConfig("test_resnet", "timm", "random", seed=4))
    first_state, again_state = first.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(first_state[k], again_state[k]) for k in first_state)
    other_state = other.model.state_dict()
    assert not all(torch.equal(first_state[k], other_state[k]) for k in first_state)
    assert "UNTRAINED" in untrained_banner("test_resnet")


def test_torchvision_preprocessing_from_weights_metadata():
    backbone = build_backbone(BackboneConfig("resnet18", "torchvision", "random"))
    # ResNet18_Weights.DEFAULT.transforms(): resize 256, crop 224, bilinear, ImageNet stats
    assert backbone.preprocess == PreprocessConfig(
        (224, 224), 256, "bilinear", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    )


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_loads_strictly(tmp_path, suffix):
    import timm

    torch.manual_seed(11)
    source = timm.create_model("test_resnet", num_classes=7).eval()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:
        torch.save({"state_dict": source.state_dict()}, path)  # a wrapped checkpoint
    backbone = build_backbone(BackboneConfig("test_resnet", "timm", str(path)))
    assert not backbone.untrained
    assert backbone.identity["weights"].startswith("file sha256:")
    images = torch.randn(2, 3, *backbone.preprocess.crop_size)
    with torch.inference_mode():
        expected = source.forward_head(source.forward_features(images), pre_logits=True)
        assert torch.equal(backbone.model(images), expected)


def test_weights_file_of_another_model_is_refused_with_keys(tmp_path):
    import timm
    from safetensors.torch import save_file

    other = timm.create_model("test_efficientnet", num_classes=0)
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    with pytest.raises(BackboneError, match="missing keys") as info:
        build_backbone(BackboneConfig("test_resnet", "timm", str(path)))
    message = str(info.value)
    assert "unexpected keys" in message and str(path) in message
    assert "conv1.0.weight" in message  # a missing key (test_resnet's stem) is named
    assert "blocks.0.0.bn1.bias" in message  # and an unexpected one (efficientnet's)


def test_pickled_object_and_missing_file_are_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), path)  # a pickled module, not a state dict
    with pytest.raises(BackboneError, match="weights_only"):
        build_backbone(BackboneConfig("resnet18", "torchvision", str(path)))
    with pytest.raises(BackboneError, match="does not exist"):
        build_backbone(BackboneConfig("resnet18", "torchvision", str(tmp_path / "x.pth")))
    with pytest.raises(BackboneError, match="unknown torchvision"):
        build_backbone(BackboneConfig("resnet_does_not_exist", "torchvision", "random"))


# ----------------------------------------------------------------------------- preprocessing


def _reference(frames: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """float64: resize (antialias) -> centre crop -> /255 -> (x - mean) / std, (n, 3, h, w)."""
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).double()
    height, width = images.shape[-2:]
    out_height, out_width = resized_size(height, width, config.resize_size)
    images = F.interpolate(
        images, size=(out_height, out_width), mode=config.interpolation, antialias=True
    ).clamp(0, 255)
    top, left = crop_box(out_height, out_width, config.crop_size)
    images = images[..., top : top + config.crop_size[0], left : left + config.crop_size[1]]
    mean = torch.tensor(config.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float64).view(1, 3, 1, 1)
    return ((images / 255.0 - mean) / std).numpy()


def _smooth_frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (n, 3, height // 8 + 1, width // 8 + 1))
    frames = F.interpolate(torch.from_numpy(coarse), size=(height, width), mode="bilinear")
    noise = rng.normal(0, 6, (n, 3, height, width))
    return np.clip(frames.numpy() + noise, 0, 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


def test_geometry_follows_torchvision_rules():
    # shorter side 48 -> 40, longer 64 -> int(40 * 64 / 48) = 53; crop 32: top 4, left round(10.5)
    assert resized_size(48, 64, 40) == (40, 53)
    assert resized_size(64, 48, 40) == (53, 40)
    assert crop_box(40, 53, (32, 32)) == (4, 10)
    timm_like = PreprocessConfig.from_timm(
        {
            "input_size": (3, 160, 160),
            "crop_pct": 0.95,
            "interpolation": "bicubic",
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
            "crop_mode": "center",
        }
    )
    assert timm_like.resize_size == 168  # floor(160 / 0.95)
    assert timm_like.crop_size == (160, 160)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_preprocessing_matches_float64_reference(interpolation):
    config = PreprocessConfig(
        (32, 32), 40, interpolation, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    )
    frames = _smooth_frames(3, 48, 64)
    expected = _reference(frames, config)  # (3, 3, 32, 32)
    as_float = FramePreprocess(config, output="float")(frames)
    assert as_float.shape == (3, 3, 32, 32) and as_float.dtype == torch.float32
    np.testing.assert_allclose(as_float.numpy(), expected, atol=2e-4)
    # uint8 path (worker side) + normalisation (backbone side): within one grey level
    as_uint8 = FramePreprocess(config, output="uint8")(torch.from_numpy(frames))
    assert as_uint8.shape == (3, 3, 32, 32) and as_uint8.dtype == torch.uint8
    normalised = normalize_frames(as_uint8, config).numpy()
    one_level = 1.0 / 255.0 / min(config.std)
    assert np.abs(normalised - expected).max() <= 1.01 * one_level


def test_preprocessing_agrees_with_timm_pil_eval_transform():
    import timm
    from PIL import Image

    model = timm.create_model("test_resnet", num_classes=0)
    data_config = timm.data.resolve_model_data_config(model)
    config = PreprocessConfig.from_timm(data_config)
    timm_transform = timm.data.create_transform(**data_config, is_training=False)
    frames = _smooth_frames(2, 180, 240, seed=1)
    ours = normalize_frames(FramePreprocess(config)(frames), config).numpy()
    theirs = np.stack([timm_transform(Image.fromarray(frame)).numpy() for frame in frames])
    assert ours.shape == theirs.shape == (2, 3, 160, 160)
    levels = np.abs(ours - theirs) * 255.0 * np.array(config.std).reshape(1, 3, 1, 1)
    assert levels.mean() < 0.5 and levels.max() <= 3.01  # PIL and torch antialias differ by ~1
