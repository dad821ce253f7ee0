"""The selection strategy interface and its registry: adding a strategy is one file in `strategies/` and one
`@register_strategy` line (and its import in `strategies/__init__.py`)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from medseg.registry import Registry
from medseg.selection.pool import Budget, Pick, Pool, Unit

__all__ = ["Strategy", "STRATEGIES", "register_strategy", "take"]


class Strategy:
    """Picks the units to annotate next.

    Subclasses set `needs_model` when they read a trained model's signals (`pool.model`), and implement `pick`:
    walk the units in the order they want them, `take` each one the budget allows, until it is full.
    Options come from `key=value` in the strategy spec (`uncertain_diverse:factor=3`), checked against `__init__`.
    """

    name: ClassVar[str] = ""
    needs_model: ClassVar[bool] = False

    def pick(self, pool: Pool, units: list[Unit], budget: Budget, rng: np.random.Generator) -> list[Pick]:
        raise NotImplementedError


STRATEGIES: Registry[type[Strategy]] = Registry("selection strategy")


def register_strategy(name: str):
    """Class decorator: register a Strategy under `name` (its CLI name) and record the name on it."""
    return STRATEGIES.register_named(name)


def take(pool: Pool, unit: Unit, budget: Budget, score: float, why: str) -> list[Pick]:
    """Take `unit` from the budget; its cases as picks with `score` and `why`."""
    budget.take(unit)
    return [Pick(pool.candidates[i].id, unit.group, float(score), why) for i in unit.members]
