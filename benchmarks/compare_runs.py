"""Compare two trees of runs made by same_runs.sh: metrics.csv (all but its seconds), eval/test/cases.csv, the test
summary's metrics and weak.json, to 1e-6; prints each difference and the largest one, exits 1 on a difference.

    python benchmarks/compare_runs.py BEFORE AFTER
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

TOLERANCE = 1e-6


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def differences(a, b, where: str) -> list[tuple[str, float | None]]:
    """(where, |a - b| or None for a non-numeric difference) for every leaf of two JSON-like values that differs."""
    if isinstance(a, dict):
        found = [(f"{where}.{key}: missing", None) for key in a if key not in b]
        return found + [
            d for key in a if key in b and key != "seconds" for d in differences(a[key], b[key], f"{where}.{key}")
        ]
    if isinstance(a, list):
        if len(a) != len(b):
            return [(f"{where}: {len(a)} vs {len(b)} items", None)]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{i}]")]
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return [] if a == b else [(f"{where}: {a!r} vs {b!r}", None)]
    if math.isnan(x) and math.isnan(y):
        return []
    return [(f"{where}: {a} vs {b}", abs(x - y))]


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def compare(before: Path, after: Path) -> tuple[list[str], float]:
    found: list[tuple[str, float | None]] = []
    for run in sorted(p.name for p in before.iterdir() if p.is_dir() and p.name != "cache"):
        for name in ("metrics.csv", "eval/test/cases.csv"):
            found += differences(_rows(before / run / name), _rows(after / run / name), f"{run}/{name}")
        summaries = [json.loads((root / run / "eval/test/summary.json").read_text()) for root in (before, after)]
        found += differences(summaries[0]["metrics"], summaries[1]["metrics"], f"{run}/summary")
        if (before / run / "weak.json").exists():
            weak = [json.loads((root / run / "weak.json").read_text()) for root in (before, after)]
            found += differences(weak[0], weak[1], f"{run}/weak.json")
    largest = max((d for _, d in found if d is not None), default=0.0)
    return [w for w, d in found if d is None or d > TOLERANCE], largest


def main() -> None:
    wrong, largest = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    for line in wrong:
        print("DIFF", line)
    print(f"largest numeric difference {largest:.3g}; {len(wrong)} differences above {TOLERANCE}")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
