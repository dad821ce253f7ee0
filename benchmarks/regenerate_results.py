"""Rewrite every generated table of RESULTS.md from the JSON rows under `benchmarks/results/` (the blocks between
`<!-- generated KEY -->` and `<!-- /generated -->`), so no table is edited by hand; `--check` changes nothing and
fails when a block differs from what the rows give (a test runs it).

    .venv/bin/python benchmarks/regenerate_results.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from medseg.atomic import write_text_atomic
from medseg.sweep.markdown import replace_block, table
from medseg.sweep.rows import read_rows
from medseg.sweep.stats import machines
from medseg.sweep.tables import curve_table, drift_table, method_table, selection_table

HERE = Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
ROWS = HERE / "results"
AUG = "augment.rot90=true:augment.rotate_deg=15:augment.scale=0.15:augment.translate=0.1:augment.gamma=0.2"
FIXMATCH_FP = "fixmatch:method.feature_perturbation=0.5"
ALIGNED = f"{FIXMATCH_FP}:method.align=true:{AUG}"
RECIPE = f"method.dice=image:eval.tta=true:model.pyramid=3:{AUG}"  # issue 44's one recipe, on top of the protocol
ALIASES = [f"strong-aug={AUG}", f"unimatch-fp={FIXMATCH_FP}"]


def _semi(dataset: str) -> list[dict]:
    return read_rows(ROWS / "semi.jsonl", dataset=dataset)


def _picked(dataset: str) -> list[dict]:
    return read_rows(ROWS / "selection.jsonl", dataset=dataset)


def _selection(dataset: str, method: str, ratio: float, aliases: list[str], versus: str | None = None) -> list[str]:
    return selection_table(_semi(dataset), _picked(dataset), method, ratio, aliases, versus)


def explanation_scores() -> list[str]:
    """The explanation methods scored on one run's test lesion slices (`bench_explain.py`), the best figure of each
    network in bold."""
    rows = read_rows(ROWS / "explain_scores.jsonl")
    best: dict[tuple[str, str], float] = {}
    for row in rows:
        for key, pick in (("pointing", max), ("energy_inside", max), ("deletion_auc", min), ("insertion_auc", max)):
            best[(row["model"], key)] = pick(best.get((row["model"], key), row[key]), row[key])

    def figure(row: dict, key: str) -> str:
        return f"**{row[key]:.3f}**" if row[key] == best[(row["model"], key)] else f"{row[key]:.3f}"

    columns = ["network", "method", "slices", "pointing game", "energy inside the tumour"]
    columns += ["deletion area ↓", "insertion area ↑", "seconds"]
    keys = ("pointing", "energy_inside", "deletion_auc", "insertion_auc")
    cells = [[r["model"], r["method"], r["slices"], *(figure(r, key) for key in keys), r["seconds"]] for r in rows]
    return [*table(columns, cells), "", f"machines: {machines(rows)}"]


def _run_label(run: str) -> str:
    """A run folder as `data set / method-…-share-seed`, the strong augmentation's slug shortened."""
    path = Path(run)
    slug = AUG.replace(":", "-").replace("=", "")
    return f"{path.parent.name} / {path.name.replace(slug, 'strong-aug')}"


def int8_speed() -> list[str]:
    """INT8 against float32 ONNX inference, each row measured side by side in one process (`bench_int8.py`)."""
    rows = read_rows(ROWS / "int8.jsonl")
    columns = ["run", "input", "fp32 ms (1 / batch)", "int8 ms (1 / batch)", "speed-up (1 / batch)"]
    columns += ["test Dice fp32 → int8", "note"]
    cells = [
        [
            _run_label(r["run"]),
            f"{r['size']}², batch {r['batch']}",
            f"{r['fp32_ms_one']} / {r['fp32_ms_batch']}",
            f"{r['int8_ms_one']} / {r['int8_ms_batch']}",
            f"{r['speedup_one']}× / {r['speedup_batch']}×",
            f"{r['fp32_test_dice']:.4f} → {r['int8_test_dice']:.4f}",
            r.get("note") or "",
        ]
        for r in rows
    ]
    return [*table(columns, cells), "", f"machines: {machines(rows)}"]


BLOCKS: dict[str, Callable[[], list[str]]] = {
    "figshare selection 0.05": lambda: _selection(
        "figshare", f"supervised:{AUG}", 0.05, [f"supervised=supervised:{AUG}"]
    ),
    "figshare selection 0.05 unimatch-fp": lambda: _selection(
        "figshare",
        f"{FIXMATCH_FP}:{AUG}",
        0.05,
        [f"unimatch-fp={FIXMATCH_FP}:{AUG}", f"supervised=supervised:{AUG}"],
        f"supervised:{AUG}",
    ),
    "lgg selection 0.1": lambda: _selection("lgg", "supervised", 0.1, []),
    "lgg selection 0.1 unimatch-fp": lambda: _selection(
        "lgg", FIXMATCH_FP, 0.1, [f"unimatch-fp={FIXMATCH_FP}"], "supervised"
    ),
    "lgg 0.1": lambda: method_table(_semi("lgg"), 0.1, "supervised", [f"unimatch-fp={FIXMATCH_FP}"]),
    "figshare 0.1": lambda: method_table(_semi("figshare"), 0.1, f"supervised:{AUG}", ALIASES),
    "figshare curve": lambda: curve_table(
        _semi("figshare"), [f"supervised:{AUG}", f"{FIXMATCH_FP}:{AUG}", "bcp"], f"supervised:{AUG}", ALIASES
    ),
    "figshare drift 0.05": lambda: drift_table(
        [r for r in _semi("figshare") if r["method"] in (f"supervised:{AUG}", f"{FIXMATCH_FP}:{AUG}", ALIGNED)],
        0.05,
        f"supervised:{AUG}",
        [f"unimatch-fp+align={ALIGNED}", f"unimatch-fp={FIXMATCH_FP}:{AUG}", f"supervised=supervised:{AUG}"],
    ),
    "lgg drift 0.1": lambda: drift_table(_semi("lgg"), 0.1, "supervised", [f"unimatch-fp={FIXMATCH_FP}"]),
    "figshare recipe 0.1": lambda: method_table(
        [r for r in read_rows(ROWS / "recipe.jsonl", dataset="figshare") if r["method"].endswith(RECIPE)],
        0.1,
        f"supervised:{RECIPE}",
        [f"recipe={RECIPE}", f"unimatch-fp={FIXMATCH_FP}"],
    ),
    "explanation scores": explanation_scores,
    "int8": int8_speed,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is out of date")
    parser.add_argument("--into", type=Path, default=RESULTS)
    args = parser.parse_args()
    text = args.into.read_text()
    present = [key for key in BLOCKS if f"<!-- generated {key} -->" in text]
    fresh = regenerate(text, present, str(args.into))
    if args.check:
        if fresh != text:
            sys.exit(f"{args.into}: a generated table differs from the rows; run benchmarks/regenerate_results.py")
        print(f"{len(present)} generated tables up to date")
    else:
        write_text_atomic(args.into, fresh)
        print(f"{len(present)} tables rewritten in {args.into}")


def regenerate(text: str, keys: list[str], where: str) -> str:
    """`text` with the blocks of `keys` made again from the rows."""
    for key in keys:
        text = replace_block(text, key, BLOCKS[key](), where)
    return text


if __name__ == "__main__":
    main()
