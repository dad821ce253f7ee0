"""The model registry: config names → constructors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from medseg.registry import Registry, check_spec, complete_spec

__all__ = [
    "MODELS",
    "register_model",
    "build_model",
    "check_model_spec",
    "complete_model_spec",
    "prefers_channels_last",
]

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
_CHANNELS_LAST: dict[str, bool] = {}


def register_model(name: str, channels_last: bool = True) -> Callable:
    """Class decorator: register a model under `name` (its config name).

    Args:
        channels_last: whether the model trains in the channels_last memory layout when the config leaves
            `train.channels_last` unset (False where a kernel misbehaves in that layout).
    """

    def decorate(cls: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _CHANNELS_LAST[name] = channels_last
        return MODELS.register(name)(cls)

    return decorate


def prefers_channels_last(name: str) -> bool:
    """The memory layout model `name` trains in by default: channels_last, unless it registered otherwise."""
    MODELS[name]  # an unknown name is refused with the list of known ones
    return _CHANNELS_LAST[name]


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
