"""`medseg evaluate RUN --data`: a run's model on another labelled data set, with the run's preprocessing."""

from __future__ import annotations

import csv
import json

import numpy as np
import yaml
from typer.testing import CliRunner

from medseg.cli import app
from medseg.data.readers.phantoms import make_phantom
from tests.conftest import write_png

runner = CliRunner()


def test_a_run_evaluates_on_another_data_set_made_at_another_size(tmp_path, phantom_config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(phantom_config(epochs=1)))
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", str(path), "--run-dir", str(run), "--quiet", "--no-evaluate"]).exit_code == 0
    other = tmp_path / "hospital-b"
    for index in range(5):  # another size than the run's 48×48, from another seed
        image, mask = make_phantom(seed=9, index=index, size=72)
        write_png(other / "images" / f"{index}.png", (image * 255).astype(np.uint8))
        write_png(other / "masks" / f"{index}.png", mask * 255)
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(other)])
    assert result.exit_code == 0, result.output
    folder = run / "eval" / "hospital-b"
    with (folder / "cases.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 5
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["cases"] == 5 and summary["data"] == str(other) and summary["resolution"].startswith("48×48")
    assert "hospital-b" in (run / "report.html").read_text()
    yaml_data = tmp_path / "b.yaml"
    yaml_data.write_text(
        yaml.safe_dump(
            {"data": {"source": {"format": "folder", "root": str(other), "image_dir": "images", "mask_dir": "masks"}}}
        )
    )
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(yaml_data), "--name", "from-yaml"])
    assert result.exit_code == 0, result.output
    assert (run / "eval" / "from-yaml" / "summary.json").is_file()
    # a name that would overwrite the run's own test evaluation is refused before anything is written
    own = (run / "eval" / "from-yaml" / "summary.json").read_text()
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(yaml_data), "--name", "test"])
    assert result.exit_code == 2 and "choose another with --name" in result.output
    assert not (run / "eval" / "test").exists()
    assert (run / "eval" / "from-yaml" / "summary.json").read_text() == own
    # a name is one plain folder under eval/: no path out of the run folder, nor into eval/ itself
    for name in ("./test", "../../x", str(tmp_path / "abs"), ".", "..", ".hidden", "a/b"):
        result = runner.invoke(app, ["evaluate", str(run), "--data", str(yaml_data), "--name", name])
        assert result.exit_code == 2 and "one plain folder name" in result.output, (name, result.output)
    assert (
        not (tmp_path / "x").exists()
        and not (tmp_path / "abs").exists()
        and not (run / "eval" / "summary.json").exists()
    )
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["from-yaml", "hospital-b"]
