"""Weak supervision benchmark: from image-level labels only to masks, against full supervision on one split.

For each seed: one classifier (the config's `weak.classifier` on "lesion present" labels) is trained (with
`weak.classifier_tries`, more seeds on the same split until one's maps localise on the validation patients) and the
one the recipe uses is evaluated on the test patients (accuracy, ROC AUC). Its maps are compared as seeds: each map
method (cam, acam, layercam; each without and with the CRF) gives pseudo-masks with θ_FG chosen on the validation
patients, measured against the true masks of the training slices with a lesion (precision, recall, Dice) and by the
pointing game on the test slices. Then the config's recipe runs to the end (its rounds of self-training), and a
fully supervised network with the same model, budget and split. Test Dice is reported on the lesion slices (each
round), with the false-positive rate on the tumour-free test slices, for the best-validated checkpoint (a weak run
validates on pseudo-masks, the full one on true masks) and the last; the headline is weak / full on lesion slices.
Each round's and the full run's Dice on the validation patients' lesion slices is reported beside them (what a
choice of rounds can be made on). With `weak.choose_postprocessing`, the full run gets the same choice of
post-processing on its validation patients as the weak run, and both are reported with it too.
Finished runs are reused, so an interrupted benchmark continues.

    .venv/bin/python benchmarks/bench_weak.py configs/lgg-weak.yaml --seeds 0 1 --out runs/bench-weak/lgg

`--stage1` stops after the classifier(s) and the maps (a quick check of a classifier recipe; rows in
`benchmarks/results/weak_stage1.jsonl`, `--table --stage1` prints them).

Every seed's figures go to `OUT/seed<k>/results.json` and one JSON line per seed to
`benchmarks/results/weak.jsonl` (with the CPU); `--table` prints the markdown tables from that file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from medseg.atomic import write_text_atomic
from medseg.checkpoint_io import load_checkpoint, training_finished
from medseg.config import Config, load_config
from medseg.engine.trainer import train_or_resume
from medseg.evaluation import evaluate_run
from medseg.postprocessing_choice import PLAIN, as_overrides, choose_postprocessing
from medseg.run_folder import RunFolder
from medseg.sweep.rows import read_rows, record_rows
from medseg.sweep.stats import cell
from medseg.weak.choices import choose_classifier
from medseg.weak.pipeline import resume_weak
from medseg.weak.relabelling import write_pseudo_masks
from medseg.weak.stages import classifier_config

RESULTS = Path(__file__).parent / "results" / "weak.jsonl"
STAGE1_RESULTS = Path(__file__).parent / "results" / "weak_stage1.jsonl"
BODY_MARGIN = 0.05  # the body prior's margin in the map variants that use it, unless the config sets its own
# (map, refinement, body prior): every map method, without and with the CRF; the recipe's kinds also inside the body
MAPS = [
    ("cam", "none", False),
    ("cam", "crf", False),
    ("acam", "none", False),
    ("acam", "crf", False),
    ("layercam", "none", False),
    ("layercam", "crf", False),
    ("acam", "crf", True),
    ("layercam", "none", True),
    ("layercam", "crf", True),
]


def _map_name(maps: str, refine: str, body: bool) -> str:
    return f"{maps}+{refine}" + ("+body" if body else "")


def _with(cfg: Config, **weak) -> Config:
    raw = cfg.model_dump(mode="json")
    raw["weak"] = {**raw["weak"], **weak}
    return load_config(raw)


def _done(run_dir: Path, epochs: int) -> bool:
    last = run_dir / "last.pt"
    return last.is_file() and training_finished(load_checkpoint(last), epochs)


def _figures(run_dir: Path, which: str = "best", split: str = "test", plain: bool = True) -> dict:
    """Dice over a split's slices with a lesion, and the share of tumour-free slices given a non-empty mask, with
    the best-validated or the last checkpoint (a weak run validates on pseudo-masks, a full one on true masks);
    without post-processing (`plain`), or as the run's eval settings say (chosen on validation)."""
    overrides = as_overrides(PLAIN) if plain else None
    label = (split if which == "best" else f"{split}-{which}") + ("" if plain else "-chosen")
    summary = evaluate_run(run_dir, split, which=which, overrides=overrides, label=label)
    lesion, free = summary["by_truth"]["lesion"], summary["by_truth"]["lesion_free"]
    return {
        "dice_lesion": lesion["dice"]["mean"],
        "dice_all": summary["metrics"]["dice"]["mean"],
        "false_positive_rate": free["false_positive_rate"],
        "lesion_slices": lesion["n"],
        "free_slices": free["n"],
        "minutes": load_checkpoint(run_dir / "last.pt")["seconds"] / 60,
        "epoch": summary["epoch"],
    }


