"""Typical-cluster picking (TypiClust, Hacohen et al. 2022), the cold-start diversity shared by `diversity` and
`uncertain_diverse`: cluster the embeddings into as many clusters as there will be labelled units, then take, from
each cluster that holds no labelled case yet (the largest first), its most typical unit: the one whose nearest
neighbours in the cluster are closest (a dense, representative case, not an outlier)."""

from __future__ import annotations

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree

from medseg.selection.base import take
from medseg.selection.pool import Budget, Pick, Pool, Unit

__all__ = ["typical_cluster_picks"]

NEIGHBOURS = 20


def typical_cluster_picks(
    pool: Pool,
    units: list[Unit],
    budget: Budget,
    rng: np.random.Generator,
    candidate_embeddings: np.ndarray,
    labelled_embeddings: np.ndarray,
    reason: str,
) -> list[Pick]:
    """Pick units cluster by cluster (see the module's docstring); a unit's embedding is its members' mean.

    Args:
        candidate_embeddings: `(N, D)` one row per pool candidate.
        labelled_embeddings: `(M, D)` one row per labelled case (their clusters count as covered).
        reason: the start of each pick's `why`.
    """
    if not units:
        return []
    points = np.stack([candidate_embeddings[list(unit.members)].mean(axis=0) for unit in units])
    mean_size = np.mean([len(unit.members) for unit in units])
    clusters = int(min(len(units), round(budget.count / mean_size) + len(labelled_embeddings) / mean_size))
    clusters = max(clusters, 1)
    seed = int(rng.integers(2**31))
    centroids, assigned = kmeans2(points, clusters, minit="++", seed=seed)
    covered = set()
    if len(labelled_embeddings):
        covered = set(cKDTree(centroids).query(labelled_embeddings)[1].tolist())
    members = {c: np.flatnonzero(assigned == c) for c in range(clusters)}
    typicality = np.zeros(len(units))
    for indices in members.values():
        if len(indices) > 1:
            k = min(NEIGHBOURS, len(indices) - 1)
            distances = cKDTree(points[indices]).query(points[indices], k + 1)[0][:, 1:]
            typicality[indices] = 1 / (distances.mean(axis=1) + 1e-8)
    order = sorted(members, key=lambda c: (c in covered, -len(members[c]), c))
    queues = {c: sorted(members[c], key=lambda i: -typicality[i]) for c in order}
    picks: list[Pick] = []
    while not budget.full() and any(queues.values()):
        for c in order:  # round-robin: a second unit of a cluster only after every cluster gave one
            while queues[c] and not budget.full():
                index = queues[c].pop(0)
                if budget.allows(units[index]):
                    size = len(members[c])
                    why = f"{reason}: most typical left of a cluster of {size}" + (" (covered)" if c in covered else "")
                    picks += take(pool, units[index], budget, typicality[index], why)
                    break
    return picks
