"""`medseg select`: one annotation round, from a config (a cold start) or a trained run folder, to the files a user
acts on: the picks, the labelled list to train on, and a contact sheet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg.config import load_config
from medseg.errors import RunFolderError
from medseg.run_folder import RunFolder
from medseg.selection.contact_sheet import write_contact_sheet
from medseg.selection.pool import Pick, Pool
from medseg.selection.select import (
    build_pool,
    build_strategy,
    select_cases,
    training_assignment,
    write_labelled,
    write_picks,
)

__all__ = ["SelectionOutputs", "run_select", "outputs_for", "count_for", "check_count"]


@dataclass(frozen=True)
class SelectionOutputs:
    """Where one round writes: the picks, the labelled list (`data.labeled_file`) and the contact sheet."""

    picks: Path
    labelled: Path
    sheet: Path


def outputs_for(picks: str | Path) -> SelectionOutputs:
    """`x/picks.csv` → picks.csv, `x/picks.labelled.txt`, `x/picks.png`."""
    picks = Path(picks)
    return SelectionOutputs(picks, picks.with_name(f"{picks.stem}.labelled.txt"), picks.with_name(f"{picks.stem}.png"))


def count_for(pool: Pool, count: int | None, share: float | None) -> int:
    """The number of cases to pick: `count`, or `share` of the training cases (labelled and candidates).

    Raises:
        ValueError: neither or both given, or a share outside (0, 1].
    """
    check_count(count, share)
    if share is not None:
        return max(1, round(share * (len(pool.candidates) + len(pool.labelled))))
    return count


def check_count(count: int | None, share: float | None) -> None:
    """Refuse a request for picks that cannot be met, before any image is decoded.

    Raises:
        ValueError: neither or both given, a count below 1, or a share outside (0, 1].
    """
    if (count is None) == (share is None):
        raise ValueError("give the number of cases to pick (--count N) or a share of the training cases (--share r)")
    if count is not None and count < 1:
        raise ValueError(f"--count must be ≥ 1, got {count}")
    if share is not None and not 0 < share <= 1:
        raise ValueError(f"--share is a share of the training cases in (0, 1], got {share}")


def run_select(
    target: str | Path,
    out: str | Path,
    strategy: str,
    count: int | None = None,
    share: float | None = None,
    seed: int | None = None,
    whole_groups: bool = False,
    max_per_group: int | None = None,
    overrides: Sequence[str] = (),
    note: Callable[[str], None] = print,
) -> list[Pick]:
    """Pick the cases to annotate next and write `outputs_for(out)`.

    Args:
        target: a config YAML (cold start: no model; its labelled list, share or count, if any, is labelled already)
            or a run folder (its `train` cases are labelled, its `unlabeled` ones the candidates; its model guides
            model-based strategies and gives `diversity` its features).
        seed: the pick's randomness (default: the config's seed).
        overrides: `key=value` config overrides (a config target only).

    Raises:
        ValueError: a bad strategy spec, count or share; a model-based strategy on a config; nothing to pick.
    """
    picker = build_strategy(strategy)
    check_count(count, share)
    target = Path(target)
    predictor = None
    if target.is_dir():
        run = RunFolder(target)
        if not run.is_run():
            raise RunFolderError(f"{target}: not a run folder (no config.yaml and splits.csv)")
        if overrides:
            raise ValueError("key=value overrides apply to a config, not to a run folder (its config is fixed)")
        cfg, assignment = run.config, run.splits()
        from medseg.inference import Predictor

        predictor = Predictor.load(target)
    else:
        cfg = load_config(target, list(overrides))
        from medseg.data.readers import build_reader

        assignment = training_assignment(cfg, build_reader(cfg.data.source).cases())
    pool = build_pool(cfg, assignment, predictor)
    wanted = count_for(pool, count, share)
    picks = select_cases(pool, picker, wanted, cfg.seed if seed is None else seed, whole_groups, max_per_group)
    outputs = outputs_for(out)
    write_picks(outputs.picks, picks)
    write_labelled(outputs.labelled, [c.id for c in pool.labelled] + [p.id for p in picks])
    index = {case.id: i for i, case in enumerate(pool.candidates)}
    write_contact_sheet(outputs.sheet, picks, lambda case_id: pool.image(index[case_id]))
    note(
        f"{len(picks)} case(s) picked by {strategy} from {len(pool.candidates)} candidate(s) "
        f"({len(pool.labelled)} labelled before): {outputs.picks}, contact sheet {outputs.sheet}\n"
        f"annotate them, put their masks where the data's reader finds them, then train on the "
        f"{len(pool.labelled) + len(picks)} labelled case(s): data.labeled_file={outputs.labelled}"
    )
    return picks
