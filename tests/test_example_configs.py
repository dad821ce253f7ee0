"""Every example config validates, and those for the shared datasets index their cases without code changes."""

from pathlib import Path

import pytest

from medseg.config import load_config
from medseg.data.readers import build_reader
from medseg.resolve import resolve_config
from tests.conftest import REPO, SHARED_DATA

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_there_are_example_configs_for_the_three_shared_datasets():
    names = {p.stem for p in CONFIGS}
    assert {"figshare-unet", "lgg-unet", "isbi-unet"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_validates_and_indexes(path: Path, monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = load_config(path)
    if path.stem.startswith("template-"):  # a template points at the user's data: it only has to resolve
        assert resolve_config(cfg).data.source["format"]
        return
    root = cfg.data.source.get("root")
    if root is None:
        return
    if not Path(root).exists():
        pytest.skip(f"{root} not present (shared data lives in {SHARED_DATA})")
    cases = build_reader(cfg.data.source).cases()
    assert cases and all(c.mask for c in cases)
    assert len({c.group for c in cases}) > 1
