"""The label-budget curve: every method at every share of labelled training cases and seed, on one split, in one
resumable command (`medseg budget`).

    <out>/splits/r<ratio>-s<seed>.csv   the split (drawn once, with the config's seed) and, per seed, the labelled
                                        cases at each ratio (nested: a seed's 5% cases are among its 10%)
    <out>/<method>-r<ratio>-s<seed>/    one run folder per point, evaluated on the test split with its last
                                        (eval/test) and its best-validated (eval/test-best) checkpoint
    <out>/budget.jsonl                  one JSON line per finished point
    <out>/budget.csv, budget.md         mean ± sd over seeds per method and ratio
    <out>/budget.png, report.html       test Dice against the labelled share, with error bars; every run compared

A semi-supervised method at ratio 1 has no unlabelled image and is left out (supervised at 1 is the upper bound).
"""

from __future__ import annotations

import html
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.atomic import atomic_path, write_text_atomic
from medseg.checkpoint_io import load_checkpoint, training_finished
from medseg.config import Config, load_config, parse_overrides
from medseg.convergence import validation_change, validation_scores
from medseg.data.readers import build_reader
from medseg.data.splits import draw_labeled, split_by_group, write_splits
from medseg.engine.trainer import train_or_resume
from medseg.evaluation import evaluate_run
from medseg.methods import METHODS
from medseg.resolve import resolve_config
from medseg.run_folder import RunFolder
from medseg.selection.loop import expand_rounds, round_files, round_split
from medseg.selection.select import build_strategy
from medseg.specs import split_spec

__all__ = ["Point", "Selection", "plan_points", "run_budget", "summarise", "parse_budget_arguments", "mean_sd"]

DEFAULTS = {
    "ratios": ["0.05", "0.1", "0.25", "0.5", "1"],
    "methods": ["supervised"],
    "seeds": ["0", "1", "2"],
    "out": [],
    "select": [],
    "rounds": ["1"],
    "cold-start": ["diversity"],
    "max-per-group": [],
}


def parse_budget_arguments(arguments: Sequence[str]) -> tuple[str, list[str], dict[str, list[str]]]:
    """`CONFIG [key=value ...] [--ratios R ...] [--methods M ...] [--seeds S ...] [--out DIR]` → (config, overrides,
    options); an option takes the values up to the next `--option`.

    Raises:
        ValueError: no config, an unknown option, or an option without values.
    """
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    current: list[str] | None = None
    for token in arguments:
        if token.startswith("--"):
            name = token[2:]
            if name not in DEFAULTS:
                raise ValueError(f"medseg budget: unknown option {token}; options: --{', --'.join(DEFAULTS)}")
            current = options.setdefault(name, [])
        elif current is not None:
            current.append(token)
        else:
            positional.append(token)
    empty = [name for name, values in options.items() if not values]
    if not positional or empty:
        raise ValueError(
            "medseg budget CONFIG [key=value ...] [--ratios R ...] [--methods M ...] [--seeds S ...] [--out DIR] "
            "[--select S [--rounds K] [--cold-start S] [--max-per-group N]]"
            + (f": --{empty[0]} needs values" if empty else ": a config is needed")
        )
    return positional[0], positional[1:], {**DEFAULTS, **options}


@dataclass(frozen=True)
class Point:
    """One run of the curve: `method` (a registered name, or `name:key=value...` with config overrides) at a
    labelled share `ratio` with `seed` (the labelled draw and the initialisation)."""

    method: str
    ratio: float
    seed: int
    overrides: tuple[str, ...] = field(default=())
    select: str | None = None  # the selection strategy of a simulated annotation loop; None = a random draw

    @property
    def method_name(self) -> str:
        return self.method.split(":")[0]

    @property
    def label(self) -> str:
        """The method spec as a file-name part."""
        return _slug(self.method)

    @property
    def select_label(self) -> str | None:
        """The selection strategy spec as a file-name part."""
        return _slug(self.select) if self.select else None

    @property
    def folder(self) -> str:
        picked = f"-{self.select_label}" if self.select else ""
        return f"{self.label}{picked}-r{self.ratio:g}-s{self.seed}"


def _slug(spec: str) -> str:
    """`name:key=value` → `name-keyvalue`, usable in a file name."""
    return spec.replace(":", "-").replace("=", "").replace("/", "_")


