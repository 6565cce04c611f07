"""`dvc plots show` and `dvc plots diff` draw with no network: the page DVC writes carries vega, vega-lite and
vega-embed itself (vendor/vega/plots.html, `.dvc/config`'s plots.html_template), looked at in headless Chromium
with every host name unresolvable."""

from __future__ import annotations

import re

from conftest import browse, copy_built, needs_chromium, run


def curves(dom: str) -> list[int]:
    """The number of points of each line vega drew (SVG paths of its line marks)."""
    lines = re.findall(r'<g class="mark-line role-mark[^"]*"[^>]*>(.*?)</g>', dom, flags=re.S)
    return [len(re.findall(r"[ML]", d)) for line in lines for d in re.findall(r'<path[^>]* d="([^"]*)"', line)]


@needs_chromium
def test_plots_show_draws_the_loss_curves_offline(built, tmp_path):
    repo = copy_built(built, tmp_path / "repo", store=False)
    run(["dvc", "plots", "show"], repo)
    page = repo / "dvc_plots" / "index.html"
    assert "cdn.jsdelivr" not in page.read_text(), "nothing is loaded from a CDN"
    dom = browse(page.as_uri(), tmp_path / "plots.png", ["mark-line"], offline=True)
    assert dom.count('class="vega-embed') == 3, f"three vega plots drawn; see {tmp_path}"
    assert max(curves(dom)) >= 250, f"the training loss at each of its 250 iterations; see {tmp_path}"
    assert "dvc_plots" not in run(["git", "status", "--porcelain"], repo).stdout, "dvc_plots/ is git-ignored"


@needs_chromium
def test_plots_diff_overlays_the_experiments_offline(compared, tmp_path):
    repo = copy_built(compared.repo, tmp_path / "repo")
    run(["dvc", "plots", "diff", *sorted(compared.queued().values())], repo)
    dom = browse((repo / "dvc_plots" / "index.html").as_uri(), tmp_path / "diff.png", ["mark-line"], offline=True)
    assert sum(points >= 250 for points in curves(dom)) >= 3, f"a loss curve per experiment; see {tmp_path}"
