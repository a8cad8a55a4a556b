"""Frame preprocessing from a backbone's own data config, as batched tensor operations.

The eval transform of timm and torchvision is: resize (shorter side, antialiased), centre
crop, scale to [0, 1], normalise with the backbone's mean and std. Here it runs on a whole
chunk of decoded frames at once, ``uint8 (n, H, W, 3) -> (n, 3, h, w)``.

Split in two so that little crosses process boundaries: ``FramePreprocess(output="uint8")``
(resize + crop, picklable, runs in the decode workers; 1 byte per value, like PIL's eval
pipeline which also resizes in uint8) and ``normalize_frames`` (scale + normalise, runs next to
the backbone, on its device). ``FramePreprocess(output="float")`` does both in one call with
the resize in float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class PreprocessConfig:
    """How frames become backbone input.

    Attributes:
        crop_size: (height, width) of the network input in pixels.
        resize_size: shorter side in pixels after resizing (aspect kept), or (height, width)
            for "squash" resizing that ignores the aspect ratio.
        interpolation: "bilinear", "bicubic" or "nearest" (antialiased when downscaling).
        mean: per-channel (R, G, B) mean subtracted after scaling to [0, 1].
        std: per-channel (R, G, B) standard deviation divided by.
    """

    crop_size: tuple[int, int]
    resize_size: int | tuple[int, int]
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation {self.interpolation!r}: expected one of {INTERPOLATIONS}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded in the cache's config.json)."""
        data = asdict(self)
        data["crop_size"] = list(self.crop_size)
        data["resize_size"] = (
            self.resize_size if isinstance(self.resize_size, int) else list(self.resize_size)
        )
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_timm(cls, data_config: Mapping[str, Any]) -> PreprocessConfig:
        """From ``timm.data.resolve_model_data_config(model)``.

        Follows timm's ``transforms_imagenet_eval``: scale size ``floor(size / crop_pct)``;
        "center" mode resizes the shorter side, "squash" resizes both sides.

        Raises:
            ValueError: for crop modes other than "center" and "squash", or a non-square
                input with "center" mode.
        """
        _, height, width = data_config["input_size"]
        crop_pct = data_config.get("crop_pct") or 0.875
        crop_mode = data_config.get("crop_mode") or "center"
        scale = (math.floor(height / crop_pct), math.floor(width / crop_pct))
        if crop_mode == "squash":
            resize_size: int | tuple[int, int] = scale
        elif crop_mode == "center" and scale[0] == scale[1]:
            resize_size = scale[0]
        else:
            raise ValueError(
                f"timm crop_mode {crop_mode!r} with input_size {data_config['input_size']} is "
                "not supported; expected 'center' (square input) or 'squash'"
            )
        interpolation = data_config.get("interpolation") or "bilinear"
        if interpolation not in INTERPOLATIONS:  # e.g. "random" is a training-time setting
            interpolation = "bilinear"
        return cls(
            crop_size=(int(height), int(width)),
            resize_size=resize_size,
            interpolation=interpolation,
            mean=tuple(float(x) for x in data_config["mean"]),  # type: ignore[arg-type]
            std=tuple(float(x) for x in data_config["std"]),  # type: ignore[arg-type]
        )

    @classmethod
    def from_torchvision(cls, transforms: Any) -> PreprocessConfig:
        """From a torchvision weights' ``transforms()`` (``ImageClassification``)."""
        crop = list(transforms.crop_size)
        resize = list(transforms.resize_size)
        crop_size = (crop[0], crop[-1])
        resize_size: int | tuple[int, int] = resize[0] if len(resize) == 1 else tuple(resize)
        mode = getattr(transforms.interpolation, "value", str(transforms.interpolation))
        return cls(
            crop_size=crop_size,
            resize_size=resize_size,  # type: ignore[arg-type]
            interpolation=str(mode).lower(),
            mean=tuple(float(x) for x in transforms.mean),  # type: ignore[arg-type]
            std=tuple(float(x) for x in transforms.std),  # type: ignore[arg-type]
        )


def resized_size(height: int, width: int, resize_size: int | tuple[int, int]) -> tuple[int, int]:
    """Output (height, width) of the resize, with torchvision's rounding for shorter-side."""
    if not isinstance(resize_size, int):
        return int(resize_size[0]), int(resize_size[1])
    short, long = (height, width) if height <= width else (width, height)
    new_short, new_long = resize_size, int(resize_size * long / short)
    return (new_short, new_long) if height <= width else (new_long, new_short)