def _ratio(weak: dict, full: dict) -> float | None:
    return weak["dice_lesion"] / full["dice_lesion"] if full["dice_lesion"] else None


def run_seed(cfg: Config, out: Path, seed: int, stage1_only: bool = False, only: list[str] | None = None) -> dict:
    raw = cfg.model_dump(mode="json")
    raw["seed"] = seed
    cfg = load_config(raw)
    out.mkdir(parents=True, exist_ok=True)
    classifier = out / "classifier"
    if not _done(classifier, cfg.weak.epochs):
        train_or_resume(classifier_config(cfg), classifier, show_progress=False)
    weak_dir = out / "weak"
    if not (weak_dir / "classifier").exists():  # the recipe starts from the same classifier
        shutil.copytree(classifier, weak_dir / "classifier")
        write_text_atomic(weak_dir / "weak.yaml", cfg.to_yaml())
    chosen = choose_classifier(cfg, RunFolder(weak_dir), show_progress=False)  # more tries if the first misleads
    results: dict = {"seed": seed, "classifier": evaluate_run(chosen.path, "test")["metrics"]}
    if "roc_auc_with_level_prior" in results["classifier"]:  # a level-balanced classifier; a number, as in older rows
        results["classifier"]["roc_auc_with_level_prior"] = results["classifier"]["roc_auc_with_level_prior"]["mean"]
    results["classifier_used"] = chosen.path.name
    if chosen.path.name != "classifier":
        results["classifier_first"] = evaluate_run(classifier, "test")["metrics"]
    report = json.loads((weak_dir / "weak.json").read_text()) if (weak_dir / "weak.json").is_file() else {}
    results["classifier_tries"] = report.get("classifier_tries")  # none recorded with one try
    results["weak_config"] = cfg.weak.model_dump(mode="json")
    earlier = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    same = earlier.get("classifier_used", "classifier") == chosen.path.name
    same = same and earlier.get("weak_config") == results["weak_config"]
    results["maps"] = earlier.get("maps", {}) if same else {}  # the same classifier and recipe give the same maps
    margin = cfg.weak.body_margin if cfg.weak.body_margin is not None else BODY_MARGIN
    for maps, refine, body in MAPS:
        name = _map_name(maps, refine, body)
        if name in results["maps"] or (only and name not in only):
            continue
        variant = _with(cfg, maps=maps, refine=refine, body_margin=margin if body else None, choose_thresholds=True)
        if maps == "acam" and variant.weak.classifier.get("pool") != "attention":
            continue
        with tempfile.TemporaryDirectory() as scratch:
            figures = write_pseudo_masks(chosen, variant, Path(scratch) / "p.npz")
        results["maps"][name] = figures
        print(f"seed {seed} {name}: {json.dumps(figures['train'])}", flush=True)
    if stage1_only:
        write_text_atomic(out / "results.json", json.dumps(results, indent=2, default=float))
        return results
    if not _done(weak_dir, cfg.train.epochs):
        resume_weak(weak_dir, show_progress=False)
    results["weak_json"] = json.loads((weak_dir / "weak.json").read_text())
    weak_run = RunFolder(weak_dir)
    rounds = {str(k): weak_run.round_folder(k).path for k in range(1, cfg.weak.rounds)} | {
        str(cfg.weak.rounds): weak_dir
    }
    results["rounds"] = {k: _figures(path) for k, path in rounds.items()}
    results["rounds_last"] = {k: _figures(path, "last") for k, path in rounds.items()}
    results["rounds_val_last"] = {k: _figures(path, "last", "val") for k, path in rounds.items()}
    full_dir = out / "full"
    if not _done(full_dir, cfg.train.epochs):
        raw = cfg.model_dump(mode="json")
        raw["supervision"] = "masks"
        raw["data"]["split_file"] = str((classifier / "splits.csv").resolve())
        train_or_resume(load_config(raw), full_dir, show_progress=False)
    results["full"], results["full_last"] = _figures(full_dir), _figures(full_dir, "last")
    results["full_val_last"] = _figures(full_dir, "last", "val")
    for rounds, full in (("rounds", results["full"]), ("rounds_last", results["full_last"])):
        for figures in results[rounds].values():
            figures["weak_over_full"] = _ratio(figures, full)
    if cfg.weak.choose_postprocessing:  # the full run gets the same choice on its validation patients
        which = cfg.eval.checkpoint
        full_choice = choose_postprocessing(full_dir, "val", which)
        weak, full = _figures(weak_dir, which, plain=False), _figures(full_dir, which, plain=False)
        results["postprocessed"] = {
            "checkpoint": which,
            "weak_choice": results["weak_json"]["postprocessing"],
            "full_choice": full_choice,
            "weak": {**weak, "weak_over_full": _ratio(weak, full)},
            "full": full,
        }
    write_text_atomic(out / "results.json", json.dumps(results, indent=2, default=float))
    return results


