"""How long one selection round takes: every strategy picking `--count` cases from a data set's training cases
(with a trained run's model for the model-based strategies and for diversity's features), on this CPU.

    .venv/bin/python benchmarks/bench_select.py configs/figshare-semi.yaml data.splits.train=1 data.splits.val=0 \
        data.splits.test=0 data.labeled_ratio=null --run runs/bench-select/figshare/<a run> --count 100

The pool's images are decoded once into the store beforehand (as any second round finds them); each row times
building the pool from the store and picking. Rows go to `benchmarks/results/select_speed.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from medseg.config import load_config
from medseg.data.readers import build_reader
from medseg.inference import Predictor
from medseg.provenance import machine
from medseg.selection.base import STRATEGIES
from medseg.selection.select import build_pool, build_strategy, select_cases, training_assignment
from medseg.sweep.rows import append_rows

RESULTS = Path(__file__).parent / "results" / "select_speed.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--run", type=Path, help="a trained run whose model guides the model-based strategies")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--max-per-group", type=int, default=10)
    parser.add_argument("--record", type=Path, default=RESULTS)
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    assignment = training_assignment(cfg, build_reader(cfg.data.source).cases())
    build_pool(cfg, assignment)  # decode the images into the store once
    predictor = Predictor.load(args.run, which="last") if args.run else None
    build_strategy("random")  # registration
    rows = []
    for name in STRATEGIES.names():
        needs = STRATEGIES[name].needs_model
        models = [None, predictor] if name == "diversity" else [predictor if needs else None]
        for model in models:
            if needs and model is None:
                continue
            start = time.perf_counter()
            pool = build_pool(cfg, assignment, model, reveal_foreground=True)
            picks = select_cases(pool, build_strategy(name), args.count, 0, max_per_group=args.max_per_group)
            seconds = time.perf_counter() - start
            row = {
                "strategy": name,
                "model": model is not None,
                "candidates": len(pool.candidates),
                "picked": len(picks),
                "seconds": round(seconds, 2),
                "config": args.config,
                "overrides": args.overrides,
                **machine(),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    append_rows(args.record, rows)


if __name__ == "__main__":
    main()
