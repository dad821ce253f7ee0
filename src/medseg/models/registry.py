"""The model registry: config names → constructors."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from medseg.registry import Registry

__all__ = ["MODELS", "register_model", "build_model", "check_model_spec"]

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
register_model = MODELS.register


def check_model_spec(spec: dict[str, Any]) -> None:
    """Check a `model:` section against the constructor's parameters without building it.

    Raises:
        ValueError: no or unknown `name`, or an option the model does not take (with the nearest valid one).
    """
    if "name" not in spec:
        raise ValueError(f"model needs a 'name'; available: {MODELS.names()}")
    constructor = MODELS[spec["name"]]
    params = inspect.signature(constructor).parameters
    valid = [k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for key in spec:
        if key != "name" and key not in valid:
            hint = difflib.get_close_matches(key, valid, n=1)
            suggestion = f"did you mean '{hint[0]}'?" if hint else f"valid options: {valid}"
            raise ValueError(f"model.{key}: unknown option for model {spec['name']!r}; {suggestion}")


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Build a model from its spec, e.g. `{"name": "unet", "in_channels": 1, "out_channels": 1}`."""
    check_model_spec(spec)
    options = {k: v for k, v in spec.items() if k != "name"}
    return MODELS[spec["name"]](**options)
