"""nnU-Net v2 beside medseg on figshare: its `2d` configuration on medseg's split (train + val → its fold 0, test →
imagesTs), at the same wall-clock budget as medseg's figshare config, both measured on the same test slices at
256×256 (the shared PNGs' size) with medseg's metrics.

nnU-Net lives in its own virtual environment with the same CPU torch wheel (never a dependency of medseg):

    python3 -m venv /work/nnunet-venv && /work/nnunet-venv/bin/pip install torch==2.13.0 && \\
        /work/nnunet-venv/bin/pip install nnunetv2
    .venv/bin/python benchmarks/bench_nnunet.py --venv /work/nnunet-venv --split SPLITS.csv --minutes 20 \\
        --medseg-run runs/bench-native/figshare/square runs/bench-native/figshare/native --out runs/bench-nnunet

What is changed to fit the budget (nothing else): a trainer subclass, `nnUNetTrainer_MedsegBudget`, written into
nnU-Net's trainer folder of that environment, with 50 training and 10 validation iterations per epoch (instead of
250 and 50) and as many epochs as fit in `--minutes` at the pace of a one-epoch trial (the epoch time nnU-Net logs;
its poly learning rate then reaches 0 at the last of them; when one epoch is all that fits, the trial is the
training); one data-augmentation process (2 cores). The plans,
network, loss, augmentation and inference (with its mirroring) are nnU-Net's own. On a CPU nnU-Net trains in float32
(its autocast is for CUDA only), where medseg uses bf16 when the CPU computes it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.atomic import write_text_atomic
from medseg.metrics import aggregate, case_metrics
from medseg.provenance import machine

RESULTS = Path(__file__).parent / "results" / "nnunet.jsonl"
FIGSHARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain-tumor-figshare"
DATASET = "Dataset500_Figshare"
TRAINER = '''
import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_MedsegBudget(nnUNetTrainer):
    """nnU-Net's trainer with shorter epochs and as many as a wall-clock budget allows (medseg's bench_nnunet.py)."""

    # nnU-Net records its trainer's arguments by the signature's names: they must be spelled out, not *args
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_iterations_per_epoch = 50
        self.num_val_iterations_per_epoch = 10
        self.num_epochs = int(__import__("os").environ.get("MEDSEG_NNUNET_EPOCHS", "1"))
'''


def export(split_file: Path, raw: Path) -> tuple[list[str], list[str], list[str]]:
    """figshare's PNGs in nnU-Net's raw layout, with medseg's split; returns (train, val, test) ids."""
    with split_file.open() as handle:
        rows = list(csv.DictReader(handle))
    ids = {name: [r["id"] for r in rows if r["split"] == name] for name in ("train", "val", "test")}
    folder = raw / DATASET
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in ("train", "val", "test"):
        images, labels = ("imagesTs", "labelsTs") if name == "test" else ("imagesTr", "labelsTr")
        for case in ids[name]:
            shutil.copyfile(FIGSHARE / "images" / f"{case}.png", folder / images / f"fig{case}_0000.png")
            mask = (np.asarray(Image.open(FIGSHARE / "masks" / f"{case}.png")) > 0).astype(np.uint8)
            Image.fromarray(mask).save(folder / labels / f"fig{case}.png")
    dataset = {
        "channel_names": {"0": "MRI"},
        "labels": {"background": 0, "tumour": 1},
        "numTraining": len(ids["train"]) + len(ids["val"]),
        "file_ending": ".png",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return ids["train"], ids["val"], ids["test"]


def _run(venv: Path, command: list[str], env: dict, log: Path) -> float:
    started = time.perf_counter()
    with log.open("a") as handle:
        subprocess.run(
            [str(venv / "bin" / command[0]), *command[1:]], env=env, check=True, stdout=handle, stderr=handle
        )
    return time.perf_counter() - started


def _epoch_times(results: Path) -> list[float]:
    """Every "Epoch time: X s" nnU-Net logged (training and validation iterations; not its start-up or the final
    validation of the whole fold, which medseg's budget does not count either)."""
    times = [
        float(line.split("Epoch time:")[1].split()[0])
        for log in sorted(results.rglob("training_log_*.txt"))
        for line in log.read_text().splitlines()
        if "Epoch time:" in line
    ]
    return times


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _finished(results: Path, epochs: int) -> bool:
    """Whether nnU-Net's fold 0 finished a training of exactly `epochs` epochs (its final checkpoint and log)."""
    finals = list(results.rglob("fold_0/checkpoint_final.pth"))
    return bool(finals) and len(_epoch_times(results)) == epochs


def _trainer_folder(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages/nnunetv2/training/nnUNetTrainer"))
    if not found:
        raise SystemExit(f"{venv}: no nnunetv2 installed there")
    return found[0]


def evaluate(predictions: Path, labels: Path) -> dict:
    records = []
    for label in sorted(labels.glob("*.png")):
        truth = np.asarray(Image.open(label))
        pred = np.asarray(Image.open(predictions / label.name))
        records.append({"id": label.stem, **case_metrics(pred, truth)})
    return {"cases": len(records), "metrics": aggregate(records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True, help="medseg's splits.csv of the run compared with")
    parser.add_argument("--medseg-run", type=Path, nargs="*", default=[], help="medseg runs to report beside")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=20.0)
    args = parser.parse_args()
    out = args.out.resolve()
    raw, preprocessed, results = out / "raw", out / "preprocessed", out / "results"
    env = {
        **os.environ,
        "nnUNet_raw": str(raw),
        "nnUNet_preprocessed": str(preprocessed),
        "nnUNet_results": str(results),
        "nnUNet_n_proc_DA": "1",
        "nnUNet_compile": "false",
    }
    log = out / "nnunet.log"
    out.mkdir(parents=True, exist_ok=True)
    train_ids, val_ids, _ = export(args.split, raw)
    (_trainer_folder(args.venv) / "nnUNetTrainer_MedsegBudget.py").write_text(TRAINER)
    if not (preprocessed / DATASET / "nnUNetPlans.json").is_file():
        _run(args.venv, ["nnUNetv2_plan_and_preprocess", "-d", "500", "-c", "2d", "-np", "2"], env, log)
    splits = [{"train": [f"fig{i}" for i in train_ids], "val": [f"fig{i}" for i in val_ids]}]
    (preprocessed / DATASET / "splits_final.json").write_text(json.dumps(splits))
    train = ["nnUNetv2_train", "500", "2d", "0", "-tr", "nnUNetTrainer_MedsegBudget", "-device", "cpu"]
    if not _finished(results, epochs=1):  # one epoch, to set the pace
        shutil.rmtree(results, ignore_errors=True)
        _run(args.venv, train, {**env, "MEDSEG_NNUNET_EPOCHS": "1"}, log)
    if not _epoch_times(results):
        raise SystemExit(f"{results}: nnU-Net logged no epoch time (see {log})")
    trial = _epoch_times(results)[0]
    epochs = max(1, int(args.minutes * 60 // trial))
    if not _finished(results, epochs):  # with one epoch in the budget, the trial is the training
        shutil.rmtree(results, ignore_errors=True)
        _run(args.venv, train, {**env, "MEDSEG_NNUNET_EPOCHS": str(epochs)}, log)
    predictions = out / "predictions"
    predict = ["nnUNetv2_predict", "-i", str(raw / DATASET / "imagesTs"), "-o", str(predictions), "-d", "500"]
    _run(args.venv, [*predict, "-c", "2d", "-f", "0", "-tr", "nnUNetTrainer_MedsegBudget", "-device", "cpu"], env, log)
    nnunet = evaluate(predictions, raw / DATASET / "labelsTs")
    plan = json.loads((preprocessed / DATASET / "nnUNetPlans.json").read_text())["configurations"]["2d"]
    row = {
        "dataset": "figshare",
        "tool": "nnunetv2 2d",
        "epochs": epochs,
        "iterations_per_epoch": 50,
        "batch_size": plan["batch_size"],
        "patch_size": plan["patch_size"],
        "trial_epoch_seconds": round(trial, 1),
        "training_minutes": round(sum(_epoch_times(results)) / 60, 2),
        "test_cases": nnunet["cases"],
        "dice_256": nnunet["metrics"]["dice"]["mean"],
        "hd95_256_px": _finite(nnunet["metrics"]["hd95"]["mean"]),  # undefined when no slice has a prediction
        "precision": "float32",  # nnU-Net's autocast is for CUDA only; bf16 below is what the CPU could do
        **machine(),
    }
    row["epoch_seconds_mean"] = round(statistics.mean(_epoch_times(results)), 1)
    for run in args.medseg_run:  # at the source masks' 256×256: test-source for a square run, test for a native one
        label = "test-source" if (run / "eval" / "test-source").is_dir() else "test"
        summary = json.loads((run / "eval" / label / "summary.json").read_text())
        row.setdefault("medseg_dice_256", {})[str(run)] = summary["metrics"]["dice"]["mean"]
    old = RESULTS.read_text() if RESULTS.is_file() else ""
    write_text_atomic(RESULTS, old + json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
