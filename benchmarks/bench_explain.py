"""Explanation methods scored on one run's lesion slices (`medseg.explanations.scores`: pointing game, energy inside
the lesion, deletion and insertion areas), one JSON line per method in `benchmarks/results/explain_scores.jsonl`
with the machine; RESULTS.md's table is generated from those lines (`regenerate_results.py`).

    .venv/bin/python benchmarks/bench_explain.py runs/bench-select/lgg/supervised-diversity-r0.1-s0 \
        --label "unet 16..256 (LGG 10%, diversity seed 0)" --methods scorecam
    .venv/bin/python benchmarks/bench_explain.py runs/explain/lgg-classifier --label "classifier, max pooling (LGG)" \
        --classifier configs/lgg-weak.yaml weak.classifier_tries=1

`--classifier CONFIG [key=value ...]` first trains (or finishes) the config's stage-1 classifier on image labels into
RUN — the weak pipeline's classifier, whose maps are what a weak run starts from — so that the methods that read a
classifier's own weights (CAM, ACAM) are scored too. Without `--methods`, every method that explains the network.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from medseg.config import load_config
from medseg.engine.trainer import train_or_resume
from medseg.explanations.scores import score_methods
from medseg.sweep.rows import record_rows
from medseg.weak.stages import classifier_config

RESULTS = Path(__file__).parent / "results" / "explain_scores.jsonl"


def _point(row: dict) -> tuple:
    return row["run"], row["method"], row["split"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--label", required=True, help="the network as the table names it")
    parser.add_argument("--methods", nargs="*", help="default: every method that explains the network")
    parser.add_argument("--split", default="test")
    parser.add_argument("--classifier", nargs="+", metavar="CONFIG [key=value]", help="train the stage-1 classifier")
    parser.add_argument("--record", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.classifier:
        config, *overrides = args.classifier
        train_or_resume(classifier_config(load_config(config, overrides)), args.run, show_progress=False)
    fields = {"run": str(args.run), "model": args.label, "split": args.split}
    for row in score_methods(str(args.run), args.methods or None, args.split):  # each line kept once measured
        record_rows(args.record, [row], _point, date=datetime.date.today().isoformat(), **fields)
        print(
            f"{row['method']}: pointing {row['pointing']:.3f}, inside {row['energy_inside']:.3f}, "
            f"deletion {row['deletion_auc']:.3f}, insertion {row['insertion_auc']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
