"""The code's shape, read with `ast`: import layering and no cycles, no capability probing where the engine calls
methods and models, short functions, and no method repeating what the Method base class does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "medseg"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(module: str) -> set[str]:
    """Every medseg module `module` imports, at the top or inside a function: `from a.b import c` counts as a.b.c
    where that is a module, else as a.b."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _inside(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        (
            ("medseg.data", "medseg.models"),
            (
                "medseg.engine",
                "medseg.methods",
                "medseg.inference",
                "medseg.weak",
                "medseg.explain",
                "medseg.selection",
                "medseg.cli",
            ),
        ),
        (("medseg.selection",), ("medseg.sweep", "medseg.engine.trainer", "medseg.evaluation", "medseg.cli")),
        (
            ("medseg.methods",),
            (
                "medseg.engine.trainer",
                "medseg.inference",
                "medseg.evaluation",
                "medseg.evaluation_classifier",
                "medseg.cli",
            ),
        ),
        (("medseg.config",), ("medseg.registry", "medseg.models", "medseg.methods", "medseg.data.readers")),
        (("medseg.run_folder", "medseg.checkpoint_io"), ("medseg.methods", "medseg.engine")),
    ],
)
def test_layers_import_nothing_above_them(layer, forbidden):
    wrong = sorted(
        f"{module} → {target}"
        for module, targets in GRAPH.items()
        if _inside(module, *layer)
        for target in targets
        if _inside(target, *forbidden)
    )
    assert not wrong, wrong


# Every module's layer, bottom to top (a prefix names a package); a module imports only from its own layer or below.
LAYERS: list[tuple[str, ...]] = [
    (  # foundations: files, errors, config, numbers
        "medseg",
        "medseg.errors",
        "medseg.atomic",
        "medseg.folders",
        "medseg.csv_cells",
        "medseg.registry",
        "medseg.resources",
        "medseg.locking",
        "medseg.ui",
        "medseg.config",
        "medseg.checkpoint_io",
        "medseg.convergence",
        "medseg.metrics",
        "medseg.losses",
        "medseg.windows",
        "medseg.postprocess",
        "medseg.overlay",
        "medseg.specs",
    ),
    ("medseg.data", "medseg.models"),
    ("medseg.explain",),  # maps of a network: CAM family, attention maps
    ("medseg.methods", "medseg.legacy"),
    ("medseg.resolve", "medseg.run_folder"),
    ("medseg.engine",),
    (
        "medseg.inference",
        "medseg.predict",
        "medseg.evaluation_classifier",
        "medseg.onnx_int8",
        "medseg.onnx_export",
        "medseg.provenance",
        "medseg.inspection",
    ),
    (
        "medseg.evaluation",
        "medseg.postprocessing_choice",
        "medseg.report",
        "medseg.explanations",
        "medseg.selection",
    ),
    ("medseg.weak", "medseg.sweep", "medseg.demo"),
    ("medseg.cli", "medseg.__main__"),
]


def _layer(module: str) -> int:
    """The index in LAYERS of the longest prefix naming `module`."""
    best, length = None, -1
    for index, members in enumerate(LAYERS):
        for prefix in members:
            named = module == prefix if prefix == "medseg" else _inside(module, prefix)  # the package's own __init__
            if named and len(prefix) > length:
                best, length = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} → {target}"
        for module, targets in graph.items()
        for target in targets
        if _layer(target) > _layer(module)
    )


def test_every_import_points_down_the_layers():
    assert not _upward(GRAPH), _upward(GRAPH)


def test_the_layer_check_sees_a_planted_upward_import():
    planted = {**GRAPH, "medseg.data.store": GRAPH["medseg.data.store"] | {"medseg.engine.trainer"}}
    assert _upward(planted) == ["medseg.data.store → medseg.engine.trainer"]


def test_no_import_cycle():
    """Tarjan's strongly connected components of the module graph: each must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles, cycles


PROBED = ("engine", "evaluation.py", "evaluation_classifier.py", "inference.py", "explain", "cli.py")


def _probes(path: Path) -> list[tuple[int, str]]:
    """`hasattr(...)` and `getattr(..., default)` calls: (line, source line)."""
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        name = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
        if name == "hasattr" or (name == "getattr" and len(node.args) == 3):
            found.append((node.lineno, lines[node.lineno - 1]))
    return found


def test_the_engine_calls_methods_and_models_instead_of_probing_them():
    files = [
        p for name in PROBED for p in ([SRC / name] if (SRC / name).is_file() else sorted((SRC / name).rglob("*.py")))
    ]
    probes = [(path, line, text) for path in files for line, text in _probes(path)]
    assert len(probes) <= 3, probes
    uncommented = [(path.name, line) for path, line, text in probes if "#" not in text]
    assert not uncommented, f"each probe says why in a comment: {uncommented}"


def test_functions_are_short():
    """`train` reads like a list of phases (≤ 60 lines); no function passes ~80 lines unless its docstring says why."""
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                reason = "long because" in (ast.get_docstring(node) or "")
                if length > 80 and not reason:
                    long.append(f"{path.name}:{node.name} ({length} lines)")
                if path.name == "trainer.py" and node.name == "train":
                    assert length <= 60, f"train is {length} lines"
    assert not long, long


def test_no_method_repeats_the_base_class_build_and_predict():
    """Building the model from the spec and predicting `probabilities(model(images))` live once, in methods/base.py."""
    repeated = []
    for path in sorted((SRC / "methods").glob("*.py")):
        if path.name == "base.py":
            continue
        text = path.read_text()
        for piece in ("self.model = build_model(", "return probabilities(model(images).float())", "def build(self)"):
            if piece in text:
                repeated.append(f"{path.name}: {piece}")
    assert not repeated, repeated


FORMAT_LIBRARIES = ("nibabel", "h5py", "tifffile", "pydicom", "highdicom")


def _format_dispatch(path: Path) -> list[str]:
    """A format library imported, a format's own reader module imported (anything under `medseg.data.readers` but
    its registry, interface and format sniffing), or a path's suffix compared (config files aside)."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        allowed = ("medseg.data.readers.base", "medseg.data.readers.inputs")
        for name in names:
            own_reader = name.startswith("medseg.data.readers.") and name not in allowed
            if name.split(".")[0] in FORMAT_LIBRARIES or own_reader:
                found.append(f"{path.name}:{node.lineno} imports {name}")
        if isinstance(node, ast.Attribute) and node.attr in ("suffix", "suffixes"):
            line = path.read_text().splitlines()[node.lineno - 1]
            if ".yaml" not in line:
                found.append(f"{path.name}:{node.lineno} compares a suffix: {line.strip()}")
    return found


