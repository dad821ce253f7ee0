"""The model registry: config names → constructors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from medseg.registry import Registry, check_spec

__all__ = ["MODELS", "register_model", "build_model", "check_model_spec", "inference_modes"]

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
register_model = MODELS.register


def check_model_spec(spec: dict[str, Any]) -> None:
    """Check a `model:` section against the constructor's parameters without building it.

    Raises:
        ValueError: no or unknown `name`, or an option the model does not take (with the nearest valid one).
    """
    check_spec(MODELS, spec, "model")


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Build a model from its spec, e.g. `{"name": "unet", "in_channels": 1, "out_channels": 1}`."""
    check_model_spec(spec)
    options = {k: v for k, v in spec.items() if k != "name"}
    return MODELS[spec["name"]](**options)


def inference_modes(model: nn.Module) -> list[str]:
    """The inference modes a model supports: `["default"]`, or for a deeply supervised U-Net++ `ensemble`,
    `head=K` and `prune=L` for every level with a head."""
    levels = getattr(model, "levels", None)
    if not levels or not hasattr(model, "set_inference"):
        return ["default"]
    ensemble = ["ensemble"] if len(levels) > 1 else []
    return ensemble + [f"head={k}" for k in levels] + [f"prune={k}" for k in levels]