def record(results: dict, dataset: str, config: str, overrides: list[str], path: Path = RESULTS) -> None:
    """Add one seed's row to `path`, replacing an earlier row of the same dataset, seed, config and overrides."""
    record_rows(path, [results], _recipe_seed, dataset=dataset, config=config, overrides=overrides)


def _recipe_seed(row: dict) -> tuple:
    return row["dataset"], row["seed"], row["config"], tuple(row.get("overrides", []))


def _cell(values: list[float | None], digits: int = 3) -> str:
    return cell(values, digits)


def table(dataset: str) -> None:
    """The tables of each recipe (config and overrides) recorded for `dataset`, its seeds averaged."""
    recipes: dict[tuple, list[dict]] = {}
    for row in read_rows(RESULTS, dataset=dataset):
        recipes.setdefault((row["config"], " ".join(row.get("overrides", []))), []).append(row)
    for (config, overrides), kept in recipes.items():
        print(f"\n## {config} {overrides}".rstrip())
        recipe_table(kept)


def _try_figure(entry: dict) -> str:
    """A classifier try's validation figure: its pointing game, or (weak.choose_classifier) its best maps' Dice."""
    if "maps_choice" in entry:
        choice = entry["maps_choice"]
        return f"{choice['maps']} Dice {_cell([choice['validation_dice'][choice['maps']]], 2)}"
    return f"pointing {_cell([entry['val_pointing_game']], 2)}"


