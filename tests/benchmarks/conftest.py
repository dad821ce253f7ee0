"""`benchmarks/regenerate_results.py` loaded as a module (the benchmarks folder is not a package)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "regenerate_results.py"


@pytest.fixture
def regenerate_results():
    spec = importlib.util.spec_from_file_location("regenerate_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
