"""Feature perturbations of the auxiliary decoders in CCT (Ouali et al., CVPR 2020) and URPC's pyramid heads:
each takes `(B, C, H, W)` features and returns a perturbed tensor of the same shape (training only)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["PERTURBATIONS", "feature_noise", "feature_dropout", "channel_dropout"]


def feature_noise(x: torch.Tensor, magnitude: float = 0.3) -> torch.Tensor:
    """Multiplicative uniform noise: x · (1 + u), u ~ U(-magnitude, magnitude) per element."""
    return x * (1 + torch.empty_like(x).uniform_(-magnitude, magnitude))


def feature_dropout(x: torch.Tensor, low: float = 0.7, high: float = 0.9) -> torch.Tensor:
    """Zero the most activated region: where the channel-mean activation exceeds a random fraction
    (in [low, high]) of its per-image maximum."""
    attention = x.mean(1, keepdim=True)
    peak = attention.flatten(1).amax(1).view(-1, 1, 1, 1)
    threshold = peak * torch.empty_like(peak).uniform_(low, high)
    return x * (attention < threshold).to(x.dtype)


def channel_dropout(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Whole feature maps dropped with probability p (the survivors rescaled)."""
    return F.dropout2d(x, p, training=True)


PERTURBATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "noise": feature_noise,
    "feature_dropout": feature_dropout,
    "dropout": channel_dropout,
}
