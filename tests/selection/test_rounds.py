"""One annotation round end to end (select → train on exactly the picks → select again with the model), the
labelled list's checks, and the simulated loop's resume."""

from __future__ import annotations

import csv

import pytest
import yaml
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config import load_config
from medseg.data.splits import keep_labeled, read_labeled_ids
from medseg.errors import DataError
from medseg.sweep.run import Selection, run_budget

runner = CliRunner()


def _ids(path, split=None):
    with open(path, newline="") as handle:
        return [row["id"] for row in csv.DictReader(handle) if split is None or row["split"] == split]


def test_a_round_picks_trains_on_exactly_the_picks_and_the_next_round_uses_the_model(tmp_path, phantom_config):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(phantom_config(epochs=1)))
    first = runner.invoke(
        app, ["select", str(config), "--count", "6", "--strategy", "diversity", "--max-per-group", "2",
              "--out", str(tmp_path / "round1.csv")],
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    picks = _ids(tmp_path / "round1.csv")
    assert len(picks) == 6 and (tmp_path / "round1.png").stat().st_size > 0
    labelled = tmp_path / "round1.labelled.txt"
    assert read_labeled_ids(labelled) == picks

    run = tmp_path / "run"
    trained = runner.invoke(
        app, ["train", str(config), f"data.labeled_file={labelled}", "--run-dir", str(run), "--quiet"]
    )
    assert trained.exit_code == 0, trained.output
    assert sorted(_ids(run / "splits.csv", "train")) == sorted(picks)  # exactly the picks train with masks

    second = runner.invoke(
        app, ["select", str(run), "--count", "4", "--strategy", "uncertain_diverse", "--out", str(tmp_path / "r2.csv")]
    )
    assert second.exit_code == 0, second.output
    more = _ids(tmp_path / "r2.csv")
    assert len(more) == 4 and set(more) <= set(_ids(run / "splits.csv", "unlabeled"))
    listed = read_labeled_ids(tmp_path / "r2.labelled.txt")  # the labelled before, then the new picks
    assert sorted(listed[:-4]) == sorted(picks) and listed[-4:] == more


def test_a_cold_start_refuses_a_strategy_that_needs_a_model(tmp_path, phantom_config):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(phantom_config()))
    result = runner.invoke(app, ["select", str(config), "--count", "3", "--strategy", "uncertainty"])
    assert result.exit_code == 2 and "needs a trained model" in result.output


def test_the_labelled_list_names_the_file_when_an_id_is_not_a_training_case(tmp_path):
    listed = tmp_path / "labelled.txt"
    listed.write_text("a\nb\n")
    with pytest.raises(DataError, match=r"labelled.txt: 1 labelled id\(s\) are not training cases \({'test': 1}\)"):
        keep_labeled({"a": "train", "b": "test", "c": "train"}, read_labeled_ids(listed), listed)
    listed.write_text("a\na\n")
    with pytest.raises(DataError, match="names 1 id"):
        read_labeled_ids(listed)
    listed.write_text("id,group,score,why\nc,g,1,x\n")  # a picks.csv is a labelled list too
    assert keep_labeled({"a": "train", "c": "unlabeled"}, read_labeled_ids(listed), listed) == {
        "a": "unlabeled",
        "c": "train",
    }


def test_a_killed_loop_resumes_without_redoing_a_finished_round(tmp_path, phantom_config):
    config = phantom_config(epochs=1)
    config["data"]["source"]["count"] = 64
    cfg = load_config(config)
    out = tmp_path / "loop"
    selection = Selection("uncertainty", rounds=2, cold_start="random", max_per_group=2)

    def stop_at_the_second_round(line: str) -> None:
        if line.startswith("[2/2]"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_budget(cfg, out, ["supervised"], [0.5], [0], note=stop_at_the_second_round, selection=selection)
    first_split = out / "splits" / "uncertainty-supervised-r0.25-s0.csv"
    first_run = out / "supervised-uncertainty-r0.25-s0" / "last.pt"
    stamps = first_split.stat().st_mtime_ns, first_run.stat().st_mtime_ns
    seen: list[str] = []
    rows = run_budget(cfg, out, ["supervised"], [0.5], [0], note=seen.append, selection=selection)
    assert seen[0].startswith("[1/2] supervised-uncertainty-r0.25-s0: done, kept")
    assert (first_split.stat().st_mtime_ns, first_run.stat().st_mtime_ns) == stamps
    assert [(r["strategy"], r["ratio"], r["round"]) for r in rows] == [
        ("uncertainty", 0.25, 1),
        ("uncertainty", 0.5, 2),
    ]
    one, two = (set(_ids(out / "splits" / f"uncertainty-supervised-r{r}-s0.csv", "train")) for r in ("0.25", "0.5"))
    assert one < two  # the second round adds to the first
    picked = set(_ids(out / "splits" / "uncertainty-supervised-r0.5-s0.picks.csv"))
    assert picked == two - one
    trained = set(_ids(out / "supervised-uncertainty-r0.5-s0" / "splits.csv", "train"))
    assert trained == two


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "give the number of cases to pick"),
        (["--count", "3", "--share", "0.1"], "give the number of cases to pick"),
        (["--count", "0"], "--count must be ≥ 1"),
        (["--share", "1.5"], "--share is a share of the training cases in (0, 1]"),
        (["--count", "3", "--strategy", "entropy"], "unknown selection strategy 'entropy'"),
        (["--count", "3", "--whole-groups", "--max-per-group", "2"], "not both"),
    ],
)
def test_a_request_that_cannot_be_met_is_one_line(tmp_path, phantom_config, options, message):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(phantom_config()))
    result = runner.invoke(app, ["select", str(config), *options, "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "p.csv").exists()
