"""Execute notebooks in place, in dependency (file-name) order, and save their outputs.

Readers see the book on a code host or the docs site without running anything, so notebooks are
committed executed. This runs each notebook through nbdev's own test runner (the same in-process
shell, the same `#| slow` / `#| notest` skipping as `nbdev-test`), writes the outputs back only when
every cell passed, runs `nbdev-clean` on it (outputs are kept: `clear_all = false`), and prints the
time each notebook took.

    python scripts/run_notebooks.py                      # every notebook in nbs/
    python scripts/run_notebooks.py nbs/02_nn.ipynb      # some of them
    python scripts/run_notebooks.py --flags slow --cell-timeout 7200 nbs/51_r2l_study.ipynb   # with its `#| slow` cells
"""
import argparse, json, os, subprocess, sys, time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


WIDGET = "application/vnd.jupyter.widget-view+json"


def _final_state(text:str)->str:
    "A stream as a terminal shows it at the end: of each line rewritten with carriage returns (tqdm bars), only its last state."
    return "\n".join(([q for q in line.split("\r") if q.strip()] or [""])[-1] for line in text.split("\n"))


def _strip_widgets(p):
    "Drop live-widget outputs (they need a kernel; DESIGN: no saved widget state): each widget cell shows a static figure beside it; progress bars keep their final state."
    nb = json.loads(p.read_text())
    for c in nb["cells"]:
        if c.get("outputs"): c["outputs"] = [o for o in c["outputs"] if WIDGET not in o.get("data", {})]
        for o in c.get("outputs", []):
            t = "".join(o["text"]) if o.get("output_type") == "stream" and isinstance(o.get("text"), list) else o.get("text") if o.get("output_type") == "stream" else None
            if t and "\r" in t: o["text"] = _final_state(t).splitlines(keepends=True)
    p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _run(p, skip, force, timeout=None):
    from nbdev.test import test_nb
    kw = {} if timeout is None else {"cell_timeout": timeout}
    ok, secs = test_nb(p, skip_flags=skip, force_flags=force, save=True, **kw)
    if ok: _strip_widgets(p)
    return ok, secs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: every nbs/*.ipynb not starting with _)")
    ap.add_argument("--flags", action="append", default=[], help="a cell flag to run anyway (e.g. slow); repeat for several. One value each, so `--flags slow nbs/x.ipynb` runs only that notebook")
    ap.add_argument("--cell-timeout", type=int, default=None, help="seconds a cell may run (default: pyproject's cell_timeout; a full slow study needs more, e.g. 7200)")
    ap.add_argument("--n-workers", type=int, default=1, help="notebooks run at once, each in its own process")
    a = ap.parse_args(argv)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures become saved outputs (Agg would drop them)
    from nbdev.config import get_config
    nbs = [Path(p).resolve() for p in a.notebooks] or sorted(p for p in (ROOT/"nbs").glob("*.ipynb") if not p.name.startswith("_"))
    missing = [str(p) for p in nbs if not p.is_file()]
    if missing: sys.exit(f"notebooks not found: {', '.join(missing)}")
    skip = [f for f in get_config().tst_flags.split() if f not in a.flags]
    failed, t0 = [], time.time()
    nbs = sorted(nbs, key=lambda p: p.name)
    run = partial(_run, skip=skip, force=a.flags, timeout=a.cell_timeout)
    if a.n_workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(a.n_workers) as ex: results = list(ex.map(run, nbs))
    else: results = map(run, nbs)
    for p, (ok, secs) in zip(nbs, results):
        print(f"{'ok  ' if ok else 'FAIL'} {secs:7.1f}s  {p.name}", flush=True)
        if not ok: failed.append(p.name)
    subprocess.run(["nbdev-clean"], cwd=ROOT, check=True)
    print(f"{len(nbs) - len(failed)} of {len(nbs)} notebooks executed and saved in {time.time() - t0:.0f}s")
    if failed: sys.exit(f"failed (outputs not saved): {', '.join(failed)}")


if __name__ == "__main__":
    main()
