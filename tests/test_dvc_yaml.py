"""dvc.yaml says everything a stage reads: its own script and every module of ours it imports, no more."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_built, run

PACKAGE = "softmax_regression"
HEAVY = {"torch", "mlflow"}


def imports(path: Path) -> set[str]:
    """Top-level names of every module imported anywhere in the file, function bodies included, but for a
    package's module `__getattr__`, which runs only when its name is asked for (the estimator's)."""
    tree = ast.parse(path.read_text())
    if path.name == "__init__.py":
        tree.body = [node for node in tree.body if not (isinstance(node, ast.FunctionDef) and node.name == "__getattr__")]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
            sibling = path.with_name(node.value)  # a file of ours run by name (MLflow's), beside this one
            if sibling.is_file():
                names.add(".".join(sibling.relative_to(ROOT / "src").with_suffix("").parts))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(f"{PACKAGE}."):
            names.add(node.value)  # a module of ours imported by name (the fork server's)
    return names


def closure(script: Path) -> tuple[set[str], set[str]]:
    """(files of ours the script reaches, third-party top-level modules it reaches), following our imports."""
    ours, others, todo = set(), set(), [script]
    while todo:
        path = todo.pop()
        rel = path.relative_to(ROOT).as_posix()
        if rel in ours:
            continue
        ours.add(rel)
        top = ROOT / "src" / PACKAGE  # importing a module runs its packages' __init__.py first
        todo += [package / "__init__.py" for package in path.parents if package == top or top in package.parents]
        for name in imports(path):
            if name.split(".")[0] != PACKAGE:
                others.add(name.split(".")[0])
                continue
            module = ROOT / "src" / Path(*name.split("."))
            for candidate in (module.with_suffix(".py"), module / "__init__.py"):
                if candidate.is_file():
                    todo.append(candidate)
    return ours, others


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_exactly_its_code(name):
    stage = STAGES[name]
    script = ROOT / stage["cmd"].split()[-1]
    code_deps = {d for d in stage["deps"] if d.startswith(("src/", "stages/"))}
    ours, _ = closure(script)
    assert code_deps == ours, (f"stage {name}: dvc.yaml lists {sorted(code_deps - ours)} it does not import "
                               f"and misses {sorted(ours - code_deps)}")


@pytest.mark.parametrize("name", ["ingest", "split"])
def test_data_stages_import_neither_torch_nor_mlflow(name):
    _, others = closure(ROOT / STAGES[name]["cmd"].split()[-1])
    assert not others & HEAVY, f"stage {name} imports {sorted(others & HEAVY)}: seconds on every run"


def test_editing_a_csv_message_reruns_ingest_alone(built, tmp_path):
    """A stage depends on the modules it imports and no others: a new wording of a CSV error changes
    `ingest` only, whose output comes out the same bytes, so nothing after it runs."""
    repo = copy_built(built, tmp_path / "repo", store=False)
    raw = repo / "src" / PACKAGE / "data" / "raw.py"
    raw.write_text(raw.read_text().replace("the file is empty;", "the file holds nothing;"))
    status = json.loads(run(["dvc", "status", "--json"], repo).stdout)
    assert sorted(status) == ["ingest"], status
    result = run(["dvc", "repro"], repo)
    ran = [line for line in result.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'ingest':"], result.stdout
    assert json.loads(run(["dvc", "status", "--json"], repo).stdout) == {}


def test_the_model_is_a_dvc_artifact_of_type_model():
    """Declared as DVC's own examples do, read back by DVC: the train stage's weights, type `model`."""
    from dvc.repo import Repo
    from dvc.repo.artifacts import check_name_format

    with Repo(str(ROOT)) as repo:
        artifacts = repo.artifacts.read()["dvc.yaml"]
    artifact = artifacts["softmax-regression"]
    check_name_format("softmax-regression")  # raises on a name DVC's registry cannot hold
    assert artifact.type == "model" and artifact.desc and "pytorch" in artifact.labels
    assert artifact.path in [next(iter(o)) if isinstance(o, dict) else o for o in STAGES["train"]["outs"]]


def declared_files() -> set[str]:
    """Every data file dvc.yaml names: the stages' outputs, metrics and data dependencies."""
    files = set()
    for stage in STAGES.values():
        for entry in [*stage.get("deps", []), *stage.get("outs", []), *stage.get("metrics", [])]:
            path = next(iter(entry)) if isinstance(entry, dict) else entry
            if not path.startswith(("src/", "stages/", "${")):
                files.add(path)
    return files


def test_dvc_yaml_and_the_code_name_the_same_files():
    from softmax_regression import paths

    named = {value for key, value in vars(paths).items() if key.isupper() and isinstance(value, str) and "/" in value}
    assert declared_files() == named


def test_a_file_of_the_pipeline_is_named_in_paths_alone():
    sources = [p for p in [*(ROOT / "src").rglob("*.py"), *(ROOT / "stages").glob("*.py")] if p.name != "paths.py"]
    for name in declared_files():
        quoted = [f'"{name}"', f"'{name}'"]
        typed = [p.relative_to(ROOT).as_posix() for p in sources if any(q in p.read_text() for q in quoted)]
        assert not typed, f"{name} is typed in {typed}; use softmax_regression.paths"
