"""The sweep tables (`medseg.sweep.tables`, what `bench_semi.py table | selection | plot` print): paired margins
per labelled draw, other shares left out, the curve, selection strategies against random draws."""

from medseg.sweep.stats import drift_guarded
from medseg.sweep.tables import curve_table, drift_table, method_table, selection_table


def _row(method: str, ratio: float, seed: int, dice: float) -> dict:
    return {
        "method": method,
        "ratio": ratio,
        "seed": seed,
        "steps": 4000,
        "minutes": 10.0,
        "test_dice_last": dice,
        "test_dice_best": dice - 0.01,
        "val_change_last_30pct": 0.0,
        "cpu": "test cpu",
        "bf16": False,
    }


ROWS = [
    _row("supervised", 1.0, 0, 0.80),
    _row("supervised", 0.1, 0, 0.50),
    _row("supervised", 0.1, 1, 0.60),
    _row("bcp", 0.1, 0, 0.55),  # +0.05 over its own draw's baseline
    _row("bcp", 0.1, 1, 0.62),  # +0.02
    _row("bcp", 0.25, 0, 0.70),  # another share: not in the 10% table
]


def test_margins_are_paired_per_seed_and_other_shares_are_left_out():
    lines = method_table(ROWS, 0.1, "supervised", [])
    bcp = next(line for line in lines if line.startswith("| bcp |"))
    cells = [cell.strip() for cell in bcp.strip("|").split("|")]
    assert cells[1:3] == ["10%", "2"]
    assert cells[5] == "0.5850 ± 0.0495"  # mean ± sd of 0.55 and 0.62
    assert cells[7] == "0.0350 ± 0.0212"  # paired: the sd of the per-seed differences +0.05 and +0.02
    assert cells[8] == f"{0.585 / 0.80:.3f}"
    assert not any("25%" in line for line in lines)
    assert lines[-1] == "machines: test cpu (bf16: no)"


def test_where_test_slices_without_a_lesion_exist_the_lesion_slice_margin_is_paired_per_seed():
    def lgg(method: str, seed: int, lesion: float | None) -> dict:
        return {**_row(method, 0.1, seed, 0.7), "test_dice_lesion_last": lesion, "test_false_positive_rate_last": 0.1}

    rows = [lgg("supervised", 0, 0.40), lgg("supervised", 1, 0.50), lgg("fixmatch", 0, 0.46), lgg("fixmatch", 1, 0.52)]
    rows.append(lgg("fixmatch", 2, None))  # an older row without lesion-slice figures counts in no margin
    lines = method_table(rows, 0.1, "supervised", [])
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    fixmatch = next(line for line in lines if line.startswith("| fixmatch |"))
    cells = dict(zip(header, (cell.strip() for cell in fixmatch.strip("|").split("|")), strict=True))
    assert cells["lesion-slice margin (paired, last, points)"] == "+4.0 ± 2.8"  # +6 and +2 points
    supervised = next(line for line in lines if line.startswith("| supervised |"))
    assert "—" in supervised.split("|")[-3]


def test_the_drift_guard_takes_the_best_validated_figure_only_after_validation_fell_more_than_the_tolerance():
    row = {"test_dice_last": 0.40, "test_dice_best": 0.50, "val_change_last_30pct": -0.03}
    assert drift_guarded(row) == 0.50
    assert drift_guarded({**row, "val_change_last_30pct": -0.02}) == 0.40  # a fall of exactly 0.02 is flat
    assert drift_guarded({**row, "val_change_last_30pct": 0.05}) == 0.40  # rising: the last
    assert drift_guarded({**row, "val_change_last_30pct": None}) == 0.40  # too few validated epochs to tell
    assert drift_guarded(row, "test_dice_lesion") is None


def test_the_drift_table_pairs_each_seed_under_the_same_rule_on_both_sides():
    def run(method: str, seed: int, last: float, best: float, change: float) -> dict:
        return {**_row(method, 0.05, seed, last), "test_dice_best": best, "val_change_last_30pct": change}

    rows = [run("supervised", 0, 0.50, 0.45, 0.0), run("supervised", 1, 0.40, 0.48, -0.05)]  # seed 1 drifted
    rows += [run("fixmatch", 1, 0.30, 0.60, -0.04), run("fixmatch", 0, 0.55, 0.52, 0.01)]
    lines = drift_table(rows, 0.05, "supervised", [])
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    fixmatch = next(line for line in lines if line.startswith("| fixmatch |"))
    cells = dict(zip(header, (cell.strip() for cell in fixmatch.strip("|").split("|")), strict=True))
    assert cells["drifted (auto took best.pt)"] == "1 of 2"
    assert cells["margin, last (points)"] == "-2.5 ± 10.6"  # +5 and -10
    assert cells["per seed, drift guard (points)"] == "+5.0 / +12.0"  # 0.55 - 0.50; 0.60 - 0.48, seeds in order
    assert lines[2].startswith("| supervised |"), "the baseline first"


