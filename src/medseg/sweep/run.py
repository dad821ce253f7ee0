"""The resumable sweep behind `medseg budget`: every point trained (a started one resumes, a finished one is kept),
evaluated on the test split with its last and its best-validated checkpoint, one JSON line per point in
`<out>/budget.jsonl`, then the summary files. The layout of `<out>`:

    splits/r<ratio>-s<seed>.csv   the split (drawn once, with the config's seed) and, per seed, the labelled cases at
                                  each ratio (nested: a seed's 5% cases are among its 10%)
    <method>-r<ratio>-s<seed>/    one run folder per point, evaluated with its last (eval/test) and its
                                  best-validated (eval/test-best) checkpoint
    budget.jsonl                  one JSON line per finished point
    budget.csv, budget.md         mean ± sd over seeds per method and ratio
    budget.png, report.html       test Dice against the labelled share, with error bars; every run compared

A semi-supervised method at ratio 1 has no unlabelled image and is left out (supervised at 1 is the upper bound).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.checkpoint_io import load_checkpoint, training_finished
from medseg.config import Config
from medseg.convergence import validation_change, validation_scores
from medseg.engine.trainer import train_or_resume
from medseg.evaluation import evaluate_run
from medseg.run_folder import RunFolder
from medseg.selection.loop import expand_rounds, round_split
from medseg.selection.select import build_strategy
from medseg.sweep.plan import Point, plan_points, point_config, point_split, split_file
from medseg.sweep.rows import read_rows, replace_rows
from medseg.sweep.summary import summarise

__all__ = ["Selection", "run_budget", "load_rows"]


def _row(point: Point, run: RunFolder, last: dict, best: dict) -> dict[str, Any]:
    checkpoint = load_checkpoint(run.checkpoint("last"))
    splits = list(run.splits().values())
    history = run.metrics()
    validated = [score for _, score in validation_scores(history)[1]]
    return {
        "method": point.method,
        "strategy": point.select,
        "ratio": point.ratio,
        "seed": point.seed,
        "labelled_cases": splits.count("train"),
        "unlabelled_cases": splits.count("unlabeled"),
        "steps": checkpoint["step"],
        "minutes": round(checkpoint["seconds"] / 60, 2),
        "best_val": max(validated) if validated else None,
        "last_val": validated[-1] if validated else None,
        "val_change_last_30pct": validation_change(history),
        "test_dice_last": last["metrics"]["dice"]["mean"],
        "test_dice_best": best["metrics"]["dice"]["mean"],
        "test_hd95_last": last["metrics"]["hd95"]["mean"],
        # where many test cases hold no lesion (a volume's slices), the Dice of the lesion cases and the share of the
        # lesion-free ones given a mask say more than the mean over all cases (None in older summaries)
        "test_dice_lesion_last": _by_truth(last, "lesion", "dice"),
        "test_dice_lesion_best": _by_truth(best, "lesion", "dice"),
        "test_false_positive_rate_last": _by_truth(last, "lesion_free", "false_positive_rate"),
        "best_epoch": best["epoch"],
        "epochs": checkpoint["epoch"],
    }


def _by_truth(summary: dict, group: str, figure: str) -> float | None:
    """A figure of an evaluation summary's `by_truth` (`medseg.metrics.by_truth`); None where the summary has none
    or the group no case."""
    split = summary.get("by_truth", {}).get(group)
    if not split or not split["n"]:
        return None
    value = split[figure]
    return value["mean"] if isinstance(value, dict) else value


def _check_same_config(run: RunFolder, cfg: Config) -> None:
    """A point's folder from an earlier invocation is resumed or kept only if it was made with the same config.

    Raises:
        ValueError: the folder's config.yaml differs (names the keys).
    """
    if not run.config_path.is_file():
        return
    differ = _differences(run.config.model_dump(mode="json"), cfg.model_dump(mode="json"))
    if differ:
        raise ValueError(
            f"{run.path} was trained with another config ({', '.join(differ[:5])} differ): "
            "give the budget another --out, or remove that folder"
        )


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for key in keys for d in _differences(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def _finished(run: RunFolder, cfg: Config) -> bool:
    last = run.checkpoint("last")
    trained = last.is_file() and training_finished(load_checkpoint(last), cfg.train.epochs)
    evaluated = [run.summary("test"), run.summary("test-best")]
    return trained and all(evaluated) and [s["checkpoint"] for s in evaluated] == ["last.pt", "best.pt"]


@dataclass(frozen=True)
class Selection:
    """A simulated annotation loop (`medseg budget ... --select`, see `medseg.selection.loop`).

    Attributes:
        strategy: the strategy spec (`name` or `name:key=value...`).
        rounds: equal rounds up to each labelled share.
        cold_start: the first round's strategy where `strategy` needs a model.
        max_per_group: at most this many labelled cases per group.
    """

    strategy: str
    rounds: int = 1
    cold_start: str = "diversity"
    max_per_group: int | None = None


def run_budget(
    cfg: Config,
    out: str | Path,
    methods: Sequence[str],
    ratios: Sequence[float],
    seeds: Sequence[int],
    note: Callable[[str], None] = print,
    show_progress: bool = False,
    selection: Selection | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every point not finished yet (a started one resumes), then write the table, the plot and
    the report; returns one row per point. With `selection`, each (method, seed) is an annotation loop over the
    shares (`rounds` per share), every round's labelled cases picked by the strategy.

    Raises:
        ValueError: an unknown method or strategy, a ratio outside (0, 1], or a config a point's method refuses.
    """
    out = Path(out)
    if selection is not None:
        for spec in (selection.strategy, selection.cold_start):
            build_strategy(spec)
        ratios = expand_rounds([r for r in ratios if r < 1], selection.rounds)
    points = plan_points(methods, ratios, seeds, selection.strategy if selection else None)
    splits = {point: point_split(cfg, out, point) for point in points}
    # every point's config first: a typo in the last point's options stops the budget before anything is written
    configs = [point_config(cfg, point, splits[point][0]) for point in points]
    for point in points:
        if point.select is None:
            split_file(cfg, out, point.ratio, point.seed)
    previous: dict[tuple[str, int], tuple[Path, Path]] = {}  # a loop's last round: its split file and run folder
    rows = []
    for number, (point, point_cfg) in enumerate(zip(points, configs, strict=True), start=1):
        run = RunFolder(out / point.folder)
        _check_same_config(run, point_cfg)
        after = f"{len(points) - number} point(s) after this one"
        if selection is not None:
            split_path, picks_path = splits[point]
            before = previous.get((point.method, point.seed))
            round_split(
                cfg, split_path, picks_path, selection.strategy, point.ratio, point.seed, before,
                selection.cold_start, selection.max_per_group, note,
            )  # fmt: skip
            previous[(point.method, point.seed)] = (split_path, run.path)
        if _finished(run, point_cfg):
            note(f"[{number}/{len(points)}] {point.folder}: done, kept ({after})")
            last, best = run.summary("test"), run.summary("test-best")
        else:
            note(f"[{number}/{len(points)}] {point.folder}: training {point_cfg.train.epochs} epochs ({after})")
            train_or_resume(point_cfg, run.path, show_progress=show_progress)
            last = evaluate_run(run.path, "test", which="last")
            best = evaluate_run(run.path, "test", which="best", label="test-best")
        rows.append(_row(point, run, last, best))
        if selection is not None:
            rows[-1]["round"] = sorted(set(ratios)).index(point.ratio) + 1
            rows[-1]["picks"] = splits[point][1].name
        replace_rows(out / "budget.jsonl", rows[-1:], _point_key)
    summarise(rows, out)
    return rows


def load_rows(out: str | Path) -> list[dict[str, Any]]:
    """The rows of `<out>/budget.jsonl`."""
    return read_rows(Path(out) / "budget.jsonl")


def _point_key(row: dict[str, Any]) -> tuple:
    return row["method"], row.get("strategy"), row["ratio"], row["seed"]
