#!/usr/bin/env python
"""Build the documentation site from the executed notebooks, offline, with Sphinx + myst-nb.

nbdev's `nbdev-docs` needs the quarto binary, which cannot be installed here (quarto's PyPI package
downloads it at install time), so this does what nbdev's quarto pipeline does with packages from PyPI:

1. stage a copy of nbs/ in a temporary folder (nbs/ is never touched): `#| hide`, `#| export`,
   `#| exporti` and `#| default_exp` cells are dropped, each exported function or class gets the API
   entry `show_doc` makes (signature with its documented parameters, docstring) where nbdev puts it,
   `#|` lines are stripped from the code shown, `#| echo: false` / `#| output: false` hide the code /
   the output, `#| code-fold: true` folds the code behind a toggle (the notebooks' error-check cells),
   and `` `names` `` of the library or of notebooks (and `.ipynb` links) become links;
2. run Sphinx (docs/conf.py) on it, rendering the saved outputs; nothing is executed.

    python scripts/build_docs.py                       # build the site into _site/ (open _site/index.html)
    python scripts/build_docs.py --check               # ... and fail on broken internal links or missing images
    python scripts/build_docs.py --check --screenshots _site/_shots   # ... and screenshot pages in headless Chromium
"""
import argparse, ast, importlib, inspect, io, re, shutil, subprocess, sys, tempfile, threading, time
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
from PIL import Image, ImageStat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the API reference documents this checkout's genbook
SHOT_PAGES = ("index", "tarflow", "splats_render")  # the home page and two tutorials
_directive = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
_dropped = {"hide", "export", "exporti", "default_exp"}  # as nbdev's rm_export; `exports` cells stay visible
_assets = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}


def page_name(nb: Path) -> str:
    "nbdev's page names: 10_tarflow.ipynb -> tarflow, 23b_wvd_cameras.ipynb -> wvd_cameras."
    return re.sub(r"^\d+[a-z]*_", "", nb.stem)


def split_directives(src: str):
    "({directive: value}, source without the `#|` lines)."
    d, keep = {}, []
    for line in src.splitlines():
        if m := _directive.match(line): d[m[1]] = m[2]
        else: keep.append(line)
    return d, "\n".join(keep).strip("\n")


def api_names(src: str) -> list:
    "The names nbdev's add_show_docs documents in an exported cell (patched methods as Class.method)."
    from nbdev.showdoc import showdoc_nm
    try: tree = ast.parse(src)
    except SyntaxError: return []
    nms = [showdoc_nm(o) for o in tree.body if isinstance(o, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
           and (o.name[0] != "_" or o.name[:2] == "__")]
    return [n for nm in nms for n in (nm if isinstance(nm, list) else [nm])]


def api_entry(mod, nm: str) -> str:
    "The markdown of `show_doc(nm)` (fastcore's renderer, as nbdev's), under an anchor `nm.lower()` like nbdev's pages."
    from fastcore.docments import MarkdownRenderer
    obj = mod
    for part in nm.split("."): obj = getattr(obj, part)
    kind = "class" if inspect.isclass(obj) else "def"
    try: md = re.sub(r"^(```python\n)def ", rf"\1{kind} ", MarkdownRenderer(obj, name=nm)._repr_markdown_())
    except Exception:  # e.g. an array default value: plain signature
        md = f"```python\n{kind} {nm.split('.')[-1]}{inspect.signature(obj)}\n```\n\n*{inspect.getdoc(obj) or ''}*"
    return f'<a id="{nm.lower()}"></a>\n\n### {nm}\n\n{md}'


def stage_notebook(path: Path, index: dict):
    "(title, staged notebook); records each documented name's (page, anchor) in `index`."
    nb, name = nbformat.read(path, as_version=4), page_name(path)
    cells, mod, title = [], None, None
    for c in nb.cells:
        if c.cell_type == "markdown":
            if title is None and (m := re.match(r"#\s+(.+)", c.source)): title = m[1].strip()
            cells.append(c)
            continue
        if c.cell_type != "code": continue
        d, src = split_directives(c.source)
        if "default_exp" in d:
            try: mod = importlib.import_module("genbook." + d["default_exp"].split()[0])
            except Exception as e: print(f"warning: {path.name}: no API reference ({e!r})", file=sys.stderr)
        if mod and ("export" in d or "exports" in d):
            for nm in api_names(src):
                try: cells.append(nbformat.v4.new_markdown_cell(api_entry(mod, nm)))
                except Exception as e: print(f"warning: {path.name}: no API entry for {nm} ({e!r})", file=sys.stderr); continue
                index.setdefault(nm, []).append((name, nm.lower()))
                index[f"{mod.__name__}.{nm}"] = [(name, nm.lower())]
        if (d.keys() & _dropped and "exports" not in d) or d.get("include") == "false": continue
        tags = c.metadata.setdefault("tags", [])
        if d.get("echo") == "false": tags.append("remove-input")
        if d.get("output") == "false": tags.append("remove-output")
        if d.get("code-fold") == "true": tags.append("hide-input")   # quarto's code-fold: the code behind a "show" toggle
        c.source = src
        if src or c.outputs: cells.append(c)
    if mod: index[mod.__name__] = [(name, "")]
    nb.cells = cells
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    return title or name, nb


def linkify(md: str, page: str, index: dict, stems: dict) -> str:
    "`name` -> [`name`](page.html#anchor) for library names and notebooks; (x.ipynb) links -> (x.html)."
    def target(key):
        key = key.strip().removesuffix("()")
        if (stem := Path(key).name.removesuffix(".ipynb")) in stems and (key.endswith(".ipynb") or "/" not in key):
            return f"{stems[stem]}.html"
        hits = index.get(key, [])
        hits = [h for h in hits if h[0] == page] or hits  # a short name defined on this page wins
        if len(hits) != 1: return None
        return f"{hits[0][0]}.html" + (f"#{hits[0][1]}" if hits[0][1] else "")
    def code(m): return f"[{m[0]}]({u})" if (u := target(m[1])) else m[0]
    def nblink(m): return f"]({stems[m[1]]}.html{m[2] or ''})" if m[1] in stems else m[0]
    parts = re.split(r"(```.*?```|\$\$.*?\$\$)", md, flags=re.S)  # leave code blocks and display math alone
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"(?<![\[`])`([^`\n]+)`(?![`\]])", code, parts[i])
        parts[i] = re.sub(r"\]\((?![a-z]+:)(?:[^)#\s]*/)?([^/)#\s]+)\.ipynb(#[^)\s]*)?\)", nblink, parts[i])
    return "".join(parts)


