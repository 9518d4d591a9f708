#!/usr/bin/env python
"""Generate README.md from nbs/index.ipynb without quarto (nbdev-readme needs the quarto binary).

    python scripts/make_readme.py          # write README.md
    python scripts/make_readme.py --check  # exit 1 if README.md is out of date
"""
import argparse, re, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]


def render(nb_path=ROOT / "nbs" / "index.ipynb") -> str:
    nb = nbformat.read(nb_path, as_version=4)
    cells = []
    for c in nb.cells:
        src = c.source
        if c.cell_type == "code":
            if re.search(r"^#\|\s*(hide|default_exp)", src, re.M): continue
            c.source = "\n".join(l for l in src.splitlines() if not l.startswith("#|")).strip("\n")
            if not c.source: continue
        cells.append(c)
    nb.cells = cells
    body, _ = MarkdownExporter(exclude_output=True).from_notebook_node(nb)
    body = re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"
    # links and images in the notebook are relative to nbs/; the README sits one level up
    body = re.sub(r"(\]\()(?![a-z]+:|#|/)([^)\s]+\))", r"\1nbs/\2", body)
    return "<!-- generated from nbs/index.ipynb by scripts/make_readme.py: edit the notebook, not this file -->\n\n" + body


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if README.md differs from the notebook")
    a = ap.parse_args()
    text, readme = render(), ROOT / "README.md"
    if a.check:
        if not readme.is_file() or readme.read_text() != text:
            sys.exit("README.md is out of date: run python scripts/make_readme.py")
        print("README.md is up to date"); return
    readme.write_text(text); print(f"wrote {readme}")


if __name__ == "__main__":
    main()
