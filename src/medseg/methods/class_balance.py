"""Pseudo-labels that respect a rare class (for teachers whose sure pixels are mostly background).

With few masks, a teacher that misses part of a rare class (a tumour type seen on ten slices) calls those pixels
background with high confidence, and a student trained on its sure pixels learns the misses: the foreground shrinks
over training. Two remedies, each an option of `fixmatch`:

- Distribution alignment (ReMixMatch, Berthelot et al. 2020): the teacher's class probabilities are multiplied by
  the labelled masks' class shares over the teacher's own running shares on unlabelled images, then renormalised,
  so that its predictions hold the classes in about the labelled proportions.
- Class-adaptive thresholds (FlexMatch, Zhang et al. 2021, per pixel): a class whose predicted pixels are rarely
  sure gets a lower threshold: τ_c = β_c / (2 − β_c) · τ, with β_c the running share of class c's predicted pixels
  that are sure, over the largest such share.

Shares are exponential moving averages over steps (`momentum`), kept in checkpoints.
"""

from __future__ import annotations

import torch

from medseg.losses import IGNORE_INDEX

__all__ = ["RunningShares", "class_probabilities", "align_distribution", "adaptive_thresholds"]


def class_probabilities(probs: torch.Tensor) -> torch.Tensor:
    """`(B, K, H, W)` probabilities as one channel per class: a binary task's `(B, 1, H, W)` foreground probability
    becomes `(B, 2, H, W)` (background, foreground); K > 1 is returned as it is."""
    return torch.cat([1 - probs, probs], dim=1) if probs.shape[1] == 1 else probs


def align_distribution(probs: torch.Tensor, labelled: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Class probabilities `(B, K, H, W)` (one channel per class) scaled by `labelled / teacher` class shares `(K,)`
    and renormalised over K."""
    ratio = (labelled / teacher.clamp_min(1e-6)).view(1, -1, 1, 1)
    scaled = probs * ratio
    return scaled / scaled.sum(dim=1, keepdim=True).clamp_min(1e-12)


def adaptive_thresholds(sure_share: torch.Tensor, threshold: float) -> torch.Tensor:
    """`(K,)` per-class thresholds from each class's share of sure predicted pixels `(K,)` (FlexMatch's convex
    mapping: the best-learnt class keeps `threshold`, a class learnt half as well gets a third of it)."""
    beta = sure_share / sure_share.max().clamp_min(1e-12)
    return beta / (2 - beta) * threshold


class RunningShares:
    """Exponential moving averages of per-class shares `(K,)`: the labelled masks' class shares, the teacher's
    mean class probabilities, the share of each class's predicted pixels that are sure.

    Args:
        momentum: the weight of the past per step (0.99: about the last 100 steps).
    """

    def __init__(self, momentum: float = 0.99) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"method.balance_momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.values: dict[str, torch.Tensor] = {}

    def update(self, name: str, shares: torch.Tensor) -> torch.Tensor:
        """Fold this step's `shares` `(K,)` into the running value of `name` (the first step sets it); returns it."""
        shares = shares.detach().float()
        old = self.values.get(name)
        self.values[name] = (
            shares if old is None else self.momentum * old.to(shares.device) + (1 - self.momentum) * shares
        )
        return self.values[name]

    @staticmethod
    def mask_shares(mask: torch.Tensor, classes: int) -> torch.Tensor:
        """`(K,)` class shares of the known pixels of masks `(B, H, W)` (unknown pixels left out)."""
        known = mask[mask != IGNORE_INDEX]
        counts = torch.bincount(known.flatten().long(), minlength=classes)[:classes].float()
        return counts / counts.sum().clamp_min(1)

    @staticmethod
    def sure_shares(predicted: torch.Tensor, sure: torch.Tensor, classes: int) -> torch.Tensor:
        """`(K,)` per class, the share of the pixels predicted as that class that are sure (1 for a class not
        predicted this step: nothing says it is learnt badly)."""
        counts = torch.bincount(predicted.flatten(), minlength=classes)[:classes].float()
        sure_counts = torch.bincount(predicted[sure].flatten(), minlength=classes)[:classes].float()
        return torch.where(counts > 0, sure_counts / counts.clamp_min(1), torch.ones_like(counts))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: value.cpu() for name, value in self.values.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.values = {name: value.float() for name, value in state.items()}
