"""Execute notebooks in place, in dependency (file-name) order, and save their outputs.

Readers see the book on a code host or the docs site without running anything, so notebooks are
committed executed. This runs each notebook through nbdev's own test runner (the same in-process
shell, the same `#| slow` / `#| notest` skipping as `nbdev-test`), writes the outputs back only when
every cell passed, runs `nbdev-clean` on it (outputs are kept: `clear_all = false`), and prints the
time each notebook took.

    python scripts/run_notebooks.py                      # every notebook in nbs/
    python scripts/run_notebooks.py nbs/02_nn.ipynb      # some of them
    python scripts/run_notebooks.py --flags slow ...     # also run the `#| slow` cells
"""
import argparse, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: every nbs/*.ipynb not starting with _)")
    ap.add_argument("--flags", nargs="*", default=[], help="cell flags to run anyway (e.g. slow)")
    a = ap.parse_args(argv)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures become saved outputs (Agg would drop them)
    from nbdev.config import get_config
    from nbdev.test import test_nb
    nbs = [Path(p).resolve() for p in a.notebooks] or sorted(p for p in (ROOT/"nbs").glob("*.ipynb") if not p.name.startswith("_"))
    missing = [str(p) for p in nbs if not p.is_file()]
    if missing: sys.exit(f"notebooks not found: {', '.join(missing)}")
    skip = [f for f in get_config().tst_flags.split() if f not in a.flags]
    failed, t0 = [], time.time()
    for p in sorted(nbs, key=lambda p: p.name):
        ok, secs = test_nb(p, skip_flags=skip, force_flags=a.flags, save=True)
        print(f"{'ok  ' if ok else 'FAIL'} {secs:7.1f}s  {p.name}", flush=True)
        if not ok: failed.append(p.name)
    subprocess.run(["nbdev-clean"], cwd=ROOT, check=True)
    print(f"{len(nbs) - len(failed)} of {len(nbs)} notebooks executed and saved in {time.time() - t0:.0f}s")
    if failed: sys.exit(f"failed (outputs not saved): {', '.join(failed)}")


if __name__ == "__main__":
    main()