def notebooks(nbs: Path) -> list:
    "The site's notebooks in sidebar order: index first, then by file name (nbdev skips names starting with _ or .)."
    return sorted((p for p in nbs.glob("*.ipynb") if not p.name.startswith(("_", "."))), key=lambda p: (p.stem != "index", p.name))


def stage(nbs: Path, dst: Path) -> list:
    "Write the staged notebooks to `dst`; returns [(page, title)] in sidebar order."
    paths = notebooks(nbs)
    index = {}
    staged = [(page_name(p), *stage_notebook(p, index)) for p in paths]
    stems = {p.stem: page_name(p) for p in paths}
    for page, _, nb in staged:
        for c in nb.cells:
            if c.cell_type == "markdown": c.source = linkify(c.source, page, index, stems)
    home = next(nb for page, _, nb in staged if page == "index")
    toc = "\n".join(page for page, _, _ in staged if page != "index")
    home.cells.append(nbformat.v4.new_markdown_cell(f"```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{toc}\n```"))
    for page, _, nb in staged: nbformat.write(nb, dst / f"{page}.ipynb")
    copy_assets(nbs, dst)
    return [(page, title) for page, title, _ in staged]


def copy_assets(nbs: Path, dst: Path):
    "Images beside the notebooks (e.g. nbs/images/), at the same relative paths (not runs/ or _/. folders)."
    for f in nbs.rglob("*"):
        rel = f.relative_to(nbs)
        if f.suffix.lower() in _assets and f.is_file() and not any(p.startswith(("_", ".")) or p == "runs" for p in rel.parts[:-1]):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst / rel)


def build(out: Path, nbs: Path = ROOT / "nbs") -> list:
    "Stage `nbs` and build the HTML site into `out` (replaced); returns the pages."
    from sphinx.cmd.build import build_main
    if out.exists() and any(out.iterdir()) and not (out / ".buildinfo").is_file():
        sys.exit(f"{out} is not empty and holds no site built by Sphinx: refusing to replace it")
    with tempfile.TemporaryDirectory(prefix="genbook-docs-") as tmp:
        src, html = Path(tmp) / "src", Path(tmp) / "html"  # myst-nb also writes beside the output folder
        src.mkdir()
        pages = stage(nbs, src)
        if rc := build_main(["-q", "-b", "html", "-c", str(ROOT / "docs"), "-d", str(Path(tmp) / "doctrees"), str(src), str(html)]):
            sys.exit(f"sphinx-build failed (exit {rc})")
        copy_assets(nbs, html)  # also where raw <img src="images/..."> in a notebook's markdown looks for them
        shutil.rmtree(out, ignore_errors=True)
        shutil.move(html, out)
    return pages


class _Page(HTMLParser):
    "The ids of an HTML page and the URLs it links to or loads."
    def __init__(self):
        super().__init__(); self.ids, self.refs = set(), []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"): self.ids.add(a["id"])
        if tag == "a" and a.get("name"): self.ids.add(a["name"])
        for k in ("href", "src"):
            if a.get(k) is not None and tag in ("a", "link", "img", "script", "source", "iframe"): self.refs.append((tag, a[k]))


