"""Class activation maps: CAM (Zhou et al. 2016), Grad-CAM (Selvaraju et al. 2017), Grad-CAM++
(Chattopadhyay et al. 2018) and LayerCAM (Jiang et al. 2021), for classifiers and for segmentation networks.

Maps come back at the chosen layer's resolution, `(B, 1, h, w)`, after the ReLU and before any
normalisation; `to_input_size` resizes them and `normalise` scales each to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "grad_cam",
    "layer_cam",
    "class_target",
    "region_target",
    "default_layer",
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


def default_layer(model: nn.Module) -> nn.Module:
    """The deepest encoder stage: the most semantic features that still keep a spatial layout.

    The model families name it alike: `encoder.stages` (U-Net, MTNet, MSGA, the classifiers) or an `encoder` that is
    itself the list of stages (U-Net++).
    """
    modules = dict(model.named_modules())
    stages = modules.get("encoder.stages", modules.get("encoder"))
    if isinstance(stages, nn.ModuleList) and len(stages):
        return stages[-1]
    raise ValueError(f"no default layer for {type(model).__name__}; name one with --layer")


def grad_cam(
    model: nn.Module, layer: nn.Module, images: torch.Tensor, target: Target, plus_plus: bool = False
) -> torch.Tensor:
    """Grad-CAM (or Grad-CAM++) of `target(model(images))` at `layer`'s output: `(B, 1, h, w)`, ≥ 0.

    Grad-CAM weighs each channel of the activations A by the spatial mean of g = ∂score/∂A. Grad-CAM++
    (the paper's closed form, as pytorch-grad-cam computes it) weighs each channel by Σ_ij α_ij ReLU(g_ij)
    with α = g² / (2g² + g³ Σ_ab A_ab); the paper's exp(score) factor is a positive constant per image and is
    left out (it overflows for region scores and normalisation removes it). The model's parameter gradients
    are left untouched.
    """
    captured: dict[str, torch.Tensor] = {}

    def keep(module, args, output):
        captured["activation"] = output

    handle = layer.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            inputs = images.detach().requires_grad_(True)  # a graph to the layer even if no parameter has one
            score = target(model(inputs))
            (gradient,) = torch.autograd.grad(score.sum(), captured["activation"])
    finally:
        handle.remove()
        model.train(was_training)
    activation, gradient = captured["activation"].detach().float(), gradient.float()
    if plus_plus:
        squared = gradient.pow(2)
        denominator = 2 * squared + gradient.pow(3) * activation.sum((2, 3), keepdim=True)
        alpha = squared / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        weights = (alpha * F.relu(gradient)).sum((2, 3), keepdim=True)
    else:
        weights = gradient.mean((2, 3), keepdim=True)
    return F.relu((weights * activation).sum(1, keepdim=True))


def layer_cam(model: nn.Module, layers: list[nn.Module], images: torch.Tensor, target: Target) -> torch.Tensor:
    """LayerCAM of `target(model(images))`: at each layer, `ReLU(Σ_c ReLU(∂score/∂A_c) · A_c)` per position (the
    gradient weighs every position, not only every channel, so shallower, finer layers localise too); each layer's
    map is brought to the input's size and divided by its maximum, and the layers are combined by their per-pixel
    maximum. Returns `(B, 1, H, W)` in [0, 1]; the model's parameter gradients are left untouched."""
    captured: list[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda module, args, output: captured.append(output)) for layer in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            inputs = images.detach().requires_grad_(True)
            score = target(model(inputs))
            gradients = torch.autograd.grad(score.sum(), captured)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    height, width = images.shape[-2:]
    maps = []
    for activation, gradient in zip(captured, gradients, strict=True):
        raw = F.relu((F.relu(gradient.float()) * activation.detach().float()).sum(1, keepdim=True))
        resized = to_input_size(raw, height, width)
        maps.append(scale_to_peak(resized))
    return torch.stack(maps).amax(0)


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
