"""The convergence check on a training history: how far validation moved over the last 30%, and the warning
`medseg train` prints when it moved more than the protocol's ±0.02."""

import math

import pytest

from medseg.convergence import checkpoint_by_drift, convergence_warning, validation_change
from medseg.run_folder import RunFolder


def _history(scores: list[float], column: str = "val_dice") -> list[dict[str, str]]:
    """metrics.csv rows as RunFolder.metrics() reads them: strings, NaN for an epoch without validation."""
    return [{"epoch": str(i + 1), "train_loss": "0.5", column: str(s)} for i, s in enumerate(scores)]


def test_change_is_the_fitted_slope_over_the_last_30_percent():
    # epochs 1-7 climb, epochs 8-10 (the last 30%) rise exactly 0.01 an epoch: 0.02 over that stretch
    scores = [0.1 * i for i in range(1, 8)] + [0.80, 0.81, 0.82]
    assert validation_change(_history(scores)) == pytest.approx(0.02)


def test_early_epochs_do_not_count():
    flat_end = [0.1, 0.3, 0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    assert validation_change(_history(flat_end)) == pytest.approx(0.0)
    assert convergence_warning(_history(flat_end)) is None


def test_unvalidated_epochs_are_skipped_and_too_few_say_nothing():
    nan = math.nan
    assert validation_change(_history([nan] * 8 + [0.5, 0.6])) is None  # two validated epochs: no slope
    assert validation_change(_history([nan, nan, nan, 0.5, 0.5, 0.6, 0.7, 0.8])) == pytest.approx(0.2)
    assert validation_change([]) is None
    assert validation_change([{"epoch": "1", "train_loss": "0.5"}]) is None  # no validation column


def test_a_fall_names_the_best_epoch_and_the_checkpoint_choice():
    # the drift seen with 5% of figshare's masks: a peak early, then a slow slide
    scores = [0.40, 0.50, 0.59, 0.55, 0.52, 0.50, 0.48, 0.46, 0.44, 0.42]
    warning = convergence_warning(_history(scores))
    assert warning is not None
    assert "fell" in warning and "best 0.5900 at epoch 3" in warning and "last 0.4200" in warning
    assert "eval.checkpoint=last" in warning


def test_a_rise_suggests_more_epochs_and_names_the_metric():
    scores = [0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.62, 0.64, 0.66, 0.70]
    warning = convergence_warning(_history(scores, column="val_accuracy"))
    assert warning is not None and "accuracy still rose" in warning and "train.epochs" in warning


def test_within_tolerance_is_quiet():
    scores = [0.5, 0.6, 0.65, 0.66, 0.67, 0.68, 0.68, 0.68, 0.685, 0.69]  # +0.01 over the last 30%
    assert convergence_warning(_history(scores)) is None
    assert convergence_warning(_history(scores), tolerance=0.005) is not None


def test_train_command_prints_the_warning_from_the_run_folder(tmp_path, capsys):
    from medseg.cli import _warn_if_not_converged

    run = RunFolder(tmp_path)
    run.write_metrics(_history([0.4, 0.5, 0.6, 0.58, 0.56, 0.54, 0.52, 0.50, 0.47, 0.45]))
    _warn_if_not_converged(tmp_path)
    assert "warning:" in capsys.readouterr().err

    RunFolder(tmp_path).write_metrics(_history([0.4, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]))
    _warn_if_not_converged(tmp_path)
    assert "warning:" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("scores", "chosen"),
    [
        ([0.4, 0.5, 0.6, 0.58, 0.56, 0.54, 0.52, 0.50, 0.47, 0.45], "best"),  # fell 0.07 over the tail
        ([0.4, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.59], "last"),  # flat: the final weights
        ([0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75], "last"),  # still rising
        ([0.6, 0.59, 0.58, 0.6, 0.6, 0.6, 0.6, 0.595, 0.59, 0.585], "last"),  # fell 0.015: within the tolerance
        ([0.5, 0.4], "last"),  # too few validated epochs to tell
    ],
)
def test_the_auto_checkpoint_rule_picks_as_stated(tmp_path, scores, chosen):
    for name in ("best", "last"):
        (tmp_path / f"{name}.pt").write_bytes(b"")
    run = RunFolder(tmp_path)
    run.write_metrics(_history(scores))
    assert checkpoint_by_drift(run.metrics()) == chosen
    assert run.chosen_checkpoint("auto") == tmp_path / f"{chosen}.pt"
