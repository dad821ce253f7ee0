"""`diversity`: typical-cluster picking on embeddings (see `medseg.selection.clusters`): a trained model's encoder
features when selecting from a run, mask-free image thumbnails at a cold start. With `foreground`, that share of
the picks is chosen among the candidates that show a lesion and the rest among those that do not, each diverse in
itself: where most slices are lesion-free (LGG), plain diversity spends most masks on them."""

from __future__ import annotations

import numpy as np

from medseg.selection.base import Strategy, register_strategy
from medseg.selection.clusters import typical_cluster_picks
from medseg.selection.pool import Budget, Pick, Pool, Unit
from medseg.selection.signals import ModelSignals, embeddings


@register_strategy("diversity")
class Diversity(Strategy):
    """Args:
    foreground: the share of the picks that show a lesion (None: no stratification); needs to know which
        candidates do (image labels, or a simulated loop's hidden masks), as `foreground_random`.
    """

    def __init__(self, foreground: float | None = None) -> None:
        if foreground is not None and not 0 <= foreground <= 1:
            raise ValueError(f"diversity: foreground must be in [0, 1], got {foreground}")
        self.foreground = foreground

    def pick(self, pool: Pool, units: list[Unit], budget: Budget, rng: np.random.Generator) -> list[Pick]:
        candidates, labelled = embeddings(pool)
        source = "encoder features" if isinstance(pool.model, ModelSignals) else "thumbnails"
        if self.foreground is None:
            return typical_cluster_picks(pool, units, budget, rng, candidates, labelled, f"diverse ({source})")
        if pool.foreground is None:
            raise ValueError(
                "diversity:foreground needs to know which candidates show a lesion: give the reader image labels "
                "(data.source.labels_csv, 0 = no lesion), or leave foreground out"
            )
        shows = [u for u in units if pool.foreground[list(u.members)].any()]
        hidden = [u for u in units if not pool.foreground[list(u.members)].any()]
        lesion_count = int(round(self.foreground * (budget.count - budget.picked)))
        picks = typical_cluster_picks(
            pool, shows, budget.part(lesion_count), rng, candidates, labelled, f"diverse ({source}), shows a lesion"
        )
        rest = budget.count - budget.picked
        return picks + typical_cluster_picks(
            pool, hidden, budget.part(rest), rng, candidates, labelled, f"diverse ({source}), no lesion"
        )
