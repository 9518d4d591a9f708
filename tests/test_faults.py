"""Inputs that used to give silently wrong answers now fail with a one-line error (issue 16, item 8)."""
import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train.py"


def run(args, env=None, timeout=300):
    e = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run([sys.executable, str(SCRIPT)] + [str(a) for a in args], cwd=ROOT, env=e, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("until", ["0", "-3"])
def test_until_below_one_is_refused(until, tmp_path):
    "`--until 0` used to train to the end (0 read as 'not given'); now it is a one-line usage error before anything runs."
    r = run(["--until", until, "--max-steps", "2", "--no-progress", "--out", tmp_path / "run"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "--until must be a step >= 1" in lines[0] and f"got {until}" in lines[0], r.stderr
    assert not (tmp_path / "run").exists()
