"""The tables of a sweep's rows (one JSON line per point: method, ratio, seed, test Dice at the last and the
best-validated checkpoint, ...): per method at one labelled share with margins paired per seed, the label-budget
curve, and selection strategies against random draws. Where many test slices hold no lesion (LGG), the lesion-slice
Dice and the share of lesion-free slices given a mask are shown too."""

from __future__ import annotations

import statistics
from collections import defaultdict

from medseg.convergence import checkpoint_for_change
from medseg.sweep.markdown import table
from medseg.sweep.stats import cell, drift_guarded, machines, paired_margins, points

__all__ = ["display", "method_table", "drift_table", "selection_table", "curve_table", "by_point"]


def display(method: str, aliases: list[str]) -> str:
    """The method's text with each `short=text` alias's text replaced by its short name (long overrides)."""
    for alias in aliases:
        short, text = alias.split("=", 1)
        method = method.replace(text, short)
    return method


def method_table(rows: list[dict], ratio: float, baseline: str, aliases: list[str]) -> list[str]:
    """The markdown table of the recorded rows at one labelled share (and the 100% rows), then the machines."""
    full = [r["test_dice_last"] for r in rows if r["method"].split(":")[0] == "supervised" and r["ratio"] == 1.0]
    supervised = [r for r in rows if r["method"] == baseline and r["ratio"] == ratio]
    by_method: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        if row["ratio"] in (ratio, 1.0):
            by_method[(row["method"], row["ratio"])].append(row)
    # lesion-slice columns only where test slices without a lesion exist (LGG): elsewhere they repeat the Dice
    lesion_free = _has_lesion_free_slices(rows)
    columns = ["method", "labelled", "seeds", "steps", "minutes", "test Dice, last", "test Dice, best val"]
    columns += ["margin over supervised (paired, last)", "× full", "val change, last 30%"]
    if lesion_free:
        columns += ["lesion-slice Dice, last", "lesion-slice margin (paired, last, points)"]
        columns += ["lesion-free slices given a mask, last"]
    cells = []
    for (method, share), members in sorted(by_method.items(), key=lambda item: (-item[0][1], item[0][0])):
        last = [r["test_dice_last"] for r in members]
        margins = paired_margins(members, supervised, "test_dice_last")
        of_full = f"{statistics.mean(last) / statistics.mean(full):.3f}" if full else "—"
        change = [r["val_change_last_30pct"] for r in members if r["val_change_last_30pct"] is not None]
        row = [display(method, aliases), f"{share:.0%}", len(members), members[0]["steps"]]
        row += [f"{statistics.mean(r['minutes'] for r in members):.1f}", cell(last)]
        row += [cell([r["test_dice_best"] for r in members])]
        row += [cell(margins) if share != 1.0 and method != baseline else "—", of_full, cell(change, 3)]
        if lesion_free:
            lesion, false_positives = _lesion_figures(members)
            margin = points(paired_margins(members, supervised, "test_dice_lesion_last"))
            row += [lesion, margin if share != 1.0 and method != baseline else "—", false_positives]
        cells.append(row)
    return [*table(columns, cells), "", f"machines: {machines(rows)}"]


def _has_lesion_free_slices(rows: list[dict]) -> bool:
    """Whether the rows' test splits hold slices without a lesion (LGG): then their lesion-slice figures count."""
    return any(r.get("test_false_positive_rate_last") is not None for r in rows)


def _lesion_figures(members: list[dict]) -> tuple[str, str]:
    """The lesion-slice Dice and the share of lesion-free slices given a mask, at the last checkpoint."""
    return (
        cell([r.get("test_dice_lesion_last") for r in members]),
        cell([r.get("test_false_positive_rate_last") for r in members], 3),
    )


def drift_table(rows: list[dict], ratio: float, baseline: str, aliases: list[str]) -> list[str]:
    """What the drift guard (`eval.checkpoint: auto`, fixed before any test figure) changes at one labelled share:
    per method, how many runs' validation fell at the end (so the guard took the best-validated checkpoint), the
    test Dice of the last checkpoint and of the guard's, and each one's margin over `baseline` paired per seed (the
    baseline under the same rule). Where test slices without a lesion exist (LGG), the Dice over the lesion slices."""
    members_of: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row["ratio"] == ratio:
            members_of[row["method"]].append(row)
    lesion_free = _has_lesion_free_slices(rows)
    figure = "test_dice_lesion" if lesion_free else "test_dice"
    guarded = {
        method: [{**r, "guarded": drift_guarded(r, figure)} for r in sorted(group, key=lambda r: r["seed"])]
        for method, group in members_of.items()
    }
    dice = "lesion-slice Dice" if lesion_free else "test Dice"
    columns = ["method", "seeds", "drifted (auto took best.pt)", f"{dice}, last", f"{dice}, drift guard"]
    columns += ["margin, last (points)", "margin, drift guard (points)", "per seed, drift guard (points)"]
    cells = []
    for method, members in sorted(guarded.items(), key=lambda item: (item[0] != baseline, item[0])):
        drifted = sum(checkpoint_for_change(r.get("val_change_last_30pct")) == "best" for r in members)
        row = [display(method, aliases), len(members), f"{drifted} of {len(members)}"]
        row += [cell([r[f"{figure}_last"] for r in members]), cell([r["guarded"] for r in members])]
        if method == baseline:
            row += ["—", "—", "—"]
        else:
            base = guarded.get(baseline, [])
            last = paired_margins(members, base, f"{figure}_last")
            guard = paired_margins(members, base, "guarded")
            row += [points(last), points(guard), " / ".join(f"{100 * m:+.1f}" for m in guard) or "—"]
        cells.append(row)
    return [*table(columns, cells), "", f"machines: {machines(rows)}"]


