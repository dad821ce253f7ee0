"""`foreground_random`: the foreground-aware random baseline (nnActive, 2025): random, but a fixed share of the
picks shows a lesion. In a real round the lesion flag comes from image labels (label 0 = none); in a simulated
loop (`medseg budget --select`) from the hidden masks, as nnActive's baseline does."""

from __future__ import annotations

import numpy as np

from medseg.selection.base import Strategy, register_strategy, take
from medseg.selection.pool import Budget, Pick, Pool, Unit


@register_strategy("foreground_random")
class ForegroundRandom(Strategy):
    """Args:
    share: the share of the picked cases that show a lesion (where the pool has enough of them).
    """

    def __init__(self, share: float = 0.5) -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"foreground_random: share must be in [0, 1], got {share}")
        self.share = share

    def pick(self, pool: Pool, units: list[Unit], budget: Budget, rng: np.random.Generator) -> list[Pick]:
        if pool.foreground is None:
            raise ValueError(
                "foreground_random needs to know which candidates show a lesion: give the reader image labels "
                "(data.source.labels_csv, 0 = no lesion), or use stratified or random"
            )
        shows = {kind: [u for u in units if pool.foreground[list(u.members)].any() == kind] for kind in (True, False)}
        queues = {kind: [members[i] for i in rng.permutation(len(members))] for kind, members in shows.items()}
        picks: list[Pick] = []
        shown = 0
        while not budget.full() and (queues[True] or queues[False]):
            want_lesion = shown < self.share * (budget.picked + 1) or not queues[False]
            kind = want_lesion if queues[want_lesion] else not want_lesion
            unit = queues[kind].pop(0)
            if budget.allows(unit):
                why = "random, shows a lesion" if kind else "random, no lesion"
                picks += take(pool, unit, budget, float(kind), why)
                shown += len(unit.members) if kind else 0
        return picks
