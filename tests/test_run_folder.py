"""The run folder: refused unless resumed or overwritten, locked while a process trains in it, names that never
collide or leave output_dir, metrics that survive a kill, temporary files cleaned, refused configs leave nothing."""

from __future__ import annotations

import csv

import pytest
import yaml
from typer.testing import CliRunner

from medseg.checkpoint_io import load_checkpoint
from medseg.cli import app
from medseg.config import load_config
from medseg.data.dataset import prepare_dataset
from medseg.engine import trainer
from medseg.errors import DataError
from medseg.methods import METHODS
from medseg.methods.supervised import Supervised
from medseg.run_folder import locked, new_run_path

runner = CliRunner()


def _config_file(tmp_path, config) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _train(*args: str):
    return runner.invoke(app, ["train", *args, "--quiet", "--no-evaluate"])


def test_training_into_an_existing_run_is_refused_unless_resumed_or_overwritten(tmp_path, phantom_config):
    config, run = _config_file(tmp_path, phantom_config(epochs=1)), tmp_path / "run"
    assert _train(config, "--run-dir", str(run)).exit_code == 0
    first_splits = (run / "splits.csv").read_text()
    again = _train(config, "seed=1", "--run-dir", str(run))
    assert again.exit_code == 2 and "already holds a run; continue it with --resume" in again.output
    assert (run / "splits.csv").read_text() == first_splits, "the refused run changed nothing"
    replaced = _train(config, "seed=1", "--run-dir", str(run), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert (run / "splits.csv").read_text() != first_splits, "the new run's own split, not the old one's"
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1


def test_a_second_trainer_on_a_locked_folder_stops_with_a_clear_message(tmp_path, phantom_config):
    run = tmp_path / "run"
    with locked(run):  # as a trainer in another process holds it
        result = _train(_config_file(tmp_path, phantom_config(epochs=1)), "--run-dir", str(run))
    assert result.exit_code == 2 and "another medseg process is training here" in result.output
    assert not (run / "config.yaml").exists()


def test_overwrite_on_a_folder_another_process_trains_in_removes_nothing(tmp_path, phantom_config):
    config = _config_file(tmp_path, phantom_config(epochs=1))
    run = tmp_path / "run"
    assert _train(config, "--run-dir", str(run)).exit_code == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with locked(run):  # another trainer holds the folder
        result = _train(config, "seed=1", "--run-dir", str(run), "--overwrite")
    assert result.exit_code == 2 and "another medseg process is training here" in result.output
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_default_run_names_never_collide(tmp_path):
    names = {new_run_path(tmp_path, "same") for _ in range(3)}  # the same second, three runs
    assert len(names) == 3 and all(path.is_dir() for path in names)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=true", "epochs: expected a number, not true"),
        ("model.features=abc", "model.features: 'str' instances are not allowed"),
        ("model.features=[4,-8]", "model.features needs at least 2 positive channel counts"),
        ("train.lr=1e30", "train.lr: Input should be less than or equal to 1"),
        ("name=../../escaped", "name: must be a plain folder name"),
        ("name=a/b", "name: must be a plain folder name"),
    ],
)
def test_config_edges_give_one_line_exit_2_and_leave_no_run_folder(tmp_path, phantom_config, override, message):
    config = phantom_config(epochs=1)
    result = _train(_config_file(tmp_path, config), override)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) <= 2, result.output  # one message (wrapped at most once)
    output_dir = tmp_path / "runs"
    assert not output_dir.exists() or not any(output_dir.iterdir()), list(output_dir.iterdir())
    assert not (tmp_path.parent / "escaped").exists()


class _NaNLoss(Supervised):
    """A method whose loss is NaN from the first step, as a diverging run's becomes."""

    name = "nan_loss"

    def training_step(self, batch):
        return {"loss": super().training_step(batch)["loss"] * float("nan")}


def test_a_diverging_run_stops_with_one_line_exit_2_and_leaves_nothing(tmp_path, phantom_config, monkeypatch):
    monkeypatch.setitem(METHODS._items, "nan_loss", _NaNLoss)  # a method plugged into the registry for this test
    config = phantom_config(epochs=1)
    config["method"] = {"name": "nan_loss"}
    result = _train(_config_file(tmp_path, config))
    assert result.exit_code == 2 and "the loss became NaN or infinite at step 0; lower train.lr" in result.output
    output_dir = tmp_path / "runs"
    assert not output_dir.exists() or not any(output_dir.iterdir()), "no checkpoint reached: nothing left behind"


def test_metrics_hold_every_epoch_of_last_pt_after_a_kill_between_the_two_writes(tmp_path, phantom_config):
    cfg, run = load_config(phantom_config(epochs=3)), tmp_path / "run"

    def killed_in_epoch_three(state):
        if state.step == 12:  # 4 steps per epoch
            raise KeyboardInterrupt
        return trainer.validate(state)

    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, run, show_progress=False, hooks=trainer.Hooks(validate=killed_in_epoch_three))
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    # as if killed after last.pt (epoch 2) was written but before metrics.csv was
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join(lines[:2]) + "\n")
    trainer.resume(run, show_progress=False)
    with (run / "metrics.csv").open() as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [1, 2, 3]


def test_temporary_files_of_a_killed_run_are_removed_on_the_next_start(tmp_path, phantom_config):
    cfg, run = load_config(phantom_config(epochs=2)), tmp_path / "run"

    def killed_in_epoch_two(state):
        if state.step == 8:
            raise KeyboardInterrupt
        return trainer.validate(state)

    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, run, show_progress=False, hooks=trainer.Hooks(validate=killed_in_epoch_two))
    leftovers = [run / ".last.pt.tmp.abc123_q.pt", run / "eval" / "test" / "overlays" / ".x.png.tmp.q1w2e3r4.png"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    mine = [run / ".notes.tmp.txt", run / "eval" / ".data.tmp.bak"]  # a user's files, named alike
    for path in mine:
        path.write_text("mine")
    trainer.resume(run, show_progress=False)
    assert not any(path.exists() for path in leftovers)
    assert all(path.read_text() == "mine" for path in mine)


def test_a_half_built_store_of_a_killed_run_is_removed(tmp_path, phantom_config):
    cfg = load_config(phantom_config())
    store = prepare_dataset(cfg.data, cfg.seed).store
    orphan = store.path.parent / f".{store.path.name}.killed"
    (orphan / "images.npy").parent.mkdir(parents=True)
    (orphan / "images.npy").write_bytes(b"half")
    prepare_dataset(cfg.data, cfg.seed)
    assert not orphan.exists()


def test_a_dataset_too_small_for_its_splits_is_refused(tmp_path, phantom_config):
    config = phantom_config()
    config["data"]["source"] = {"format": "phantoms", "count": 4, "size": 48, "slices_per_group": 4}
    with pytest.raises(DataError, match="1 group.*cannot fill the 3 splits.*val, test would be empty"):
        prepare_dataset(load_config(config).data, 0)
    result = _train(_config_file(tmp_path, config), "--run-dir", str(tmp_path / "one"))
    assert result.exit_code == 2 and not (tmp_path / "one").exists()