def selection_table(
    draws: list[dict],
    picked: list[dict],
    method: str,
    ratio: float,
    aliases: list[str],
    versus: str | None = None,
) -> list[str]:
    """The selection table at one labelled share for one training method: the random draws of whole groups (the
    curve's, from semi.jsonl) and each strategy's picks (selection.jsonl), with test Dice (last and best-validated
    checkpoint), the worst seed, and the margin over the random draws' mean and, per seed, over the draw. Where test
    slices without a lesion exist (LGG), the Dice is over the lesion slices, with the share of lesion-free slices
    given a mask and the all-slice Dice beside it. With `versus` (another training method, e.g. supervised-only),
    the margin over that method trained on the same cases (the same draw, or the same strategy's picks, seed by
    seed) and its lesion-free figure."""
    random = {r["seed"]: r for r in draws if r["method"] == method and r["ratio"] == ratio}
    by_strategy: dict[str, list[dict]] = defaultdict(list)
    for row in picked:
        if row["method"] == method and row["ratio"] == ratio:
            by_strategy[row["strategy"]].append(row)
    everyone = [*random.values(), *(r for members in by_strategy.values() for r in members)]
    lesion_free = _has_lesion_free_slices(everyone)
    last_key, best_key = (
        ("test_dice_lesion_last", "test_dice_lesion_best") if lesion_free else ("test_dice_last", "test_dice_best")
    )
    random_mean = statistics.mean(r[last_key] for r in random.values()) if random else None
    dice = "lesion-slice Dice" if lesion_free else "test Dice"
    columns = ["picked by", "labelled", "seeds", f"{dice}, last", f"{dice}, best val", "worst seed"]
    columns += ["− random draws' mean (points)", "− random draw of the seed (points)"]
    if lesion_free:
        columns += ["lesion-free slices given a mask, last", "all-slice Dice, last"]
    if versus:
        columns += [f"− {display(versus, aliases)} on the same cases (points)"]
        columns += [f"{display(versus, aliases)}: lesion-free slices given a mask"] if lesion_free else []
    cells = []
    groups = [("random draw of whole groups", list(random.values()))] + sorted(by_strategy.items())
    for name, members in groups:
        if not members:
            continue
        last = [r[last_key] for r in members]
        margin_mean = [value - random_mean for value in last] if random_mean is not None else []
        paired = paired_margins(members, list(random.values()), last_key)
        baseline = name.startswith("random draw")
        row = [name, "/".join(map(str, sorted({r["labelled_cases"] for r in members}))), len(members), cell(last)]
        row += [cell([r[best_key] for r in members]), f"{min(last):.4f}"]
        row += ["—", "—"] if baseline else [points(margin_mean), points(paired)]
        if lesion_free:
            row += [_lesion_figures(members)[1], cell([r["test_dice_last"] for r in members])]
        if versus:  # the other method on the same draws, or on the same strategy's picks, of the same seeds
            seeds = {r["seed"] for r in members}
            pool = draws if baseline else [r for r in picked if r["strategy"] == name]
            same = [r for r in pool if r["method"] == versus and r["ratio"] == ratio and r["seed"] in seeds]
            row += [points(paired_margins(members, same, last_key))]
            row += [_lesion_figures(same)[1]] if lesion_free else []
        cells.append(row)
    picked_rows = [r for members in by_strategy.values() for r in members]
    head = [f"{display(method, aliases)} at {ratio:.0%}:", ""]
    return [*head, *table(columns, cells), "", f"strategies' machines: {machines(picked_rows)}"]


def by_point(rows: list[dict], methods: list[str]) -> dict[tuple[str, float], list[dict]]:
    """The rows of `methods`, grouped by (method, labelled share): one group per point of the curve."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        if row["method"] in methods:
            groups[(row["method"], row["ratio"])].append(row)
    return groups


def _seeds_note(members: list[dict]) -> str:
    seeds = sorted(r["seed"] for r in members)
    return f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))


def curve_table(rows: list[dict], methods: list[str], full_method: str, aliases: list[str]) -> list[str]:
    """The budget curve as a markdown table: one row per labelled share, one column per method, each cell the
    test Dice at the last checkpoint (mean ± sd over seeds) and which seeds it holds, each share with its number of
    labelled slices; the 100% row holds `full_method`'s runs under its own column, where every curve ends."""
    cells = {
        (m, ratio): group for (m, ratio), group in by_point(rows, methods).items() if ratio < 1.0 or m == full_method
    }
    labelled: dict[float, set[int | None]] = defaultdict(set)
    for (_, ratio), group in cells.items():
        labelled[ratio].update(r.get("labelled_cases") for r in group)
    lines = ["| labelled | " + " | ".join(display(method, aliases) for method in methods) + " |"]
    lines.append("|---" * (len(methods) + 1) + "|")
    for ratio in sorted(labelled):
        row_cells = []
        for method in methods:
            members = cells.get((method, ratio), [])
            dice = [r["test_dice_last"] for r in members]
            row_cells.append(f"{cell(dice, 3)} ({_seeds_note(members)})" if members else "—")
        count, *others = labelled[ratio]
        share = f"{ratio:.0%} ({count} labelled)" if not others and count is not None else f"{ratio:.0%}"
        lines.append(f"| {share} | " + " | ".join(row_cells) + " |")
    return lines
