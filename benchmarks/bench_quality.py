"""Segmentation quality of several models on one dataset over several seeds, at an equal training budget.

Every run trains on the same split (the first run's splits.csv is reused via `data.split_file`); only the
training seed changes. U-Net++ runs are evaluated in every inference mode (ensemble, pruned L1..L4).
Prints a markdown table of test Dice and IoU, mean ± std over seeds.

    .venv/bin/python benchmarks/bench_quality.py configs/figshare-unet.yaml --models unet unetpp \
        --seeds 0 1 --epochs 12 --out runs/bench-quality [override ...]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from medseg.config import load_config
from medseg.engine.trainer import train
from medseg.evaluation import evaluate_run
from medseg.inference import Predictor
from medseg.models import inference_modes


def _modes(run_dir: Path) -> list[str | None]:
    modes = inference_modes(Predictor.load(run_dir).model)
    return [None] if modes == ["default"] else ["ensemble"] + [m for m in modes if m.startswith("prune=")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="key=value applied to every run")
    parser.add_argument("--models", nargs="+", default=["unet", "unetpp"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=None, help="same epoch budget for every model")
    parser.add_argument("--minutes", type=float, default=None, help="same time budget for every model")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-quality"))
    args = parser.parse_args()

    budget = [f"train.epochs={args.epochs}"] if args.epochs else []
    budget += [f"train.max_minutes={args.minutes}"] if args.minutes else []
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    split_file: Path | None = None
    for model in args.models:
        for seed in args.seeds:
            run_dir = args.out / f"{model}-seed{seed}"
            extra = [f"data.split_file={split_file}"] if split_file else []
            cfg = load_config(args.config, [*args.overrides, *budget, f"model.name={model}", f"seed={seed}", *extra])
            if not (run_dir / "best.pt").is_file():
                train(cfg, run_dir, show_progress=False)
            split_file = split_file or run_dir / "splits.csv"
            for mode in _modes(run_dir):
                summary = evaluate_run(run_dir, "test", mode=mode)
                dice, iou = summary["metrics"]["dice"]["mean"], summary["metrics"]["iou"]["mean"]
                results.setdefault((model, mode or "default"), []).append((dice, iou))
                print(f"{model} seed {seed} {mode or 'default'}: Dice {dice:.4f} IoU {iou:.4f}", flush=True)

    print("\n| model | inference | seeds | test Dice (mean ± std over seeds) | test IoU |")
    print("|---|---|---|---|---|")
    for (model, mode), values in results.items():
        dice = [v[0] for v in values]
        iou = [v[1] for v in values]
        spread = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
        print(
            f"| {model} | {mode} | {len(values)} | {statistics.mean(dice):.4f} ± {spread(dice):.4f} | "
            f"{statistics.mean(iou):.4f} ± {spread(iou):.4f} |"
        )


if __name__ == "__main__":
    main()
