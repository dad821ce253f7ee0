"""One sweep's summary files: `budget.csv` and `budget.md` (mean ± sd over seeds per method and share), `budget.png`
(test Dice against the labelled share) and `report.html` (the plot, the table and every run compared)."""

from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Any

from medseg.atomic import atomic_path, write_text_atomic
from medseg.sweep.stats import mean_sd

__all__ = ["summarise"]


def summarise(rows: list[dict[str, Any]], out: str | Path) -> list[dict[str, Any]]:
    """`budget.csv`, `budget.md`, `budget.png` and `report.html` from the rows; returns the table (mean ± sd of
    the last and best-validated checkpoints' test Dice over seeds, per method and ratio)."""
    from medseg.report import write_comparison  # matplotlib, only for the pictures

    out = Path(out)
    groups: dict[tuple[str, float], list[dict]] = {}
    for row in rows:
        series = f"{row['method']} + {row['strategy']}" if row.get("strategy") else row["method"]
        groups.setdefault((series, row["ratio"]), []).append(row)
    table = []
    for (method, ratio), members in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        last, last_sd = mean_sd([r["test_dice_last"] for r in members])
        best, best_sd = mean_sd([r["test_dice_best"] for r in members])
        table.append(
            {
                "method": method,
                "ratio": ratio,
                "seeds": len(members),
                "test_dice_last": round(last, 4),
                "sd_last": round(last_sd, 4),
                "test_dice_best": round(best, 4),
                "sd_best": round(best_sd, 4),
                "minutes": round(statistics.mean(r["minutes"] for r in members), 1),
                "steps": members[0]["steps"],
            }
        )
    header = list(table[0]) if table else []
    lines = [",".join(header), *(",".join(str(row[h]) for h in header) for row in table)]
    write_text_atomic(out / "budget.csv", "\n".join(lines) + "\n")
    markdown = [
        "| method | labelled | seeds | test Dice (last) | test Dice (best val) | minutes | steps |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['method']} | {r['ratio']:.0%} | {r['seeds']} | {r['test_dice_last']:.4f} ± {r['sd_last']:.4f} "
            f"| {r['test_dice_best']:.4f} ± {r['sd_best']:.4f} | {r['minutes']} | {r['steps']} |"
            for r in table
        ),
    ]
    write_text_atomic(out / "budget.md", "\n".join(markdown) + "\n")
    picture = _plot(table, out / "budget.png")
    runs = sorted(p.parent for p in out.glob("*/config.yaml"))
    if runs:
        write_comparison(runs, out / "report.html", "test", preamble=["<h2>Label budget</h2>", picture, _html(table)])
    return table


def _html(table: list[dict[str, Any]]) -> str:
    head = "<tr><th>method</th><th>labelled</th><th>seeds</th><th>test Dice (last)</th><th>test Dice (best val)</th>"
    body = "".join(
        f"<tr><th>{html.escape(r['method'])}</th><td>{r['ratio']:.0%}</td><td>{r['seeds']}</td>"
        f"<td>{r['test_dice_last']:.4f} ± {r['sd_last']:.4f}</td>"
        f"<td>{r['test_dice_best']:.4f} ± {r['sd_best']:.4f}</td></tr>"
        for r in table
    )
    return f"<table>{head}</tr>{body}</table>"


def _plot(table: list[dict[str, Any]], path: Path) -> str:
    """Test Dice (last checkpoint) against the labelled share, mean ± sd over seeds, one line per method; saved
    to `path`; returns an `<img>` of it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medseg.report import figure_img

    figure, axis = plt.subplots(figsize=(6, 4))
    for method in sorted({r["method"] for r in table}):
        rows = sorted((r for r in table if r["method"] == method), key=lambda r: r["ratio"])
        axis.errorbar(
            [100 * r["ratio"] for r in rows],
            [r["test_dice_last"] for r in rows],
            yerr=[r["sd_last"] for r in rows],
            marker="o",
            capsize=3,
            label=method,
        )
    axis.set(xscale="log", xlabel="labelled training cases (%)", ylabel="test Dice", title="Label budget")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return figure_img(figure, "test Dice against the labelled share")
