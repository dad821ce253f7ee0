"""`benchmarks/bench_semi.py record`: a point kept from an earlier run keeps its recorded line (and machine)."""

import json
from pathlib import Path


def _row(seed: int, dice: float) -> dict:
    return {
        "method": "cdma",
        "ratio": 0.1,
        "seed": seed,
        "steps": 3000,
        "minutes": 60.0,
        "test_dice_last": dice,
        "test_dice_best": dice,
    }


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_kept_point_keeps_its_machine_and_a_retrained_one_is_replaced(bench_semi, monkeypatch, tmp_path):
    path = tmp_path / "semi.jsonl"
    monkeypatch.setattr(bench_semi, "machine", lambda: {"cpu": "first"})
    bench_semi.record([_row(0, 0.5), _row(1, 0.6)], "lgg", "c.yaml", [], path)
    monkeypatch.setattr(bench_semi, "machine", lambda: {"cpu": "second"})
    bench_semi.record([_row(0, 0.5), _row(1, 0.7)], "lgg", "c.yaml", [], path)
    rows = _lines(path)
    assert [(r["seed"], r["test_dice_last"], r["cpu"]) for r in rows] == [(0, 0.5, "first"), (1, 0.7, "second")]
