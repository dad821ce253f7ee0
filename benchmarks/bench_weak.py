"""Weak supervision benchmark: from image-level labels only to masks, against full supervision on one split.

One classifier (the config's `weak.classifier`, trained on "lesion present" labels) is shared by every weak
run. Its maps (cam, acam, gradcam) are compared for localisation on the test split's lesion slices (pointing
game; Dice of the map thresholded at θ_FG) and as pseudo-masks of the training split (precision / recall of
the confident lesion pixels against the true masks). Then the second stages are trained (a segmentation
network on ACAM and on CAM pseudo-masks; WSR on ACAM seeds) and a fully supervised network with the same
model, budget and split. Test Dice is reported on every test slice and on the lesion slices only; the
headline is weak / full on lesion slices. Finished runs (and the shared classifier) are reused, so an
interrupted benchmark continues with the run it was in, from the start of that run.

    .venv/bin/python benchmarks/bench_weak.py configs/lgg-weak.yaml --out runs/bench-weak [override ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from medseg.atomic import write_text_atomic
from medseg.config import Config, load_config
from medseg.data.dataset import prepare_dataset
from medseg.data.splits import read_splits
from medseg.engine.checkpoint import load_checkpoint
from medseg.engine.trainer import train_or_resume
from medseg.evaluation import evaluate_run
from medseg.run_folder import RunFolder
from medseg.weak.pipeline import classifier_config, resume_weak, write_pseudo_masks

SECOND_STAGES = {
    "acam-segmentation": ("acam", "segmentation"),
    "acam-wsr": ("acam", "wsr"),
    "cam-segmentation": ("cam", "segmentation"),
}


def _with(cfg: Config, **weak) -> Config:
    raw = cfg.model_dump(mode="json")
    raw["weak"] = {**raw["weak"], **weak}
    return load_config(raw)


def _done(run_dir: Path, epochs: int) -> bool:
    last = run_dir / "last.pt"
    return last.is_file() and load_checkpoint(last)["epoch"] >= epochs


def _test_dice(run_dir: Path) -> dict[str, float]:
    """Test Dice over every slice and over the slices whose true mask is not empty."""
    summary = evaluate_run(run_dir, "test")
    cfg = load_config(run_dir / "config.yaml")
    data = cfg.data.model_copy(update={"mask_override": None})
    dataset = prepare_dataset(data, cfg.seed, read_splits(run_dir / "splits.csv"))
    lesion = {dataset.store.ids[r] for r in dataset.rows("test") if (dataset.store.masks[r] == 1).any()}
    with (run_dir / "eval" / "test" / "cases.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    on_lesions = [float(r["dice"]) for r in rows if r["id"] in lesion]
    return {
        "dice_all": summary["metrics"]["dice"]["mean"],
        "dice_lesion": statistics.mean(on_lesions),
        "lesion_slices": len(on_lesions),
        "minutes": load_checkpoint(run_dir / "last.pt")["seconds"] / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-weak"))
    parser.add_argument("--stages", nargs="+", default=list(SECOND_STAGES), choices=list(SECOND_STAGES))
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    args.out.mkdir(parents=True, exist_ok=True)

    classifier_run = args.out / "classifier"
    if not _done(classifier_run, cfg.weak.epochs):
        train_or_resume(classifier_config(cfg), classifier_run, show_progress=False)
    results: dict = {"classifier": evaluate_run(classifier_run, "test")["metrics"]}
    results["classifier"]["minutes"] = load_checkpoint(classifier_run / "last.pt")["seconds"] / 60

    results["maps"] = {}
    for maps in ("cam", "acam", "gradcam"):
        with tempfile.TemporaryDirectory() as scratch:
            quality = write_pseudo_masks(RunFolder(classifier_run), _with(cfg, maps=maps), Path(scratch) / "pseudo.npz")
        results["maps"][maps] = quality
        print(
            f"{maps}: test pointing {quality['test']['pointing_game']:.3f}, "
            f"map Dice {quality['test']['map_dice']:.3f}, train pseudo-masks {quality['train']['pseudo_mask']}",
            flush=True,
        )

    results["runs"] = {}
    for name in args.stages:
        maps, stage2 = SECOND_STAGES[name]
        run_dir = args.out / name
        if not (run_dir / "classifier").exists():  # every second stage starts from the same classifier
            shutil.copytree(classifier_run, run_dir / "classifier")
            write_text_atomic(run_dir / "weak.yaml", _with(cfg, maps=maps, stage2=stage2).to_yaml())
        if not _done(run_dir, cfg.train.epochs):
            resume_weak(run_dir, show_progress=False)
        results["runs"][name] = _test_dice(run_dir)
        print(name, results["runs"][name], flush=True)

    full_dir = args.out / "full"
    if not _done(full_dir, cfg.train.epochs):
        raw = cfg.model_dump(mode="json")
        raw["supervision"] = "masks"
        raw["data"]["split_file"] = str((classifier_run / "splits.csv").resolve())
        train_or_resume(load_config(raw), full_dir, show_progress=False)
    results["runs"]["full"] = _test_dice(full_dir)
    full = results["runs"]["full"]["dice_lesion"]
    for figures in results["runs"].values():
        figures["weak_over_full"] = figures["dice_lesion"] / full if full else None
    write_text_atomic(args.out / "results.json", json.dumps(results, indent=2, default=float))

    print(
        "\n| map | test pointing game | test map Dice (≥ θ_FG) | train pseudo-masks: precision | recall "
        "| lesion called background | unknown share |"
    )
    print("|---|---|---|---|---|---|---|")
    for maps, q in results["maps"].items():
        pm = q["train"]["pseudo_mask"]
        print(
            f"| {maps} | {q['test']['pointing_game']:.3f} | {q['test']['map_dice']:.3f} | {pm['precision']:.3f} "
            f"| {pm['recall']:.3f} | {pm['background_error']:.3f} | {pm['unknown_share']:.3f} |"
        )
    print("\n| run | test Dice, all slices | test Dice, lesion slices | / full (lesion slices) | minutes |")
    print("|---|---|---|---|---|")
    for name, f in results["runs"].items():
        print(
            f"| {name} | {f['dice_all']:.4f} | {f['dice_lesion']:.4f} | {f['weak_over_full'] or float('nan'):.3f} "
            f"| {f['minutes']:.1f} |"
        )


if __name__ == "__main__":
    main()
