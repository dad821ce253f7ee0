"""A run's `report.html`: self-contained (images embedded), no network; config, curves, test table, overlays."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medseg.atomic import write_text_atomic  # noqa: E402
from medseg.convergence import validation_scores  # noqa: E402
from medseg.run_folder import RunFolder  # noqa: E402

__all__ = ["write_report", "write_comparison", "run_summary", "figure_img"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}
.gallery img{width:200px;margin:4px;image-rendering:pixelated}.gallery figure{display:inline-block;margin:0}
figcaption{font-size:11px;max-width:200px;overflow-wrap:anywhere}
"""


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def figure_img(figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return f'<img alt="{html.escape(alt)}" src="{_png_data_uri(buffer.getvalue())}">'


def _page(title: str, parts: list[str]) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def _curves(run: RunFolder) -> str:
    rows = run.metrics()
    if not rows:
        return "<p>No training epochs recorded yet (metrics.csv).</p>"
    epochs = [int(r["epoch"]) for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    left.plot(epochs, [float(r["train_loss"]) for r in rows], marker="o")
    left.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    column, points = validation_scores(rows)  # val_dice, or a method's own metric
    label = "Dice" if column == "val_dice" else column.removeprefix("val_") or "score"
    right.plot([e for e, _ in points], [score for _, score in points], marker="o", color="tab:green")
    right.set(xlabel="epoch", ylabel=label, title=f"Validation {label}", ylim=(0, 1))
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure_img(figure, "training curves")


def _evaluation_title(label: str, summary: dict) -> str:
    """What an `eval/<label>/` section evaluated: a split of the run's own data (with which weights), or another
    data set."""
    if "data" in summary:
        return f"External data set {label} ({summary['data']})"
    title = f"Evaluation on the {summary['split']} split"
    return title if label == summary["split"] else f"{title} ({label}: {summary['checkpoint']})"


def _resolution(summary: dict) -> str:
    return summary.get("resolution") or f"{summary['size']}×{summary['size']}"


def _table(summary: dict) -> str:
    head = "<tr><th>metric</th><th>mean</th><th>± std</th><th>median</th><th>n</th></tr>"
    body = []
    for name, m in summary["metrics"].items():
        cells = [f"{m[k]:.4f}" if isinstance(m[k], float) else "—" for k in ("mean", "std", "median")]
        body.append(
            f"<tr><th>{name}</th><td>{cells[0]}</td><td>{cells[1]}</td><td>{cells[2]}</td><td>{m['n']}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>{_by_truth(summary)}"


def _by_truth(summary: dict) -> str:
    """A line on the lesion cases' Dice and the lesion-free cases' false positives (summaries since by_truth)."""
    split = summary.get("by_truth")
    if not split or not split["lesion"]["n"] or not split["lesion_free"]["n"]:
        return ""  # all cases of one kind: the table above says it
    dice, free = split["lesion"]["dice"]["mean"], split["lesion_free"]
    return (
        f"<p>Cases whose true mask holds a lesion ({split['lesion']['n']}): Dice {dice:.4f}. Lesion-free cases "
        f"({free['n']}): a mask predicted on {free['false_positive_rate']:.1%} of them.</p>"
    )


def _gallery(folder: Path, prefix: str) -> str:
    """Every `<prefix>_*.png` of `folder` (all PNGs for an empty prefix), embedded, with captions."""
    figures = [
        f'<figure><img alt="{html.escape(p.stem)}" src="{_png_data_uri(p.read_bytes())}">'
        f"<figcaption>{html.escape(p.stem)}</figcaption></figure>"
        for p in sorted(folder.glob(f"{prefix}_*.png" if prefix else "*.png"))
    ]
    return f'<div class="gallery">{"".join(figures)}</div>' if figures else "<p>none</p>"


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's page (`run_dir/report.html`, or `out`) from what the run folder holds; returns its path."""
    run = RunFolder(run_dir)
    parts = [f"<h1>medseg run: {html.escape(run.path.name)}</h1>", "<h2>Training</h2>", _curves(run)]
    for split in run.evaluated_splits():
        split_dir, summary = run.eval_dir(split), run.summary(split)
        parts += [
            f"<h2>{html.escape(_evaluation_title(split, summary))}</h2>",
            f"<p>{summary['cases']} cases, metrics at {html.escape(_resolution(summary))}, checkpoint "
            f"{html.escape(summary['checkpoint'])} (epoch {summary['epoch']}). Overlays: prediction in red, "
            "ground truth outlined in green.</p>",
            _table(summary),
            "<h3>Worst cases</h3>",
            _gallery(split_dir / "overlays", "worst"),
            "<h3>Best cases</h3>",
            _gallery(split_dir / "overlays", "best"),
        ]
        if list((split_dir / "explain").glob("*.png")):
            parts += [
                "<h3>Where the model looks</h3>",
                "<p>Attention maps of the model's attention blocks, or class activation maps / Grad-CAM, for the "
                "worst and best cases above.</p>",
                _gallery(split_dir / "explain", ""),
            ]
    panels = run.weak_panels_path
    if list(panels.glob("*.png")):
        parts += [
            "<h2>From image labels to masks</h2>",
            "<p>Test slices: the image, the classifier's map, the pseudo-mask the thresholds make of it (grey: "
            "unknown), the prediction of the network trained on such pseudo-masks, the true mask (weak.json holds "
            "every stage's figures).</p>",
            _gallery(panels, ""),
        ]
    config = run.config_path.read_text() if run.config_path.is_file() else ""
    parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(config)}</pre>"]
    page = Path(out) if out is not None else run.report_path
    write_text_atomic(page, _page(f"medseg — {run.path.name}", parts))
    return page


def run_summary(run_dir: str | Path, split: str = "test") -> dict:
    """What a comparison shows of one run: its name, model, method, supervision, labelled share, epochs, and
    the evaluated split's Dice / HD95 (None where not evaluated)."""
    run = RunFolder(run_dir)
    if not run.config_path.is_file():
        raise FileNotFoundError(f"{run.path}: not a run folder (no config.yaml)")
    config = run.config
    metrics = (run.summary(split) or {}).get("metrics", {})
    # a weak pipeline's config.yaml is its segmentation stage's, which trains on pseudo-masks
    supervision = "image-labels" if run.weak_config_path.is_file() else config.supervision
    labelled = 1.0
    if supervision == "image-labels":
        labelled = 0.0
    elif run.splits_path.is_file():  # the share actually kept, whether by ratio or by count
        splits = list(run.splits().values())
        kept, unlabelled = splits.count("train"), splits.count("unlabeled")
        labelled = kept / (kept + unlabelled) if kept + unlabelled else 1.0
    return {
        "run": run.path.name,
        "model": config.model.get("name", "?"),
        "method": config.method.get("name", "?"),
        "supervision": supervision,
        "labelled": labelled,
        "epochs": len(run.metrics()),
        "dice": metrics.get("dice"),
        "hd95": metrics.get("hd95"),
    }


def _mean_std(metric: dict | None, digits: int) -> str:
    if not metric or metric.get("mean") is None:
        return "—"
    return f"{metric['mean']:.{digits}f} ± {metric['std'] or 0:.{digits}f}"


def write_comparison(
    run_dirs: list[str | Path], out: str | Path, split: str = "test", preamble: list[str] | None = None
) -> Path:
    """One self-contained page comparing runs: a table (model, method, supervision, labelled share, test Dice and
    HD95), their validation curves on one plot, and test Dice against the share of labelled training masks
    (image-level labels only = 0) per method. Written atomically to `out`."""
    runs = [Path(r) for r in run_dirs]
    rows = [run_summary(r, split) for r in runs]
    head = (
        "<tr><th>run</th><th>model</th><th>method</th><th>supervision</th><th>labelled</th><th>epochs</th>"
        f"<th>{html.escape(split)} Dice</th><th>{html.escape(split)} HD95 (px)</th></tr>"
    )
    body = "".join(
        f"<tr><th>{html.escape(r['run'])}</th><td>{html.escape(r['model'])}</td><td>{html.escape(r['method'])}</td>"
        f"<td>{html.escape(r['supervision'])}</td><td>{r['labelled']:.0%}</td><td>{r['epochs']}</td>"
        f"<td>{_mean_std(r['dice'], 4)}</td><td>{_mean_std(r['hd95'], 2)}</td></tr>"
        for r in rows
    )
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for run, row in zip(runs, rows, strict=True):
        points = validation_scores(RunFolder(run).metrics())[1]
        if points:
            left.plot([e for e, _ in points], [score for _, score in points], marker=".", label=row["run"])
    left.set(xlabel="epoch", ylabel="validation score", title="Validation during training", ylim=(0, 1))
    by_method: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row["dice"] and row["dice"].get("mean") is not None:
            by_method.setdefault(row["method"], []).append((100 * row["labelled"], row["dice"]["mean"]))
    for method, points in sorted(by_method.items()):
        points.sort()
        right.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=method)
    right.set(xlabel="labelled training masks (%)", ylabel=f"{split} Dice", title="Label budget", ylim=(0, 1))
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.tight_layout()
    parts = [
        f"<h1>medseg: {len(rows)} runs compared</h1>",
        *(preamble or []),
        f"<table>{head}{body}</table>",
        "<h2>Curves and label budget</h2>",
        figure_img(figure, "validation curves and label budget"),
    ]
    out = Path(out)
    write_text_atomic(out, _page("medseg — comparison", parts))
    return out
