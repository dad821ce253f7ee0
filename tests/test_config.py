import pytest

from medseg.config import load_config, parse_overrides
from medseg.errors import ConfigError
from tests.helpers import resolved

BASE = {"data": {"source": {"format": "phantoms"}}}


def test_resolving_fills_model_channels_from_data():
    cfg = resolved({"data": {"source": {"format": "phantoms"}, "channels": 3, "num_classes": 4}})
    assert cfg.model["in_channels"] == 3 and cfg.model["out_channels"] == 4


def test_typo_names_field_and_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  source: {format: phantoms}\n  sise: 64\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: data\.sise: unknown key; did you mean 'size'\?"):
        load_config(path)


def test_top_level_typo():
    with pytest.raises(ConfigError, match=r"trian: unknown key; did you mean 'train'\?"):
        load_config({**BASE, "trian": {}})


def test_wrong_type_names_field_and_value():
    with pytest.raises(ConfigError, match=r"train\.epochs: .*integer.*\(got 'many'\)"):
        load_config(BASE, ["train.epochs=many"])


def test_reader_option_typo_suggests():
    with pytest.raises(
        ConfigError, match=r"source\.mask_suffx: unknown key for format 'folder'; did you mean 'mask_suffix'"
    ):
        resolved({"data": {"source": {"format": "folder", "root": ".", "mask_suffx": "_m"}}})


def test_unknown_format_lists_formats():
    with pytest.raises(ConfigError, match=r"unknown format 'png'; available: \['dicom', 'figshare_mat', 'folder'"):
        resolved({"data": {"source": {"format": "png"}}})


def test_unknown_method_and_model_option():
    with pytest.raises(ConfigError, match=r"unknown method 'cdmaa'"):
        resolved({**BASE, "method": {"name": "cdmaa"}})
    with pytest.raises(ConfigError, match=r"model.depht: unknown option"):
        resolved({**BASE, "model": {"name": "unet", "depht": 3}})


def test_overrides_parse_yaml_scalars_and_nest():
    assert parse_overrides(["train.epochs=3", "data.source.root=/x", "train.amp=false"]) == {
        "train": {"epochs": 3, "amp": False},
        "data": {"source": {"root": "/x"}},
    }
    cfg = load_config(BASE, ["train.epochs=3", "model.features=[4, 8]"])
    assert cfg.train.epochs == 3 and cfg.model["features"] == [4, 8]
    with pytest.raises(ConfigError, match="not of the form key=value"):
        parse_overrides(["epochs"])


def test_split_ratios_must_sum_to_one():
    with pytest.raises(ConfigError, match="sum to 1"):
        load_config(BASE, ["data.splits.train=0.9"])


def test_weak_thresholds_out_of_order_are_refused_when_the_config_loads():
    with pytest.raises(ConfigError, match=r"weak.background \(0.5\) must be below weak.foreground \(0.3\)"):
        load_config(BASE, ["supervision=image-labels", "weak.foreground=0.3", "weak.background=0.5"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
