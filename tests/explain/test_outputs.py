"""Explanation files for a classifier checkpoint: CAM and ACAM figures and raw maps."""

import numpy as np
import pytest
import torch
from PIL import Image

from medseg.checkpoint_io import save_checkpoint
from medseg.config import load_config
from medseg.explanations.outputs import explain_paths
from medseg.models import build_model
from tests.conftest import write_png


def _classifier_checkpoint(tmp_path, phantom_config, pool):
    config = phantom_config()
    config["model"] = {"name": "classifier", "features": [4, 8, 16], "pool": pool}
    cfg = load_config(config)
    torch.manual_seed(0)
    model = build_model({**cfg.model, "in_channels": 1, "out_channels": 1})
    path = tmp_path / f"{pool}.pt"
    save_checkpoint(path, {"config": cfg.model_dump(mode="json"), "model": model.state_dict(), "epoch": 0})
    return path


@pytest.mark.parametrize(("pool", "method"), [("avg", "cam"), ("attention", "acam"), ("max", "gradcam")])
def test_classifier_maps_are_written_as_figure_and_array(tmp_path, phantom_config, pool, method):
    checkpoint = _classifier_checkpoint(tmp_path, phantom_config, pool)
    image = np.zeros((48, 48), np.uint8)
    image[8:20, 30:44] = 220
    write_png(tmp_path / "in" / "s.png", image)
    written = list(explain_paths(checkpoint, [tmp_path / "in"], tmp_path / "out", method=method))
    assert [p.name for p in written] == [f"s_{method}.png"]
    values = np.load(tmp_path / "out" / f"s_{method}.npy")
    assert values.shape == (48, 48) and values.min() >= 0 and values.max() == pytest.approx(1.0, abs=1e-6)
    assert np.asarray(Image.open(written[0])).shape[2] in (3, 4)


def test_acam_on_a_plain_cam_classifier_is_refused(tmp_path, phantom_config):
    checkpoint = _classifier_checkpoint(tmp_path, phantom_config, "avg")
    write_png(tmp_path / "in" / "s.png", np.full((48, 48), 50, np.uint8))
    with pytest.raises(ValueError, match="needs a classifier trained with model.pool: attention"):
        list(explain_paths(checkpoint, [tmp_path / "in"], tmp_path / "out", method="acam"))
