"""Shared fixtures: small phantom configs, temporary caches, and the shared real datasets (skipped if absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FIGSHARE = SHARED_DATA / "brain-tumor-figshare"
LGG = SHARED_DATA / "lgg-mri" / "kaggle_3m"
ISBI = SHARED_DATA / "isbi2012-em"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared dataset not found at {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _as_on_an_avx2_cpu(monkeypatch):
    """With ONEDNN_MAX_CPU_ISA=AVX2 (and ATEN_CPU_CAPABILITY=avx2), the suite runs the kernels of a CPU without
    AVX-512; medseg then also trains in float32, as it does on such a CPU (no native bf16)."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2":
        monkeypatch.setattr("medseg.engine.device._cpu_has_fast_bf16", lambda: False)


@pytest.fixture
def phantom_config(tmp_path):
    """A tiny phantom experiment as a config dict; tests override what they need."""

    def make(**train):
        return {
            "name": "tiny",
            "seed": 0,
            "output_dir": str(tmp_path / "runs"),
            "data": {
                "source": {"format": "phantoms", "count": 48, "size": 48, "slices_per_group": 4},
                "size": 48,
                "cache_dir": str(tmp_path / "cache"),
            },
            "model": {"name": "unet", "features": [8, 16, 32]},
            "train": {"epochs": 2, "batch_size": 8, "lr": 0.003, **train},
            "eval": {"overlays": 2},
        }

    return make


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """`root/images/*.png` + `root/masks/*.png`, 6 cases of 40×40, squares as lesions."""
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for i in range(6):
        image = (rng.random((40, 40)) * 120).astype(np.uint8)
        mask = np.zeros((40, 40), np.uint8)
        if i % 2 == 0:
            mask[10:20, 12:24] = 255
            image[mask > 0] += 100
        write_png(root / "images" / f"case{i}.png", image)
        write_png(root / "masks" / f"case{i}.png", mask)
    return root


@pytest.fixture
def rgb_folder(tmp_path) -> Path:
    """`root/images/*.png` (RGB) + `root/masks/*.png`, 16 phantom slices of odd, non-square sizes."""
    from medseg.data.readers.phantoms import make_phantom

    root = tmp_path / "rgb"
    sizes = [(45, 61), (52, 40), (61, 47), (40, 56)]
    for index in range(16):
        height, width = sizes[index % len(sizes)]
        image, mask = make_phantom(seed=3, index=index, size=max(height, width))
        image, mask = image[:height, :width], mask[:height, :width]
        tint = np.stack([image, 0.8 * image + 0.1, 0.6 * image + 0.2], axis=-1)
        write_png(root / "images" / f"case{index:02d}.png", (tint * 255).astype(np.uint8))
        write_png(root / "masks" / f"case{index:02d}.png", mask * 255)
    return root
