"""The semi-supervised protocol: methods × labelled shares × seeds on one split, through `medseg budget`'s
machinery (every run to a fixed number of optimiser steps, the lr annealed to 0 at the last one; the last and the
best-validated checkpoints both evaluated on test; nothing chosen on test), with the results kept in the repository.

    .venv/bin/python benchmarks/bench_semi.py run configs/figshare-semi.yaml --dataset figshare \
        --ratios 0.1 1 --methods supervised bcp mean_teacher cps cdma --seeds 0 1 2 --out runs/bench-semi/figshare
    .venv/bin/python benchmarks/bench_semi.py table --dataset figshare --ratio 0.1 [--into benchmarks/RESULTS.md]
    .venv/bin/python benchmarks/bench_semi.py plot --dataset figshare --out benchmarks/semi-figshare.png \
        --methods supervised bcp --full supervised [--into benchmarks/RESULTS.md]
    .venv/bin/python benchmarks/bench_semi.py curves runs/bench-semi/figshare --out benchmarks/semi-curves.png

`run` appends one JSON line per finished point to `benchmarks/results/semi.jsonl` (with the CPU, whether it
computes bf16 natively, the torch version, the config and its overrides) and copies the split files into
`benchmarks/splits/<dataset>/`, so anyone reruns exactly the same cases (`data.split_file`); `--record FILE` sends
the lines elsewhere (a rerun on another machine, kept beside the recorded point). `table` prints, per
method, test Dice (last and best-validated checkpoint) as mean ± sd over seeds, the paired per-seed margin over
supervised-only on the same labelled draw, the share of the full-label Dice, steps, minutes, how much the
validation Dice still moved over the last 30% of training, and where many test slices hold no lesion (LGG), the
Dice over the lesion slices and the share of lesion-free slices given a mask.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

from medseg.config import load_config
from medseg.sweep.markdown import replace_marked_block
from medseg.sweep.rows import read_rows, record_rows
from medseg.sweep.run import Selection, run_budget
from medseg.sweep.stats import cell, machines, mean_sd, paired_margins, points

RESULTS = Path(__file__).parent / "results" / "semi.jsonl"
SPLITS = Path(__file__).parent / "splits"


def _key(row: dict) -> tuple:
    return row["dataset"], row["method"], row.get("strategy"), row["ratio"], row["seed"], row["steps"]


def _same_result(old: dict, new: dict) -> bool:
    """A point kept, not retrained, by `run_budget`: it keeps its line, with the machine and minutes of its run."""
    return all(old[key] == new[key] for key in ("test_dice_last", "test_dice_best"))


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.config, args.overrides)
    selection = None
    if args.select:
        selection = Selection(args.select, args.rounds, args.cold_start, args.max_per_group)
    note = lambda line: print(line, flush=True)  # noqa: E731
    rows = run_budget(cfg, args.out, args.methods, args.ratios, args.seeds, note=note, selection=selection)
    fields = {"dataset": args.dataset, "config": args.config, "overrides": args.overrides}
    record_rows(args.record, rows, _key, _same_result, **fields)
    target = SPLITS / args.dataset
    target.mkdir(parents=True, exist_ok=True)
    for split_file in sorted((args.out / "splits").glob("*.csv")):
        shutil.copyfile(split_file, target / split_file.name)
    print(f"{len(rows)} rows in {args.record}; splits in {target}")


def _display(method: str, aliases: list[str]) -> str:
    """The method's text with each `short=text` alias's text replaced by its short name (long overrides)."""
    for alias in aliases:
        short, text = alias.split("=", 1)
        method = method.replace(text, short)
    return method


def table_lines(rows: list[dict], ratio: float, baseline: str, aliases: list[str]) -> list[str]:
    """The markdown table of the recorded rows at one labelled share (and the 100% rows), then the machines."""
    full = [r["test_dice_last"] for r in rows if r["method"].split(":")[0] == "supervised" and r["ratio"] == 1.0]
    supervised = [r for r in rows if r["method"] == baseline and r["ratio"] == ratio]
    by_method: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        if row["ratio"] in (ratio, 1.0):
            by_method[(row["method"], row["ratio"])].append(row)
    # lesion-slice columns only where test slices without a lesion exist (LGG): elsewhere they repeat the Dice
    lesion_free = any(r.get("test_false_positive_rate_last") is not None for r in rows)
    columns = ["method", "labelled", "seeds", "steps", "minutes", "test Dice, last", "test Dice, best val"]
    columns += ["margin over supervised (paired, last)", "× full", "val change, last 30%"]
    if lesion_free:
        columns += ["lesion-slice Dice, last", "lesion-free slices given a mask, last"]
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for (method, share), members in sorted(by_method.items(), key=lambda item: (-item[0][1], item[0][0])):
        last = [r["test_dice_last"] for r in members]
        margins = paired_margins(members, supervised, "test_dice_last")
        of_full = f"{statistics.mean(last) / statistics.mean(full):.3f}" if full else "—"
        change = [r["val_change_last_30pct"] for r in members if r["val_change_last_30pct"] is not None]
        line = (
            f"| {_display(method, aliases)} | {share:.0%} | {len(members)} | {members[0]['steps']} | "
            f"{statistics.mean(r['minutes'] for r in members):.1f} | {cell(last)} | "
            f"{cell([r['test_dice_best'] for r in members])} | "
            f"{cell(margins) if share != 1.0 and method != baseline else '—'} | {of_full} | {cell(change, 3)} |"
        )
        if lesion_free:
            line += (
                f" {cell([r.get('test_dice_lesion_last') for r in members])} | "
                f"{cell([r.get('test_false_positive_rate_last') for r in members], 3)} |"
            )
        lines.append(line)
    lines += ["", f"machines: {machines(rows)}"]
    return lines


def table(args: argparse.Namespace) -> None:
    lines = table_lines(read_rows(RESULTS, dataset=args.dataset), args.ratio, args.baseline, args.alias)
    print("\n".join(lines))
    if args.into:
        replace_marked_block(args.into, f"{args.dataset} {args.ratio:g}", lines)
        print(f"\nwritten into {args.into}")


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rows(RESULTS, dataset=args.dataset)
    full = [r["test_dice_last"] for r in rows if r["ratio"] == 1.0 and r["method"] == args.full]
    methods = args.methods or sorted({r["method"] for r in rows if r["ratio"] < 1.0})
    groups = _by_point(rows, methods)
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for method in methods:
        points = {ratio: [r["test_dice_last"] for r in group] for (m, ratio), group in groups.items() if m == method}
        points.pop(1.0, None)  # every curve ends at the --full method's 100% point
        ratios = sorted(points)
        stats = [mean_sd(points[r]) for r in ratios]
        means, spreads = [mean for mean, _ in stats], [spread for _, spread in stats]
        label = _display(method, args.alias)
        line = axis.errorbar([100 * r for r in ratios], means, yerr=spreads, marker="o", capsize=3, label=label)
        if full and ratios:  # dashed on to the full-label upper bound: the shares in between may be unmeasured
            colour = line.lines[0].get_color()
            axis.plot([100 * ratios[-1], 100], [means[-1], statistics.mean(full)], "--", color=colour, alpha=0.6)
    if full:
        mean, spread = mean_sd(full)
        label = f"100%: {_display(args.full, args.alias)}"
        axis.errorbar([100], [mean], yerr=[spread], marker="s", color="black", capsize=3, label=label)
    axis.set(xscale="log", xlabel="labelled training slices (%)", ylabel="test Dice (last checkpoint)")
    axis.set_title(f"{args.dataset}: label budget (mean ± sd over seeds)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"plot: {args.out}\n")
    lines = curve_lines(rows, methods, args.full, args.alias)
    print("\n".join(lines))
    if args.into:
        replace_marked_block(args.into, f"{args.dataset} curve", lines)
        print(f"\nwritten into {args.into}")


SELECTION = Path(__file__).parent / "results" / "selection.jsonl"


def selection_lines(draws: list[dict], picked: list[dict], method: str, ratio: float, aliases: list[str]) -> list[str]:
    """The selection table at one labelled share for one training method: the random draws of whole groups (the
    curve's, from semi.jsonl) and each strategy's picks (selection.jsonl), with test Dice (last and best-validated
    checkpoint), the worst seed, and the margin over the random draws' mean and, per seed, over the draw. Where test
    slices without a lesion exist (LGG), the Dice is over the lesion slices, with the share of lesion-free slices
    given a mask and the all-slice Dice beside it."""
    random = {r["seed"]: r for r in draws if r["method"] == method and r["ratio"] == ratio}
    by_strategy: dict[str, list[dict]] = defaultdict(list)
    for row in picked:
        if row["method"] == method and row["ratio"] == ratio:
            by_strategy[row["strategy"]].append(row)
    everyone = [*random.values(), *(r for members in by_strategy.values() for r in members)]
    lesion_free = any(r.get("test_false_positive_rate_last") is not None for r in everyone)
    last_key, best_key = (
        ("test_dice_lesion_last", "test_dice_lesion_best") if lesion_free else ("test_dice_last", "test_dice_best")
    )
    random_mean = statistics.mean(r[last_key] for r in random.values()) if random else None
    dice = "lesion-slice Dice" if lesion_free else "test Dice"
    columns = ["picked by", "labelled", "seeds", f"{dice}, last", f"{dice}, best val", "worst seed"]
    columns += ["− random draws' mean (points)", "− random draw of the seed (points)"]
    if lesion_free:
        columns += ["lesion-free slices given a mask, last", "all-slice Dice, last"]
    lines = [f"{_display(method, aliases)} at {ratio:.0%}:", "", "| " + " | ".join(columns) + " |"]
    lines.append("|---" * len(columns) + "|")
    groups = [("random draw of whole groups", list(random.values()))] + sorted(by_strategy.items())
    for name, members in groups:
        if not members:
            continue
        last = [r[last_key] for r in members]
        margin_mean = [value - random_mean for value in last] if random_mean is not None else []
        paired = paired_margins(members, list(random.values()), last_key)
        labelled = sorted({r["labelled_cases"] for r in members})
        baseline = name.startswith("random draw")
        line = (
            f"| {name} | {'/'.join(map(str, labelled))} | {len(members)} | {cell(last)} | "
            f"{cell([r[best_key] for r in members])} | {min(last):.4f} | "
            f"{'—' if baseline else points(margin_mean)} | {'—' if baseline else points(paired)} |"
        )
        if lesion_free:
            line += (
                f" {cell([r['test_false_positive_rate_last'] for r in members], 3)} |"
                f" {cell([r['test_dice_last'] for r in members])} |"
            )
        lines.append(line)
    lines += ["", f"strategies' machines: {machines(r for members in by_strategy.values() for r in members)}"]
    return lines


def selection(args: argparse.Namespace) -> None:
    picked = read_rows(SELECTION, dataset=args.dataset)
    lines = selection_lines(read_rows(RESULTS, dataset=args.dataset), picked, args.method, args.ratio, args.alias)
    print("\n".join(lines))
    if args.into:
        replace_marked_block(args.into, f"{args.dataset} selection {args.ratio:g}", lines)
        print(f"\nwritten into {args.into}")


def _by_point(rows: list[dict], methods: list[str]) -> dict[tuple[str, float], list[dict]]:
    """The rows of `methods`, grouped by (method, labelled share): one group per point of the curve."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        if row["method"] in methods:
            groups[(row["method"], row["ratio"])].append(row)
    return groups


def _seeds_note(members: list[dict]) -> str:
    seeds = sorted(r["seed"] for r in members)
    return f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))