def recipe_table(rows: list[dict]) -> None:
    """One recipe's tables: classifier, tries, every map as seeds, each round against full supervision."""
    print(f"{len(rows)} seeds; " + "; ".join(sorted({f"{r['cpu']} (bf16 {r['bf16']})" for r in rows})))
    metrics = [r["classifier"] for r in rows]
    print(
        f"\nclassifier on test: accuracy {_cell([m['accuracy']['mean'] for m in metrics])}, "
        f"ROC AUC {_cell([m.get('roc_auc', {}).get('mean') for m in metrics])}"
    )
    for r in rows:
        tries = r.get("classifier_tries") or []
        tries = ", ".join(f"{t['folder']} {_try_figure(t)}" for t in tries)
        if tries:
            print(f"seed {r['seed']}: each classifier try on the validation patients: {tries}")
    print("\n| seeds (θ_FG on validation) | test pointing game | train pseudo-mask Dice | precision | recall |")
    print("|---|---|---|---|---|")
    for name in rows[0]["maps"]:
        maps = [r["maps"][name] for r in rows if name in r["maps"]]
        pseudo = [m["train"]["pseudo_mask"] for m in maps]
        print(
            f"| {name} | {_cell([m['test'].get('pointing_game') for m in maps])} | "
            f"{_cell([p.get('dice') for p in pseudo])} | {_cell([p['precision'] for p in pseudo])} | "
            f"{_cell([p['recall'] for p in pseudo])} |"
        )
    print(
        "\n| stage | checkpoint | test Dice, lesion slices | / full | false positives on tumour-free slices | minutes "
        "| validation Dice, lesion slices |"
    )
    print("|---|---|---|---|---|---|---|")
    for which, rounds, full_key in (("best val", "rounds", "full"), ("last", "rounds_last", "full_last")):
        kept = [r for r in rows if rounds in r]
        for k in kept[0][rounds] if kept else []:
            figures = [r[rounds][k] for r in kept]
            val = [r["rounds_val_last"][k]["dice_lesion"] for r in kept if which == "last" and "rounds_val_last" in r]
            print(f"| round {k} | {which} | {_row(figures)} | {_cell(val)} |")
        full = [r[full_key] for r in kept]
        if full:
            val = [r["full_val_last"]["dice_lesion"] for r in kept if which == "last" and "full_val_last" in r]
            full = [{**f, "weak_over_full": 1.0} for f in full]
            print(f"| full supervision | {which} | {_row(full)} | {_cell(val)} |")
    chosen = [r["postprocessed"] for r in rows if "postprocessed" in r]
    if chosen:
        picks = "; ".join(f"{c['weak_choice']['chosen']} / {c['full_choice']['chosen']}" for c in chosen)
        print(f"| post-processing chosen on validation (weak / full: {picks}) | {chosen[0]['checkpoint']} | ", end="")
        print(f"{_row([c['weak'] for c in chosen])} | |")
        print(f"| full supervision, same choice | {chosen[0]['checkpoint']} | ", end="")
        print(f"{_row([{**c['full'], 'weak_over_full': 1.0} for c in chosen])} | |")


def _row(figures: list[dict]) -> str:
    """Test Dice on lesion slices | / full | false positives | minutes, over seeds."""
    return (
        f"{_cell([f['dice_lesion'] for f in figures])} | {_cell([f['weak_over_full'] for f in figures])} | "
        f"{_cell([f['false_positive_rate'] for f in figures])} | {statistics.mean(f['minutes'] for f in figures):.1f}"
    )


def stage1_table(dataset: str) -> None:
    """Per recorded stage-1 row (recipe, seed): the kept classifier's test ROC AUC, its tries, and per map the
    pointing game on validation and test and the training pseudo-masks' Dice."""
    rows = read_rows(STAGE1_RESULTS, dataset=dataset)
    print(
        "| recipe | seed | CPU | ROC AUC (test) | tries (validation pointing) | map | pointing val / test | "
        "pseudo-mask Dice (train) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        tries = ", ".join(_try_figure(t) for t in r.get("classifier_tries") or []) or "one"
        head = f"| {r['config']} {' '.join(r['overrides'])} | {r['seed']} | {r['cpu']} | "
        head += f"{_cell([r['classifier'].get('roc_auc', {}).get('mean')], 3)} | {tries}"
        for name, figures in r["maps"].items():
            pointing = f"{_cell([figures['val'].get('pointing_game')], 2)} / "
            pointing += _cell([figures["test"].get("pointing_game")], 2)
            dice = _cell([figures["train"].get("pseudo_mask", {}).get("dice")], 3)
            print(f"{head} | {name} | {pointing} | {dice} |")
            head = "| | | | |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--dataset", default="lgg")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-weak"))
    parser.add_argument("--table", action="store_true", help="print the tables of the recorded seeds")
    parser.add_argument(
        "--stage1",
        action="store_true",
        help="only the classifier(s) and the maps (no segmentation); rows go to results/weak_stage1.jsonl",
    )
    parser.add_argument(
        "--maps", nargs="+", choices=[_map_name(*kinds) for kinds in MAPS], help="only these map variants"
    )
    args = parser.parse_args()
    if args.table:
        (stage1_table if args.stage1 else table)(args.dataset)
        return
    cfg = load_config(args.config, args.overrides)
    for seed in args.seeds:
        results = run_seed(cfg, args.out / f"seed{seed}", seed, stage1_only=args.stage1, only=args.maps)
        record(results, args.dataset, args.config, args.overrides, STAGE1_RESULTS if args.stage1 else RESULTS)
        if not args.stage1:
            print(json.dumps(results["rounds"], indent=1), flush=True)


if __name__ == "__main__":
    main()
