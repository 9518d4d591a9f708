"""Faults and bad inputs (issue 16): values that used to give silently wrong answers or late raw errors now fail at once in one line; runs killed at random moments resume exactly."""
import json, os, subprocess, sys, time
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


# ---- values that can only fail are refused before any work (issue 16, "should fix") --------------------------------
SMALL = ["--model-arg", "width=64", "--model-arg", "layers_per_block=1", "--no-progress"]


def one_line(r, msg):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode != 0 and len(lines) == 1 and msg in lines[0], (r.returncode, r.stderr[-3000:])


@pytest.mark.parametrize("args,msg", [
    (["--log-every", "0"], "--log-every must be >= 1, got 0"),          # was a ZeroDivisionError traceback after the first step
    (["--ckpt-every", "-1"], "--ckpt-every must be >= 0"),               # was accepted
    (["--keep-checkpoints", "-1"], "--keep-checkpoints must be >= 0"),
    (["--num-samples", "-1"], "--num-samples must be >= 0"),             # was accepted
    (["--model-arg", "width=abc"], "--model-arg width=abc: expected a number (default 128)"),   # was torch's empty() message
    (["--data-arg", "dequant=maybe"], "--data-arg dequant=maybe: expected true or false"),
])
def test_bad_values_one_line(args, msg, tmp_path):
    one_line(run(SMALL + args + ["--max-steps", "2", "--out", tmp_path / "run"]), msg)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("text,msg", [
    ("[1, 2]", "must hold a JSON object ({...}), got a list"),          # was "cannot convert dictionary update sequence"
    ('{"gradient_accumulation_steps": 0}', "gradient_accumulation_steps must be an integer >= 1, got 0"),   # was a ZeroDivisionError after DeepSpeed's start-up
])
def test_bad_deepspeed_json_fails_before_deepspeed_starts(text, msg, tmp_path):
    (tmp_path / "ds.json").write_text(text)
    r = run(["--deepspeed_config", tmp_path / "ds.json", "--max-steps", "2", "--out", tmp_path / "run"] + SMALL)
    one_line(r, msg)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_unwritable_out_fails_before_training(tmp_path):
    "An --out that cannot be created used to surface as a raw OSError after the first step."
    (tmp_path / "afile").write_text("")
    one_line(run(["--max-steps", "2", "--out", tmp_path / "afile" / "run"] + SMALL), f"--out {tmp_path / 'afile' / 'run'} is not writable (Not a directory)")


# ---- kill -9 at random moments, then resume: the run ends exactly as the uninterrupted one ---------------------------
def _records(out):
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if l.strip()]


def test_killed_at_random_moments_resumes_to_the_uninterrupted_run(tmp_path):
    """SIGKILL (no handler can run: OOM killer, a lost node) at three random moments of one run, each time restarted
    the way a user would (--resume when a checkpoint exists, else --overwrite): the final metrics equal the
    uninterrupted run's, step by step, and every checkpoint left behind is complete. Kills land anywhere, including
    inside checkpoint and metrics writes (checkpoints every 2 steps)."""
    import random
    common = ["--max-steps", "24", "--log-every", "1", "--warmup", "2", "--ckpt-every", "2", "--keep-checkpoints", "2", "--num-samples", "0"] + SMALL
    full, out = tmp_path / "full", tmp_path / "part"
    r = run(common + ["--out", full]); assert r.returncode == 0, r.stderr[-3000:]
    rng, m = random.Random(16), out / "metrics.jsonl"
    for _ in range(3):
        restart = ["--resume", out] if (out / "checkpoints" / "latest").is_file() else (["--overwrite"] if out.exists() else [])
        have = len(m.read_text().splitlines()) if m.is_file() else 0
        want = have + rng.randint(1, 6)
        p = subprocess.Popen([sys.executable, str(SCRIPT)] + [str(a) for a in common + ["--out", out] + restart], cwd=ROOT,
                             env={**os.environ, "MPLBACKEND": "Agg"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(1200):                  # poll for the chosen step (no timing assertion), then kill a random moment later
            if p.poll() is not None or (m.is_file() and len(m.read_text().splitlines()) >= want): break
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.15))
        p.kill(); _, err = p.communicate(timeout=120)
        assert p.returncode in (0, -9), err[-3000:]
        for ck in (out / "checkpoints").glob("step_*"):
            if ck.is_dir() and not ck.name.endswith((".tmp", ".old")): assert (ck / "meta.json").is_file() and (ck / "model.safetensors").is_file(), ck
    restart = ["--resume", out] if (out / "checkpoints" / "latest").is_file() else ["--overwrite"]
    r = run(common + ["--out", out] + restart); assert r.returncode == 0, r.stderr[-3000:]
    a, b = _records(full), _records(out)
    assert [x["step"] for x in a] == [x["step"] for x in b] == list(range(1, 25))
    assert [x["loss"] for x in a] == [x["loss"] for x in b], "resumed losses differ from the uninterrupted run's"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step_0000022", "step_0000024"]