def curve_lines(rows: list[dict], methods: list[str], full_method: str, aliases: list[str]) -> list[str]:
    """The budget curve as a markdown table: one row per labelled share, one column per method, each cell the
    test Dice at the last checkpoint (mean ± sd over seeds) and which seeds it holds, each share with its number of
    labelled slices; the 100% row holds `full_method`'s runs under its own column, where every curve ends."""
    cells = {
        (m, ratio): group for (m, ratio), group in _by_point(rows, methods).items() if ratio < 1.0 or m == full_method
    }
    labelled: dict[float, set[int | None]] = defaultdict(set)
    for (_, ratio), group in cells.items():
        labelled[ratio].update(r.get("labelled_cases") for r in group)
    lines = ["| labelled | " + " | ".join(_display(method, aliases) for method in methods) + " |"]
    lines.append("|---" * (len(methods) + 1) + "|")
    for ratio in sorted(labelled):
        row_cells = []
        for method in methods:
            members = cells.get((method, ratio), [])
            dice = [r["test_dice_last"] for r in members]
            row_cells.append(f"{cell(dice, 3)} ({_seeds_note(members)})" if members else "—")
        count, *others = labelled[ratio]
        share = f"{ratio:.0%} ({count} labelled)" if not others and count is not None else f"{ratio:.0%}"
        lines.append(f"| {share} | " + " | ".join(row_cells) + " |")
    return lines


