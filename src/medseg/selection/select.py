"""One selection round: from a config (cold start) or a trained run, pick the training cases to annotate next.

    picks = select_cases(pool, build_strategy("uncertainty"), count=50, seed=0, max_per_group=5)

`run_select` is `medseg select`: it builds the pool, picks, and writes `picks.csv` (`id,group,score,why`), the
labelled list that training reads (`data.labeled_file`: the cases labelled before and the picks) and a contact
sheet of the picks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.atomic import write_text_atomic
from medseg.config import Config
from medseg.csv_cells import write_csv
from medseg.data.case import Case
from medseg.data.dataset import assign_splits, preprocessing_of
from medseg.data.readers import build_reader
from medseg.data.splits import UNLABELED
from medseg.data.store import open_store
from medseg.losses import IGNORE_INDEX
from medseg.registry import check_spec
from medseg.selection.base import STRATEGIES, Strategy
from medseg.selection.pool import Budget, Pick, Pool, units_of
from medseg.selection.signals import ModelSignals
from medseg.specs import parse_spec

__all__ = ["build_strategy", "select_cases", "build_pool", "training_assignment", "write_picks", "write_labelled"]


def build_strategy(spec: str) -> Strategy:
    """`name` or `name:key=value:...` → the registered strategy with those options.

    Raises:
        ValueError: an unknown name (listing the registered ones), option or value.
    """
    import medseg.selection.strategies  # noqa: F401  (registration)

    arguments = parse_spec(spec)
    check_spec(STRATEGIES, arguments, "strategy")
    name = arguments.pop("name")
    return STRATEGIES[name](**arguments)


def select_cases(
    pool: Pool,
    strategy: Strategy,
    count: int,
    seed: int,
    whole_groups: bool = False,
    max_per_group: int | None = None,
) -> list[Pick]:
    """Pick `count` candidates of `pool` (whole groups may overshoot by less than a group).

    Args:
        whole_groups: pick every candidate of a group at once (patients / volumes), never part of one.
        max_per_group: at most this many labelled cases per group, the already-labelled ones counted.

    Raises:
        ValueError: a model-based strategy at a cold start, a count below 1, or both group options.
    """
    if count < 1:
        raise ValueError(f"the number of cases to pick must be ≥ 1, got {count}")
    if whole_groups and max_per_group is not None:
        raise ValueError("pick whole groups or at most k cases per group, not both")
    if max_per_group is not None and max_per_group < 1:
        raise ValueError(f"max_per_group must be ≥ 1, got {max_per_group}")
    if strategy.needs_model and pool.model is None:
        raise ValueError(
            f"strategy {strategy.name!r} needs a trained model: select from a run folder, or start cold with "
            "diversity, stratified or random"
        )
    budget = Budget(count, pool.labelled, max_per_group)
    return strategy.pick(pool, units_of(pool, whole_groups), budget, np.random.default_rng(seed))


def training_assignment(cfg: Config, cases: Sequence[Case]) -> dict[str, str]:
    """The split training would use for this config (`medseg.data.dataset.assign_splits`)."""
    return assign_splits(cfg.data, cases, cfg.seed)


def build_pool(
    cfg: Config,
    assignment: dict[str, str],
    predictor: object | None = None,
    reveal_foreground: bool = False,
) -> Pool:
    """The pool of one round: candidates are the `unlabeled` training cases (every training case when none is
    labelled yet: a cold start), labelled are the `train` ones.

    Args:
        predictor: a `medseg.inference.Predictor` of the run whose model guides the pick, or None.
        reveal_foreground: a simulated loop on a fully labelled set: where the cases carry no image label, whether
            each candidate shows a lesion is read from its (hidden) mask (the foreground-aware baseline's oracle).

    Raises:
        ValueError: no candidate left.
    """
    reader = build_reader(cfg.data.source)
    cases = [c for c in reader.cases() if c.id in assignment]
    semi = UNLABELED in assignment.values()
    labelled = [c for c in cases if semi and assignment[c.id] == "train"]
    candidates = [c for c in cases if assignment[c.id] == (UNLABELED if semi else "train")]
    if not candidates:
        raise ValueError("no training case is left to pick: every training case is labelled already")
    known = all(c.label is not None for c in candidates)
    mask_ids = {c.id for c in labelled}
    if reveal_foreground and not known:
        mask_ids |= {c.id for c in candidates}
    data = cfg.data
    store = open_store(
        reader, [*candidates, *labelled], preprocessing_of(data), Path(data.cache_dir), mask_ids, data.skip_bad
    )
    rows = store.position
    candidates = [c for c in candidates if c.id in rows]  # skipped cases (data.skip_bad) are not candidates
    labelled = [c for c in labelled if c.id in rows]
    foreground = None
    if known:
        foreground = np.array([c.label != 0 for c in candidates])
    elif reveal_foreground:
        masks = [store.mask(rows[c.id]) for c in candidates]
        foreground = np.array([bool(((m > 0) & (m != IGNORE_INDEX)).any()) for m in masks])
    return Pool(
        candidates=candidates,
        labelled=labelled,
        image=lambda i: store.image(rows[candidates[i].id]),
        labelled_image=lambda i: store.image(rows[labelled[i].id]),
        foreground=foreground,
        model=ModelSignals(predictor) if predictor is not None else None,
    )


def write_picks(path: str | Path, picks: Sequence[Pick]) -> None:
    """`id,group,score,why`, one row per pick, in pick order."""
    write_csv(path, ["id", "group", "score", "why"], [[p.id, p.group, f"{p.score:.6g}", p.why] for p in picks])


def write_labelled(path: str | Path, ids: Sequence[str]) -> None:
    """The labelled list `data.labeled_file` reads: one id per line."""
    write_text_atomic(path, "".join(f"{case_id}\n" for case_id in ids))
