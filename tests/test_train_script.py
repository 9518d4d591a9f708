"""Integration tests of scripts/train.py: the default job, resume, checkpoint errors, bad flags, launchers."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train.py"
# a small TarFlow keeps the launcher tests quick; the mechanism is the default preset's
SMALL = ["--model-arg", "width=64", "--model-arg", "layers_per_block=1", "--num-samples", "10", "--no-progress"]


def run(args, env=None, launcher=None, timeout=900):
    e = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    cmd = (launcher or [sys.executable]) + [str(SCRIPT)] + [str(a) for a in args]
    return subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=timeout)


def sample(args, env=None, timeout=600):
    e = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "sample.py")] + [str(a) for a in args], cwd=ROOT, env=e, capture_output=True, text=True, timeout=timeout)


def losses(out):
    return [json.loads(l)["loss"] for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-5000:]}"
    return r


def test_default_job_few_steps(tmp_path):
    "The default training (TarFlow on digits) for a few steps writes everything the README promises."
    r = ok(run(["--max-steps", "6", "--log-every", "2", "--out", tmp_path, "--num-samples", "20", "--no-progress"]))
    assert "tarflow-digits" in r.stdout and "test bpd:" in r.stdout
    for f in ("metrics.jsonl", "samples.png", "result.json", "checkpoints/latest", "checkpoints/step_0000006/model.safetensors",
              "checkpoints/step_0000006/state.pt", "checkpoints/step_0000006/meta.json", "checkpoints/step_0000006/rng_0.pt"):
        assert (tmp_path / f).is_file(), f"missing {f}"
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["step"] == 6 and 1.0 < res["test_bpd"] < 8.0
    # by default a checkpoint every tenth of the run (here every step) and the newest 3 kept (it used to be only the end)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_0000004", "step_0000005", "step_0000006"]
    recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 4, 6]
    assert all(k in recs[-1] for k in ("loss", "lr", "grad_norm", "skipped", "bpd_train", "eval_bpd"))


def test_resume_reproduces_uninterrupted_run(tmp_path):
    "Stopping at step 4 of 8 and resuming gives exactly the uninterrupted run's losses for steps 5-8."
    common = ["--max-steps", "8", "--log-every", "1", "--warmup", "2", "--num-samples", "0"] + SMALL
    ok(run(common + ["--out", tmp_path / "full"]))
    ok(run(common + ["--out", tmp_path / "part", "--until", "4"]))
    assert len(losses(tmp_path / "part")) == 4
    ok(run(common + ["--out", tmp_path / "part", "--resume", tmp_path / "part"]))
    full, part = losses(tmp_path / "full"), losses(tmp_path / "part")
    assert len(full) == len(part) == 8
    assert part == full, f"resumed {part[4:]} vs uninterrupted {full[4:]}"


def test_resume_with_ema_reproduces_uninterrupted_run(tmp_path):
    "With --ema the resumed run gives the same losses, the same EMA weights (ema.safetensors) and the same EMA-evaluated test bpd."
    common = ["--max-steps", "6", "--log-every", "1", "--warmup", "2", "--num-samples", "4", "--ema", "0.9"] + SMALL
    r = ok(run(common + ["--out", tmp_path / "full"]))
    assert "EMA 0.9" in r.stdout and "param groups: weight_decay=0.0001:" in r.stdout
    ok(run(common + ["--out", tmp_path / "part", "--until", "3"]))
    ok(run(common + ["--out", tmp_path / "part", "--resume", tmp_path / "part"]))
    assert losses(tmp_path / "part") == losses(tmp_path / "full")
    ema = "checkpoints/step_0000006/ema.safetensors"
    from safetensors import safe_open
    from safetensors.torch import load_file
    a, b = load_file(tmp_path / "part" / ema), load_file(tmp_path / "full" / ema)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)          # bit-exact EMA weights
    meta = [safe_open(tmp_path / d / ema, "pt").metadata() for d in ("part", "full")]
    assert meta[0] == meta[1] and meta[0]["updates"] == "6"
    res = [json.loads((tmp_path / d / "result.json").read_text())["test_bpd"] for d in ("full", "part")]
    assert res[0] == res[1]


def test_bad_checkpoints_give_clear_errors(tmp_path):
    ok(run(["--max-steps", "2", "--out", tmp_path / "a", "--num-samples", "0"] + SMALL))
    # a different model config (the command line wins over the run's config.json)
    r = run(["--max-steps", "2", "--resume", tmp_path / "a", "--out", tmp_path / "b", "--num-samples", "0", "--no-progress", "--model-arg", "width=128"])
    assert r.returncode != 0 and "another model config" in r.stderr and "Traceback" not in r.stderr, r.stderr
    # corrupt weights
    (tmp_path / "a/checkpoints/step_0000002/model.safetensors").write_bytes(b"garbage" * 10)
    r = run(["--max-steps", "2", "--resume", tmp_path / "a", "--out", tmp_path / "c", "--num-samples", "0"] + SMALL)
    assert r.returncode != 0 and "corrupt" in r.stderr and "Traceback" not in r.stderr, r.stderr
    # truncated optimizer state
    (tmp_path / "a/checkpoints/step_0000002/state.pt").write_bytes(b"\x80\x02")
    r = run(["--max-steps", "2", "--resume", tmp_path / "a/checkpoints/step_0000002", "--out", tmp_path / "d", "--num-samples", "0"] + SMALL)
    assert r.returncode != 0 and "error:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    # not a checkpoint at all
    r = run(["--resume", tmp_path, "--num-samples", "0"] + SMALL)
    assert r.returncode != 0 and "no checkpoint in" in r.stderr


@pytest.mark.parametrize("args,msg", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--max-steps", "ten"], "invalid int value"),
    (["--model", "tarflw"], "did you mean 'tarflow'"),
    (["--model-arg", "widht=3"], "did you mean 'width'"),
    (["--data", "folder", "--data-arg", "path=/no/such/folder"], "image folder not found"),
    (["--deepspeed_config", "/no/such.json"], "DeepSpeed config file not found"),
    (["--direction", "r2l"], "dataset 'digits' has no direction"),
    (["--model", "gpt", "--data", "mult", "--data-arg", "digits=5"], "digits must be 1, 2 or 3"),
    # settings that could only skip every step are refused up front (the extra flags keep the old behaviour, a run, short)
    (["--lr", "inf", "--max-steps", "2"] + SMALL, "--lr must be a finite number >= 0, got inf"),
    (["--lr", "-0.001", "--max-steps", "2"] + SMALL, "--lr must be a finite number >= 0, got -0.001"),
    (["--batch-size", "0", "--max-steps", "2"] + SMALL, "--batch-size must be >= 1, got 0"),
])
def test_bad_flags_one_line(args, msg, tmp_path):
    r = run(args + ["--no-progress", "--out", tmp_path / "run"])   # not runs/<model>: a run there is refused before some of these checks
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and msg in lines[0], r.stderr


def one_line(r, msg):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode != 0 and len(lines) == 1 and msg in lines[0], (r.returncode, r.stderr[-3000:])


def test_out_holding_a_run_is_refused(tmp_path):
    "A second run into the same --out is refused; --overwrite starts it clean; --resume of another run into it is refused."
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--max-steps", "2", "--log-every", "1"] + SMALL + ["--num-samples", "0"]
    ok(run(args + ["--out", a]))
    one_line(run(args + ["--out", a]), f"--out {a} already holds a run (metrics.jsonl or checkpoints/); continue it with --resume {a}, replace it with --overwrite")
    assert [json.loads(l)["step"] for l in (a / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    r = ok(run(args + ["--out", a, "--overwrite", "--seed", "1"]))
    assert "--overwrite: removed metrics.jsonl, checkpoints, samples.png, result.json" in r.stdout
    assert [json.loads(l)["step"] for l in (a / "metrics.jsonl").read_text().splitlines()] == [1, 2]     # not [1, 2, 1, 2]
    b.mkdir(); (b / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    one_line(run(args + ["--resume", a, "--out", b]), f"--out {b} already holds another run than --resume {a}")
    assert (b / "metrics.jsonl").read_text() == '{"step": 1, "loss": 1.0}\n'
    one_line(run(args + ["--resume", a, "--out", a, "--overwrite"]), "--overwrite would delete the checkpoint that --resume")


def test_bare_resume_continues_the_runs_own_preset(tmp_path):
    "--resume alone takes model, data and flags from the run's config.json (it used to build the default TarFlow and stop with a mismatch)."
    ok(run(["--model", "dit-digits", "--model-arg", "width=32", "--model-arg", "depth=1", "--max-steps", "4", "--until", "2", "--log-every", "1",
            "--num-samples", "0", "--no-progress", "--out", tmp_path]))
    r = ok(run(["--resume", tmp_path]))
    assert f"flags not given on the command line are taken from {tmp_path / 'config.json'}" in r.stdout, r.stdout
    recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in recs] == [1, 2, 3, 4] and (tmp_path / "checkpoints/latest").read_text() == "step_0000004"
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "dit-digits"
    # a preset named on the command line still wins, and the checkpoint check refuses it
    one_line(run(["--resume", tmp_path, "--model", "dart-digits"]), "holds a DiT, not a DART")


def test_resume_refuses_a_changed_schedule(tmp_path):
    "--lr/--warmup/--max-steps on resume must match the checkpoint's (they used to be silently replaced); left out, they are taken from it."
    a = tmp_path / "a"
    args = ["--warmup", "1", "--log-every", "1"] + SMALL + ["--num-samples", "0"]
    ok(run(args + ["--max-steps", "4", "--until", "2", "--lr", "0.002", "--out", a]))
    one_line(run(args + ["--max-steps", "4", "--lr", "0.01", "--resume", a]), "--lr 0.01 (the checkpoint has 0.002)")
    one_line(run(args + ["--max-steps", "8", "--lr", "0.002", "--resume", a]), "--max-steps 8 (the checkpoint has 4)")
    # flags left out: the checkpoint's schedule, and the resumed run's folder as --out
    ok(run(["--resume", a, "--log-every", "1", "--no-progress", "--num-samples", "0"] + SMALL[:4]))
    recs = [json.loads(l) for l in (a / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4] and (a / "checkpoints/latest").read_text() == "step_0000004"


def test_divergence_stops_the_run(tmp_path):
    "--lr 1e10 makes every step after the first non-finite: the run stops after --max-skipped of them, exit 1, finite checkpoints."
    r = run(["--lr", "1e10", "--warmup", "0", "--max-steps", "30", "--max-skipped", "3", "--log-every", "1", "--ckpt-every", "2",
             "--out", tmp_path] + SMALL + ["--num-samples", "0"])
    assert r.returncode == 1, r.stderr[-3000:]
    one_line(r, "3 consecutive steps skipped (non-finite loss or gradient) up to step 4: stopped; last checkpoint:")
    from safetensors.torch import load_file
    w = load_file(tmp_path / "checkpoints" / (tmp_path / "checkpoints/latest").read_text() / "model.safetensors")
    assert all(v.isfinite().all() for v in w.values())


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupt_saves_a_checkpoint(tmp_path, sig, code):
    "Ctrl-C or SIGTERM with --ckpt-every 0 finishes the step, saves a checkpoint, says where and exits 130 / 143."
    cmd = [sys.executable, str(SCRIPT), "--max-steps", "100000", "--warmup", "0", "--log-every", "1", "--ckpt-every", "0", "--out", str(tmp_path)] + SMALL
    p = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "MPLBACKEND": "Agg"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # a background shell may have ignored SIGINT
    m = tmp_path / "metrics.jsonl"
    for _ in range(600):                       # wait for the first steps (poll, no timing assertion)
        if m.is_file() and len(m.read_text().splitlines()) >= 2 or p.poll() is not None: break
        time.sleep(0.5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=300)
    assert p.returncode == code, (p.returncode, err[-3000:])
    ck = tmp_path / "checkpoints" / (tmp_path / "checkpoints/latest").read_text()
    step = int(ck.name.split("_")[1])
    assert f"train.py: interrupted: {sig.name} at step {step}: checkpoint saved in {ck}; continue with --resume {tmp_path}" in err, err[-3000:]
    assert json.loads(m.read_text().splitlines()[-1])["step"] == step and (ck / "model.safetensors").is_file()


# ---- launchers: 1 process vs 2 ranks at the same global batch ---------------------------------------
# Noise augmentation and label dropout draw from each rank's own RNG, so they are switched off here:
# data order and dequantisation noise are a function of (seed, step) and identical for any world size.
DET = ["--max-steps", "12", "--log-every", "1", "--batch-size", "64", "--warmup", "3", "--num-samples", "4",
       "--model-arg", "noise_std=0", "--model-arg", "label_drop=0"] + SMALL
TOL = 1e-4  # max relative difference of the per-step loss (fp32; reduction order differs across ranks)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    ok(run(DET + ["--out", out]))
    return losses(out)


def rel(a, b): return max(abs(x - y) / max(1e-8, abs(y)) for x, y in zip(a, b))


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def start_and_wait(args, out, records, launcher=TORCHRUN):
    "Start train.py in the background and return it once `records` steps are logged in `out` (polling, no timing assertion)."
    p = subprocess.Popen(launcher + [str(SCRIPT)] + [str(a) for a in args], cwd=ROOT, env={**os.environ, "MPLBACKEND": "Agg"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    m = out / "metrics.jsonl"
    for _ in range(6000):
        if p.poll() is not None or (m.is_file() and len(m.read_text().splitlines()) >= records): break
        time.sleep(0.02)
    assert p.poll() is None, f"the run ended before step {records} was seen (exit {p.returncode}): {p.stderr.read()[-3000:]}"
    return p


def test_torchrun_ddp_two_ranks_match_one_process(tmp_path, one_process):
    r = ok(run(DET + ["--out", tmp_path], launcher=TORCHRUN))
    assert "world 2, engine ddp" in r.stdout
    two = losses(tmp_path)
    print(f"DDP 2 ranks vs 1 process: max rel. loss difference {rel(two, one_process):.2e} over {len(two)} steps")
    assert len(two) == len(one_process) and rel(two, one_process) < TOL


def test_torchrun_one_rank_killed_leaves_a_resumable_run(tmp_path, one_process):
    "SIGKILL of rank 1 mid-run: torchrun stops the job; the last checkpoint resumes on 2 ranks to the uninterrupted losses."
    import psutil
    p = start_and_wait(DET + ["--out", tmp_path, "--ckpt-every", "2"], tmp_path, 3)
    workers = [c for c in psutil.Process(p.pid).children(recursive=True) if c.environ().get("RANK") == "1"]
    assert workers, "no rank-1 worker found"
    workers[0].kill()
    p.communicate(timeout=300)
    assert p.returncode != 0, "torchrun should report the dead rank"
    latest = (tmp_path / "checkpoints/latest").read_text()
    ok(run(DET + ["--out", tmp_path, "--ckpt-every", "2", "--resume", tmp_path], launcher=TORCHRUN))
    two = losses(tmp_path)
    print(f"killed rank 1 after step >= 3, resumed from {latest}: max rel. loss difference to 1 process {rel(two, one_process):.2e}")
    assert len(two) == len(one_process) and rel(two, one_process) < TOL


def test_torchrun_sigterm_checkpoints_every_rank_and_resumes(tmp_path, one_process):
    "SIGTERM to torchrun (what a scheduler sends) with --ckpt-every 0: both ranks agree on the step, write one checkpoint (an RNG file each), exit; resuming gives the uninterrupted losses."
    p = start_and_wait(DET + ["--out", tmp_path, "--ckpt-every", "0"], tmp_path, 2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    ck = tmp_path / "checkpoints" / (tmp_path / "checkpoints/latest").read_text()
    assert f"train.py: interrupted: SIGTERM at step {int(ck.name[5:])}: checkpoint saved in {ck}" in err, err[-3000:]
    assert int(ck.name[5:]) < 12 and all((ck / f).is_file() for f in ("meta.json", "model.safetensors", "state.pt", "rng_0.pt", "rng_1.pt"))
    ok(run(DET + ["--out", tmp_path, "--ckpt-every", "0", "--resume", tmp_path], launcher=TORCHRUN))
    two = losses(tmp_path)
    assert len(two) == len(one_process) and rel(two, one_process) < TOL


@pytest.mark.skipif(shutil.which("deepspeed") is None, reason="deepspeed launcher not installed")
def test_deepspeed_zero2_two_ranks_match_one_process(tmp_path, one_process):
    r = ok(run(DET + ["--out", tmp_path, "--deepspeed_config", ROOT / "configs/ds_zero2.json"],
               launcher=["deepspeed", "--num_gpus", "2", "--master_port", "29531"]))
    assert "world 2, engine deepspeed" in r.stdout
    two = losses(tmp_path)
    print(f"DeepSpeed ZeRO-2, 2 ranks vs 1 process: max rel. loss difference {rel(two, one_process):.2e} over {len(two)} steps")
    assert len(two) == len(one_process) and rel(two, one_process) < TOL
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "checkpoints/latest").is_file()


@pytest.mark.skipif(shutil.which("deepspeed") is None, reason="deepspeed not installed")
def test_deepspeed_resume_reproduces_uninterrupted_run(tmp_path):
    "Exact resume through DeepSpeed's own checkpoint (engine state) plus genbook's scheduler and RNG state."
    common = ["--max-steps", "8", "--log-every", "1", "--warmup", "2", "--num-samples", "0",
              "--deepspeed_config", ROOT / "configs/ds_zero2.json"] + SMALL
    ok(run(common + ["--out", tmp_path / "full"]))
    ok(run(common + ["--out", tmp_path / "part", "--until", "4"]))
    assert (tmp_path / "part/checkpoints/step_0000004/deepspeed").is_dir()
    ok(run(common + ["--out", tmp_path / "part", "--resume", tmp_path / "part"]))
    assert losses(tmp_path / "part") == losses(tmp_path / "full")
    # a DeepSpeed checkpoint cannot silently be resumed by the plain engine (here the checkpoints alone, without the
    # run's config.json, which a bare --resume would follow back to DeepSpeed)
    shutil.copytree(tmp_path / "part" / "checkpoints", tmp_path / "copied" / "checkpoints")
    r = run(["--max-steps", "8", "--resume", tmp_path / "copied", "--out", tmp_path / "x", "--num-samples", "0"] + SMALL)
    assert r.returncode != 0 and "resume it with the same engine" in r.stderr, r.stderr[-2000:]


def test_image_folder_with_generic_preset(tmp_path):
    "An image folder on disk (sub-folders = classes) trains the generic preset; shape, classes and levels follow the data."
    import numpy as np
    from PIL import Image
    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray((np.random.default_rng(i).random((12, 12, 3)) * 255).astype("uint8")).save(tmp_path / "imgs" / c / f"{i}.png")
    r = ok(run(["--model", "tarflow", "--data", "folder", "--data-arg", f"path={tmp_path / 'imgs'}", "--data-arg", "size=8",
                "--max-steps", "2", "--batch-size", "4", "--out", tmp_path / "run"] + SMALL))
    assert "on folder (8 train)" in r.stdout
    meta = json.loads((tmp_path / "run/checkpoints/step_0000002/meta.json").read_text())
    assert {k: meta["config"][k] for k in ("in_channels", "img_size", "num_classes", "levels")} == dict(in_channels=3, img_size=8, num_classes=2, levels=256)
    # the digits preset on RGB data is refused with a clear line
    r = run(["--data", "folder", "--data-arg", f"path={tmp_path / 'imgs'}", "--max-steps", "1", "--no-progress"])
    assert r.returncode != 0 and "has in_channels=1 but the data has in_channels=3" in r.stderr


def test_gpt_r2l_on_multiplication(tmp_path):
    "--model gpt --direction r2l: the same script trains the R2L language model and reports its MCQ accuracy."
    r = ok(run(["--model", "gpt", "--data", "mult", "--direction", "r2l", "--data-arg", "fmt=reverse", "--max-steps", "30",
                "--batch-size", "32", "--log-every", "10", "--model-arg", "dim=64", "--out", tmp_path, "--no-progress"]))
    assert "test mcq_acc:" in r.stdout and "test loss:" in r.stdout
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["step"] == 30 and 0 <= res["test_mcq_acc"] <= 1 and res["test_loss"] < 2.64   # below uniform, log(14)
    assert (tmp_path / "checkpoints/step_0000030/model.safetensors").is_file()



def test_splatter_on_multiview(tmp_path):
    "--model splatter --data multiview: the Splatter Image reconstructor trains through the same script and is evaluated on held-out objects."
    r = ok(run(["--model", "splatter", "--data", "multiview", "--data-arg", "n_objects=8", "--data-arg", "views=3", "--data-arg", "size=16",
                "--model-arg", "width=16", "--max-steps", "6", "--batch-size", "4", "--log-every", "2", "--out", tmp_path, "--no-progress"],
               env={"GENBOOK_CACHE": str(tmp_path / "cache")}))
    for k in ("psnr", "ssim", "psnr_input_copy", "ssim_input_copy"): assert f"test {k}:" in r.stdout
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["step"] == 6 and 0 < res["test_psnr"] < 60 and -1 <= res["test_ssim"] <= 1
    assert (tmp_path / "samples.png").is_file() and len(list((tmp_path / "cache").glob("multiview-*.safetensors"))) == 2
    from genbook.eval.compare import load_run                  # the run reloads through its preset (the factory takes every config key)
    assert type(load_run(tmp_path, preset="splatter")).__name__ == "SplatterNet"


@pytest.mark.parametrize("model", ["wvd", "wvd-regress"])
def test_wvd_on_clips(model, tmp_path):
    "--model wvd --data clips: the clip diffusion model (and its regression baseline) train through the same script; a frame count that differs from the preset's is refused unless asked for."
    env = {"GENBOOK_CACHE": str(tmp_path / "cache")}
    r = run(["--model", model, "--data", "clips", "--data-arg", "n_clips=8", "--data-arg", "frames=3", "--max-steps", "1", "--out", tmp_path / "x", "--no-progress"], env=env)
    assert r.returncode != 0 and "has frames=4 but the data has frames=3" in r.stderr
    r = ok(run(["--model", model, "--data", "clips", "--data-arg", "n_clips=8", "--data-arg", "frames=3", "--model-arg", "frames=3", "--model-arg", "width=32",
                "--model-arg", "depth=2", "--model-arg", "head_dim=16", "--model-arg", "sample_steps=3" if model == "wvd" else "attention=full",
                "--max-steps", "4", "--batch-size", "4", "--log-every", "2", "--num-samples", "2", "--out", tmp_path / "run", "--no-progress"], env=env))
    assert "test val_loss:" in r.stdout
    tmp_path = tmp_path / "run"
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["step"] == 4 and res["test_val_loss"] > 0
    meta = json.loads(next((tmp_path / "checkpoints").glob("step_*/meta.json")).read_text())
    assert meta["config"]["frames"] == 3
    from PIL import Image
    w, h = Image.open(tmp_path / "samples.png").size
    assert w > h                                               # one row of frames per clip
    if model == "wvd":                                         # scripts/sample.py draws clips from the run; WVD has no guidance
        r = ok(sample([tmp_path, "--n", "2", "--steps", "2"]))
        from safetensors.torch import load_file
        assert load_file(tmp_path / "sampled" / "samples.safetensors")["gnone"].shape == (2, 3, 6, 16, 16)
        r = sample([tmp_path, "--guidance", "2", "--n", "2"])
        assert r.returncode != 0 and "WVD is unconditional" in r.stderr


@pytest.mark.parametrize("model", ["shapetokens", "pointcloud-ae"])
def test_shapetokens_on_shapes(model, tmp_path):
    "--model shapetokens --data shapes: the tokenizer + flow (and its point-cloud autoencoder baseline) train through the same script, are evaluated on held-out shapes and preview their reconstructions."
    env = {"GENBOOK_CACHE": str(tmp_path / "cache")}
    small = {"shapetokens": ["width=32", "depth=1", "enc_depth=1", "head_dim=16", "num_tokens=4", "cond_points=64", "flow_points=32", "sample_steps=2"],
             "pointcloud-ae": ["latent=32", "hidden=32", "out_points=64", "cond_points=64"]}[model]
    args = ["--model", model, "--data", "shapes", "--data-arg", "n_shapes=8", "--data-arg", "points=256"]
    for a in small: args += ["--model-arg", a]
    r = run(args + ["--data-arg", "num_points=64", "--max-steps", "1", "--out", tmp_path / "x", "--no-progress"], env=env)
    assert r.returncode != 0 and "cond_points=64" in r.stderr                    # no points left for the flow / Chamfer target
    r = ok(run(args + ["--data-arg", "num_points=96", "--max-steps", "3", "--batch-size", "4", "--log-every", "1", "--num-samples", "2",
                       "--out", tmp_path / "run", "--no-progress"], env=env))
    assert "test val_loss:" in r.stdout
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["step"] == 3 and res["test_val_loss"] > 0
    from PIL import Image
    w, h = Image.open(tmp_path / "run" / "samples.png").size
    assert w == h > 64                                         # 2 shapes x (input, reconstruction): a 2 x 2 grid


@pytest.mark.parametrize("launcher", ["python", "deepspeed"])
def test_zero1tog_on_splat_attributes(launcher, tmp_path):
    "--model zero1tog --data splat-attributes: the attribute-image diffusion model trains through the same script (and under DeepSpeed ZeRO-2 with 2 ranks), takes its view count and size from the data and is evaluated on held-out objects."
    if launcher == "deepspeed" and shutil.which("deepspeed") is None: pytest.skip("deepspeed launcher not installed")
    env = {"GENBOOK_CACHE": str(tmp_path / "cache")}
    args = ["--model", "zero1tog", "--data", "splat-attributes"]
    for a in ("n_objects=8", "size=16", "fit_views=2", "extra_views=1", "heldout_views=1", "steps=3"): args += ["--data-arg", a]
    for a in ("width=32", "depth=1", "head_dim=16", "cond_depth=1", "sample_steps=2"): args += ["--model-arg", a]
    small = ["--batch-size", "4", "--log-every", "1", "--num-samples", "2", "--no-progress"]
    if launcher == "python":
        r = run(args + ["--model-arg", "views=3", "--max-steps", "1", "--out", tmp_path / "x"] + small, env=env)
        assert r.returncode != 0 and "views=3" in r.stderr and "2 views" in r.stderr
    extra = (["--deepspeed_config", ROOT / "configs/ds_zero2.json"], ["deepspeed", "--num_gpus", "2", "--master_port", "29533"]) if launcher == "deepspeed" else ([], None)
    r = ok(run(args + ["--max-steps", "3", "--out", tmp_path / "run"] + small + extra[0], env=env, launcher=extra[1]))
    assert ("world 2, engine deepspeed" if launcher == "deepspeed" else "world 1") in r.stdout
    for k in ("val_loss", "psnr", "ssim", "psnr_input_copy", "invalid_clamped"): assert f"test {k}:" in r.stdout
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["step"] == 3 and res["test_val_loss"] > 0 and 0 < res["test_psnr"] < 60
    meta = json.loads(next((tmp_path / "run" / "checkpoints").glob("step_*/meta.json")).read_text())
    assert meta["config"]["views"] == 2 and meta["config"]["img_size"] == 16 and meta["config"]["attention"] == "axial"
    assert (tmp_path / "run" / "samples.png").is_file()


@pytest.mark.parametrize("launcher", ["python", "deepspeed"])
def test_dsplats_on_multiview(launcher, tmp_path):
    "--model dsplats --data multiview: the multi-view image diffusion model trains, DSplats starts from its backbone (--model-arg init=) and trains through the same script (and under DeepSpeed ZeRO-2 with 2 ranks); both are evaluated on held-out objects and reload."
    if launcher == "deepspeed" and shutil.which("deepspeed") is None: pytest.skip("deepspeed launcher not installed")
    env = {"GENBOOK_CACHE": str(tmp_path / "cache")}
    data = ["--data", "multiview", "--data-arg", "n_objects=8", "--data-arg", "views=4", "--data-arg", "size=16"]
    small = ["--model-arg", "width=8", "--model-arg", "temb=16", "--model-arg", "attn_head_dim=16", "--model-arg", "sample_steps=2",
             "--batch-size", "4", "--log-every", "1", "--num-samples", "2", "--no-progress"]
    src = tmp_path / "images"
    ok(run(["--model", "dsplats-images"] + data + small + ["--model-arg", "fit_steps=2", "--max-steps", "2", "--out", src], env=env))
    if launcher == "python":
        r = run(["--model", "dsplats"] + data + small + ["--model-arg", "views=4", "--max-steps", "1", "--out", tmp_path / "x"], env=env)
        assert r.returncode != 0 and "use --model-arg views=3" in r.stderr
    extra = (["--deepspeed_config", ROOT / "configs/ds_zero2.json"], ["deepspeed", "--num_gpus", "2", "--master_port", "29534"]) if launcher == "deepspeed" else ([], None)
    r = ok(run(["--model", "dsplats"] + data + small + ["--model-arg", f"init={src}", "--max-steps", "3", "--out", tmp_path / "run"] + extra[0], env=env, launcher=extra[1]))
    assert ("world 2, engine deepspeed" if launcher == "deepspeed" else "world 1") in r.stdout
    for k in ("val_loss", "psnr", "ssim", "psnr_input_copy"): assert f"test {k}:" in r.stdout
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["step"] == 3 and res["test_val_loss"] > 0 and 0 < res["test_psnr"] < 60
    meta = json.loads(next((tmp_path / "run" / "checkpoints").glob("step_*/meta.json")).read_text())
    assert meta["config"]["views"] == 3 and meta["config"]["img_size"] == 16 and meta["config"]["mode"] == "splats" and "init" not in meta["config"]
    assert (tmp_path / "run" / "samples.png").is_file()
    from genbook.eval.compare import load_run
    assert load_run(tmp_path / "run", preset="dsplats").mode == "splats" and load_run(src, preset="dsplats-images").mode == "images"
    if launcher == "python":                                   # scripts/sample.py: held-out inputs from the data named in the run's config.json
        r = ok(sample([tmp_path / "run", "--n", "2"], env=env))
        assert "held-out inputs" in r.stdout and (tmp_path / "run" / "sampled" / "gnone.png").is_file()


def test_vid2sim_prior_on_sim_clips(tmp_path):
    "--model vid2sim-prior --data sim-clips: Vid2Sim's Stage I trains through the same script, takes the frame count from the data and is evaluated on held-out clips."
    env = {"GENBOOK_CACHE": str(tmp_path / "cache")}
    args = ["--model", "vid2sim-prior", "--data", "sim-clips", "--data-arg", "n_clips=6", "--data-arg", "steps=4"]
    for a in ("width=48", "depth=1", "head_dim=24"): args += ["--model-arg", a]
    r = ok(run(args + ["--max-steps", "3", "--batch-size", "3", "--log-every", "1", "--out", tmp_path / "run", "--no-progress"], env=env))
    for k in ("mae_logE", "mae_nu", "within_logE_0.05"): assert f"test {k}:" in r.stdout
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["step"] == 3 and res["test_mae_logE"] > 0 and res["test_mae_nu"] > 0
    meta = json.loads(next((tmp_path / "run" / "checkpoints").glob("step_*/meta.json")).read_text())
    assert meta["config"]["frames"] == 5                          # from the data (steps=4), not the preset's 17
    r = run(args + ["--data-arg", "steps=5", "--max-steps", "1", "--out", tmp_path / "x", "--no-progress"], env=env)
    assert r.returncode != 0 and "multiple of tubelet" in r.stderr   # 6 frames: 5 after the rest frame, not whole tubelets


@pytest.mark.skipif(shutil.which("deepspeed") is None, reason="deepspeed launcher not installed")
def test_dry_run_zero3_two_ranks(tmp_path):
    "--dry-run of a paper-size preset (here at reduced width) under DeepSpeed ZeRO-3 on 2 ranks: memory estimates, one step at micro-batch 1 on each rank, nothing written."
    small = ["--model", "tarflow-imagenet64-cond", "--data", "digits", "--model-arg", "in_channels=1", "--model-arg", "img_size=8", "--model-arg", "num_classes=10",
             "--model-arg", "width=64", "--model-arg", "num_blocks=2", "--model-arg", "layers_per_block=1", "--no-progress"]
    r = ok(run(small + ["--dry-run", "--out", tmp_path / "run", "--deepspeed_config", ROOT / "configs/ds_zero3.json"],
               launcher=["deepspeed", "--num_gpus", "2", "--master_port", "29533"]))
    from genbook.core import MODELS, import_presets
    from genbook.train import zero_memory_estimate
    import_presets()
    m = MODELS.build("tarflow-imagenet64-cond", in_channels=1, img_size=8, num_classes=10, width=64, num_blocks=2, layers_per_block=1)
    n, est = sum(p.numel() for p in m.parameters()), zero_memory_estimate(m, devices=2)
    assert f"dry run: {n:,} trainable parameters; model states per device at world 2" in r.stdout, r.stdout
    assert f"ZeRO-3 {est[3] / 2**20:.1f} MiB" in r.stdout and "engine deepspeed" in r.stdout
    assert "param groups: weight_decay=0.0001:" in r.stdout       # counted before ZeRO-3 partitions the tensors (it printed one empty group)
    assert "one optimizer step at micro-batch 1 (global batch 2)" in r.stdout and "rank 0: step" in r.stdout and "rank 1: step" in r.stdout
    assert not (tmp_path / "run").exists() and r.stdout.count("dry run: nothing written") == 2   # the summary line and the last line
    # a preset's EMA cannot run under ZeRO-3 (partitioned weights): the error says how to turn it off, and --ema 0 does
    r = run(small + ["--dry-run", "--ema", "0.999", "--deepspeed_config", ROOT / "configs/ds_zero3.json"])
    assert r.returncode != 0 and "--ema 0" in r.stderr and "Traceback" not in r.stderr, r.stderr
    ok(run(small + ["--dry-run", "--ema", "0", "--deepspeed_config", ROOT / "configs/ds_zero3.json"]))


def test_config_file_tensorboard_and_resolved_config(tmp_path):
    "--config run.toml sets any flag (the command line wins); the run writes config.json (which --config repeats exactly) and TensorBoard events equal to metrics.jsonl; bad files fail in one line."
    (tmp_path / "run.toml").write_text('model = "tarflow-digits"\nmax-steps = 5\nlog_every = 1\nnum_samples = 0\nno_progress = true\nwarmup = 2\n'
                                       '[model_args]\nwidth = 64\nlayers_per_block = 1\n')
    r = ok(run(["--config", tmp_path / "run.toml", "--max-steps", "4", "--out", tmp_path / "a"]))
    assert "4 steps" in r.stdout
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["max_steps"] == 4 and cfg["model_args"] == {"width": 64, "layers_per_block": 1} and cfg["_resolved"]["model_config"]["width"] == 64
    assert cfg["_resolved"]["train"]["batch_size"] == cfg["batch_size"] == 128 and cfg["_resolved"]["world"] == 1
    ok(run(["--config", tmp_path / "a" / "config.json", "--out", tmp_path / "b"]))
    assert losses(tmp_path / "a") == losses(tmp_path / "b") and len(losses(tmp_path / "b")) == 4
    before = (tmp_path / "a" / "config.json").read_text()                  # a resume that fails leaves the run's record alone
    r = run(["--model", "dit-digits", "--resume", tmp_path / "a", "--no-progress"])
    assert r.returncode != 0 and (tmp_path / "a" / "config.json").read_text() == before
    (tmp_path / "e.yaml").write_text("model: dit-digits\nlr: 1e-4\nmax_steps: 2\nema: 0\nnum_samples: 0\nno_progress: true\nmodel_args:\n  width: 32\n  depth: 1\n")
    r = ok(run(["--config", tmp_path / "e.yaml", "--out", tmp_path / "e"]))   # YAML reads 1e-4 as a string: accepted as a number
    e = json.loads((tmp_path / "e" / "config.json").read_text())
    assert e["lr"] == 1e-4 and e["ema"] == 0 and "EMA" not in r.stdout       # --ema 0 (no EMA, though the preset has one) survives the round trip
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(tmp_path / "a" / "tensorboard")); ea.Reload()
    tb = [e.value for e in ea.Scalars("train/loss")]
    assert [e.step for e in ea.Scalars("train/loss")] == [1, 2, 3, 4] and max(abs(a - b) for a, b in zip(tb, losses(tmp_path / "a"))) < 1e-6
    ok(run(["--config", tmp_path / "run.toml", "--no-tensorboard", "--out", tmp_path / "c"]))
    assert not (tmp_path / "c" / "tensorboard").exists()
    (tmp_path / "run.yaml").write_text("model: tarflow-digits\nmax_step: 3\n")
    (tmp_path / "types.yaml").write_text("max_steps: many\n")
    (tmp_path / "switch.json").write_text('{"bf16": 1}')
    (tmp_path / "broken.toml").write_text("max_steps = \n")
    (tmp_path / "run.ini").write_text("x")
    for f, msg in (("run.yaml", "unknown key 'max_step' (did you mean 'max_steps'?)"), ("types.yaml", "max_steps = 'many': expected an integer"),
                   ("switch.json", "bf16 = 1: expected true or false"), ("broken.toml", "cannot parse it"), ("run.ini", "expected a .toml, .yaml, .yml or .json file"),
                   ("missing.toml", "no such file")):
        r = run(["--config", tmp_path / f, "--out", tmp_path / "x"])
        assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr, (f, r.stderr)


def test_grad_checkpoint_flag(tmp_path):
    "--grad-checkpoint recomputes every transformer layer in backward: the same losses as the plain run; a model without transformer layers is refused."
    common = ["--max-steps", "4", "--log-every", "1", "--num-samples", "0"] + SMALL
    ok(run(common + ["--out", tmp_path / "plain"]))
    r = ok(run(common + ["--grad-checkpoint", "--out", tmp_path / "ckpt"]))
    assert "activation checkpointing" in r.stdout
    a, b = losses(tmp_path / "plain"), losses(tmp_path / "ckpt")
    assert max(abs(x / y - 1) for x, y in zip(a, b)) < 1e-5, (a, b)
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["_resolved"]["train"]["grad_checkpoint"] is True
    r = run(["--model", "vae-digits", "--grad-checkpoint", "--max-steps", "1", "--out", tmp_path / "x", "--no-progress"])
    assert r.returncode != 0 and "no TransformerLayer" in r.stderr


@pytest.mark.parametrize("model,weights,small", [
    ("tarflow-digits", ["0", "1.5"], ["width=64", "layers_per_block=1"]),
    ("dit-digits", ["1", "3"], ["width=32", "depth=1", "head_dim=16", "sample_steps=4"]),
    ("dart-digits", ["1", "2"], ["width=32", "depth=1", "head_dim=16"]),
])
def test_sample_script(model, weights, small, tmp_path):
    "scripts/sample.py loads a run (EMA weights where kept) and writes one grid per guidance weight and samples.safetensors; the same seed repeats the samples, guidance changes them; bad requests fail in one line."
    args = ["--model", model, "--max-steps", "2", "--num-samples", "0", "--no-progress", "--ema", "0.9", "--out", tmp_path / "run"]
    for a in small: args += ["--model-arg", a]
    ok(run(args))
    r = ok(sample([tmp_path / "run", "--guidance", *weights, "--n", "20", "--batch-size", "7"]))
    assert "(EMA weights)" in r.stdout
    from safetensors import safe_open
    from safetensors.torch import load_file
    out = tmp_path / "run" / "sampled"
    t = load_file(out / "samples.safetensors")
    keys = [f"g{float(w):g}" for w in weights]
    assert sorted(t) == sorted(keys + ["labels"]) and t["labels"].tolist() == [i % 10 for i in range(20)]
    for k in keys: assert t[k].shape == (20, 1, 8, 8) and t[k].abs().max() <= 1 and (out / f"{k}.png").is_file()
    assert not (t[keys[0]] == t[keys[1]]).all()                   # guidance changes the samples
    assert json.loads(safe_open(out / "samples.safetensors", "pt").metadata()["guidance"]) == [float(w) for w in weights]
    ok(sample([tmp_path / "run", "--guidance", weights[1], "--n", "20", "--batch-size", "7", "--out", tmp_path / "again"]))
    assert (load_file(tmp_path / "again" / "samples.safetensors")[keys[1]] == t[keys[1]]).all()   # seeded
    for bad, msg in ((["--label", "12"], "the model has 10 classes"), (["--n", "0"], "--n must be >= 1"),
                     (["--rule", "linear"] if model != "tarflow-digits" else ["--steps", "3"], "applies to the flows" if model != "tarflow-digits" else "fixed number of steps")):
        r = sample([tmp_path / "run", "--guidance", weights[1]] + bad)
        assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = sample([tmp_path / "nothing"])
    assert r.returncode != 0 and "checkpoint not found" in r.stderr
    if model == "dit-digits":   # --fid: FID against the run's data set with an Inception weights file (here seeded random weights: it warns)
        import torch
        from genbook.eval.fid import random_inception_weights
        torch.save(random_inception_weights(0), tmp_path / "inception.pth")
        r = ok(sample([tmp_path / "run", "--guidance", *weights, "--n", "20", "--fid", tmp_path / "inception.pth", "--fid-ref", "64", "--out", tmp_path / "fid"]))
        assert "not the standard FID Inception file" in r.stderr and "FID reference: digits (test, 64 images)" in r.stdout
        res = json.loads((tmp_path / "fid" / "fid.json").read_text())
        assert sorted(res["fid"]) == sorted(f"{float(w):g}" for w in weights) and all(v > 0 for v in res["fid"].values())
        r = sample([tmp_path / "run", "--fid", tmp_path / "missing.pth", "--n", "4"])
        assert r.returncode != 0 and "Inception weights not found" in r.stderr


def test_streaming_folder_trains_and_resumes_exactly(tmp_path):
    "--data folder-stream: images decoded from disk in 2 worker processes train through train.py, labels and sizes come from the folder, and a run stopped at step 3 resumes to exactly the uninterrupted run's losses."
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for s, k in (("train", 24), ("val", 4)):
        for c in ("a", "b"):
            (tmp_path / "imgs" / s / c).mkdir(parents=True)
            for i in range(k): Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(tmp_path / "imgs" / s / c / f"{i}.jpg")
    common = ["--model", "tarflow", "--data", "folder-stream", "--data-arg", f"path={tmp_path / 'imgs'}", "--data-arg", "size=8", "--data-arg", "workers=2",
              "--max-steps", "6", "--batch-size", "8", "--log-every", "1", "--warmup", "2", "--num-samples", "4"] + SMALL
    r = ok(run(common + ["--out", tmp_path / "full"]))
    assert "(48 train)" in r.stdout and "test bpd:" in r.stdout
    assert json.loads((tmp_path / "full" / "checkpoints" / "step_0000006" / "meta.json").read_text())["config"]["num_classes"] == 2
    ok(run(common + ["--out", tmp_path / "part", "--until", "3"]))
    ok(run(common + ["--out", tmp_path / "part", "--resume", tmp_path / "part"]))
    assert losses(tmp_path / "part") == losses(tmp_path / "full")
    # a scheduler's SIGTERM to the whole process group (workers included): the run still stops after the step with a checkpoint
    i = common.index("--max-steps"); long = common[:i] + ["--max-steps", "2000"] + common[i + 2:]
    p = subprocess.Popen([sys.executable, str(SCRIPT)] + [str(a) for a in long + ["--out", tmp_path / "sig", "--ckpt-every", "0"]], cwd=ROOT,
                         env={**os.environ, "MPLBACKEND": "Agg"}, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        time.sleep(0.1)
        m = tmp_path / "sig" / "metrics.jsonl"
        if m.is_file() and len(m.read_text().splitlines()) >= 3: break
    os.killpg(p.pid, signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 143 and err.count("SIGTERM: stopping after the current step") == 1, err[-2000:]
    assert any(c.name.startswith("step_") for c in (tmp_path / "sig" / "checkpoints").iterdir())
