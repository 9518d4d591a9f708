"""Sphinx configuration of the genbook site (Sphinx + myst-nb + Furo, MathJax served from the site itself).

Not run directly: `python scripts/build_docs.py` stages the notebooks (hidden cells dropped, API reference
inserted, cross-links written) into a temporary folder and runs Sphinx on it with this file (`-c docs`).
"""
import importlib.util, re, shutil
from pathlib import Path

_root = Path(__file__).resolve().parents[1]
project = "genbook"
author = copyright = "the genbook developers"
release = re.search(r'__version__\s*=\s*"([^"]+)"', (_root / "genbook" / "__init__.py").read_text()).group(1)
html_title = f"genbook {release}"
root_doc = "index"
extensions = ["myst_nb"]

# Render the outputs saved in the notebooks; never execute one (they are committed executed).
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]  # $...$ and $$...$$ as in the notebooks
# build_docs.py writes every cross-link as its final `page.html#anchor` URL, and its --check verifies them.
myst_all_links_external = True
suppress_warnings = ["myst.header"]  # notebooks put show_doc's ### entries under ## sections, or under the # title

html_theme = "furo"
html_copy_source = False  # no _sources/ copies of the notebooks
html_show_sourcelink = False
html_last_updated_fmt = None

# Math without a network: MathJax 3 comes from the sphinx-mathjax-offline package (a pinned dev dependency);
# its single-file SVG build needs no web fonts, so the site renders math from file:// or any static host.
mathjax_path = "mathjax/tex-svg-full.js"
_mathjax = Path(importlib.util.find_spec("sphinx-mathjax-offline").origin).parent / "static" / "mathjax" / "tex-svg-full.js"


def _copy_mathjax(app, exc):
    if exc is None and app.builder.format == "html":
        (Path(app.outdir) / "_static" / "mathjax").mkdir(parents=True, exist_ok=True)
        shutil.copy2(_mathjax, Path(app.outdir) / "_static" / "mathjax" / _mathjax.name)


def setup(app):
    app.connect("build-finished", _copy_mathjax)
