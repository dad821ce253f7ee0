"""What every explanation method shares: the score explained (a classifier's class, a segmentation class over a
region), the default layer, and bringing maps `(B, 1, h, w)` to the input's pixels and to [0, 1]. The methods
themselves are in `medseg.explain.methods`, one file each, behind `medseg.explain.base.Explainer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "class_target",
    "region_target",
    "default_layer",
    "encoder_stages",
    "to_input_size",
    "normalise",
    "scale_to_peak",
]

Target = Callable[[torch.Tensor], torch.Tensor]


def class_target(class_index: int | torch.Tensor) -> Target:
    """Score of a classifier's class, one for the batch or one per image `(B,)`: logits `(B, K)` → `(B,)`."""
    if isinstance(class_index, torch.Tensor):
        return lambda logits: logits.gather(1, class_index.view(-1, 1).to(logits.device))[:, 0]
    return lambda logits: logits[:, class_index]


def region_target(class_index: int, region: torch.Tensor | None = None) -> Target:
    """Score of a segmentation class over a region: logits `(B, K, H, W)` → the class logit summed over
    `region` `(B, H, W)` (e.g. the predicted mask), or over every pixel when `region` is None."""

    def score(logits: torch.Tensor) -> torch.Tensor:
        channel = logits[:, class_index]
        return (channel * region).sum((1, 2)) if region is not None else channel.sum((1, 2))

    return score


def encoder_stages(model: nn.Module) -> list[nn.Module]:
    """The encoder's stages, shallow to deep. The model families name them alike: `encoder.stages` (U-Net, MTNet,
    MSGA, the classifiers) or an `encoder` that is itself the list of stages (U-Net++).

    Raises:
        ValueError: a model without such stages (the message says to name a layer).
    """
    modules = dict(model.named_modules())
    stages = modules.get("encoder.stages", modules.get("encoder"))
    if isinstance(stages, nn.ModuleList) and len(stages):
        return list(stages)
    raise ValueError(f"no default layer for {type(model).__name__}; name one with --layer")


def default_layer(model: nn.Module) -> nn.Module:
    """The deepest encoder stage: the most semantic features that still keep a spatial layout."""
    return encoder_stages(model)[-1]


def to_input_size(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`(B, 1, h, w)` map of a stride-2**k stage → `(B, 1, H, W)` on the input's pixels.

    Networks pad inputs at the bottom/right to a multiple of their total stride; the map then covers the
    padded image, so it is resized to the padded size and cropped, not stretched onto the input.
    """
    stride = 2 ** max(round(math.log2(max(height / maps.shape[-2], 1e-9))), 0)
    padded = (maps.shape[-2] * stride, maps.shape[-1] * stride)
    if padded[0] < height or padded[1] < width:  # a network that floors odd sizes instead of padding
        padded = (height, width)
    return F.interpolate(maps.float(), size=padded, mode="bilinear", align_corners=False)[..., :height, :width]


def scale_to_peak(maps: torch.Tensor) -> torch.Tensor:
    """Divide each map of `(B, 1, H, W)` (≥ 0) by its own maximum, so its peak is 1 (an all-zero map stays 0)."""
    return maps / maps.amax((1, 2, 3), keepdim=True).clamp_min(1e-12)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map of `(B, 1, H, W)` to [0, 1] by its own min and max (a flat map stays 0)."""
    low = maps.amin((1, 2, 3), keepdim=True)
    high = maps.amax((1, 2, 3), keepdim=True)
    return (maps - low) / (high - low).clamp_min(1e-12)
