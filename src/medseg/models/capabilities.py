"""What a model can do beyond `forward(x) -> logits`, as named protocols that methods and the engine check with
`isinstance` instead of probing attributes.

- `DeepSupervised`: several supervised heads (U-Net++'s nested heads, a U-Net's pyramid heads).
- `MultiBranch`: several decoders over one encoder (MTNet: CDMA, MC-Net+, CCT).
- `Prunable`: inference from one head or from a pruned sub-network (U-Net++ with deep supervision).
- `FeaturePerturbable`: a forward pass with the encoder's features perturbed (a U-Net: FixMatch's UniMatch stream).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["DeepSupervised", "FeaturePerturbable", "MultiBranch", "Prunable", "inference_modes"]


@runtime_checkable
class DeepSupervised(Protocol):
    """`forward_heads(x)`: every supervised head's logits `(B, K, H, W)` at the input's size, the one `forward`
    uses first; `head_weights`: the loss weight of each head when a method does not set its own."""

    head_weights: list[float]

    def forward_heads(self, x: torch.Tensor) -> list[torch.Tensor]: ...


@runtime_checkable
class MultiBranch(Protocol):
    """`forward_branches(x)`: each decoder branch's logits `(B, K, H, W)`."""

    def forward_branches(self, x: torch.Tensor) -> list[torch.Tensor]: ...


@runtime_checkable
class FeaturePerturbable(Protocol):
    """`forward_perturbed(x, perturb)`: logits `(B, K, H, W)` with `perturb` applied to every encoder feature map
    before decoding."""

    def forward_perturbed(self, x: torch.Tensor, perturb: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor: ...


@runtime_checkable
class Prunable(Protocol):
    """`levels`: the levels with a head; `set_inference(mode, level)`: what `forward` returns ("ensemble",
    "head" or "prune")."""

    levels: list[int]

    def set_inference(self, inference: str, head: int | None = None) -> None: ...


def inference_modes(model: nn.Module) -> list[str]:
    """The inference modes a model supports: `["default"]`, or for a model with several heads `ensemble`,
    `head=K` and `prune=L` for every level with a head."""
    if not isinstance(model, Prunable) or not model.levels:
        return ["default"]
    ensemble = ["ensemble"] if len(model.levels) > 1 else []
    return ensemble + [f"head={k}" for k in model.levels] + [f"prune={k}" for k in model.levels]
