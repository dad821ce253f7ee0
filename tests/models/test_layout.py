"""Memory layout: every model trains in a layout whose kernels are safe on CPUs with and without AVX-512."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from medseg.models import MODELS, prefers_channels_last
from tests.helpers import resolved


def test_msga_defaults_to_the_contiguous_layout_and_the_others_to_channels_last(phantom_config):
    assert {name: prefers_channels_last(name) for name in MODELS.names()} == {
        "classifier": True,
        "msga": False,
        "mtnet": True,
        "unet": True,
        "unetpp": True,
    }
    msga = {**phantom_config(), "model": {"name": "msga", "features": [4, 8, 16, 16], "width": 4, "blocks": 1}}
    assert resolved(msga).train.channels_last is False, "the resolved config records the layout used"
    explicit = {**msga, "train": {**msga["train"], "channels_last": True}}
    assert resolved(explicit).train.channels_last is True, "a layout the user sets is kept"


def test_msga_trains_with_the_avx2_kernels_of_onednn(tmp_path, phantom_config):
    """In channels_last, the residual shortcut's 1×1 stride-2 convolution (4 → 8 channels) hangs in backward with
    oneDNN's AVX2 kernels; the default layout must finish. In a subprocess: the ISA is fixed when torch loads."""
    config = phantom_config(epochs=1)
    config["model"] = {"name": "msga", "features": [4, 8, 16, 16], "width": 4, "blocks": 1}
    config["train"]["amp"] = False  # as on an AVX2 CPU: no native bf16
    path = tmp_path / "msga.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    command = [sys.executable, "-m", "medseg", "train", str(path), "--run-dir", str(tmp_path / "run"), "--quiet"]
    result = subprocess.run([*command, "--no-evaluate"], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run" / "last.pt").is_file()
