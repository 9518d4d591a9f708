#!/usr/bin/env python
"""Draw samples from a trained run of scripts/train.py at chosen guidance weights.

    python scripts/sample.py runs/dit-digits --guidance 1 2 4          # 100 samples (10 per class) per weight
    python scripts/sample.py runs/tarflow-digits --guidance 0 1 --n 20 --temperature 0.9
    python scripts/sample.py runs/starflow-text --prompt "a three" "a seven" --guidance 0 2
    python scripts/sample.py runs/dsplats --n 8                          # image-conditioned: held-out inputs from the run's data
    python scripts/sample.py runs/dit-s-2 --guidance 1.5 --n 10000 --fid pt_inception-2015-12-05-6726825d.pth

Loads the run's latest checkpoint (or --checkpoint), with the EMA weights where the run kept them
(--no-ema: the raw weights), and writes into --out (default <run>/sampled/): one grid per weight
(g<w>.png) and samples.safetensors (one tensor per weight, the labels or prompts and the settings in its
metadata). Guidance weights are in each model's own convention: DiT, DART, WVD and Zero-1-to-G take a CFG
scale (1 = no guidance), TarFlow and STARFlow the weight w of a guidance rule (0 = no guidance; --rule
picks TarFlow's linear rule or STARFlow's Gaussian rule). Class-conditional models get labels 0..K-1 in
turn, text-conditional ones the --prompt captions in turn; image-conditioned models (Zero-1-to-G,
DSplats) take their inputs from the held-out split of the data set named in the run's config.json (or
--data / --data-arg).

--fid WEIGHTS also computes, for each weight, the FID of the samples against the held-out split of the
run's data set (--fid-split train: the training split) with the standard Inception network
(genbook.eval.fid.fid_inception: the TF 2015-12-05 weights give paper-comparable numbers; other
weights are used with a warning), and writes fid.json.
"""
import argparse, json, math, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = ("TarFlow", "StarFlow", "DiT", "DART", "WVD")            # sample(n, y, guidance=..., generator=...)
CONDITIONED = ("Zero1toG", "DSplats")                               # preview(held-out data, n, seed=...): input view, 3D renders, truth


class ArgParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def get_parser():
    p = ArgParser(prog="sample.py", description=__doc__.split("\n")[0])
    p.add_argument("run", help="run folder of scripts/train.py (or one of its checkpoints)")
    p.add_argument("--guidance", nargs="+", type=float, metavar="W", help="guidance weights, in the model's convention (default: none)")
    p.add_argument("--n", type=int, default=100, help="samples per guidance weight (image-conditioned models: held-out objects)")
    p.add_argument("--batch-size", type=int, default=100, help="samples drawn at once")
    p.add_argument("--grid", type=int, default=100, help="at most this many samples in each grid image")
    p.add_argument("--no-save", action="store_true", help="do not write samples.safetensors (e.g. for a large FID run)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (the same for every weight, so the grids differ only by guidance)")
    p.add_argument("--prompt", nargs="+", metavar="TEXT", help="captions for text-conditional models, used in turn")
    p.add_argument("--label", nargs="+", type=int, metavar="K", help="class labels, used in turn (default: 0..K-1 in turn)")
    p.add_argument("--rule", choices=["linear", "gaussian"], help="flows: TarFlow's linear or STARFlow's Gaussian guidance rule (default: the model's own)")
    p.add_argument("--temperature", type=float, default=1.0, help="flows: prior temperature")
    p.add_argument("--steps", type=int, help="DiT / WVD / Zero-1-to-G / DSplats: sampler steps (default: the model's)")
    p.add_argument("--preset", help="model preset (default: the run folder's name, as load_run finds it)")
    p.add_argument("--data", help="image-conditioned models: data set preset (default: the run's config.json)")
    p.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="data set argument (repeatable; default: the run's config.json)")
    p.add_argument("--fid", metavar="WEIGHTS", help="also compute FID against the run's data set with the Inception network in this file (e.g. pt_inception-2015-12-05-6726825d.pth)")
    p.add_argument("--fid-split", choices=["test", "train"], default="test", help="the data split FID compares with (default: test)")
    p.add_argument("--fid-ref", type=int, default=50000, help="at most this many reference images for FID")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even where the run kept an EMA")
    p.add_argument("--out", help="output folder (default <run>/sampled)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    return p


def check_args(p, a):
    if a.n < 1: p.error(f"--n must be >= 1, got {a.n}")
    if a.batch_size < 1: p.error(f"--batch-size must be >= 1, got {a.batch_size}")
    if a.grid < 1: p.error(f"--grid must be >= 1, got {a.grid}")
    if a.steps is not None and a.steps < 1: p.error(f"--steps must be >= 1, got {a.steps}")
    if not (math.isfinite(a.temperature) and a.temperature > 0): p.error(f"--temperature must be a finite number > 0, got {a.temperature}")
    for w in a.guidance or []:
        if not math.isfinite(w): p.error(f"--guidance weights must be finite numbers, got {w}")


def run_config(run):
    "The run folder's config.json (written by train.py), or {} for older runs."
    run = Path(run)
    for d in (run, run.parent.parent, run.parent):
        if (d / "config.json").is_file(): return json.loads((d / "config.json").read_text())
    return {}


def text_conditional(model)->bool:
    "Does the model take captions (a text encoder inside it)?"
    return bool(getattr(model, "text", None)) or getattr(model, "cond_kind", None) in ("text", "joint")


def conditions(model, a, n):
    "The labels or captions for n samples (None: unconditional)."
    if getattr(model, "prefix_dim", 0) and (a.prompt or a.label):
        raise ValueError(f"--prompt / --label: this {type(model).__name__} reads caption states computed outside genbook (prefix_dim={model.prefix_dim}); "
                         "sample.py draws it with the null caption, or call model.sample(n, Prefix(states, mask)) from Python")
    if a.prompt and not text_conditional(model): raise ValueError(f"--prompt: this {type(model).__name__} takes no captions" + (" (use --label)" if getattr(model, "num_classes", 0) else ""))
    if a.prompt:
        return [a.prompt[i % len(a.prompt)] for i in range(n)]
    k = getattr(model, "num_classes", 0) or 0
    if a.label:
        bad = [l for l in a.label if not 0 <= l < k]
        if bad: raise ValueError(f"--label {bad}: the model has {k} classes" + (" (it is not class-conditional)" if not k else ""))
        return [a.label[i % len(a.label)] for i in range(n)]
    return [i % k for i in range(n)] if k else None


def guidance_arg(kind, model, w, rule):
    "The model's guidance argument for weight w."
    if rule and kind not in ("TarFlow", "StarFlow"): raise ValueError(f"--rule applies to the flows (TarFlow, StarFlow), not to a {kind}")
    if w is None: return None
    if kind in ("TarFlow", "StarFlow"):
        from genbook.flows.guidance import LinearGuidance, GaussianGuidance
        if w == 0: return None
        rule = rule or ("gaussian" if kind == "StarFlow" else "linear")
        return GaussianGuidance(w) if rule == "gaussian" else LinearGuidance(w)
    if kind == "WVD": raise ValueError("--guidance: WVD is unconditional (its tasks are inpainting); leave --guidance out")
    if kind == "DSplats": raise ValueError("--guidance: DSplats' sampler has no guidance; leave --guidance out")
    return None if w == 1 else w   # CFG scale 1 is the conditional model: no guidance


def draw(kind, model, a, w, n, cond, data, dev):
    "n samples at weight w, drawn in batches of a.batch_size from one seeded generator."
    import torch
    gen = torch.Generator(dev).manual_seed(a.seed)
    g = guidance_arg(kind, model, w, a.rule)
    if kind in CONDITIONED: return draw_batch(kind, model, a, g, w, n, cond, data, dev, gen)
    return torch.cat([draw_batch(kind, model, a, g, w, min(a.batch_size, n - i), None if cond is None else cond[i:i + a.batch_size], data, dev, gen).float().cpu()
                      for i in range(0, n, a.batch_size)])


def draw_batch(kind, model, a, g, w, n, cond, data, dev, gen):
    import torch
    if kind in CONDITIONED:
        kw = {"steps": a.steps} if a.steps else {}
        if g is not None: kw["guidance"] = g
        return model.preview(data, n=n, seed=a.seed, **kw)
    y = None
    if cond is not None:
        y = cond if isinstance(cond[0], str) else torch.tensor(cond, device=dev)
    if g is not None and y is None and not getattr(model, "prefix_dim", 0):
        raise ValueError(f"--guidance {w}: the {kind} is unconditional here (no classes; give --prompt for a text model)")
    if kind == "TarFlow": return model.sample(n, y, temperature=a.temperature, generator=gen, guidance=g).clamp(-1, 1)
    if kind == "StarFlow": return model.sample(n, y, guidance=g, temperature=a.temperature, generator=gen).clamp(-1, 1)
    if kind == "DiT": return model.sample(n, y, guidance=g, steps=a.steps, generator=gen)
    if kind == "DART": return model.sample(n, y, guidance=g, generator=gen)
    return model.sample(n, guidance=None, steps=a.steps, generator=gen)   # WVD: (n, F, C, H, W) clips


def to_uint8_rgb(x):
    "(N, C, H, W) images in [-1, 1] -> uint8 RGB (grey repeated, extra channels dropped)."
    import torch
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x[:, :3]


def fid_reference(a, cfg, n, metric, dev):
    "Feed at most n images of the run's data set (split a.fid_split, bin centres: no dequantisation noise) to `metric` as the real set; returns a description."
    import inspect, torch
    from genbook.core import DATA, import_presets
    from genbook.data import iter_batches
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train import parse_kv
    import_presets()
    name = a.data or cfg.get("data")
    if not name: raise ValueError(f"--fid: {a.run} has no config.json naming its data set: pass --data (and --data-arg)")
    dargs = {**(cfg.get("data_args", {}) if not a.data else {}), **parse_kv(a.data_arg, "--data-arg")}
    if "dequant" in inspect.signature(DATA.get(name)[0]).parameters: dargs["dequant"] = False
    data = DATA.build(name, split=a.fid_split, **dargs)
    got = 0
    for b in iter_batches(data, 256, torch.Generator().manual_seed(0)):
        if "x" not in b or b["x"].ndim != 4: raise ValueError(f"--fid: data set {name!r} does not hold images (batch key 'x' of shape (B, C, H, W))")
        x = b["x"][: n - got]
        metric.update(to_uint8_rgb(x).to(dev), real=True); got += len(x)
        if got >= n: break
    return f"{name} ({a.fid_split}, {got} images)"


def main(argv=None):
    p = get_parser()
    a = p.parse_args(argv)
    check_args(p, a)
    import torch
    from safetensors.torch import save_file
    from genbook.core import DATA, get_device, import_presets
    from genbook.eval.compare import load_run
    from genbook.train import find_checkpoint, read_meta
    from genbook.viz import save_grid
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train import parse_kv
    ck = find_checkpoint(a.run)
    cfg = run_config(a.run)
    preset = a.preset or cfg.get("model")
    model = load_run(a.run, preset=preset, ema=not a.no_ema)
    kind = type(model).__name__
    if kind not in SAMPLERS + CONDITIONED:
        raise ValueError(f"{a.run} holds a {kind}, which sample.py cannot draw from: it samples {', '.join(SAMPLERS)} "
                         f"(sample(n, y, guidance)) and the image-conditioned {', '.join(CONDITIONED)}")
    if a.temperature != 1.0 and kind not in ("TarFlow", "StarFlow"): raise ValueError(f"--temperature applies to the flows, not to a {kind}")
    if a.steps is not None and kind in ("TarFlow", "StarFlow", "DART"): raise ValueError(f"--steps: a {kind} samples in a fixed number of steps")
    dev = torch.device(a.device) if a.device else get_device()
    model.to(dev).eval()
    data = None
    if kind in CONDITIONED:
        import_presets()
        name = a.data or cfg.get("data")
        if not name: raise ValueError(f"{a.run} has no config.json naming its data set: pass --data (and --data-arg) for the held-out inputs")
        dargs = {**(cfg.get("data_args", {}) if not a.data else {}), **parse_kv(a.data_arg, "--data-arg")}
        data = DATA.build(name, split="test", **dargs)
        if a.prompt or a.label: raise ValueError(f"--prompt / --label: a {kind} is conditioned on held-out images, not on labels or captions")
    cond = conditions(model, a, a.n) if kind not in CONDITIONED else None
    out = Path(a.out) if a.out else (ck.parent.parent if ck.parent.name == "checkpoints" else Path(a.run)) / "sampled"
    out.mkdir(parents=True, exist_ok=True)
    step = read_meta(ck).get("step")
    ema = (ck / "ema.safetensors").is_file() and not a.no_ema
    print(f"{a.run}: {kind} at step {step} ({'EMA' if ema else 'raw'} weights) on {dev}; {a.n} " +
          ("held-out inputs" if kind in CONDITIONED else "samples") + " per weight" +
          (f", conditions {sorted(set(cond), key=str)[:10]}" if cond else ""), flush=True)
    fid_metric = fid_scores = None
    if a.fid:
        if kind in CONDITIONED + ("WVD",): raise ValueError(f"--fid: a {kind} is scored by its evaluate() on held-out data, not by image FID")
        C = getattr(model, "C", getattr(model, "in_channels", None))
        if C not in (1, 3): raise ValueError(f"--fid: the model draws {C}-channel arrays (latents?); FID needs decoded images with 1 or 3 channels")
        from genbook.eval.fid import inception_fid
        fid_metric, fid_scores = inception_fid(a.fid, device=dev, reset_real_features=False), {}
        ref_desc = fid_reference(a, cfg, a.fid_ref, fid_metric, dev)
        print(f"FID reference: {ref_desc}", flush=True)
    tensors, weights = {}, a.guidance or [None]
    for w in weights:
        t0 = time.time()
        with torch.no_grad(): xs = draw(kind, model, a, w, a.n, cond, data, dev).float().cpu()
        tag = "none" if w is None else f"{w:g}"
        grid = xs if kind in CONDITIONED else xs[: a.grid]
        nrow = None
        if xs.ndim == 5: nrow, grid = xs.shape[1], grid[:, :, :3].flatten(0, 1)        # clips: one row per clip, RGB
        elif kind in CONDITIONED: nrow = len(xs) // max(1, min(a.n, len(data)))
        elif cond is not None and not isinstance(cond[0], str):
            k, m = len(set(cond[: len(grid)])), len(grid)
            nrow = m // k if m // k >= 2 else math.ceil(math.sqrt(m))              # one column per class when each has two or more
        save_grid(grid, out / f"g{tag}.png", nrow=nrow)
        if not a.no_save: tensors[f"g{tag}"] = xs.contiguous()
        print(f"guidance {tag}: {tuple(xs.shape)} in {time.time() - t0:.1f}s, range [{xs.min():.2f}, {xs.max():.2f}] -> {out / f'g{tag}.png'}", flush=True)
        if fid_metric is not None:
            fid_metric.reset()                                               # the generated set only: the reference is kept
            fx = xs
            for i in range(0, len(fx), 256): fid_metric.update(to_uint8_rgb(fx[i:i + 256]).to(dev), real=False)
            fid_scores[tag] = float(fid_metric.compute())
            print(f"guidance {tag}: FID {fid_scores[tag]:.3f} ({len(fx)} samples vs {ref_desc})", flush=True)
    if cond is not None and not isinstance(cond[0], str): tensors["labels"] = torch.tensor(cond)
    meta = {"run": str(a.run), "checkpoint": ck.name, "step": str(step), "model": kind, "ema": str(ema), "seed": str(a.seed),
            "guidance": json.dumps(weights), "prompts": json.dumps(cond if cond and isinstance(cond[0], str) else None),
            "rule": str(a.rule), "temperature": str(a.temperature), "steps": str(a.steps)}
    if not a.no_save: save_file(tensors, str(out / "samples.safetensors"), metadata=meta)
    if fid_scores is not None:
        (out / "fid.json").write_text(json.dumps({"fid": fid_scores, "weights": str(a.fid), "sha256": getattr(fid_metric.inception.net, "sha256", None),
                                                  "reference": ref_desc, "samples": a.n, "seed": a.seed}, indent=1))
    print(f"wrote {len(weights)} grid(s)" + ("" if a.no_save else " and samples.safetensors") + (" and fid.json" if fid_scores is not None else "") + f" in {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError, KeyError, TypeError, NotImplementedError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        sys.exit(f"sample.py: error: {msg}")
    except Exception as e:
        from genbook.train import CheckpointError
        if isinstance(e, CheckpointError): sys.exit(f"sample.py: error: {e}")
        raise
