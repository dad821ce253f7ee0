"""Post-processing chosen on the validation split: the best mean Dice wins (the simplest of equals), the choice is
written into the run's eval settings, and the test split is never read."""

from __future__ import annotations

import pytest
import torch

from medseg.config import load_config
from medseg.engine.trainer import train
from medseg.evaluation import evaluate_run
from medseg.postprocessing_choice import PLAIN, as_overrides, candidates, choose_postprocessing
from medseg.run_folder import RunFolder


@pytest.fixture
def trained_run(phantom_config, tmp_path):
    run = tmp_path / "run"
    train(load_config(phantom_config(epochs=1)), run, show_progress=False)
    return run


def _scripted(monkeypatch, score, seen: list):
    """The evaluation replaced: each candidate's validation Dice is `score(settings)`; every call's split and
    checkpoint kept."""

    def evaluate(run_dir, split, settings, which=None):
        seen.append((split, which))
        return {name: score(candidate) for name, candidate in settings.items()}

    monkeypatch.setattr("medseg.postprocessing_choice.mean_dice_by_settings", evaluate)


def test_the_best_validation_dice_is_chosen_and_written_into_the_run(trained_run, monkeypatch):
    def score(settings):  # best: threshold 0.3 with the largest component, flips or not
        return 0.7 if settings["threshold"] == 0.3 and settings["largest_component"] else 0.5

    seen = []
    _scripted(monkeypatch, score, seen)
    choice = choose_postprocessing(trained_run, which="last")
    assert choice["settings"] == {"threshold": 0.3, "tta": False, "largest_component": True}, "simplest of equals"
    assert len(choice["dice"]) == len(candidates(binary=True)) and seen == [("val", "last")]
    settings = RunFolder(trained_run).config.eval
    assert (settings.threshold, settings.tta, settings.largest_component) == (0.3, False, True)


def test_equal_scores_keep_the_plain_settings_and_apply_false_leaves_the_config(trained_run, monkeypatch):
    _scripted(monkeypatch, lambda settings: 0.6, [])
    before = (trained_run / "config.yaml").read_text()
    assert choose_postprocessing(trained_run, apply=False)["settings"] == PLAIN
    assert (trained_run / "config.yaml").read_text() == before


def test_multi_class_masks_have_no_threshold_to_choose():
    assert {s["threshold"] for s in candidates(binary=False).values()} == {0.5}
    assert as_overrides({"threshold": 0.4, "tta": True}) == ["eval.threshold=0.4", "eval.tta=true"]


def _uneven_probabilities(method, model, images, amp, channels_last):
    """In place of a network barely trained (whose probabilities are all near 0): a map from the image that is not
    mirror-symmetric and spreads over (0, 1), so that every threshold, the flips and the largest component matter."""
    width = images.shape[-1]
    ramp = torch.linspace(-1, 1, width).view(1, 1, 1, width)
    return torch.sigmoid(6 * (images[:, :1] - images[:, :1].mean()) + 2 * ramp).float()


def test_the_written_choice_is_what_evaluation_then_uses(trained_run, monkeypatch):
    monkeypatch.setattr("medseg.postprocessing_choice.THRESHOLDS", (0.5, 0.3))
    monkeypatch.setattr("medseg.inference.predict_probabilities", _uneven_probabilities)
    choice = choose_postprocessing(trained_run)
    assert len(set(choice["dice"].values())) > 4, "the candidates differ"
    assert len(choice["dice"]) == 8 and choice["checkpoint"] == "best"
    again = evaluate_run(trained_run, "val", label="val-again")
    assert again["metrics"]["dice"]["mean"] == pytest.approx(choice["dice"][choice["chosen"]])
    # every candidate's score, from one pass per flip setting, is what evaluating with it gives
    for k, (name, settings) in enumerate(candidates(binary=True).items()):
        summary = evaluate_run(trained_run, "val", overrides=as_overrides(settings), label=f"val-{k}")
        assert summary["metrics"]["dice"]["mean"] == pytest.approx(choice["dice"][name]), name
