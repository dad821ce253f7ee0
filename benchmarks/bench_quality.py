"""Segmentation quality of several models on one dataset over several seeds, at an equal training budget.

Every run trains on the same split (the first run's splits.csv is reused via `data.split_file`); only the
training seed changes. A model is a registered name plus options, `name[:key=value]...`, e.g. `unet`,
`unet:attention=cbam`, `msga:features=[16,32,64,128]:width=16`. U-Net++ runs are evaluated in every
inference mode (ensemble, pruned L1..L4). Prints a markdown table: test Dice, IoU and HD95 (mean ± std over
seeds), parameters, training images/s (steps × batch / training seconds, validation included) and
single-slice inference latency at the data size (median of 20, in this process).

    .venv/bin/python benchmarks/bench_quality.py configs/figshare-unet.yaml --models unet unetpp \
        --seeds 0 1 --epochs 12 --out runs/bench-quality [override ...]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

import torch

from medseg.checkpoint_io import load_checkpoint
from medseg.config import load_config
from medseg.engine.trainer import train_or_resume
from medseg.evaluation import evaluate_run
from medseg.inference import Predictor, resolve_checkpoint
from medseg.models import inference_modes
from medseg.specs import split_spec


def model_overrides(spec: str) -> list[str]:
    """`unet:attention=cbam` → `["model.name=unet", "model.attention=cbam"]`."""
    name, options = split_spec(spec)
    return [f"model.name={name}", *(f"model.{option}" for option in options)]


def _modes(run_dir: Path, which: str) -> list[str | None]:
    modes = inference_modes(Predictor.load(run_dir, which).model)
    if modes == ["default"]:
        return [None]
    return [m for m in modes if m == "ensemble" or m.startswith("prune=")]


@torch.no_grad()
def latency_ms(run_dir: Path, which: str, mode: str | None, repeats: int = 20) -> float:
    predictor = Predictor.load(run_dir, which, mode=mode)
    size, channels = predictor.cfg.data.size, predictor.cfg.data.channels
    image = torch.randn(1, channels, size, size)
    predictor.cfg.eval.tta = False
    for _ in range(3):
        predictor.probabilities(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.probabilities(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run_figures(run_dir: Path) -> tuple[float, float]:
    """(parameters in millions, training images/s) of a finished run."""
    state = load_checkpoint(resolve_checkpoint(run_dir, "last"))
    predictor = Predictor.load(run_dir, "last")
    params = sum(p.numel() for p in predictor.model.parameters())
    return params / 1e6, state["step"] * predictor.cfg.train.batch_size / state["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="key=value applied to every run")
    parser.add_argument("--models", nargs="+", default=["unet", "unetpp"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=None, help="same epoch budget for every model")
    parser.add_argument("--minutes", type=float, default=None, help="same time budget for every model")
    parser.add_argument("--which", default="best", help="checkpoint to evaluate: best, or last (no val split)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-quality"))
    args = parser.parse_args()

    budget = [f"train.epochs={args.epochs}"] if args.epochs else []
    budget += [f"train.max_minutes={args.minutes}"] if args.minutes else []
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    split_file: Path | None = None
    for model in args.models:
        for seed in args.seeds:
            run_dir = args.out / f"{re.sub(r'[^A-Za-z0-9=_.-]+', '_', model)}-seed{seed}"
            extra = [f"data.split_file={split_file}"] if split_file else []
            overrides = [*args.overrides, *budget, *model_overrides(model), f"seed={seed}", *extra]
            cfg = load_config(args.config, overrides)
            if not (run_dir / "last.pt").is_file() or load_checkpoint(run_dir / "last.pt")["epoch"] < cfg.train.epochs:
                train_or_resume(cfg, run_dir, show_progress=False)
            split_file = split_file or run_dir / "splits.csv"
            params, throughput = run_figures(run_dir)
            for mode in _modes(run_dir, args.which):
                metrics = evaluate_run(run_dir, "test", which=args.which, mode=mode)["metrics"]
                row = {name: metrics[name]["mean"] for name in ("dice", "iou", "hd95")}
                row |= {"params": params, "img_s": throughput, "latency": latency_ms(run_dir, args.which, mode)}
                results.setdefault((model, mode or "default"), []).append(row)
                print(f"{model} seed {seed} {mode or 'default'}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))

    def cell(rows: list[dict[str, float]], key: str, digits: int = 4) -> str:
        values = [r[key] for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"

    print(
        "\n| model | inference | seeds | test Dice | test IoU | test HD95 (px) | params (M) | train img/s "
        "| latency (ms/slice) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (model, mode), rows in results.items():
        means = {key: statistics.mean(r[key] for r in rows) for key in ("params", "img_s", "latency")}
        print(
            f"| {model} | {mode} | {len(rows)} | {cell(rows, 'dice')} | {cell(rows, 'iou')} | {cell(rows, 'hd95', 2)} "
            f"| {means['params']:.2f} | {means['img_s']:.1f} | {means['latency']:.1f} |"
        )


if __name__ == "__main__":
    main()
