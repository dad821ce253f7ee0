"""Exponential moving average of a model's weights (and BatchNorm statistics).

In a short CPU budget the last weights of a run still move a lot from one epoch to the next; their
average over the last few hundred steps validates more steadily and usually better. The EMA copy is
what validation, `best.pt` selection, evaluation and prediction use; the raw weights keep training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["WeightAverage"]


class WeightAverage:
    """EMA of `model` with the given `decay` per optimiser step (0.995 ≈ the last 200 steps).

    Buffers (BatchNorm running mean/var) are averaged too, so the averaged model is self-consistent.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def model(self) -> nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def load(self, weights: dict[str, torch.Tensor], steps: int) -> None:
        """Restore averaged weights saved in a checkpoint after `steps` updates (for resume)."""
        self.model.load_state_dict(weights)
        self.averaged.n_averaged.fill_(max(steps, 1))