def curves(args: argparse.Namespace) -> None:
    """Validation Dice per epoch of every run folder at one labelled share, one panel per seed: whether each run
    had converged (flat over its last ~30%)."""
    import csv
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suffix = f"-r{args.ratio:g}-s"
    runs = sorted(
        path
        for path in args.runs.glob(f"*{suffix}*")
        if (path / "metrics.csv").is_file() and (not args.only or any(path.name.startswith(p) for p in args.only))
    )
    if not runs:
        raise SystemExit(f"no run folders *{suffix}* with a metrics.csv under {args.runs}")
    method_and_seed = {}
    for path in runs:
        method, seed = path.name.rsplit(suffix, 1)
        method_and_seed[path] = (method, int(seed))
    seeds = sorted({seed for _, seed in method_and_seed.values()})
    # One colour per method across panels, so a method is found at a glance in every seed's panel.
    methods = sorted({method for method, _ in method_and_seed.values()})
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {method: palette[i % len(palette)] for i, method in enumerate(methods)}
    figure, axes = plt.subplots(1, len(seeds), figsize=(6.5 * len(seeds), 4.2), squeeze=False)
    for axis, seed in zip(axes[0], seeds, strict=True):
        for path in runs:
            method, run_seed = method_and_seed[path]
            if run_seed != seed:
                continue
            with (path / "metrics.csv").open() as handle:
                rows = list(csv.DictReader(handle))
            axis.plot(
                [int(r["epoch"]) for r in rows],
                [float(r["val_dice"]) for r in rows],
                color=colours[method],
                label=textwrap.fill(method, 48),
            )
        axis.set(xlabel="epoch", ylabel="validation Dice", title=f"{args.ratio:.0%} labels, seed {seed}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"curves: {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="train and evaluate the missing points, record them")
    go.add_argument("config")
    go.add_argument("overrides", nargs="*", help="key=value applied to every run")
    go.add_argument("--dataset", required=True, help="the name results and splits are kept under")
    go.add_argument("--ratios", nargs="+", type=float, default=[0.1, 1.0])
    go.add_argument("--methods", nargs="+", default=["supervised", "bcp"])
    go.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    go.add_argument("--out", type=Path, required=True)
    go.add_argument("--select", help="a selection strategy: simulate the annotation loop instead of random draws")
    go.add_argument("--rounds", type=int, default=1, help="--select: equal rounds up to each share")
    go.add_argument("--cold-start", default="diversity", help="--select: first round where the strategy needs a model")
    go.add_argument("--max-per-group", type=int, help="--select: at most this many labelled cases per group")
    go.add_argument(
        "--record",
        type=Path,
        default=RESULTS,
        help="the JSON-lines file the rows go to (default: the one the tables read); another file keeps a rerun of a "
        "recorded point from replacing it",
    )
    show = commands.add_parser("table", help="markdown table of the recorded points")
    show.add_argument("--dataset", required=True)
    show.add_argument("--ratio", type=float, default=0.1)
    show.add_argument("--baseline", default="supervised", help="the supervised-only row margins are paired with")
    show.add_argument("--alias", nargs="*", default=[], help="SHORT=TEXT: print TEXT in method names as SHORT")
    show.add_argument(
        "--into",
        type=Path,
        help="also replace the table between `<!-- generated DATASET RATIO -->` and "
        "`<!-- /generated -->` in this markdown file (RESULTS.md)",
    )
    pick = commands.add_parser("selection", help="markdown table of the selection strategies against random draws")
    pick.add_argument("--dataset", required=True)
    pick.add_argument("--ratio", type=float, default=0.05)
    pick.add_argument("--method", default="supervised", help="the training method whose rows are compared")
    pick.add_argument("--alias", nargs="*", default=[], help="SHORT=TEXT: print TEXT in method names as SHORT")
    pick.add_argument("--into", type=Path, help="also replace `<!-- generated DATASET selection RATIO -->`")
    draw = commands.add_parser("plot", help="test Dice against the labelled share")
    draw.add_argument("--dataset", required=True)
    draw.add_argument("--out", type=Path, required=True)
    draw.add_argument("--methods", nargs="*", default=[], help="the methods to draw (default: every one below 100%%)")
    draw.add_argument("--full", default="supervised", help="the 100%% method every curve ends at")
    draw.add_argument("--alias", nargs="*", default=[], help="SHORT=TEXT: print TEXT in method names as SHORT")
    draw.add_argument(
        "--into",
        type=Path,
        help="also replace the points' table between `<!-- generated DATASET curve -->` and "
        "`<!-- /generated -->` in this markdown file (RESULTS.md)",
    )
    trace = commands.add_parser("curves", help="validation Dice per epoch of the run folders at one share")
    trace.add_argument("runs", type=Path, help="the --out folder of `run`")
    trace.add_argument("--ratio", type=float, default=0.1)
    trace.add_argument("--out", type=Path, required=True)
    trace.add_argument("--only", nargs="*", default=[], help="draw only the run folders whose names start so")
    args = parser.parse_args()
    {"run": run, "table": table, "plot": plot, "curves": curves, "selection": selection}[args.command](args)


if __name__ == "__main__":
    main()
