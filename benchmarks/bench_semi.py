"""Semi-supervised benchmark: every method at a label ratio, several seeds, an equal budget of optimiser steps.

All runs of one output folder share one train/val/test split (made once, by group, from `--split-seed`);
each seed draws its own labelled subset of the training split (by group), shared by every method, and seeds
the training. The budget is `--epochs` × `--steps` optimiser steps for every method (a step takes a labelled
batch, and for the semi-supervised methods also an unlabelled one); the best validation checkpoint is
evaluated on the test split. Finished runs are skipped, so an interrupted benchmark continues.

    .venv/bin/python benchmarks/bench_semi.py run configs/figshare-cdma-10pct.yaml --ratio 0.1 \
        --methods all --seeds 0 1 --epochs 8 --steps 75 --out runs/bench-semi/figshare
    .venv/bin/python benchmarks/bench_semi.py table runs/bench-semi/figshare ... --plot benchmarks/semi.png

`run` appends one JSON line per finished run to `OUT/results.jsonl`; `table` prints the markdown table
(test Dice and HD95, mean ± std over seeds, minutes per run) and draws Dice against the label ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from medseg.atomic import write_text_atomic
from medseg.config import Config, load_config
from medseg.data.dataset import prepare_dataset
from medseg.data.splits import write_splits
from medseg.engine.checkpoint import load_checkpoint
from medseg.engine.trainer import train_or_resume
from medseg.evaluation import evaluate_run

# every method on the config's encoder widths (model.features): (model, method) sections per method
METHODS: dict[str, tuple[dict, dict]] = {
    "supervised": ({"name": "unet"}, {"name": "supervised"}),
    "entropy_min": ({"name": "unet"}, {"name": "entropy_minimization"}),
    "mean_teacher": ({"name": "unet"}, {"name": "mean_teacher"}),
    "ua_mt": ({"name": "unet"}, {"name": "ua_mt"}),
    "cct": ({"name": "mtnet", "attentions": ["none"] * 4}, {"name": "cct"}),
    "cps": ({"name": "unet"}, {"name": "cps"}),
    "urpc": ({"name": "unet"}, {"name": "urpc"}),
    "mcnet": (
        {"name": "mtnet", "attentions": ["none"] * 3, "upsampling": ["transpose", "bilinear", "nearest"]},
        {"name": "mcnet"},
    ),
    "cdma": ({"name": "mtnet", "attentions": ["ca", "sa", "cbam"]}, {"name": "cdma", "temperature": 10}),
}
ORDER = list(METHODS) + ["full"]


def _config(path: str, method: str, ratio: float | None, overrides: list[str]) -> Config:
    """The benchmark's config for `method` at label `ratio` (None = every training mask)."""
    raw = yaml.safe_load(Path(path).read_text())
    model, method_section = METHODS[method]
    raw["model"] = {"features": raw.get("model", {}).get("features", [16, 32, 64, 128, 256]), **model}
    raw["method"] = dict(method_section)
    raw["data"].pop("labeled_count", None)
    raw["data"]["labeled_ratio"] = ratio
    return load_config(raw, overrides)


def _base_split(config: str, overrides: list[str], out: Path, seed: int) -> Path:
    """One train/val/test split for every run in `out` (no labelled draw: each run draws its own)."""
    path = out / "splits.csv"
    if not path.is_file():
        cfg = _config(config, "supervised", None, overrides)
        dataset = prepare_dataset(cfg.data, seed)
        out.mkdir(parents=True, exist_ok=True)
        write_splits(path, dataset.cases, dataset.assignment)
    return path


def _finished(results: Path) -> set[tuple[str, float, int]]:
    if not results.is_file():
        return set()
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {(r["method"], r["ratio"], r["seed"]) for r in rows}


