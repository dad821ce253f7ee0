"""Helpers shared by tests: a method built from a config as the engine builds it."""

from __future__ import annotations

from typing import Any

from medseg.config import Config, load_config
from medseg.methods import Method, build_method
from medseg.resolve import resolve_config


def resolved(config: dict[str, Any] | Config) -> Config:
    """A config dict (or loaded config) checked and completed, as `medseg train` resolves it."""
    return resolve_config(config if isinstance(config, Config) else load_config(config))


def built_method(config: dict[str, Any] | Config) -> Method:
    """The method of a config, its model built, as the trainer builds it."""
    cfg = resolved(config)
    return build_method(cfg.method, cfg.model)
