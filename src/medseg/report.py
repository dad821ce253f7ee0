"""A run's `report.html`: self-contained (images embedded), no network; config, curves, test table, overlays."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medseg.atomic import write_text_atomic  # noqa: E402

__all__ = ["write_report"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}
.gallery img{width:200px;margin:4px;image-rendering:pixelated}.gallery figure{display:inline-block;margin:0}
figcaption{font-size:11px;max-width:200px;overflow-wrap:anywhere}
"""


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _curves(metrics_csv: Path) -> str:
    if not metrics_csv.is_file():
        return "<p>No metrics.csv yet.</p>"
    with metrics_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return "<p>metrics.csv is empty.</p>"
    epochs = [int(r["epoch"]) for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    left.plot(epochs, [float(r["train_loss"]) for r in rows], marker="o")
    left.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    column = next(name for name in rows[0] if name.startswith("val_"))  # val_dice, or a method's own metric
    label = "Dice" if column == "val_dice" else column.removeprefix("val_")
    right.plot(epochs, [float(r[column]) for r in rows], marker="o", color="tab:green")
    right.set(xlabel="epoch", ylabel=label, title=f"Validation {label}", ylim=(0, 1))
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return f'<img alt="training curves" src="{_png_data_uri(buffer.getvalue())}">'


def _table(summary: dict) -> str:
    head = "<tr><th>metric</th><th>mean</th><th>± std</th><th>median</th><th>n</th></tr>"
    body = []
    for name, m in summary["metrics"].items():
        cells = [f"{m[k]:.4f}" if isinstance(m[k], float) else "—" for k in ("mean", "std", "median")]
        body.append(
            f"<tr><th>{name}</th><td>{cells[0]}</td><td>{cells[1]}</td><td>{cells[2]}</td><td>{m['n']}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _gallery(folder: Path, prefix: str) -> str:
    figures = [
        f'<figure><img alt="{html.escape(p.stem)}" src="{_png_data_uri(p.read_bytes())}">'
        f"<figcaption>{html.escape(p.stem)}</figcaption></figure>"
        for p in sorted(folder.glob(f"{prefix}_*.png"))
    ]
    return f'<div class="gallery">{"".join(figures)}</div>' if figures else "<p>none</p>"


def write_report(run_dir: str | Path) -> Path:
    """Write `run_dir/report.html` from what the run folder holds; returns its path."""
    run_dir = Path(run_dir)
    parts = [f"<h1>medseg run: {html.escape(run_dir.name)}</h1>", "<h2>Training</h2>", _curves(run_dir / "metrics.csv")]
    for split_dir in sorted((run_dir / "eval").glob("*")):
        summary_path = split_dir / "summary.json"
        if not summary_path.is_file():
            continue
        summary = json.loads(summary_path.read_text())
        parts += [
            f"<h2>Evaluation on the {html.escape(summary['split'])} split</h2>",
            f"<p>{summary['cases']} cases at {summary['size']}×{summary['size']}, checkpoint "
            f"{html.escape(summary['checkpoint'])} (epoch {summary['epoch']}). Overlays: prediction in red, "
            "ground truth outlined in green.</p>",
            _table(summary),
            "<h3>Worst cases</h3>",
            _gallery(split_dir / "overlays", "worst"),
            "<h3>Best cases</h3>",
            _gallery(split_dir / "overlays", "best"),
        ]
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(config)}</pre>"]
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>medseg — {html.escape(run_dir.name)}'
        f"</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    path = run_dir / "report.html"
    write_text_atomic(path, page)
    return path
