"""The spatial attention maps of an attention model, read with forward hooks during one forward pass.

- `SpatialAttention` (alone or inside CBAM): its sigmoid map.
- `AttentionGate`: its gate coefficients on the skip.
- `PositionAttention` (DANet PAM, MSGA): how much attention each position receives, averaged over all
  querying positions.
Channel attention has no spatial map and is not drawn.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from medseg.explain.targets import to_input_size
from medseg.models.attention import AttentionGate, DualAttention, PositionAttention, SpatialAttention

__all__ = ["spatial_attention_maps"]


def _received_attention(module: PositionAttention, x: torch.Tensor) -> torch.Tensor:
    attention = module.attention(x)  # (B, N, N), rows sum to 1
    return attention.mean(1).view(x.shape[0], 1, *x.shape[-2:])


READERS: dict[type, Callable[..., torch.Tensor]] = {
    SpatialAttention: lambda module, x: module.weights(x),
    AttentionGate: lambda module, x, g: module.weights(x, g),
    PositionAttention: _received_attention,
    DualAttention: lambda module, x: _received_attention(module.position, x),  # its PAM is not called as a module
}


@torch.no_grad()
def spatial_attention_maps(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run `model` on `(B, C, H, W)` images and return `{module name: (B, 1, H, W)}`, each map min–max
    scaled to [0, 1] per image (for display: the absolute levels of different blocks are not comparable).

    Raises:
        ValueError: the model has no block with a spatial map.
    """
    found: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        reader = READERS.get(type(module))
        if reader is not None:

            def record(module, args, output, name=name, reader=reader):
                found[name] = reader(module, *args)

            handles.append(module.register_forward_hook(record))
    if not handles:
        raise ValueError(
            f"{type(model).__name__} has no spatial attention to draw; maps come from model.attention "
            "sa, cbam, gate or dual, and from msga"
        )
    try:
        model(images)
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        raise ValueError(f"{type(model).__name__}: no attention block ran on this input; nothing to draw")
    height, width = images.shape[-2:]
    maps = {}
    for name, weights in found.items():
        resized = to_input_size(weights, height, width)
        low = resized.amin(dim=(1, 2, 3), keepdim=True)
        high = resized.amax(dim=(1, 2, 3), keepdim=True)
        maps[name] = (resized - low) / (high - low).clamp_min(1e-8)
    return maps
