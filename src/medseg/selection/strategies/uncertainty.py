"""`uncertainty`: the units the current model is least sure of (mean pixel entropy of its flip-averaged
prediction), most uncertain first."""

from __future__ import annotations

import numpy as np

from medseg.selection.base import Strategy, register_strategy, take
from medseg.selection.pool import Budget, Pick, Pool, Unit
from medseg.selection.signals import uncertainty


@register_strategy("uncertainty")
class Uncertainty(Strategy):
    needs_model = True

    def pick(self, pool: Pool, units: list[Unit], budget: Budget, rng: np.random.Generator) -> list[Pick]:
        entropy = uncertainty(pool)
        scores = np.array([entropy[list(unit.members)].mean() for unit in units])
        picks: list[Pick] = []
        for index in np.argsort(-scores, kind="stable"):
            if budget.full():
                break
            if budget.allows(units[index]):
                picks += take(pool, units[index], budget, scores[index], f"uncertain (entropy {scores[index]:.4f})")
        return picks
