"""`random`: units in a random order (the baseline every strategy must beat)."""

from __future__ import annotations

import numpy as np

from medseg.selection.base import Strategy, register_strategy, take
from medseg.selection.pool import Budget, Pick, Pool, Unit


@register_strategy("random")
class RandomDraw(Strategy):
    def pick(self, pool: Pool, units: list[Unit], budget: Budget, rng: np.random.Generator) -> list[Pick]:
        picks: list[Pick] = []
        for rank, index in enumerate(rng.permutation(len(units))):
            if budget.full():
                break
            if budget.allows(units[index]):
                picks += take(pool, units[index], budget, -rank, "random")
        return picks
