"""The `name:key=value:...` specs the command lines take for a model, a method or a strategy, read in one place."""

from __future__ import annotations

from typing import Any

from medseg.config import parse_overrides

__all__ = ["parse_spec", "split_spec"]


def split_spec(text: str) -> tuple[str, list[str]]:
    """`fixmatch:method.feature_perturbation=0.5` → `("fixmatch", ["method.feature_perturbation=0.5"])`.

    Raises:
        ValueError: no name before the first `:`.
    """
    name, *options = text.split(":")
    if not name.strip():
        raise ValueError(f"{text!r}: a spec starts with a name, then `:key=value` options")
    return name.strip(), options


def parse_spec(text: str) -> dict[str, Any]:
    """`unet:attention=cbam:features=[8,16]` → `{"name": "unet", "attention": "cbam", "features": [8, 16]}`: each
    value read as YAML, dotted keys nested as config overrides are.

    Raises:
        ValueError: no name, or an option that is not `key=value` (ConfigError, a ValueError).
    """
    name, options = split_spec(text)
    return {"name": name, **parse_overrides(options)}
