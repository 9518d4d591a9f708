"""The documentation site (scripts/build_docs.py): staging rules, the link checker, and the real site built from nbs/,
checked for broken links and missing images and opened in headless Chromium like a reader would."""
import re, shutil, subprocess, sys
from pathlib import Path
import nbformat, pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_docs  # noqa: E402

SHOTS = ROOT / "runs" / "docs-screenshots"  # kept for a person to look at (runs/ is git-ignored)


def test_stage_drops_hidden_cells_adds_api_entries_and_links(tmp_path):
    "A small notebook staged as nbdev's quarto pipeline would render it."
    src, dst = tmp_path / "nbs", tmp_path / "staged"; src.mkdir(); dst.mkdir()
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[
        md("# Core\n> the basics"), code("#| default_exp core"), code("#| hide\nimport secret_module"),
        code("#| export\ndef get_device(): pass"), md("Use `get_device` (see `01_other`, [there](01_other.ipynb#x), [here](01_other.ipynb)); $x^2$."),
        code("#| slow\n#| eval: false\nprint(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        code("#| echo: false\nshown_output_only()"), code("#| code-fold: true\ntest_fail(f)")])
    nbformat.write(nb, src / "00_core.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[md("# Other")]), src / "01_other.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[md("# Home\nSee `genbook.core`.\n\n![a figure](images/fig.png)")]), src / "index.ipynb")
    (src / "images").mkdir(); (src / "images" / "fig.png").write_bytes(b"png")
    (src / "runs").mkdir(); (src / "runs" / "big.png").write_bytes(b"png")
    assert build_docs.stage(src, dst) == [("index", "Home"), ("core", "Core"), ("other", "Other")]
    cells = nbformat.read(dst / "core.ipynb", as_version=4).cells
    text = "\n".join(c.source for c in cells)
    assert "secret_module" not in text and "default_exp" not in text and "#|" not in text and "def get_device(): pass" not in text
    api = next(c.source for c in cells if "### get_device" in c.source)
    assert '<a id="get_device"></a>' in api and "```python\ndef get_device(" in api  # the entry show_doc makes, anchored
    assert "[`get_device`](core.html#get_device)" in text and "[`01_other`](other.html)" in text and "](other.html#x)" in text and "](other.html)" in text
    assert "$x^2$" in text
    slow = next(c for c in cells if c.source == "print(1)")
    assert slow.outputs[0].text == "1\n"
    assert "remove-input" in next(c for c in cells if c.source == "shown_output_only()").metadata.tags
    assert "hide-input" in next(c for c in cells if c.source == "test_fail(f)").metadata.tags   # folded behind a toggle
    assert (dst / "images" / "fig.png").is_file() and not (dst / "runs").exists()  # images beside the notebooks come along
    home = nbformat.read(dst / "index.ipynb", as_version=4).cells
    assert "[`genbook.core`](core.html)" in home[0].source and "{toctree}" in home[-1].source and "core\nother" in home[-1].source


def test_check_reports_every_broken_link_and_missing_image(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#here">ok</a><a href="b.html#gone">x</a><a href="missing.html">x</a>'
                                     '<img src="_images/none.png"><a href="https://example.org/x">external</a><a href="#top" id="top">t</a>')
    (tmp_path / "b.html").write_text('<h2 id="here">h</h2><img src="data:image/png;base64,">')
    assert build_docs.check(tmp_path) == ["a.html: broken link b.html#gone (no such anchor)", "a.html: broken link missing.html",
                                          "a.html: missing image _images/none.png", "b.html: empty image data:image/png;base64,"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The real site, built by the documented command with its link and image check."
    out = tmp_path_factory.mktemp("docs") / "site"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_docs.py"), "--out", str(out), "--check"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    assert "links and images: ok" in r.stdout
    assert "warning" not in r.stderr.lower(), r.stderr[-6000:]  # every API entry made, no Sphinx warning
    return out


def test_site_pages_sidebar_api_math_figures(site):
    nbs = build_docs.notebooks(ROOT / "nbs")[1:]
    assert len(nbs) > 30 and nbs[0].name == "00_core.ipynb"
    home = (site / "index.html").read_text()
    sidebar = home[home.index('class="sidebar-tree"'):]
    links = re.findall(r'<a class="reference internal" href="([^"#]+)"', sidebar)
    assert links == [f"{build_docs.page_name(p)}.html" for p in nbs]  # every notebook, in file-name order
    tarflow = (site / "tarflow.html").read_text()
    assert 'id="tarflow"' in tarflow and ">TarFlow.forward<" in tarflow  # API entries of the exported class and method
    assert 'class="math' in tarflow and re.search(r'<img [^>]*src="_images/[^"]+\.png"', tarflow)
    assert (site / "_static" / "mathjax" / "tex-svg-full.js").is_file()
    for page in site.glob("*.html"):  # no directive lines in any code shown
        assert '<span class="c1">#|' not in page.read_text(), page.name


def test_screenshots_home_and_two_tutorials(site):
    if not build_docs.find_chromium():
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    shutil.rmtree(SHOTS, ignore_errors=True)
    shots = build_docs.screenshots(site, SHOTS)  # also fails if MathJax did not typeset a page's math
    assert {p.stem for p in shots} >= {"index", "tarflow", "tarflow-figure", "splats_render", "splats_render-figure"}
    for p in shots: assert Image.open(p).size == (1440, 1800)
