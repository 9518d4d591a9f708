"""Run every notebook in nbs/ through nbdev's test runner, one pytest test each.

Cells flagged `#| slow` / `#| notest` are skipped unless GENBOOK_NB_FLAGS names them
(e.g. GENBOOK_NB_FLAGS=slow pytest tests/test_notebooks.py)."""
import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_"))


def test_found_notebooks():
    assert len(NBS) >= 6, f"expected the genbook notebooks in {ROOT / 'nbs'}, found {[p.name for p in NBS]}"


@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.name)
def test_notebook(nb):
    from nbdev.config import get_config
    from nbdev.test import test_nb
    force = os.environ.get("GENBOOK_NB_FLAGS", "").split()
    skip = [f for f in get_config().tst_flags.split() if f not in force]
    ok, secs = test_nb(nb, skip_flags=skip, force_flags=force, do_print=False)
    assert ok, f"{nb.name} failed after {secs:.1f}s; its traceback is printed above"


@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.name)
def test_notebook_is_committed_executed(nb):
    "Readers see the book without running it: a notebook with code must carry saved outputs (python scripts/run_notebooks.py)."
    import json
    code = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    if len(code) > 2:
        assert any(c.get("outputs") for c in code), f"{nb.name} has no saved outputs: run `python scripts/run_notebooks.py {nb.relative_to(ROOT)}` and commit it"


def test_saved_progress_bars_keep_their_final_state(tmp_path):
    "scripts/run_notebooks.py saves a tqdm stream (a line rewritten with carriage returns) as its last state, not hundreds of frames."
    import json, sys
    sys.path.insert(0, str(ROOT / "scripts"))
    from run_notebooks import _final_state, _strip_widgets
    assert _final_state("a:   0%\ra:  50%\ra: 100%\ndone\n") == "a: 100%\ndone\n"
    assert _final_state("x\r\n\ny\n") == "x\n\ny\n"
    p = tmp_path / "n.ipynb"
    p.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [], "metadata": {}, "execution_count": 1,
                                        "outputs": [{"output_type": "stream", "name": "stderr", "text": ["bar: 1/3\r", "bar: 2/3\r", "bar: 3/3\n"]}]}],
                             "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    _strip_widgets(p)
    assert json.loads(p.read_text())["cells"][0]["outputs"][0]["text"] == ["bar: 3/3\n"]