def plan_points(
    methods: Sequence[str], ratios: Sequence[float], seeds: Sequence[int], select: str | None = None
) -> list[Point]:
    """Every (method, ratio, seed), ratio by ratio; semi-supervised methods skip ratio 1, and so does every method
    of a selection loop (`select`: nothing is left to pick).

    Raises:
        ValueError: an unknown method or a ratio outside (0, 1].
    """
    for ratio in ratios:
        if not 0 < ratio <= 1:
            raise ValueError(f"--ratios take shares of the labelled training cases in (0, 1], got {ratio}")
    points = []
    for ratio in sorted(set(ratios)):
        for text in methods:
            name, options = split_spec(text)
            if (METHODS[name].uses_unlabeled or select) and ratio == 1:
                continue
            points += [Point(text, ratio, seed, tuple(options), select) for seed in seeds]
    if not points:
        raise ValueError(
            f"no point to train: {', '.join(methods)} at {', '.join(f'{r:g}' for r in ratios)}"
            + (" (a selection loop has nothing to pick at 1)" if select else "")
            + " (semi-supervised methods need a labelled share below 1)"
        )
    return points


def _split_path(cfg: Config, out: Path, ratio: float, seed: int) -> Path:
    return out / "splits" / f"r{ratio:g}-s{seed}{'-stratified' if cfg.data.stratify_by_label else ''}.csv"


def _split_file(cfg: Config, out: Path, ratio: float, seed: int) -> Path:
    """The split for (ratio, seed), written once: the config's split, the labelled draw of `seed` at `ratio`."""
    stratified = cfg.data.stratify_by_label
    path = _split_path(cfg, out, ratio, seed)
    if not path.is_file():
        cases = build_reader(cfg.data.source).cases()
        assignment = split_by_group(cases, cfg.data.splits.model_dump(), cfg.seed, stratified)
        if ratio < 1:
            assignment = draw_labeled(cases, assignment, seed, ratio=ratio, stratify=stratified)
        write_splits(path, cases, assignment)
    return path


def point_config(cfg: Config, point: Point, split_file: Path) -> Config:
    """The config of one point: the budget's (as written, not resolved: each point's method completes the model
    its own way), with the point's method, seed and split file (and its overrides). A method that needs another
    family of network (cdma, mcnet and cct a multi-branch MTNet) gets that network with the config's features."""
    raw = cfg.model_dump(mode="json")
    raw["name"] = point.folder
    raw["seed"] = point.seed
    # the config's method section applies to its own method's points; another method starts from its defaults
    same = cfg.method.get("name") == point.method_name
    raw["method"] = dict(cfg.method) if same else {"name": point.method_name}
    family = METHODS[point.method_name].model_family
    if family not in (None, cfg.model["name"]):
        raw["model"] = {"name": family, **({"features": cfg.model["features"]} if "features" in cfg.model else {})}
    raw["data"] = {**raw["data"], "split_file": str(split_file.resolve()), "labeled_ratio": None}
    raw["data"]["labeled_count"] = raw["data"]["labeled_file"] = None
    merged = _merge(raw, parse_overrides(list(point.overrides)))
    return resolve_config(load_config(merged), f"{point.folder}")


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


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
    splits = {point: _point_split(cfg, out, point) for point in points}
    # every point's config first: a typo in the last point's options stops the budget before anything is written
    configs = [point_config(cfg, point, splits[point][0]) for point in points]
    for point in points:
        if point.select is None:
            _split_file(cfg, out, point.ratio, point.seed)
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
        _append_line(out / "budget.jsonl", rows[-1])
    summarise(rows, out)
    return rows


def _point_split(cfg: Config, out: Path, point: Point) -> tuple[Path, Path | None]:
    """A point's split file (a random draw's written now; a selection round's when its turn comes) and picks file."""
    if point.select is None:
        return _split_path(cfg, out, point.ratio, point.seed), None
    return round_files(out, point.select_label, point.label, point.ratio, point.seed)


