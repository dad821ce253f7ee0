"""`stratified`: random within each image label, every label getting its share of the labelled cases (the
already-labelled ones counted), so that a rare label is never left out by the luck of a draw."""

from __future__ import annotations

from collections import Counter

import numpy as np

from medseg.selection.base import Strategy, register_strategy, take
from medseg.selection.pool import Budget, Pick, Pool, Unit


@register_strategy("stratified")
class Stratified(Strategy):
    """Args:
    balance: "proportional" (each label's share of the labelled cases is its share of the training cases) or
        "equal" (every label the same number).
    """

    def __init__(self, balance: str = "proportional") -> None:
        if balance not in ("proportional", "equal"):
            raise ValueError(f"stratified: balance must be 'proportional' or 'equal', got {balance!r}")
        self.balance = balance

    def pick(self, pool: Pool, units: list[Unit], budget: Budget, rng: np.random.Generator) -> list[Pick]:
        strata: dict[str, list[Unit]] = {}
        for unit in units:
            labels = Counter(str(pool.candidates[i].label) for i in unit.members)
            strata.setdefault(min(labels, key=lambda v: (-labels[v], v)), []).append(unit)
        have = Counter(str(case.label) for case in pool.labelled)
        size = {label: len(members) + have[label] for label, members in strata.items()}
        queues = {label: [members[i] for i in rng.permutation(len(members))] for label, members in strata.items()}
        why = "random within label {}" if len(strata) > 1 else "random (no image labels to stratify by)"
        picks: list[Pick] = []
        while not budget.full() and any(queues.values()):
            # the label furthest below its share of the labelled cases goes next
            share = (lambda s: have[s] / size[s]) if self.balance == "proportional" else (lambda s: have[s])
            label = min((s for s in queues if queues[s]), key=lambda s: (share(s), s))
            unit = queues[label].pop(0)
            if budget.allows(unit):
                picks += take(pool, unit, budget, -have[label], why.format(label))
                have[label] += len(unit.members)
        return picks
