"""`uncertain_diverse`: uncertainty and diversity together (diverse top-k): the `factor` × budget most uncertain
units, then typical-cluster picking among them on the model's encoder features, so that the picks are unsure
cases that do not all look alike."""

from __future__ import annotations

import numpy as np

from medseg.selection.base import Strategy, register_strategy
from medseg.selection.clusters import typical_cluster_picks
from medseg.selection.pool import Budget, Pick, Pool, Unit
from medseg.selection.signals import embeddings, uncertainty


@register_strategy("uncertain_diverse")
class UncertainDiverse(Strategy):
    """Args:
    factor: how many times the budget's units the uncertain shortlist holds (≥ 1).
    """

    needs_model = True

    def __init__(self, factor: float = 4.0) -> None:
        if factor < 1:
            raise ValueError(f"uncertain_diverse: factor must be ≥ 1, got {factor}")
        self.factor = factor

    def pick(self, pool: Pool, units: list[Unit], budget: Budget, rng: np.random.Generator) -> list[Pick]:
        entropy = uncertainty(pool)
        candidates, labelled = embeddings(pool)
        scores = np.array([entropy[list(unit.members)].mean() for unit in units])
        mean_size = np.mean([len(unit.members) for unit in units]) if units else 1
        keep = np.argsort(-scores, kind="stable")[: int(np.ceil(self.factor * budget.count / mean_size))]
        shortlist = [units[i] for i in sorted(keep)]
        return typical_cluster_picks(pool, shortlist, budget, rng, candidates, labelled, "uncertain and diverse")
