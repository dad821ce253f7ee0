"""The model registry: config names → constructors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from medseg.registry import Registry, check_spec, complete_spec

__all__ = ["MODELS", "register_model", "build_model", "check_model_spec", "complete_model_spec"]

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
register_model = MODELS.register


def check_model_spec(spec: dict[str, Any]) -> None:
    """Check a `model:` section against the constructor's parameters without building it.

    Raises:
        ValueError: no or unknown `name`, or an option the model does not take (with the nearest valid one).
    """
    check_spec(MODELS, spec, "model")


def complete_model_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with every constructor argument it leaves out set to its default (what the run records)."""
    return complete_spec(MODELS, spec, "model")


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Build a model from its spec, e.g. `{"name": "unet", "in_channels": 1, "out_channels": 1}`."""
    check_model_spec(spec)
    options = {k: v for k, v in spec.items() if k != "name"}
    return MODELS[spec["name"]](**options)
