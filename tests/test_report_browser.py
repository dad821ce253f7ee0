"""The run report and the comparison page in headless Chromium: they load with no console errors, every
image decodes, and a screenshot shows a rendered page. Skipped (with the reason) without Chromium."""

import shutil

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from medseg.cli import app

playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
runner = CliRunner()


def _train(tmp_path, phantom_config, name, **model):
    config = phantom_config(epochs=2)
    config["name"] = name
    config["model"] = {"name": "unet", "features": [4, 8, 16], **model}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / name), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / name


def _open(page_path, screenshot):
    """Console errors, page errors and undecodable images of a page, after taking its screenshot."""
    problems = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: message.type == "error" and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: request.url.startswith("http") and problems.append(request.url))
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
        count = page.evaluate("document.images.length")
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return problems, broken, count


@pytest.mark.slow
def test_report_and_comparison_render_in_chromium(tmp_path, phantom_config):
    attention = _train(tmp_path, phantom_config, "cbam", attention="cbam")
    plain = _train(tmp_path, phantom_config, "plain")
    assert (attention / "report.html").is_file()
    assert list((attention / "eval" / "test" / "explain").glob("*.png")), "an attention gallery in the report"

    problems, broken, count = _open(attention / "report.html", tmp_path / "report.png")
    assert not problems and broken == 0 and count >= 4  # curves, overlays, explanation figures
    shot = np.asarray(Image.open(tmp_path / "report.png").convert("L"))
    assert shot.shape[1] == 1200 and shot.shape[0] > 900 and shot.std() > 10, "a rendered, non-blank page"

    third = _train(tmp_path, phantom_config, "gate", attention="gate")
    result = runner.invoke(app, ["report", str(attention), str(plain), str(third), "--out", str(tmp_path / "c.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "c.html").read_text()
    assert all(name in page for name in ("cbam", "plain", "gate"))
    problems, broken, count = _open(tmp_path / "c.html", tmp_path / "comparison.png")
    assert not problems and broken == 0 and count == 1


@pytest.mark.slow
@pytest.mark.shared_data
def test_a_figshare_run_report_renders(tmp_path):
    from tests.conftest import FIGSHARE, REPO, need

    need(FIGSHARE)
    overrides = [
        f"data.source.root={FIGSHARE}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.size=64",
        "augment.crop=48",
        "model.features=[8,16,32]",
        "model.pyramid=1",
        "train.epochs=1",
        "train.steps_per_epoch=3",
        "eval.overlays=2",
    ]
    result = runner.invoke(
        app, ["train", str(REPO / "configs" / "figshare-unet.yaml"), *overrides, "--run-dir", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.output
    problems, broken, count = _open(tmp_path / "run" / "report.html", tmp_path / "figshare.png")
    assert not problems and broken == 0 and count >= 5
