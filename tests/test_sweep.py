"""The sweep library's results files and tables: a rerun replaces its point's line, a kept point keeps its machine,
margins pair seeds, and a generated block is rewritten in place without touching the text around it."""

import json

import pytest

from medseg.sweep import rows as sweep_rows
from medseg.sweep.markdown import replace_marked_block, table
from medseg.sweep.rows import append_rows, read_rows, record_rows
from medseg.sweep.stats import cell, machines, paired_margins, points


def _row(seed: int, dice: float) -> dict:
    return {"method": "cdma", "ratio": 0.1, "seed": seed, "test_dice_last": dice, "test_dice_best": dice}


def _key(row: dict) -> tuple:
    return row["method"], row["ratio"], row["seed"]


def _same(old: dict, new: dict) -> bool:
    return old["test_dice_last"] == new["test_dice_last"]


def test_a_kept_point_keeps_its_machine_and_a_retrained_one_is_replaced(monkeypatch, tmp_path):
    path = tmp_path / "semi.jsonl"
    monkeypatch.setattr(sweep_rows, "machine", lambda: {"cpu": "first"})
    record_rows(path, [_row(0, 0.5), _row(1, 0.6)], _key, _same, dataset="lgg")
    monkeypatch.setattr(sweep_rows, "machine", lambda: {"cpu": "second"})
    record_rows(path, [_row(0, 0.5), _row(1, 0.7)], _key, _same, dataset="lgg")
    rows = read_rows(path, dataset="lgg")
    assert [(r["seed"], r["test_dice_last"], r["cpu"]) for r in rows] == [(0, 0.5, "first"), (1, 0.7, "second")]
    assert read_rows(path, dataset="figshare") == []


def test_nan_is_written_as_null_and_rows_append(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_rows(path, [{"hd95": float("nan"), "per_case": [1.0, float("nan")]}])
    append_rows(path, [{"hd95": 2.0}])
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"hd95": None, "per_case": [1.0, None]}, {"hd95": 2.0}]


def test_margins_pair_seeds_and_cells_show_the_spread():
    baseline = [{"seed": 0, "dice": 0.50}, {"seed": 1, "dice": 0.60}]
    rows = [{"seed": 0, "dice": 0.55}, {"seed": 1, "dice": 0.62}, {"seed": 2, "dice": 0.9}]  # seed 2: no pair
    margins = paired_margins(rows, baseline, "dice")
    assert margins == pytest.approx([0.05, 0.02])
    assert points(margins) == "+3.5 ± 2.1"
    assert cell([0.55, 0.62, None]) == "0.5850 ± 0.0495"
    assert cell([0.5], 2) == "0.50" and cell([None]) == "—" and points([]) == "—"
    assert machines([{"cpu": "b", "bf16": False}, {"cpu": "a", "bf16": True}]) == "a (bf16: yes); b (bf16: no)"


def test_a_generated_block_is_replaced_and_the_text_around_it_kept(tmp_path):
    results = tmp_path / "RESULTS.md"
    before = "# Results\n\ntext above\n\n<!-- generated lgg 0.1 -->\n| old | table |\n"
    after = "<!-- /generated -->\n\ntext below, kept\n"
    results.write_text(before + after)
    lines = table(["method", "Dice"], [["bcp", "0.5"]])
    replace_marked_block(results, "lgg 0.1", lines)
    text = results.read_text()
    assert text == before.replace("| old | table |\n", "| method | Dice |\n|---|---|\n| bcp | 0.5 |\n") + after
    replace_marked_block(results, "lgg 0.1", lines)  # a second rewrite changes nothing
    assert results.read_text() == text


def test_a_file_without_the_marker_is_refused_and_left_as_it_was(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("no markers here\n")
    with pytest.raises(ValueError, match=r"RESULTS\.md.*generated figshare 0\.1"):
        replace_marked_block(results, "figshare 0.1", ["| x |"])
    assert results.read_text() == "no markers here\n"
    results.write_text("<!-- generated figshare 0.1 -->\n| unclosed |\n")
    with pytest.raises(ValueError, match="no closing"):
        replace_marked_block(results, "figshare 0.1", ["| x |"])
