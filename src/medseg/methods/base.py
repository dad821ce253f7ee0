"""The Method contract: what differs between supervision regimes. The engine owns everything else."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from medseg.registry import Registry

__all__ = ["Method", "METHODS", "register_method"]


@runtime_checkable
class Method(Protocol):
    """A supervision regime.

    `build` makes the network; `training_step` returns `{"loss": scalar, ...other terms to log}` for a batch
    `{"image": (B, C, H, W), "mask": (B, H, W) long, ...}`; `predict` turns images into probabilities
    `(B, K, H, W)` (K = 1 for binary). An optional `after_step()` runs after each optimiser step (EMA teachers).
    """

    model: nn.Module

    def build(self) -> nn.Module: ...

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor: ...


METHODS: Registry[type[Any]] = Registry("method")
register_method = METHODS.register
