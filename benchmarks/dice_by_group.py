"""Test Dice of run folders broken down by a per-case group (a tumour type, a scanner, a site), from their
evaluation's `cases.csv` and a CSV naming each case's group. Where labelled draws differ in which groups they
hold, a method's mean hides where it gains; this says where.

    .venv/bin/python benchmarks/dice_by_group.py runs/bench-semi/figshare/*-r0.1-s0 \
        --groups ../shared/data/brain-tumor-figshare/labels.csv --id-column file --group-column label_name

Cases are matched on their file stem (`12.png` in the groups file is case `12`). A case without a group is an
error: a breakdown that silently drops cases would not add up to the run's mean.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path


def read_groups(path: Path, id_column: str, group_column: str) -> dict[str, str]:
    """Case id (file stem) → group name, from a CSV with those two columns."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {id_column, group_column} - set(reader.fieldnames or [])
        if missing:
            raise SystemExit(f"{path}: no column(s) {sorted(missing)}; it has {reader.fieldnames}")
        return {Path(row[id_column]).stem: row[group_column] for row in reader}


def dice_by_group(cases_csv: Path, groups: dict[str, str]) -> dict[str, list[float]]:
    """Group name → the Dice of its cases in one evaluation's `cases.csv` (columns `id`, `dice`)."""
    scores: dict[str, list[float]] = {}
    with cases_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            case = Path(row["id"]).stem
            if case not in groups:
                raise SystemExit(f"{cases_csv}: case {row['id']!r} has no group in the groups file")
            scores.setdefault(groups[case], []).append(float(row["dice"]))
    return scores


def table(runs: list[Path], evaluation: str, groups: dict[str, str]) -> str:
    """A markdown table: one row per run folder, the mean Dice per group (with its case count in the header) and
    over all cases."""
    per_run = {}
    for run in runs:
        cases = run / "eval" / evaluation / "cases.csv"
        if not cases.is_file():
            raise SystemExit(f"{run}: no {cases.relative_to(run)} (evaluate the run first)")
        per_run[run.name] = dice_by_group(cases, groups)
    names = sorted({name for scores in per_run.values() for name in scores})
    counts = {name: max(len(scores.get(name, [])) for scores in per_run.values()) for name in names}
    lines = [
        "| run | " + " | ".join(f"{name} (n={counts[name]})" for name in names) + " | all |",
        "|---" * (len(names) + 2) + "|",
    ]
    for run, scores in per_run.items():
        cells = [f"{statistics.fmean(scores[name]):.3f}" if name in scores else "–" for name in names]
        every = [dice for values in scores.values() for dice in values]
        lines.append(f"| {run} | " + " | ".join(cells) + f" | {statistics.fmean(every):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with an evaluation")
    parser.add_argument("--groups", type=Path, required=True, help="CSV naming each case's group")
    parser.add_argument("--id-column", default="file")
    parser.add_argument("--group-column", default="label_name")
    parser.add_argument("--evaluation", default="test", help="eval/<name> to read: test (last) or test-best")
    args = parser.parse_args()
    print(table(args.runs, args.evaluation, read_groups(args.groups, args.id_column, args.group_column)))


if __name__ == "__main__":
    main()