def _append_line(path: Path, row: dict) -> None:
    """Append `row` to the JSON lines file, replacing an earlier line of the same point."""

    def key(r: dict) -> tuple:
        return r["method"], r.get("strategy"), r["ratio"], r["seed"]

    lines = [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    kept = [line for line in lines if key(json.loads(line)) != key(row)]
    write_text_atomic(path, "\n".join([*kept, json.dumps(_without_nan(row))]) + "\n")


def _without_nan(value: Any) -> Any:
    """NaN (an undefined HD95, say) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    return value


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd of the seeds' values (sd 0 for one seed)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict[str, Any]], out: str | Path) -> list[dict[str, Any]]:
    """`budget.csv`, `budget.md`, `budget.png` and `report.html` from the rows; returns the table (mean ± sd of
    the last and best-validated checkpoints' test Dice over seeds, per method and ratio)."""
    from medseg.report import write_comparison  # matplotlib, only for the pictures

    out = Path(out)
    groups: dict[tuple[str, float], list[dict]] = {}
    for row in rows:
        series = f"{row['method']} + {row['strategy']}" if row.get("strategy") else row["method"]
        groups.setdefault((series, row["ratio"]), []).append(row)
    table = []
    for (method, ratio), members in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        last, last_sd = mean_sd([r["test_dice_last"] for r in members])
        best, best_sd = mean_sd([r["test_dice_best"] for r in members])
        table.append(
            {
                "method": method,
                "ratio": ratio,
                "seeds": len(members),
                "test_dice_last": round(last, 4),
                "sd_last": round(last_sd, 4),
                "test_dice_best": round(best, 4),
                "sd_best": round(best_sd, 4),
                "minutes": round(statistics.mean(r["minutes"] for r in members), 1),
                "steps": members[0]["steps"],
            }
        )
    header = list(table[0]) if table else []
    lines = [",".join(header), *(",".join(str(row[h]) for h in header) for row in table)]
    write_text_atomic(out / "budget.csv", "\n".join(lines) + "\n")
    markdown = [
        "| method | labelled | seeds | test Dice (last) | test Dice (best val) | minutes | steps |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['method']} | {r['ratio']:.0%} | {r['seeds']} | {r['test_dice_last']:.4f} ± {r['sd_last']:.4f} "
            f"| {r['test_dice_best']:.4f} ± {r['sd_best']:.4f} | {r['minutes']} | {r['steps']} |"
            for r in table
        ),
    ]
    write_text_atomic(out / "budget.md", "\n".join(markdown) + "\n")
    picture = _plot(table, out / "budget.png")
    runs = sorted(p.parent for p in out.glob("*/config.yaml"))
    if runs:
        write_comparison(runs, out / "report.html", "test", preamble=["<h2>Label budget</h2>", picture, _html(table)])
    return table


def _html(table: list[dict[str, Any]]) -> str:
    head = "<tr><th>method</th><th>labelled</th><th>seeds</th><th>test Dice (last)</th><th>test Dice (best val)</th>"
    body = "".join(
        f"<tr><th>{html.escape(r['method'])}</th><td>{r['ratio']:.0%}</td><td>{r['seeds']}</td>"
        f"<td>{r['test_dice_last']:.4f} ± {r['sd_last']:.4f}</td>"
        f"<td>{r['test_dice_best']:.4f} ± {r['sd_best']:.4f}</td></tr>"
        for r in table
    )
    return f"<table>{head}</tr>{body}</table>"


def _plot(table: list[dict[str, Any]], path: Path) -> str:
    """Test Dice (last checkpoint) against the labelled share, mean ± sd over seeds, one line per method; saved
    to `path`; returns an `<img>` of it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medseg.report import figure_img

    figure, axis = plt.subplots(figsize=(6, 4))
    for method in sorted({r["method"] for r in table}):
        rows = sorted((r for r in table if r["method"] == method), key=lambda r: r["ratio"])
        axis.errorbar(
            [100 * r["ratio"] for r in rows],
            [r["test_dice_last"] for r in rows],
            yerr=[r["sd_last"] for r in rows],
            marker="o",
            capsize=3,
            label=method,
        )
    axis.set(xscale="log", xlabel="labelled training cases (%)", ylabel="test Dice", title="Label budget")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return figure_img(figure, "test Dice against the labelled share")


def load_rows(out: str | Path) -> list[dict[str, Any]]:
    """The rows of `<out>/budget.jsonl`."""
    path = Path(out) / "budget.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
