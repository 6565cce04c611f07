"""The package's shape: a folder per layer, each importing only the layers below it and only the heavy
packages that are its job (torch for training, MLflow for tracking and serving, DVC for the pipeline), and
names a reader can tell apart."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "src" / "softmax_regression"
TOP = "(top level)"
HEAVY = {"torch", "mlflow", "dvc", "matplotlib", "optuna", "sklearn"}

# layer: (the layers of ours it may import, the heavy packages it may import itself)
LAYERS = {
    TOP: ({TOP}, set()),
    "data": ({TOP}, set()),
    "parallel": ({TOP}, {"torch"}),
    "training": ({TOP, "data", "parallel"}, {"torch", "matplotlib"}),
    "serving": ({TOP, "data", "training"}, {"torch", "mlflow"}),
    "tracking": ({TOP, "data", "training", "serving"}, {"mlflow"}),
    "pipeline": ({TOP}, {"dvc"}),
    "search": ({TOP, "data", "training", "parallel", "tracking", "pipeline"}, {"optuna", "torch", "matplotlib"}),
    "commands": (set(), set()),  # anything of ours, through which every heavy package comes
    "estimator.py": ({TOP, "data", "training"}, {"torch", "sklearn"}),  # the trainer as a scikit-learn classifier
}
MODULES = sorted(path for path in PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0] if parts[0] in LAYERS else TOP


def imported(path: Path) -> set[str]:
    """Every module the file imports, anywhere in it (function bodies included), by its full name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def our_layer(name: str) -> str | None:
    """The layer of ours a module name belongs to, None when it is not ours."""
    parts = name.split(".")
    if parts[0] != "softmax_regression":
        return None
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return TOP


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_a_module_imports_only_what_its_layer_may(path):
    layer = layer_of(path)
    ours, heavy = LAYERS[layer]
    names = imported(path)
    used = {name.split(".")[0] for name in names} & HEAVY
    assert used <= heavy, f"{layer}/ may not import {sorted(used - heavy)}"
    if layer != "commands":
        layers = {our_layer(name) for name in names} - {None, layer}
        assert layers <= ours, f"{layer}/ may not import from {sorted(layers - ours)}"


def test_the_package_has_layers_and_few_modules_at_its_top():
    folders = [p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()]
    assert len(folders) >= 4 and {p.name for p in folders} <= set(LAYERS), sorted(p.name for p in folders)
    assert len(list(PACKAGE.glob("*.py"))) <= 10


@pytest.mark.parametrize("folder", sorted({p.parent for p in MODULES}), ids=lambda p: p.name)
def test_no_two_modules_in_a_folder_share_their_first_five_letters(folder):
    stems = [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
    starts = [stem[:5] for stem in stems]
    assert len(set(starts)) == len(starts), sorted(stems)


def lines_of_code(path: Path) -> int:
    """Lines that are neither blank, nor comments, nor docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
            first = node.body[0]
            docstrings.update(range(first.lineno, first.end_lineno + 1))
    return sum(1 for number, line in enumerate(path.read_text().splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and number not in docstrings)


@pytest.mark.parametrize("stage", sorted((ROOT / "stages").glob("*.py")), ids=lambda p: p.stem)
def test_a_stage_is_thin(stage):
    assert lines_of_code(stage) <= 40


@pytest.mark.parametrize("script", sorted((ROOT / "bench").glob("*.py")), ids=lambda p: p.stem)
def test_a_benchmark_file_holds_one_benchmark(script):
    assert len(script.read_text().splitlines()) <= 250
