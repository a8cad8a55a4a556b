"""The attention gates a_t of a trained EleAtt classifier, read by running it.

The gate of an EleAtt layer (:mod:`video_eleatt.models.eleatt`) scales each input dimension
at each step; the first layer's gate acts directly on the per-frame CNN features. The
statistics over a data set (:mod:`video_eleatt.compare.attention`) and the overlays over
frames (:mod:`video_eleatt.inference.spatial`) both start here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from video_eleatt.inference.errors import AttentionError


def check_has_attention(model: nn.Module) -> None:
    """Raise :class:`AttentionError` unless ``model`` (a SequenceClassifier) has an EleAtt layer."""
    config = getattr(model, "config", None)
    if getattr(config, "num_eleatt_layers", 0) < 1:
        raise AttentionError(
            f"the model has no EleAtt layer (num_eleatt_layers = "
            f"{getattr(config, 'num_eleatt_layers', '?')}): a baseline has no attention gate to "
            "analyse; pass the checkpoint of an EleAtt variant"
        )


@torch.no_grad()
def first_layer_attention(
    model: nn.Module, features: Tensor, lengths: Tensor | None = None, layer: int = 0
) -> list[np.ndarray]:
    """Gate values a_t of one EleAtt layer for a batch, cut to each video's valid steps.

    Args:
        model: A :class:`~video_eleatt.models.SequenceClassifier` with an EleAtt layer.
        features: (B, T, D) features on the model's device.
        lengths: (B,) valid lengths, or None when all are T.
        layer: Which EleAtt layer (0 = the first, the one acting on the CNN features).

    Returns:
        One float32 array (T_i, D_layer) per video.
    """
    check_has_attention(model)
    was_training = model.training
    model.eval()
    try:
        _, attentions = model(features, lengths=lengths, return_attention=True)
    finally:
        model.train(was_training)
    if not 0 <= layer < len(attentions):
        raise AttentionError(
            f"layer {layer} asked, but the model has {len(attentions)} EleAtt layer(s)"
        )
    attention = attentions[layer].float().cpu().numpy()  # (B, T, D)
    if lengths is None:
        return list(attention)
    return [attention[i, : int(length)] for i, length in enumerate(lengths.tolist())]
