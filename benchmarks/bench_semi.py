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
from pathlib import Path

from medseg.config import load_config
from medseg.sweep.markdown import replace_marked_block
from medseg.sweep.rows import read_rows, record_rows
from medseg.sweep.run import Selection, run_budget
from medseg.sweep.stats import mean_sd
from medseg.sweep.tables import by_point, curve_table, display, method_table, selection_table

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


def table(args: argparse.Namespace) -> None:
    lines = method_table(read_rows(RESULTS, dataset=args.dataset), args.ratio, args.baseline, args.alias)
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
    groups = by_point(rows, methods)
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for method in methods:
        points = {ratio: [r["test_dice_last"] for r in group] for (m, ratio), group in groups.items() if m == method}
        points.pop(1.0, None)  # every curve ends at the --full method's 100% point
        ratios = sorted(points)
        stats = [mean_sd(points[r]) for r in ratios]
        means, spreads = [mean for mean, _ in stats], [spread for _, spread in stats]
        label = display(method, args.alias)
        line = axis.errorbar([100 * r for r in ratios], means, yerr=spreads, marker="o", capsize=3, label=label)
        if full and ratios:  # dashed on to the full-label upper bound: the shares in between may be unmeasured
            colour = line.lines[0].get_color()
            axis.plot([100 * ratios[-1], 100], [means[-1], statistics.mean(full)], "--", color=colour, alpha=0.6)
    if full:
        mean, spread = mean_sd(full)
        label = f"100%: {display(args.full, args.alias)}"
        axis.errorbar([100], [mean], yerr=[spread], marker="s", color="black", capsize=3, label=label)
    axis.set(xscale="log", xlabel="labelled training slices (%)", ylabel="test Dice (last checkpoint)")
    axis.set_title(f"{args.dataset}: label budget (mean ± sd over seeds)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"plot: {args.out}\n")
    lines = curve_table(rows, methods, args.full, args.alias)
    print("\n".join(lines))
    if args.into:
        replace_marked_block(args.into, f"{args.dataset} curve", lines)
        print(f"\nwritten into {args.into}")


SELECTION = Path(__file__).parent / "results" / "selection.jsonl"


def selection(args: argparse.Namespace) -> None:
    picked = read_rows(SELECTION, dataset=args.dataset)
    lines = selection_table(read_rows(RESULTS, dataset=args.dataset), picked, args.method, args.ratio, args.alias)
    print("\n".join(lines))
    if args.into:
        replace_marked_block(args.into, f"{args.dataset} selection {args.ratio:g}", lines)
        print(f"\nwritten into {args.into}")


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
