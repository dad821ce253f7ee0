"""Native resolution against the square path, on one split and one budget: each pair trains in its own process (so
that its peak memory is its own) and is measured at the resolution the masks were drawn at.

    .venv/bin/python benchmarks/bench_native.py isbi --out runs/bench-native/isbi
    .venv/bin/python benchmarks/bench_native.py figshare --out runs/bench-native/figshare

isbi: ISBI 2012 EM (512×512 sections) resized to 256 against native 512 with 256 patches and sliding windows, the
same number of optimiser steps. figshare: the committed 128×128 config (20 minutes) against native 256×256 (the
shared PNGs) with 160 patches, the same 20 minutes. The square run is measured both at its own resolution and
against the source masks (`eval.resolution: source`, its probabilities upsampled), the native one at its own.
Rows (Dice at each resolution, epochs, minutes, peak RSS of the training process) are appended to
`benchmarks/results/native.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from medseg.atomic import write_text_atomic
from medseg.checkpoint_io import load_checkpoint
from medseg.evaluation import evaluate_run
from medseg.provenance import machine
from medseg.sweep.rows import append_rows

RESULTS = Path(__file__).parent / "results" / "native.jsonl"
ROOT = Path(__file__).resolve().parents[1]

PAIRS = {
    "isbi": {
        "config": "configs/isbi-unet.yaml",
        "square": [],
        "native": ["data.resolution=native", "augment.patch=256"],
    },
    "figshare": {
        "config": "configs/figshare-unet.yaml",
        "square": [],
        "native": ["data.resolution=native", "augment.crop=null", "augment.patch=160", "train.batch_size=8"],
    },
}


def _train(config: str, overrides: list[str], run: Path) -> int:
    """`medseg train` in a child process; returns its peak resident memory in MiB."""
    if (run / "last.pt").is_file() and (run / "eval").is_dir():
        return json.loads((run / "peak_rss.json").read_text())["mib"]
    command = [sys.executable, "-m", "medseg", "train", config, *overrides, "--run-dir", str(run), "--quiet"]
    child = subprocess.Popen([*command, "--overwrite", "--no-evaluate"], cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak (KiB), not the largest child's so far
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    mib = round(usage.ru_maxrss / 1024)
    write_text_atomic(run / "peak_rss.json", json.dumps({"mib": mib}))
    return mib


def run_pair(name: str, out: Path) -> list[dict]:
    pair = PAIRS[name]
    split = out / "splits.csv"
    rows = []
    for kind in ("square", "native"):
        run = out / kind
        overrides = list(pair[kind])
        if split.is_file():
            overrides.append(f"data.split_file={split.resolve()}")
        mib = _train(pair["config"], overrides, run)
        if not split.is_file():
            split.write_text((run / "splits.csv").read_text())
        stored = evaluate_run(run, "test")
        source = evaluate_run(run, "test", overrides=["eval.resolution=source"], label="test-source")
        checkpoint = load_checkpoint(run / "last.pt")
        rows.append(
            {
                "dataset": name,
                "kind": kind,
                "overrides": pair[kind],
                "stored_resolution": stored["resolution"],
                "dice_stored": stored["metrics"]["dice"]["mean"],
                "dice_source": source["metrics"]["dice"]["mean"],
                "hd95_source_px": source["metrics"]["hd95"]["mean"],
                "cases": source["cases"],
                "epochs": checkpoint["epoch"],
                "steps": checkpoint["step"],
                "minutes": round(checkpoint["seconds"] / 60, 2),
                "peak_rss_mib": mib,
                **machine(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    append_rows(RESULTS, rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pair", choices=sorted(PAIRS))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run_pair(args.pair, args.out)


if __name__ == "__main__":
    main()