def test_curve_table_has_a_row_per_share_and_names_the_seeds():
    rows = [{**row, "labelled_cases": int(2000 * row["ratio"])} for row in ROWS]
    rows.append({**_row("bcp", 1.0, 0, 0.90), "labelled_cases": 2000})  # only the full method's 100% runs count
    lines = curve_table(rows, ["supervised", "bcp"], "supervised", [])
    assert lines[0] == "| labelled | supervised | bcp |"
    assert lines[2:] == [
        "| 10% (200 labelled) | 0.550 ± 0.071 (seeds 0, 1) | 0.585 ± 0.049 (seeds 0, 1) |",
        "| 25% (500 labelled) | — | 0.700 (seed 0) |",
        "| 100% (2000 labelled) | 0.800 (seed 0) | — |",
    ]


def test_the_selection_table_compares_each_strategy_with_the_random_draws():
    draws = [_row("supervised", 0.05, seed, dice) for seed, dice in enumerate([0.40, 0.50, 0.60])]
    picked = [
        {**_row("supervised", 0.05, seed, dice), "strategy": "stratified", "labelled_cases": 90}
        for seed, dice in enumerate([0.55, 0.58, 0.61])
    ]
    for row in draws:
        row["labelled_cases"] = 100
    lines = selection_table(draws, picked, "supervised", 0.05, [])
    random = next(line for line in lines if line.startswith("| random draw"))
    stratified = [cell.strip() for cell in next(line for line in lines if "stratified" in line).strip("|").split("|")]
    assert "0.5000 ± 0.1000" in random
    assert stratified[1:3] == ["90", "3"] and stratified[5] == "0.5500"  # the worst seed
    assert stratified[6] == "+8.0 ± 3.0"  # 0.55, 0.58, 0.61 against the draws' mean 0.50
    assert stratified[7] == "+8.0 ± 7.0"  # paired: +15, +8, +1


def test_the_selection_table_reads_lesion_slices_where_test_slices_without_a_lesion_exist():
    def lgg(seed: int, lesion: float, everything: float, false_positives: float) -> dict:
        row = _row("supervised", 0.1, seed, everything)
        lesions = {"test_dice_lesion_last": lesion, "test_dice_lesion_best": lesion}
        return {**row, **lesions, "labelled_cases": 100, "test_false_positive_rate_last": false_positives}

    draws = [lgg(0, 0.40, 0.70, 0.10), lgg(1, 0.50, 0.72, 0.05)]
    picked = [
        {**lgg(0, 0.60, 0.80, 0.02), "strategy": "diversity"},
        {**lgg(1, 0.56, 0.75, 0.04), "strategy": "diversity"},
    ]
    lines = selection_table(draws, picked, "supervised", 0.1, [])
    assert "lesion-slice Dice, last" in lines[2] and "lesion-free slices given a mask, last" in lines[2]
    cells = [cell.strip() for cell in next(line for line in lines if "diversity" in line).strip("|").split("|")]
    assert cells[3] == "0.5800 ± 0.0283" and cells[6] == "+13.0 ± 2.8"  # against the draws' lesion mean 0.45
    assert cells[7] == "+13.0 ± 9.9" and cells[8] == "0.030 ± 0.014" and cells[9] == "0.7750 ± 0.0354"


def test_the_selection_table_pairs_a_method_with_another_on_the_same_picks():
    def lgg(method: str, seed: int, lesion: float, false_positives: float) -> dict:
        row = {**_row(method, 0.1, seed, 0.8), "strategy": "diversity", "labelled_cases": 100}
        lesions = {"test_dice_lesion_last": lesion, "test_dice_lesion_best": lesion}
        return {**row, **lesions, "test_false_positive_rate_last": false_positives}

    picked = [lgg("semi", 0, 0.75, 0.10), lgg("supervised", 0, 0.70, 0.20), lgg("supervised", 1, 0.10, 0.90)]
    lines = selection_table([], picked, "semi", 0.1, [], versus="supervised")
    assert "− supervised on the same cases (points)" in lines[2]
    cells = [cell.strip() for cell in next(line for line in lines if "diversity" in line).strip("|").split("|")]
    assert cells[-2:] == ["+5.0", "0.200"]  # seed 1's supervised row has no semi partner: left out of both