def test_no_format_dispatch_outside_the_readers():
    """Formats are read and written by their reader (`medseg.data.readers`), found through its registry; the demo's
    phantom generator is the one exception (it makes data, it reads none)."""
    outside = [
        path
        for path in SRC.rglob("*.py")
        if not _inside(_module_name(path), "medseg.data.readers") and path.name != "demo.py"
    ]
    found = [item for path in outside for item in _format_dispatch(path)]
    assert not found, found


BENCHMARKS = SRC.parents[1] / "benchmarks"


def _benchmark_imports(path: Path) -> list[str]:
    """The benchmark modules and `sys.path` edits a benchmark script reaches for."""
    local = {p.stem for p in BENCHMARKS.glob("*.py")}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name in local]
        elif isinstance(node, ast.ImportFrom) and node.module in local:
            found.append(node.module)
        elif isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            found.append("sys.path")
    return found


def test_benchmarks_are_thin_callers_of_the_library():
    """What one benchmark needs from another lives in the library (medseg.sweep): no script imports another or
    edits sys.path to reach it."""
    reached = {path.name: _benchmark_imports(path) for path in sorted(BENCHMARKS.glob("*.py"))}
    assert {name: found for name, found in reached.items() if found} == {}


def test_the_benchmark_check_sees_a_planted_import(tmp_path):
    planted = tmp_path / "bench_x.py"
    planted.write_text("import sys\nsys.path.insert(0, 'x')\nfrom bench_semi import machine\n")
    assert sorted(_benchmark_imports(planted)) == ["bench_semi", "sys.path"]


STRUCTURE = SRC.parents[1] / "STRUCTURE.md"


def _layer_name(members: tuple[str, ...]) -> str:
    short = [member.removeprefix("medseg.") if member != "medseg" else "medseg" for member in members]
    return ", ".join(short)


def layer_edges(graph: dict[str, set[str]]) -> set[tuple[int, int]]:
    """(importing layer, imported layer) for every import between two layers."""
    return {(_layer(m), _layer(t)) for m, targets in graph.items() for t in targets if _layer(m) != _layer(t)}


def structure_drawing(graph: dict[str, set[str]]) -> str:
    """STRUCTURE.md: the layers top (the CLI) to bottom (files, errors, config), an arrow from a layer to each layer it
    imports from, as a mermaid flowchart GitHub draws."""
    lines = [
        "# medseg's structure",
        "",
        "Each box is a layer of `src/medseg` (its packages and modules); an arrow points from a layer to a layer it",
        "imports from. A module imports only from its own layer or below, so every arrow points down. Generated from",
        "the code by `python tests/test_architecture.py`; `tests/test_architecture.py` fails when this drawing is",
        "out of date or an arrow points up.",
        "",
        "```mermaid",
        "flowchart TB",
    ]
    for index in reversed(range(len(LAYERS))):
        lines.append(f'    L{index}["{_layer_name(LAYERS[index])}"]')
    for source, target in sorted(layer_edges(graph), reverse=True):
        lines.append(f"    L{source} --> L{target}")
    return "\n".join([*lines, "```", ""])


def test_the_structure_drawing_is_current_and_every_arrow_points_down():
    assert all(source > target for source, target in layer_edges(GRAPH))
    assert STRUCTURE.read_text() == structure_drawing(GRAPH), "run python tests/test_architecture.py to redraw"


def test_the_drawing_shows_a_planted_upward_arrow():
    planted = {**GRAPH, "medseg.data.store": GRAPH["medseg.data.store"] | {"medseg.engine.trainer"}}
    assert (_layer("medseg.data.store"), _layer("medseg.engine.trainer")) in layer_edges(planted)
    assert structure_drawing(planted) != structure_drawing(GRAPH)


if __name__ == "__main__":
    STRUCTURE.write_text(structure_drawing(GRAPH))
    print(f"written: {STRUCTURE}")
