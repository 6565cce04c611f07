"""The documents a person reads: a short README, every link and anchor resolving, no dated diary, and the
README's example output what the committed pipeline prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DIARY = re.compile("|".join([r"\b20\d\d-\d\d-\d\d\b", "seen " + "here", "as run " + "here", "earlier (host|session)"]))


def anchors(page: Path) -> set[str]:
    """The anchors of a Markdown page's headings, as GitHub makes them."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_bytes()) <= 10_000


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{page.name}: no heading #{anchor} in {resolved.name}"


def test_every_page_is_reachable_from_the_readme():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in LINK.findall((ROOT / "README.md").read_text())
              if target.startswith("docs/")}
    assert {page.resolve() for page in PAGES[1:]} <= linked


def test_no_document_or_source_keeps_a_diary():
    """Dates and the story of a figure belong to commit messages; the benchmarks page states its run once."""
    files = [*PAGES, *(ROOT / "src").rglob("*.py"), *(ROOT / "stages").glob("*.py"), *(ROOT / "tests").glob("*.py"),
             *(ROOT / "bench").glob("*.py")]
    for path in files:
        lines = path.read_text().splitlines()
        if path.name == "benchmarks.md":  # its header, above the first section, says when it was measured
            lines = lines[next(i for i, line in enumerate(lines) if line.startswith("## ")):]
        dated = [line for line in lines if DIARY.search(line)]
        assert not dated, f"{path.relative_to(ROOT)}: {dated[0]}"


def test_the_readmes_make_run_output_is_what_the_committed_pipeline_prints():
    text = (ROOT / "README.md").read_text()
    train = json.loads((ROOT / "metrics/train.json").read_text())
    evaluation = json.loads((ROOT / "metrics/eval.json").read_text())
    run = json.loads((ROOT / "models/mlflow_run.json").read_text())["run_id"]
    assert text.count(f"MLflow run {run[:7]}…") == 2, "the README's run id is not the committed run's"
    assert (f"train accuracy {train['train_accuracy']:.4f}, final loss {train['train_loss_final']:.6f}") in text
    assert (f"evaluate: validation accuracy {evaluation['val_accuracy']:.4f}, log-loss {evaluation['val_log_loss']:.4f}; "
            f"test accuracy {evaluation['test_accuracy']:.4f}, log-loss {evaluation['test_log_loss']:.4f}") in text
