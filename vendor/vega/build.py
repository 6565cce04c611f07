"""Build plots.html, the page `dvc plots show` and `dvc plots diff` fill in (`.dvc/config`'s plots.html_template),
with vega, vega-lite and vega-embed inlined from the npm packages package.json pins, so that the plots draw with
no network; and LICENSES.txt, the licence of every package installed with them.

    make plots-template                    # = cd vendor/vega && npm ci && python build.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUNDLES = ["vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js"]

# DVC's own page (dvc_render's PAGE_HTML), with the scripts inlined where it loads them from a CDN. vega-embed
# draws SVG rather than a canvas: the marks are then elements a browser test can find, and scale when zoomed.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
SCRIPTS
    <script type="text/javascript">
        const embed = vegaEmbed;
        vegaEmbed = (element, spec, options) => embed(element, spec, {renderer: "svg", ...options});
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def main() -> None:
    modules = HERE / "node_modules"
    scripts = []
    for bundle in BUNDLES:
        code = (modules / bundle).read_text(encoding="utf-8")
        if "</script" in code or "{plot_divs}" in code or "{refresh_tag}" in code:
            raise SystemExit(f"{bundle} holds text that would break the page")
        scripts.append(f'    <script type="text/javascript">{code}</script>')
    (HERE / "plots.html").write_text(PAGE.replace("SCRIPTS", "\n".join(scripts)), encoding="utf-8")
    licences = []
    for package in sorted(modules.glob("**/package.json")):
        meta = json.loads(package.read_text(encoding="utf-8"))
        if "version" not in meta or package.parent.name != meta.get("name", "").split("/")[-1]:
            continue
        texts = [p for p in package.parent.iterdir() if p.name.upper().startswith(("LICENSE", "LICENCE"))]
        body = texts[0].read_text(encoding="utf-8").strip() if texts else f"License: {meta.get('license')}"
        licences.append(f"{meta['name']}@{meta['version']}\n{'=' * 72}\n{body}\n")
    (HERE / "LICENSES.txt").write_text("\n\n".join(licences), encoding="utf-8")
    print(f"plots.html and LICENSES.txt ({len(licences)} packages) written in {HERE}")


if __name__ == "__main__":
    main()
