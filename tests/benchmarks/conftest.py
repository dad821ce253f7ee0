"""`benchmarks/bench_semi.py` loaded as a module (the benchmarks folder is not a package)."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_semi.py"


@pytest.fixture
def bench_semi():
    spec = importlib.util.spec_from_file_location("bench_semi", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