def crop_box(height: int, width: int, crop_size: tuple[int, int]) -> tuple[int, int]:
    """(top, left) of a centre crop, rounded like torchvision's ``center_crop``."""
    crop_height, crop_width = crop_size
    if crop_height > height or crop_width > width:
        raise ValueError(
            f"cannot crop {crop_size} out of a {height}x{width} frame; the resize_size should be "
            "at least the crop_size"
        )
    return round((height - crop_height) / 2.0), round((width - crop_width) / 2.0)


class FramePreprocess:
    """Resize, centre crop (and with ``output="float"`` scale + normalise) a chunk of frames.

    A plain picklable callable, so it can run inside decode worker processes.

    Args:
        config: sizes, interpolation, mean and std.
        output: "uint8" -> (n, 3, h, w) uint8, resized in uint8 like PIL (normalise later
            with ``normalize_frames``); "float" -> (n, 3, h, w) float32, resized in float32 and
            normalised.

    >>> preprocess = FramePreprocess(config, output="float")  # doctest: +SKIP
    >>> preprocess(torch.zeros(8, 240, 320, 3, dtype=torch.uint8)).shape  # doctest: +SKIP
    torch.Size([8, 3, 224, 224])
    """

    def __init__(self, config: PreprocessConfig, output: Literal["uint8", "float"] = "uint8"):
        if output not in ("uint8", "float"):
            raise ValueError(f"output {output!r}: expected 'uint8' or 'float'")
        self.config = config
        self.output = output

    def __call__(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``frames``: uint8 (n, H, W, 3) RGB. Returns (n, 3, h, w) uint8 or float32."""
        if isinstance(frames, np.ndarray):
            frames = torch.from_numpy(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(
                f"frames of shape {tuple(frames.shape)} and dtype {frames.dtype}: expected "
                "uint8 (n, H, W, 3) RGB"
            )
        config = self.config
        images = frames.permute(0, 3, 1, 2)  # (n, 3, H, W), channels_last strides
        if self.output == "float":
            images = images.float()
        height, width = images.shape[-2:]
        out_height, out_width = resized_size(height, width, config.resize_size)
        if (out_height, out_width) != (height, width):
            images = F.interpolate(
                images,
                size=(out_height, out_width),
                mode=config.interpolation,
                antialias=config.interpolation != "nearest",
                align_corners=None if config.interpolation == "nearest" else False,
            )
            if self.output == "float" and config.interpolation == "bicubic":
                images = images.clamp_(0, 255)  # bicubic overshoots; PIL clips in uint8
        top, left = crop_box(out_height, out_width, config.crop_size)
        images = images[..., top : top + config.crop_size[0], left : left + config.crop_size[1]]
        if self.output == "uint8":
            return images.contiguous()  # (n, 3, h, w) uint8
        return normalize_frames(images, config)  # (n, 3, h, w) float32

    def __repr__(self) -> str:
        return f"FramePreprocess({self.config}, output={self.output!r})"


def normalize_frames(
    images: torch.Tensor, config: PreprocessConfig, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(n, 3, h, w) uint8 or float in [0, 255] -> (n, 3, h, w) ``dtype``, (x/255 - mean)/std."""
    mean = torch.tensor(config.mean, dtype=dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=dtype, device=images.device).view(1, 3, 1, 1)
    scale = 1.0 / (255.0 * std)
    return images.to(dtype) * scale - mean / std


def pil_transform(config: PreprocessConfig) -> Any:
    """The common per-frame eval transform: PIL image -> float32 (3, h, w), normalised.

    ``Resize`` (PIL, antialiased), ``CenterCrop``, ``ToTensor``, ``Normalize``, as
    torchvision's and timm's eval pipelines and per-frame extractors (e.g.
    v-iashin/video_features) apply it to one frame at a time. The reference that
    :class:`FramePreprocess` is checked and benchmarked against: the two agree to within one
    uint8 level after resizing (the rounding of PIL's fixed-point resampler).
    """
    from torchvision import transforms

    modes = {
        "bilinear": transforms.InterpolationMode.BILINEAR,
        "bicubic": transforms.InterpolationMode.BICUBIC,
        "nearest": transforms.InterpolationMode.NEAREST,
    }
    resize = config.resize_size if isinstance(config.resize_size, int) else list(config.resize_size)
    return transforms.Compose(
        [
            transforms.Resize(resize, interpolation=modes[config.interpolation]),
            transforms.CenterCrop(list(config.crop_size)),
            transforms.ToTensor(),
            transforms.Normalize(config.mean, config.std),
        ]
    )
