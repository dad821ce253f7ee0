"""Deep supervision: each head of a deeply supervised model (U-Net++'s nested heads, a U-Net's pyramid heads,
upsampled to full size) learns the mask, and the heads' losses are averaged with weights — the model's own (a
U-Net's 1, 1/2, 1/4, ... as nnU-Net weighs its scales) or the method's `head_weights`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg.models import DeepSupervised

__all__ = ["head_weights", "head_logits", "weighted_heads"]


def head_weights(model: nn.Module, requested: Sequence[float] | None = None) -> list[float]:
    """The loss weight of each of `model`'s supervised heads: `[1.0]` for a model with one head, else `requested`
    or the model's defaults.

    Raises:
        ValueError: `requested` does not give one non-negative weight per head (with a positive sum).
    """
    heads = model.head_weights if isinstance(model, DeepSupervised) else [1.0]
    if len(heads) == 1:
        return [1.0]
    if requested is None:
        return list(heads)
    if len(requested) != len(heads) or min(requested) < 0 or sum(requested) <= 0:
        raise ValueError(f"method.head_weights needs {len(heads)} non-negative weights, got {list(requested)}")
    return list(requested)


def head_logits(model: nn.Module, images: torch.Tensor, weights: Sequence[float]) -> list[torch.Tensor]:
    """Each supervised head's logits `(B, K, H, W)` for images `(B, C, H, W)`: `forward_heads` where `weights` has
    more than one entry, else the model's one output."""
    return model.forward_heads(images) if len(weights) > 1 else [model(images)]


def weighted_heads(losses: Sequence[torch.Tensor], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """`{"loss": the weighted mean of the heads' losses, "loss_head1": ..., ...}`; `{"loss": it}` for one head."""
    if len(losses) == 1:
        return {"loss": losses[0]}
    total = sum(w * term for w, term in zip(weights, losses, strict=True)) / sum(weights)
    return {"loss": total, **{f"loss_head{k + 1}": term.detach() for k, term in enumerate(losses)}}
