"""`medseg budget`: every point on one split with nested labelled draws, resumable, with its table and plot."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config import load_config
from medseg.sweep.arguments import parse_budget_arguments
from medseg.sweep.plan import plan_points
from medseg.sweep.run import run_budget

runner = CliRunner()


def test_points_skip_semi_supervised_methods_at_full_labels():
    points = plan_points(["supervised", "bcp:method.pretrain=0.5"], [1.0, 0.1], [0, 1])
    assert [(p.method_name, p.ratio, p.seed) for p in points] == [
        ("supervised", 0.1, 0),
        ("supervised", 0.1, 1),
        ("bcp", 0.1, 0),
        ("bcp", 0.1, 1),
        ("supervised", 1.0, 0),
        ("supervised", 1.0, 1),
    ]
    assert points[2].overrides == ("method.pretrain=0.5",) and points[2].folder == "bcp-method.pretrain0.5-r0.1-s0"
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        plan_points(["supervised"], [0.0], [0])


def test_a_point_keeps_the_configs_method_options_only_for_that_method(tmp_path, phantom_config):
    from medseg.sweep.plan import Point, point_config

    config = phantom_config()
    config["method"] = {"name": "supervised", "dice": "image"}
    cfg = load_config(config)
    split = tmp_path / "s.csv"
    split.write_text("id,group,split\n")
    assert point_config(cfg, Point("supervised", 0.5, 0), split).method["dice"] == "image"
    assert point_config(cfg, Point("mean_teacher", 0.5, 0), split).method["dice"] == "batch"
    assert point_config(cfg, Point("cdma", 0.5, 0), split).model["name"] == "mtnet", "its model family"


def test_arguments_take_values_up_to_the_next_option():
    target, overrides, options = parse_budget_arguments(
        ["c.yaml", "train.epochs=3", "--ratios", "0.1", "1", "--methods", "supervised", "bcp", "--seeds", "4"]
    )
    assert (target, overrides) == ("c.yaml", ["train.epochs=3"])
    assert (
        options["ratios"] == ["0.1", "1"] and options["methods"] == ["supervised", "bcp"] and options["seeds"] == ["4"]
    )
    with pytest.raises(ValueError, match="--seeds needs values"):
        parse_budget_arguments(["c.yaml", "--seeds"])
    with pytest.raises(ValueError, match="unknown option --ratio"):
        parse_budget_arguments(["c.yaml", "--ratio", "1"])


def test_a_stratified_budget_draws_split_files_of_its_own(tmp_path, phantom_config):
    """Turning data.stratify_by_label on must not reuse the plain draw already written in the budget folder."""
    from medseg.sweep.plan import split_file

    config = phantom_config()
    plain = split_file(load_config(config), tmp_path, 0.5, 0)
    config["data"]["stratify_by_label"] = True
    stratified = split_file(load_config(config), tmp_path, 0.5, 0)
    assert (plain.name, stratified.name) == ("r0.5-s0.csv", "r0.5-s0-stratified.csv")
    assert set(_splits(stratified).values()) == {"train", "unlabeled", "val", "test"}


def _splits(path):
    with path.open() as handle:
        return {row["id"]: row["split"] for row in csv.DictReader(handle)}


def test_budget_resumes_after_an_interruption_and_keeps_finished_points(tmp_path, phantom_config):
    config = phantom_config(epochs=1)
    config["data"]["source"]["count"] = 64
    cfg = load_config(config)
    out = tmp_path / "budget"
    methods, ratios, seeds = ["supervised", "bcp"], [0.5, 1.0], [0]

    def stop_at_the_second_point(line: str) -> None:
        if line.startswith("[2/3]"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_budget(cfg, out, methods, ratios, seeds, note=stop_at_the_second_point)
    first = out / "supervised-r0.5-s0" / "last.pt"
    stamp = first.stat().st_mtime_ns
    seen: list[str] = []
    rows = run_budget(cfg, out, methods, ratios, seeds, note=seen.append)
    assert seen[0].startswith("[1/3] supervised-r0.5-s0: done, kept") and "training" in seen[1]
    assert "(2 point(s) after this one)" in seen[0] and "(1 point(s) after this one)" in seen[1]
    assert first.stat().st_mtime_ns == stamp, "a finished point is not trained again"
    assert [(r["method"], r["ratio"]) for r in rows] == [("supervised", 0.5), ("bcp", 0.5), ("supervised", 1.0)]
    assert len((out / "budget.jsonl").read_text().splitlines()) == 3
    for name in ("budget.csv", "budget.md", "budget.png", "report.html"):
        assert (out / name).is_file()
    half, full = _splits(out / "splits" / "r0.5-s0.csv"), _splits(out / "splits" / "r1-s0.csv")
    assert {k for k, v in full.items() if v != "train"} == {
        k for k, v in half.items() if v not in ("train", "unlabeled")
    }
    assert {k for k, v in half.items() if v == "train"} < {k for k, v in full.items() if v == "train"}
    assert rows[0]["test_dice_last"] is not None and rows[0]["unlabelled_cases"] > 0
    split = json.loads((out / "supervised-r0.5-s0" / "eval" / "test" / "summary.json").read_text())["by_truth"]
    assert rows[0]["test_dice_lesion_last"] == split["lesion"]["dice"]["mean"]


def test_a_budget_refuses_a_folder_made_with_another_config_and_checks_every_point_first(tmp_path, phantom_config):
    config = phantom_config(epochs=1)
    config["data"]["source"]["count"] = 48
    out = tmp_path / "budget"
    run_budget(load_config(config), out, ["supervised"], [1.0], [0], note=lambda line: None)
    kept = (out / "supervised-r1-s0" / "last.pt").read_bytes()
    config["train"]["lr"] = 0.01  # the same point now means another run: reusing the folder would mislabel it
    with pytest.raises(ValueError, match=r"supervised-r1-s0 was trained with another config \(train.lr differ\)"):
        run_budget(load_config(config), out, ["supervised"], [1.0], [0], note=lambda line: None)
    assert (out / "supervised-r1-s0" / "last.pt").read_bytes() == kept
    # an option no point's method takes stops the budget before its first point trains
    with pytest.raises(Exception, match="nonsense"):
        run_budget(load_config(config), tmp_path / "other", ["supervised", "bcp:method.nonsense=1"], [0.5], [0])
    assert not (tmp_path / "other" / "supervised-r0.5-s0").exists()


def test_budget_command_line(tmp_path, phantom_config):
    config = phantom_config(epochs=1)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "b"
    result = runner.invoke(
        app, ["budget", str(path), "--ratios", "0.5", "--methods", "supervised", "--seeds", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "[1/1] supervised-r0.5-s3: training" in result.output
    row = json.loads((out / "budget.jsonl").read_text())
    assert (row["method"], row["ratio"], row["seed"]) == ("supervised", 0.5, 3)
    typo = runner.invoke(app, ["budget", str(path), "train.epochz=3"])
    assert typo.exit_code == 2 and "epochz" in typo.output
