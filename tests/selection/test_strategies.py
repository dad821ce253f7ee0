"""Selection strategies on planted pools: group quotas, seeds, cold starts, and what each strategy prefers."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from medseg.data.case import Case
from medseg.selection import STRATEGIES, Pool, Strategy, register_strategy
from medseg.selection.base import take
from medseg.selection.select import build_strategy, select_cases


def _pool(count=60, per_group=6, labels=None, foreground=None, seed=0) -> Pool:
    """`count` candidates in groups of `per_group`, random 1×16×16 images (a group's images alike)."""
    rng = np.random.default_rng(seed)
    looks = rng.normal(size=(count // per_group + 1, 1, 16, 16)).astype(np.float32)
    images = [looks[i // per_group] + 0.1 * rng.normal(size=(1, 16, 16)).astype(np.float32) for i in range(count)]
    cases = [
        Case(f"c{i}", f"x{i}", label=None if labels is None else labels[i], group=f"g{i // per_group}")
        for i in range(count)
    ]
    return Pool(cases, [], lambda i: images[i], lambda i: images[i], foreground)


@pytest.mark.parametrize("name", ["random", "stratified", "diversity"])
def test_cold_start_strategies_respect_the_group_quota_and_a_seed_repeats_its_picks(name):
    pool = _pool(labels=[i % 3 for i in range(60)])
    picks = select_cases(pool, build_strategy(name), 20, seed=3, max_per_group=2)
    assert len(picks) == 20 and len({p.id for p in picks}) == 20
    assert max(Counter(p.group for p in picks).values()) <= 2
    again = select_cases(_pool(labels=[i % 3 for i in range(60)]), build_strategy(name), 20, 3, max_per_group=2)
    assert [p.id for p in again] == [p.id for p in picks]
    other = select_cases(_pool(labels=[i % 3 for i in range(60)]), build_strategy(name), 20, 4, max_per_group=2)
    assert [p.id for p in other] != [p.id for p in picks]


def test_the_quota_counts_the_cases_labelled_before():
    pool = _pool()
    pool.labelled = [Case("old", "x", group="g0"), Case("old2", "x", group="g0")]
    picks = select_cases(pool, build_strategy("random"), 50, seed=0, max_per_group=2)
    assert not [p for p in picks if p.group == "g0"]
    assert max(Counter(p.group for p in picks).values()) <= 2 and len(picks) == 18  # 9 groups left × 2


def test_whole_groups_are_picked_whole():
    pool = _pool()
    picks = select_cases(pool, build_strategy("diversity"), 14, seed=0, whole_groups=True)
    counts = Counter(p.group for p in picks)
    assert set(counts.values()) == {6} and len(picks) == 18  # 14 cases need three groups of six
    with pytest.raises(ValueError, match="not both"):
        select_cases(pool, build_strategy("random"), 14, seed=0, whole_groups=True, max_per_group=2)


def test_stratified_gives_a_rare_label_its_share_where_random_draws_may_miss_it():
    labels = [1] * 54 + [2] * 6
    picks = select_cases(_pool(labels=labels), build_strategy("stratified"), 10, seed=0)
    rare = sum(p.id in {f"c{i}" for i in range(54, 60)} for p in picks)
    assert rare == 1  # 6 of 60 → 1 of 10
    equal = select_cases(_pool(labels=labels), build_strategy("stratified:balance=equal"), 10, seed=0)
    assert sum(p.id in {f"c{i}" for i in range(54, 60)} for p in equal) == 5


def test_foreground_random_keeps_its_share_of_lesion_cases():
    foreground = np.array([i % 10 == 0 for i in range(60)])  # 6 of 60 show a lesion
    picks = select_cases(_pool(foreground=foreground), build_strategy("foreground_random:share=0.5"), 10, seed=0)
    shown = sum(foreground[int(p.id[1:])] for p in picks)
    assert shown == 5
    with pytest.raises(ValueError, match="needs to know which candidates show a lesion"):
        select_cases(_pool(), build_strategy("foreground_random"), 10, seed=0)


def test_diversity_covers_the_kinds_of_image_random_may_repeat():
    """Ten groups of look-alike images: ten diverse picks come from ten different groups."""
    picks = select_cases(_pool(), build_strategy("diversity"), 10, seed=0)
    assert len({p.group for p in picks}) == 10


def test_uncertainty_takes_the_most_uncertain_and_needs_a_model():
    pool = _pool()
    with pytest.raises(ValueError, match="needs a trained model"):
        select_cases(pool, build_strategy("uncertainty"), 5, seed=0)
    pool.model = object()  # a model's signals, planted: the strategy reads the pool's cached uncertainty
    pool.cached("uncertainty", lambda: np.arange(60, dtype=float))
    picks = select_cases(pool, build_strategy("uncertainty"), 5, seed=0, max_per_group=2)
    assert [p.id for p in picks] == ["c59", "c58", "c53", "c52", "c47"]


def test_uncertain_diverse_picks_among_the_uncertain_only():
    pool = _pool()
    pool.model = object()
    pool.cached("uncertainty", lambda: np.arange(60, dtype=float))
    pool.cached("embeddings", lambda: (np.random.default_rng(0).normal(size=(60, 4)), np.zeros((0, 4))))
    picks = select_cases(pool, build_strategy("uncertain_diverse:factor=2"), 5, seed=0)
    assert len(picks) == 5 and all(int(p.id[1:]) >= 50 for p in picks)


def test_a_strategy_is_one_class_and_one_registry_line():
    @register_strategy("first_ids_for_test")
    class FirstIds(Strategy):
        def pick(self, pool, units, budget, rng):
            picks = []
            for unit in units:
                if budget.allows(unit):
                    picks += take(pool, unit, budget, 0.0, "first")
            return picks

    try:
        picks = select_cases(_pool(), build_strategy("first_ids_for_test"), 3, seed=0)
        assert [p.id for p in picks] == ["c0", "c1", "c2"]
    finally:
        STRATEGIES._items.pop("first_ids_for_test")


def test_a_bad_spec_names_the_option_and_the_strategies():
    with pytest.raises(ValueError, match="available: .*'diversity'"):
        build_strategy("entropy")
    with pytest.raises(ValueError, match="did you mean 'factor'"):
        build_strategy("uncertain_diverse:factr=2")


def test_stratified_without_image_labels_stratifies_by_lesion_where_known():
    foreground = np.array([i % 10 == 0 for i in range(60)])  # 6 of 60 show a lesion
    picks = select_cases(_pool(foreground=foreground), build_strategy("stratified:balance=equal"), 10, seed=0)
    assert sum(foreground[int(p.id[1:])] for p in picks) == 5
    assert all("lesion stratum" in p.why for p in picks)


def test_diversity_with_a_foreground_share_picks_that_share_among_lesion_cases_each_diverse():
    foreground = np.array([i % 10 == 0 for i in range(60)])  # 6 of 60 show a lesion
    picks = select_cases(_pool(foreground=foreground), build_strategy("diversity:foreground=0.5"), 10, seed=0)
    shown = [foreground[int(p.id[1:])] for p in picks]
    assert len(picks) == 10 and sum(shown) == 5, "half the picks show a lesion (plain diversity: about 1 in 10)"
    assert all("shows a lesion" in p.why for p, s in zip(picks, shown, strict=True) if s)
    few = select_cases(_pool(foreground=foreground), build_strategy("diversity:foreground=0.9"), 10, seed=0)
    assert len(few) == 10 and sum(foreground[int(p.id[1:])] for p in few) == 6, "the rest from lesion-free cases"
    with pytest.raises(ValueError, match="diversity:foreground needs to know which candidates show a lesion"):
        select_cases(_pool(), build_strategy("diversity:foreground=0.5"), 10, seed=0)
