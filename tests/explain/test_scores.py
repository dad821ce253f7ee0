"""Explanation scores: faithfulness curves that reward a map showing what the confidence depends on, and the
`medseg explain --score` command on a trained run."""

from __future__ import annotations

import json

import numpy as np
import torch
import yaml
from typer.testing import CliRunner

from medseg.cli import app
from medseg.explanations.scores import FRACTIONS, _curves


def test_a_map_of_what_the_confidence_reads_deletes_fast_and_inserts_fast():
    torch.manual_seed(0)
    region = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    region[:, :, 4:8, 4:8] = True  # the confidence reads these 16 pixels only, bright against the rest
    images = 0.1 * torch.rand(2, 1, 16, 16) + 5.0 * region

    def confidence(batch: torch.Tensor) -> torch.Tensor:
        return (batch * region).flatten(1).sum(1) / 16

    faithful = region.float() + 0.01 * torch.rand(2, 1, 16, 16)
    backwards = 1 - faithful
    good_deletion, good_insertion = (np.trapezoid(c, FRACTIONS, axis=1) for c in _curves(faithful, images, confidence))
    bad_deletion, bad_insertion = (np.trapezoid(c, FRACTIONS, axis=1) for c in _curves(backwards, images, confidence))
    assert (good_deletion < bad_deletion).all() and (good_insertion > bad_insertion).all()
    deletion, insertion = _curves(faithful, images, confidence)
    np.testing.assert_allclose(deletion[:, 0], 1.0) and np.testing.assert_allclose(insertion[:, -1], 1.0)


def test_explain_score_on_a_trained_run(tmp_path, phantom_config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(phantom_config()))
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(path), "train.epochs=2", "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["explain", str(tmp_path / "run"), "--score", "--method", "layercam", "--limit", "4"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "run" / "eval" / "test" / "explanation_scores.json").read_text())
    assert row["method"] == "layercam" and 0 < row["slices"] <= 4
    assert all(0 <= row[key] <= 1 for key in ("pointing", "energy_inside"))
    nothing = runner.invoke(app, ["explain", str(tmp_path / "run")])
    assert nothing.exit_code != 0 and "or --score" in nothing.output
    refused = runner.invoke(app, ["explain", str(tmp_path / "run"), "--score", "--method", "cam"])
    assert refused.exit_code != 0 and "needs a classifier" in refused.output


def test_only_methods_whose_checks_pass_are_scored_by_default():
    from medseg.explanations.scores import applicable_methods
    from medseg.models import build_model

    spec = {"name": "classifier", "in_channels": 1, "out_channels": 1, "features": [4, 8]}
    max_pooled = applicable_methods(build_model({**spec, "pool": "max"}))
    attention = applicable_methods(build_model({**spec, "pool": "attention"}))
    assert "cam" in max_pooled and "acam" not in max_pooled  # ACAM reads attention pooling's weights
    assert "acam" in attention and "gradcam" in attention and "attention" not in attention
    segmentation = applicable_methods(build_model({"name": "unet", "in_channels": 1, "out_channels": 1}))
    assert "cam" not in segmentation and "hirescam" in segmentation
