"""`diversity`: typical-cluster picking on embeddings (see `medseg.selection.clusters`): a trained model's encoder
features when selecting from a run, mask-free image thumbnails at a cold start."""

from __future__ import annotations

import numpy as np

from medseg.selection.base import Strategy, register_strategy
from medseg.selection.clusters import typical_cluster_picks
from medseg.selection.pool import Budget, Pick, Pool, Unit
from medseg.selection.signals import ModelSignals, embeddings


@register_strategy("diversity")
class Diversity(Strategy):
    def pick(self, pool: Pool, units: list[Unit], budget: Budget, rng: np.random.Generator) -> list[Pick]:
        candidates, labelled = embeddings(pool)
        source = "encoder features" if isinstance(pool.model, ModelSignals) else "thumbnails"
        return typical_cluster_picks(pool, units, budget, rng, candidates, labelled, f"diverse ({source})")
