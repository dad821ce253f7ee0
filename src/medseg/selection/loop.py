"""The annotation loop, simulated on a fully labelled data set (`medseg budget ... --select S`): for each method
and seed, a chain over the labelled shares; the first share's cases are a cold-start pick, each later share adds
the picks made with the model trained at the share before (only those masks are revealed to training).

    <out>/splits/<strategy>-<method>-r<share>-s<seed>.csv         the split of that round (train = labelled)
    <out>/splits/<strategy>-<method>-r<share>-s<seed>.picks.csv   the round's picks (id,group,score,why)

A round's files are written once: a killed loop resumes from the first round without them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medseg.config import Config
from medseg.data.readers import build_reader
from medseg.data.splits import keep_labeled, read_splits, split_by_group, write_splits
from medseg.selection.select import build_pool, build_strategy, select_cases, write_picks

__all__ = ["round_split", "round_files", "expand_rounds"]


def expand_rounds(ratios: list[float], rounds: int) -> list[float]:
    """The shares of a chain with `rounds` equal steps up to each ratio: `[0.05, 0.1]`, 2 → `[0.025, 0.05, 0.075,
    0.1]` (rounded to 6 digits).

    Raises:
        ValueError: rounds below 1.
    """
    if rounds < 1:
        raise ValueError(f"--rounds must be ≥ 1, got {rounds}")
    shares, previous = [], 0.0
    for ratio in sorted(set(ratios)):
        shares += [round(previous + (ratio - previous) * (k + 1) / rounds, 6) for k in range(rounds)]
        previous = ratio
    return shares


def round_files(out: Path, strategy_label: str, method_label: str, share: float, seed: int) -> tuple[Path, Path]:
    """The split and picks files of one round (the strategy and method as file-name parts)."""
    stem = f"{strategy_label}-{method_label}-r{share:g}-s{seed}"
    return out / "splits" / f"{stem}.csv", out / "splits" / f"{stem}.picks.csv"


def round_split(
    cfg: Config,
    split_path: Path,
    picks_path: Path,
    strategy: str,
    share: float,
    seed: int,
    previous: tuple[Path, Path] | None,
    cold_start: str,
    max_per_group: int | None,
    note: Callable[[str], None] = print,
) -> Path:
    """Write one round's split (once): the config's train/val/test split, the labelled cases of the previous
    round (its split file) plus this round's picks up to `share` of the training cases.

    Args:
        previous: the previous round's split file and run folder, or None for the first round (a cold start with
            `strategy`, or with `cold_start` where `strategy` needs a model).
    """
    if split_path.is_file():
        return split_path
    cases = build_reader(cfg.data.source).cases()
    base = split_by_group(cases, cfg.data.splits.model_dump(), cfg.seed, cfg.data.stratify_by_label)
    training = [case_id for case_id, split in base.items() if split == "train"]
    labelled: list[str] = []
    predictor = None
    name = strategy
    if previous is not None:
        labelled = [case_id for case_id, split in read_splits(previous[0]).items() if split == "train"]
        from medseg.inference import Predictor

        predictor = Predictor.load(previous[1], which="last")
    elif build_strategy(strategy).needs_model:
        name = cold_start
    assignment = keep_labeled(base, labelled, previous[0]) if labelled else base
    pool = build_pool(cfg, assignment, predictor, reveal_foreground=True)
    wanted = round(share * len(training)) - len(labelled)
    picks = select_cases(pool, build_strategy(name), max(wanted, 1), seed, max_per_group=max_per_group)
    note(f"  {name} picked {len(picks)} case(s) ({len(labelled)} labelled before) → {picks_path.name}")
    write_picks(picks_path, picks)
    write_splits(split_path, cases, keep_labeled(base, labelled + [p.id for p in picks], picks_path))
    return split_path
