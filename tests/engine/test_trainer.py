import csv
from pathlib import Path

import pytest
import torch

from medseg.checkpoint_io import load_checkpoint, save_checkpoint, training_finished
from medseg.config import load_config
from medseg.engine import trainer


def _metrics(run):
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_run_folder_holds_config_splits_metrics_and_checkpoints(tmp_path, phantom_config):
    run = tmp_path / "run"
    result = trainer.train(load_config(phantom_config(epochs=3)), run, show_progress=False)
    assert {"config.yaml", "splits.csv", "metrics.csv", "best.pt", "last.pt"} <= {p.name for p in run.iterdir()}
    rows = _metrics(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    state = torch.load(run / "best.pt", weights_only=True)
    assert state["config"]["model"]["name"] == "unet" and result.best_val_score == state["best"]
    assert not list(run.glob(".*tmp*")), "no temporary files left"


@pytest.mark.parametrize("ema", [None, 0.9])
def test_interrupted_run_keeps_last_checkpoint_and_resumes_to_the_same_weights(tmp_path, phantom_config, ema):
    cfg = load_config(phantom_config(epochs=3, ema=ema))
    reference = tmp_path / "reference"
    trainer.train(cfg, reference, show_progress=False)

    run = tmp_path / "run"

    def crash_in_epoch_two(state):
        if state.step == 8:  # 4 steps per epoch: killed after the last step of epoch 2, before its checkpoint
            raise KeyboardInterrupt
        return trainer.validate(state)

    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, run, show_progress=False, hooks=trainer.Hooks(validate=crash_in_epoch_two))
    assert load_checkpoint(run / "last.pt")["epoch"] == 1

    trainer.resume(run, show_progress=False)
    assert [int(r["epoch"]) for r in _metrics(run)] == [1, 2, 3]
    resumed, expected = load_checkpoint(run / "last.pt"), load_checkpoint(reference / "last.pt")
    weights = ["model", "train_model"] if ema else ["model"]
    assert sorted(k for k in expected if k.endswith("model")) == sorted(weights)
    for name in weights:
        for key, value in expected[name].items():
            torch.testing.assert_close(resumed[name][key], value, atol=1e-5, rtol=1e-4)