def run(args: argparse.Namespace) -> None:
    methods = [m for name in args.methods for m in (list(METHODS) if name == "all" else [name])]
    split_file = _base_split(args.config, args.overrides, args.out, args.split_seed)
    results = args.out / "results.jsonl"
    budget = [f"train.epochs={args.epochs}", f"train.steps_per_epoch={args.steps}"]
    for seed in args.seeds:
        for method in methods:
            full = method == "full"
            ratio = 1.0 if full else args.ratio
            if (method, ratio, seed) in _finished(results):
                continue
            overrides = [*args.overrides, *budget, f"data.split_file={split_file}", f"seed={seed}"]
            cfg = _config(args.config, "supervised" if full else method, None if full else ratio, overrides)
            run_dir = args.out / f"{method}-r{ratio:g}-seed{seed}"
            last = run_dir / "last.pt"
            if not last.is_file() or load_checkpoint(last)["epoch"] < cfg.train.epochs:
                train_or_resume(cfg, run_dir, show_progress=False)
            minutes = load_checkpoint(last)["seconds"] / 60
            metrics = evaluate_run(run_dir, "test", which="best")["metrics"]
            row = {
                "method": method,
                "ratio": ratio,
                "seed": seed,
                "dice": metrics["dice"]["mean"],
                "hd95": metrics["hd95"]["mean"],
                "minutes": minutes,
                "config": args.config,
            }
            previous = results.read_text() if results.is_file() else ""
            write_text_atomic(results, previous + json.dumps(row) + "\n")
            print(
                f"{method} ratio {ratio:g} seed {seed}: dice {row['dice']:.4f} hd95 {row['hd95']:.2f} "
                f"({minutes:.1f} min)",
                flush=True,
            )


def _cell(values: list[float], digits: int) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def table(args: argparse.Namespace) -> None:
    curves: dict[tuple[str, str], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    print("| data | labelled | method | seeds | test Dice | test HD95 (px) | minutes per run |")
    print("|---|---|---|---|---|---|---|")
    for folder in args.folders:
        rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
        grouped: dict[tuple[float, str], list[dict]] = defaultdict(list)
        for row in rows:
            grouped[(row["ratio"], row["method"])].append(row)
        for (ratio, method), runs in sorted(grouped.items(), key=lambda kv: (kv[0][0], ORDER.index(kv[0][1]))):
            dice = [r["dice"] for r in runs]
            print(
                f"| {folder.name} | {ratio:.0%} | {method} | {len(runs)} | {_cell(dice, 4)} | "
                f"{_cell([r['hd95'] for r in runs], 2)} | {statistics.mean(r['minutes'] for r in runs):.1f} |"
            )
            curves[(folder.name, method)][ratio].extend(dice)
    if args.plot:
        _plot(curves, args.plot)


def _plot(curves: dict[tuple[str, str], dict[float, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({name for name, _ in curves})
    figure, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        full = curves.get((dataset, "full"), {}).get(1.0)
        for (name, method), points in sorted(curves.items(), key=lambda kv: ORDER.index(kv[0][1])):
            if name != dataset or method == "full":
                continue
            ratios = sorted(points)
            means = [statistics.mean(points[r]) for r in ratios]
            spreads = [statistics.stdev(points[r]) if len(points[r]) > 1 else 0.0 for r in ratios]
            axis.errorbar([100 * r for r in ratios], means, yerr=spreads, marker="o", capsize=3, label=method)
        if full:
            axis.axhline(statistics.mean(full), color="black", linestyle="--", label="100% labels")
        axis.set(title=dataset, xlabel="labelled training slices (%)", ylabel="test Dice")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="train and evaluate the missing runs")
    go.add_argument("config")
    go.add_argument("overrides", nargs="*", help="key=value applied to every run")
    go.add_argument("--ratio", type=float, default=0.1)
    go.add_argument("--methods", nargs="+", default=["all"], help=f"all, or from {ORDER}")
    go.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    go.add_argument("--epochs", type=int, default=8)
    go.add_argument("--steps", type=int, default=75, help="optimiser steps per epoch")
    go.add_argument("--split-seed", type=int, default=0)
    go.add_argument("--out", type=Path, required=True)
    show = commands.add_parser("table", help="markdown table (and plot) of finished runs")
    show.add_argument("folders", nargs="+", type=Path)
    show.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    unknown = [m for m in getattr(args, "methods", []) if m not in ORDER and m != "all"]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {ORDER}")
    run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    main()
