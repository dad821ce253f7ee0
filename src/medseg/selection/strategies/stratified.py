"""`stratified`: random within each stratum, every stratum getting its share of the labelled cases (the
already-labelled ones counted), so that a rare one is never left out by the luck of a draw. The strata are the
image labels; where the cases carry none but whether each shows a lesion is known (a simulated loop's hidden
masks), lesion and lesion-free cases."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

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
        stratum, kind = _strata_of(pool)
        strata: dict[str, list[Unit]] = {}
        for unit in units:  # a whole group goes to its members' most common stratum
            counts = Counter(stratum(i) for i in unit.members)
            strata.setdefault(min(counts, key=lambda v: (-counts[v], v)), []).append(unit)
        # the cases labelled before count toward their label's share (whether they show a lesion is not known)
        have = Counter(str(case.label) for case in pool.labelled) if kind == "label" else Counter()
        size = {label: len(members) + have[label] for label, members in strata.items()}
        queues = {label: [members[i] for i in rng.permutation(len(members))] for label, members in strata.items()}
        why = f"random within {kind} {{}}" if len(strata) > 1 else "random (nothing to stratify by)"
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


def _strata_of(pool: Pool) -> tuple[Callable[[int], str], str]:
    """Each candidate's stratum (by its index) and what the strata are: image labels where the candidates carry
    them, else lesion or not where that is known, else one stratum."""
    if any(case.label is not None for case in pool.candidates):
        return (lambda i: str(pool.candidates[i].label)), "label"
    if pool.foreground is not None:
        return (lambda i: "lesion" if pool.foreground[i] else "no lesion"), "lesion stratum"
    return (lambda i: "all"), "stratum"