def test_weight_average_is_what_validation_and_checkpoints_use(tmp_path, phantom_config):
    run = tmp_path / "run"
    trainer.train(load_config(phantom_config(epochs=2, ema=0.5)), run, show_progress=False)
    state = load_checkpoint(run / "last.pt")
    averaged, raw = state["model"], state["train_model"]
    moved = [k for k in raw if raw[k].is_floating_point() and not torch.allclose(raw[k], averaged[k])]
    assert moved, "the averaged weights must differ from the raw ones"
    assert set(averaged) == set(raw)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"config": {}, "model": {"w": torch.ones(2)}})

    def broken_save(obj, f):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"config": {}, "model": {"w": torch.zeros(2)}})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_foreign_or_truncated_checkpoint_is_explained(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pt: cannot load checkpoint"):
        load_checkpoint(bad)


def test_skip_bad_lists_skipped_cases(tmp_path, image_folder):
    (image_folder / "masks" / "case1.png").unlink()
    cfg = {
        "data": {
            "source": {"format": "folder", "root": str(image_folder), "image_dir": "images", "mask_dir": "masks"},
            "size": 32,
            "cache_dir": str(tmp_path / "cache"),
            "skip_bad": True,
            "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
        },
        "model": {"name": "unet", "features": [4, 8]},
        "train": {"epochs": 1, "batch_size": 2},
    }
    trainer.train(load_config(cfg), tmp_path / "run", show_progress=False)
    skipped = (tmp_path / "run" / "skipped.csv").read_text()
    assert "case1" in skipped and "no mask" in skipped


def _ticking_clock(step: float = 5.0):
    """A clock whose every reading is `step` seconds after the previous one: epochs take well over a second."""
    now = {"t": 0.0}

    def clock():
        now["t"] += step
        return now["t"]

    return clock


def test_max_minutes_stops_before_an_epoch_that_would_overrun(tmp_path, phantom_config):
    cfg = load_config(phantom_config(epochs=10, max_minutes=0.5))
    hooks = trainer.Hooks(clock=_ticking_clock())
    result = trainer.train(cfg, tmp_path / "run", show_progress=False, hooks=hooks)
    assert 1 <= result.epochs_done < 10
    metrics = _metrics(tmp_path / "run")
    assert float(metrics[-1]["seconds"]) <= 30
    # the cosine was re-planned to the epochs that fit: the lr reaches 0 at the last one, not cut off high
    assert float(metrics[-1]["lr"]) < 1e-9 < float(metrics[0]["lr"])


def test_a_run_the_time_budget_ended_resumes_to_nothing_and_counts_as_finished(tmp_path, phantom_config):
    cfg = load_config(phantom_config(epochs=10, max_minutes=0.5))
    run = tmp_path / "run"
    result = trainer.train(cfg, run, show_progress=False, hooks=trainer.Hooks(clock=_ticking_clock()))
    saved = load_checkpoint(run / "last.pt")
    assert saved["last_epoch"] == result.epochs_done < 10 and training_finished(saved, 10)
    before = (run / "metrics.csv").read_text()
    again = trainer.resume(run, show_progress=False, hooks=trainer.Hooks(clock=_ticking_clock()))
    assert again.epochs_done == result.epochs_done
    assert (run / "metrics.csv").read_text() == before
    assert load_checkpoint(run / "last.pt")["step"] == saved["step"]


def test_a_methods_progress_counts_against_the_epochs_the_time_budget_leaves(tmp_path, phantom_config):
    cfg = load_config(phantom_config(epochs=10, max_minutes=0.5))
    fractions = []
    hooks = trainer.Hooks(
        clock=_ticking_clock(), validate=lambda state: fractions.append(state.step / state.total_steps) or 0.5
    )
    result = trainer.train(cfg, tmp_path / "run", show_progress=False, hooks=hooks)
    assert result.epochs_done < 10
    # the last epoch the budget allowed ends the method's schedule (progress 1), not a tenth of the way short
    assert fractions[-1] == 1.0


def test_validate_from_skips_early_validations_and_best_follows_last_until_one_scores(tmp_path, phantom_config):
    scores = iter([0.3, 0.5, 0.4])
    best_epoch_when_validating = []
    run = tmp_path / "run"

    def fake_validate(state):
        best_epoch_when_validating.append(load_checkpoint(run / "best.pt")["epoch"])
        return next(scores)

    cfg = load_config(phantom_config(epochs=5, validate_from=0.5))
    result = trainer.train(cfg, run, show_progress=False, hooks=trainer.Hooks(validate=fake_validate))
    rows = _metrics(run)
    # epochs 1 and 2 come before half of the 5 planned epochs; 3, 4 and 5 are validated
    assert [r["val_dice"] for r in rows] == ["nan", "nan", "0.30000", "0.50000", "0.40000"]
    # best.pt followed last.pt until epoch 3 scored; then it kept the best epoch (4)
    assert best_epoch_when_validating == [2, 3, 4]
    assert load_checkpoint(run / "best.pt")["epoch"] == 4 and result.best_val_score == 0.5


def test_validate_from_still_validates_the_last_epoch_of_a_time_budget(tmp_path, phantom_config):
    cfg = load_config(phantom_config(epochs=10, max_minutes=0.5, validate_from=0.99))
    hooks = trainer.Hooks(clock=_ticking_clock())
    result = trainer.train(cfg, tmp_path / "run", show_progress=False, hooks=hooks)
    rows = _metrics(tmp_path / "run")
    assert 1 < result.epochs_done < 10
    assert rows[-1]["val_dice"] != "nan" and all(r["val_dice"] == "nan" for r in rows[:-1])


def test_an_optimizer_saved_before_the_fused_kernel_resumes_fused_with_its_moments():
    model = torch.nn.Linear(3, 2)
    old = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    old.step()
    assert not old.param_groups[0]["fused"]
    resumed = trainer.adamw(model, 0.01, 0.0, torch.device("cpu"))
    trainer.load_optimizer_state(resumed, old.state_dict())
    assert resumed.param_groups[0]["fused"] is True
    torch.testing.assert_close(resumed.state[model.weight]["exp_avg"], old.state[model.weight]["exp_avg"])
    resumed.step()
    assert resumed.state[model.weight]["step"].item() == 2