def check(site: Path) -> list:
    "Every broken internal link (missing page or anchor) and every missing image, script or stylesheet of `site`."
    site, pages, problems = site.resolve(), {}, []
    for f in sorted(site.rglob("*.html")):
        p = _Page(); p.feed(f.read_text(errors="replace")); pages[f] = p
    for f, p in pages.items():
        for tag, ref in p.refs:
            u, what = urlsplit(ref), "missing image" if tag == "img" else "broken link"
            if u.scheme == "data":
                if tag == "img" and ("," not in ref or ref.endswith(",")): problems.append(f"{f.relative_to(site)}: empty image {ref[:40]}")
                continue
            if u.scheme or ref.startswith("//"): continue  # external: not checked offline
            target = f if not u.path else (f.parent / unquote(u.path)).resolve()
            if target.is_dir(): target = target / "index.html"
            if not target.is_relative_to(site) or not target.is_file() or target.stat().st_size == 0:
                problems.append(f"{f.relative_to(site)}: {what} {ref}")
            elif u.fragment and target.suffix == ".html" and unquote(u.fragment) not in pages[target].ids:
                problems.append(f"{f.relative_to(site)}: broken link {ref} (no such anchor)")
    return problems


def find_chromium():
    "The Chromium (or Chrome) executable, or None."
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


# `?figure`: collapse what comes before the page's first figure (headless Chromium's screenshots ignore scrolling)
_FIGURE = b"""<script>addEventListener("DOMContentLoaded", () => {
  const img = document.querySelector('article img[src^="_images/"]');
  for (let n = img?.closest(".cell") ?? img; n && n.tagName !== "ARTICLE"; n = n.parentElement)
    for (let s = n.previousElementSibling; s; s = s.previousElementSibling) if (s.tagName !== "H1") s.style.display = "none";
});</script>"""


class _Server(SimpleHTTPRequestHandler):
    "Serves the site quietly; `page.html?figure` shows the page from its first figure on."
    def log_message(self, *a): pass

    def send_head(self):
        u = urlsplit(self.path)
        if u.query != "figure": return super().send_head()
        body = (Path(self.directory) / unquote(u.path).lstrip("/")).read_bytes().replace(b"</head>", _FIGURE + b"</head>")
        self.send_response(200); self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        return io.BytesIO(body)


def screenshots(site: Path, out: Path, pages=SHOT_PAGES, size=(1440, 1800)) -> list:
    """Open `pages` of `site` (served on 127.0.0.1) in headless Chromium and save PNG screenshots in `out`: each
    page's top, and its first figure where it has one. Fails where MathJax did not typeset a page's math."""
    if not (exe := find_chromium()): sys.exit("headless Chromium is needed for screenshots: apt-get install chromium")
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Server, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    shots, problems = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="genbook-chromium-") as prof:
            base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                    f"--user-data-dir={prof}", f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=15000"]
            for page in pages:
                html, url = (site / f"{page}.html").read_text(), f"http://127.0.0.1:{srv.server_port}/{page}.html"
                views = {page: url} | ({f"{page}-figure": url + "?figure"} if re.search(r'<img [^>]*src="_images/', html) else {})
                for name, view in views.items():
                    png = out / f"{name}.png"
                    png.unlink(missing_ok=True)
                    subprocess.run(base + [f"--screenshot={png}", view], capture_output=True, timeout=180)
                    if not png.is_file(): problems.append(f"{name}: no screenshot from {exe}")
                    elif ImageStat.Stat(Image.open(png).convert("L")).stddev[0] < 2: problems.append(f"{name}: blank screenshot {png}")
                    else: shots.append(png)
                if 'class="math' in html:  # the page has math: MathJax must have typeset it
                    dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
                    if "<mjx-container" not in dom or "<mjx-merror" in dom: problems.append(f"{page}: math not rendered by MathJax")
    finally:
        srv.shutdown(); srv.server_close()
    if problems: sys.exit("screenshots failed:\n  " + "\n  ".join(problems))
    return shots


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "_site", help="output folder (default: _site/)")
    ap.add_argument("--check", action="store_true", help="fail on broken internal links and missing images")
    ap.add_argument("--screenshots", type=Path, metavar="DIR", help="save screenshots of the home page and two tutorials")
    a = ap.parse_args()
    t = time.time()
    pages = build(a.out)
    print(f"built {len(pages)} pages into {a.out} in {time.time() - t:.0f} s")
    if a.check:
        if problems := check(a.out): sys.exit(f"{len(problems)} broken links or missing images:\n  " + "\n  ".join(problems))
        print("links and images: ok")
    if a.screenshots:
        for png in screenshots(a.out, a.screenshots): print(f"screenshot: {png}")


if __name__ == "__main__":
    main()
