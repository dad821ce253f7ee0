"""INT8 against float32 ONNX inference on the CPU, side by side in one process: latency at a given image size
(batch 1 and a batch) and test Dice of both on the run's own test split.

    .venv/bin/python benchmarks/bench_int8.py runs/bench-select/figshare/<run> --size 256 --threads 2

Each latency is the median of `--repeats` timed calls after warm-up. The files are written beside the run
(`model.onnx`, `model-int8.onnx`) and reused. Rows go to `benchmarks/results/int8.jsonl` with the machine.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import numpy as np
import torch

from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.metrics import binary_metrics
from medseg.onnx_export import OnnxPredictor, export_onnx
from medseg.provenance import machine
from medseg.run_folder import RunFolder
from medseg.sweep.rows import append_rows
from medseg.sweep.timing import median_seconds

RESULTS = Path(__file__).parent / "results" / "int8.jsonl"


def test_dice(predictor: OnnxPredictor, run: RunFolder) -> float:
    """Mean Dice of `predictor`'s masks on the run's test split, at the store's resolution."""
    cfg = run.config
    dataset = prepare_dataset(cfg.data, cfg.seed, run.splits())
    scores = []
    for batch in iterate_batches(dataset.store, dataset.rows("test"), 16):
        masks = predictor.masks_from(predictor.probabilities(batch["image"]))
        for predicted, truth in zip(masks, batch["mask"].numpy(), strict=True):
            scores.append(binary_metrics(predicted > 0, truth > 0)["dice"])
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--size", type=int, default=256, help="the latency's image side")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", type=int, default=256)
    parser.add_argument("--record", type=Path, default=RESULTS)
    parser.add_argument("--note", help="what a reader of the row must know (e.g. measured beside a training)")
    args = parser.parse_args()
    rows = []
    for path in args.runs:
        run = RunFolder(path)
        files = {"fp32": path / "model.onnx", "int8": path / "model-int8.onnx"}
        for precision, file in files.items():
            if not file.is_file():
                export_onnx(path, file, int8_calibration=args.calibration if precision == "int8" else None)
        predictors = {p: OnnxPredictor.load(f, threads=args.threads) for p, f in files.items()}
        channels = run.config.data.channels
        one = torch.randn(1, channels, args.size, args.size)
        many = torch.randn(args.batch, channels, args.size, args.size)
        row = {"run": str(path), "size": args.size, "batch": args.batch, **machine(), "threads": args.threads}
        row |= {"calibration": args.calibration, "note": args.note}
        for precision, predictor in predictors.items():
            predictor.cfg.eval.tta = False  # one pass
            row[f"{precision}_ms_one"] = round(
                1000 * median_seconds(partial(predictor.probabilities, one), args.repeats), 2
            )
            few = max(args.repeats // 4, 3)
            row[f"{precision}_ms_batch"] = round(1000 * median_seconds(partial(predictor.probabilities, many), few), 2)
            row[f"{precision}_test_dice"] = round(test_dice(predictor, run), 4)
        row["speedup_one"] = round(row["fp32_ms_one"] / row["int8_ms_one"], 2)
        row["speedup_batch"] = round(row["fp32_ms_batch"] / row["int8_ms_batch"], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    append_rows(args.record, rows)


if __name__ == "__main__":
    main()
