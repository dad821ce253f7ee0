"""Resolving a config: its `data.source`, `model:` and `method:` checked against the registries and completed
with every default, so that a run folder's `config.yaml` says exactly what was built.

`medseg.config` is a pure schema; this is the one step that knows the registries. It is idempotent (a resolved
config resolves to itself), and it also brings configs written by earlier medseg versions up to date.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from medseg.config import Config, load_config
from medseg.data.readers import READERS
from medseg.errors import ConfigError
from medseg.explain import map_methods
from medseg.legacy import upgrade_specs
from medseg.methods import METHODS, complete_method_spec
from medseg.models import build_model, complete_model_spec, prefers_channels_last
from medseg.registry import check_spec

__all__ = ["resolve_config", "load_resolved", "resolve_source"]


def resolve_source(source: dict[str, Any], where: str = "config") -> None:
    """Check a `data.source` section against its reader's options.

    Raises:
        ConfigError: an unknown format or option, each named with the nearest valid one.
    """
    try:
        _check_source(source)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def load_resolved(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Config:
    """`load_config` then `resolve_config`: what the command line trains from."""
    where = "config" if isinstance(source, dict) else str(source)
    return resolve_config(load_config(source, overrides), where)


def resolve_config(cfg: Config, where: str = "config") -> Config:
    """`cfg` with its data source checked and its model and method specs completed.

    The method first completes the model spec from the keys the user set (e.g. a classifier's `out_channels`
    from the label classes); the data section then gives `in_channels` / `out_channels` where still unset; every
    other constructor argument takes its default.

    Raises:
        ConfigError: an unknown reader, model or method, an option they do not take, or a value they refuse.
    """
    try:
        _check_source(cfg.data.source)
        _check_maps(cfg.weak.maps, cfg.weak.choose_maps)
        model, method = upgrade_specs(dict(cfg.model), dict(cfg.method))
        check_spec(METHODS, method, "method", skip=("model_spec",))
        options = {key: value for key, value in method.items() if key != "name"}
        method_type = METHODS[method["name"]]
        model = method_type.complete_model_spec(model, options)
        model.setdefault("in_channels", cfg.data.channels)
        model.setdefault("out_channels", 1 if cfg.data.num_classes == 2 else cfg.data.num_classes)
        model = complete_model_spec(model)
        method = complete_method_spec(method)
        # the method's and the model's own checks of their values, so that a refused config stops here, before
        # anything is written; built on the meta device: no memory (a config asking for 300 GB of weights is checked
        # without allocating them), and the random state is left as it was
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            method_type(model, **options).check_model(build_model(model))
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where}: {error}") from None
    train = cfg.train
    if train.channels_last is None:
        train = train.model_copy(update={"channels_last": prefers_channels_last(model["name"])})
    return cfg.model_copy(update={"model": model, "method": method, "train": train})


def _check_maps(maps: str, choose: list[str] | None) -> None:
    """`weak.maps` and `weak.choose_maps` name explanation methods that give one map (the registry's).

    Raises:
        ValueError: another name; the message lists the methods.
    """
    for key, name in [("weak.maps", maps), *(("weak.choose_maps", name) for name in choose or [])]:
        if name not in map_methods():
            raise ValueError(f"{key}: {name!r} is not an explanation method giving one map; available: {map_methods()}")


def _check_source(source: dict[str, Any]) -> None:
    """`data.source` against its reader's options, each problem named with the nearest valid key."""
    name = source.get("format")
    if name not in READERS:
        raise ValueError(f"data.source.format: unknown format {name!r}; available: {READERS.names()}")
    options_model = READERS[name].Options
    try:
        options_model(**{k: v for k, v in source.items() if k != "format"})
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = ".".join(str(p) for p in item["loc"])
            if item["type"] == "extra_forbidden":
                hint = difflib.get_close_matches(key, list(options_model.model_fields), n=1)
                valid = f"did you mean '{hint[0]}'?" if hint else f"valid keys: {list(options_model.model_fields)}"
                problems.append(f"data.source.{key}: unknown key for format {name!r}; {valid}")
            else:
                problems.append(f"data.source.{key}: {item['msg']}")
        raise ValueError("; ".join(problems)) from None
