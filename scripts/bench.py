#!/usr/bin/env python
"""Speed ratios of genbook's flow samplers, measured in one run (tests never assert wall-clock limits).

    python scripts/bench.py                 # all benchmarks, ~1-2 minutes on 2 CPU cores
    python scripts/bench.py --json out.json # also write the numbers

1. TarFlow sampling at a CIFAR-like setting (32x32x3, patch 4, width 128, 4 blocks x 2 layers,
   batch 16): preallocated KV cache vs no cache vs a growing torch.cat cache (ml-tarflow's);
   guidance with both branches in one batched call vs two separate calls with torch.cat caches (the
   reference's approach); the same batched call with the per-token step compiled by torch.compile
   (genbook.flows.sampling.compiled_inverse: static-shape KV cache, inductor's C++ kernels, several steps per
   graph), its first call (compilation included) reported apart, and the compiled step at one step per call.
2. Jacobi vs sequential decoding on a trained digits model (runs/tarflow-digits if trained, else the shipped
   weights, else a small model trained here for a few hundred steps): wall time and number of sequential model calls.
3. One training step of the tarflow-digits preset (global batch 128).
4. TypeScore: time per scored (target, extraction) pair over the built-in instructions with 10% typos,
   Biopython's Smith-Waterman vs genbook's pure-Python reference DP, and tesseract seconds per image.
5. Gaussian splatting: forward + backward of the sparse rasterizer vs the dense all-pairs oracle at 64x64
   with 4096 Gaussians (small Gaussians as in a reconstructed object, and large ones), the sparse
   renderer's scaling with Gaussians (1k, 4k, 16k) and resolution (64, 128), and one Splatter Image
   training step.
6. Simplicits (sim.lbs): one implicit-Euler time step of kaolin's beam scene (32 + 1 handles = 396 DOFs,
   1024 cubature points), one skinning-training step, and one Newton iteration with the analytic
   (block-structured) Hessian vs the same iteration with an autograd Hessian.
7. STARFlow deep-shallow stack [2, 2, 2, 10] vs uniform depth [4, 4, 4, 4] at equal parameter count
   (64 tokens of 16 dims, width 128, label-conditional): training step, sequential sampling, guided
   sampling (Gaussian rule in the deep block vs TarFlow's linear rule in every block), and Jacobi decoding.
8. Diffusion family at the digits presets (untrained weights, random init): DART sampling (T = 16 blocks of
   4 tokens) with the KV cache (one new block per step) vs recomputing the whole prefix every step; and
   classifier-free guidance for DiT (50 DDIM steps) with conditional and unconditional rows in one batched
   call vs two calls per step.
9. Data: images per second from a folder of generated 256x256 JPEGs, streamed at 64x64
   (genbook.data.streaming_folder: decode, shorter-side resize, centre crop, dequantise) through the
   trainer's BatchStream with 0, 1 and 2 worker processes (steady state, after the workers start), beside
   loading the folder into memory.
10. Training FLOP rate: one training step (forward + backward + AdamW) of a TarFlow at width 256 and 512
   (FLOPs counted by torch.utils.flop_counter), as a fraction of this machine's fp32 matmul rate measured
   in the same run; bf16 is measured only where the CPU has native bf16 (AVX512-BF16 / AMX), since
   emulated bf16 is 25-40x slower than fp32.
"""
import argparse, json, time
from pathlib import Path
import torch
import genbook.nn as gnn
from genbook.core import MODELS, import_presets
from genbook.flows.tarflow import TarFlow
from genbook.flows.guidance import LinearGuidance
from genbook.flows.sampling import sample
import genbook.flows.sampling as S

ROOT = Path(__file__).resolve().parents[1]


class CatCache:
    "ml-tarflow's style of cache: a growing torch.cat of all keys/values (for comparison only)."
    def __init__(self): self.k = self.v = None; self.len = 0
    def update(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], 2)
        self.v = v if self.v is None else torch.cat([self.v, v], 2)
        self.len = self.k.shape[2]
        return self.k, self.v


class cat_caches:
    "Context in which every attention layer gets a CatCache instead of the preallocated KVCache."
    def __enter__(self):
        self.orig = gnn.Attention.new_cache
        gnn.Attention.new_cache = lambda self, *a, **kw: CatCache()
    def __exit__(self, *exc): gnn.Attention.new_cache = self.orig


def best(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return min(ts)


@torch.no_grad()
def bench_reference_config(reps, batches=(1, 4, 16, 64)):
    torch.manual_seed(0)
    m = TarFlow(in_channels=3, img_size=32, patch_size=4, width=128, num_blocks=4, layers_per_block=2, num_classes=10).eval()
    for b in m.blocks: torch.nn.init.normal_(b.proj_out.weight, std=0.01)
    z, y = torch.randn(16, m.T, m.D), torch.arange(16) % 10
    g = LinearGuidance(2.0)
    r = {"config": "32x32x3, patch 4 (T=64, D=48), width 128, 4 blocks x 2 layers, batch 16, 10 classes"}
    r["seq_cached_s"] = best(lambda: m.inverse(z, y), reps)
    r["seq_uncached_s"] = best(lambda: m.inverse(z, y, use_cache=False), reps)
    with cat_caches(): r["seq_catcache_s"] = best(lambda: m.inverse(z, y), reps)
    r["guided_batched_s"] = best(lambda: m.inverse(z, y, guidance=g), reps)
    r["guided_two_pass_prealloc_s"] = best(lambda: m.inverse(z, y, guidance=g, batched=False), reps)
    with cat_caches(): r["guided_two_pass_catcache_s"] = best(lambda: m.inverse(z, y, guidance=g, batched=False), reps)
    with cat_caches(): ref = m.inverse(z, y, guidance=g, batched=False)
    r["guided_max_abs_diff"] = (m.inverse(z, y, guidance=g) - ref).abs().max().item()
    # the batching gain depends on how compute-bound one step is: sweep the batch size
    r["guided_ratio_by_batch"] = {}
    for B in batches:
        zb, yb = torch.randn(B, m.T, m.D), torch.arange(B) % 10
        one = best(lambda: m.inverse(zb, yb, guidance=g), reps)
        with cat_caches(): two = best(lambda: m.inverse(zb, yb, guidance=g, batched=False), reps)
        r["guided_ratio_by_batch"][B] = two / one
    # the compiled per-token step: the first call compiles (reported apart), then steady state
    comp = lambda gg: sample(m, z=z, y=y, guidance=gg, compile=True)[0]
    t = time.perf_counter(); xc = comp(g); r["guided_compiled_first_s"] = time.perf_counter() - t
    r["guided_compiled_max_abs_diff"] = (xc - m.inverse(z, y, guidance=g)).abs().max().item()
    r["guided_compiled_s"] = best(lambda: comp(g), reps)
    r["seq_compiled_s"] = best(lambda: comp(None), reps)
    # the same with one step per compiled call (UNROLL = 1): what unrolling several steps into one graph gains
    unroll, S.UNROLL = S.UNROLL, 1
    try:
        comp(g); r["guided_compiled_1step_s"] = best(lambda: comp(g), reps)
    finally: S.UNROLL = unroll
    r["unroll"] = S.unroll_for(m.T, S.UNROLL)
    r["guided_1step_over_unrolled"] = r["guided_compiled_1step_s"] / r["guided_compiled_s"]
    r["guided_reference_over_compiled"] = r["guided_two_pass_catcache_s"] / r["guided_compiled_s"]
    r["guided_batched_over_compiled"] = r["guided_batched_s"] / r["guided_compiled_s"]
    r["uncached_over_cached"] = r["seq_uncached_s"] / r["seq_cached_s"]
    r["catcache_over_prealloc"] = r["seq_catcache_s"] / r["seq_cached_s"]
    r["guided_reference_over_batched"] = r["guided_two_pass_catcache_s"] / r["guided_batched_s"]
    return r


def digits_model(steps, use_trained=True):
    import_presets()
    ck = ROOT / "runs" / "tarflow-digits"
    m = MODELS.build("tarflow-digits")
    if use_trained and (ck / "checkpoints" / "latest").is_file():
        from genbook.train import find_checkpoint, load_weights
        load_weights(m, find_checkpoint(ck) / "model.safetensors")
        return m, f"tarflow-digits from {ck.relative_to(ROOT)}"
    from genbook.train import shipped_weights, pretrained
    if use_trained and "tarflow-digits" in shipped_weights():
        return pretrained("tarflow-digits"), "tarflow-digits, the trained weights shipped in genbook/weights"
    from genbook.data import digits
    from genbook.train import Trainer
    torch.manual_seed(0)
    Trainer(m, digits(), batch_size=128, max_steps=steps, lr=2e-3, warmup=50, progress=False, log_every=10**9).fit()
    return m, f"tarflow-digits trained here for {steps} steps (run scripts/train.py for the full model)"


@torch.no_grad()
def bench_jacobi(m, reps, tol):
    m.eval()
    y = torch.arange(40) % 10
    z = torch.randn(40, m.T, m.D, generator=torch.Generator().manual_seed(0))
    xs, rs = sample(m, z=z, y=y)
    r = {"seq_calls": rs.total_calls, "seq_s": best(lambda: sample(m, z=z, y=y), reps), "tol": tol}
    for crit in ("max", "mean"):
        xj, rj = sample(m, z=z, y=y, method="jacobi", tol=tol, criterion=crit)
        r[f"jacobi_{crit}_calls"] = rj.total_calls
        r[f"jacobi_{crit}_calls_per_block"] = rj.calls
        r[f"jacobi_{crit}_s"] = best(lambda: sample(m, z=z, y=y, method="jacobi", tol=tol, criterion=crit), reps)
        r[f"jacobi_{crit}_rel_l2_to_seq"] = ((xj - xs).norm() / xs.norm()).item()
        r[f"seq_over_jacobi_{crit}_calls"] = rs.total_calls / rj.total_calls
    return r


def bench_train_step(steps=10):
    import_presets()
    from genbook.data import digits
    from genbook.train import Trainer
    torch.manual_seed(0)
    tr = Trainer(MODELS.build("tarflow-digits"), digits(), batch_size=128, max_steps=steps + 2, progress=False, log_every=10**9)
    tr.train_step(); tr.train_step()
    t = time.perf_counter()
    for _ in range(steps): tr.train_step()
    return {"train_step_s": (time.perf_counter() - t) / steps, "config": "tarflow-digits, global batch 128, fp32"}


def bench_typescore(reps, n_ocr=8):
    "Metric and OCR throughput on the built-in instructions."
    from genbook.eval.typescore import TypeScore, load_instructions, smith_waterman, smith_waterman_dp, TesseractExtractor, TesseractMissing
    from genbook.eval.typegen import add_typos, render_text
    ts, inst = TypeScore(), load_instructions()
    pairs = [(i.target, add_typos(i.target, 0.1, seed=k)[0]) for k, i in enumerate(inst)]
    t_score = best(lambda: [ts.score(t, e) for t, e in pairs], reps) / len(pairs)
    t_bio = best(lambda: [smith_waterman(t, e) for t, e in pairs], reps)
    t_dp = best(lambda: [smith_waterman_dp(t, e) for t, e in pairs], 1)
    assert all(smith_waterman(t, e) == smith_waterman_dp(t, e) for t, e in pairs)
    out = {"pairs": len(pairs), "score_us_per_pair": t_score * 1e6, "sw_dp_over_biopython": t_dp / t_bio}
    try:
        ocr = TesseractExtractor()
        imgs = [render_text(i.text, size=28, width=520, seed=k) for k, i in enumerate(inst[:n_ocr])]
        out["ocr_s_per_image"] = best(lambda: [ocr(im) for im in imgs], 1) / len(imgs)
        out["ocr_config"] = f"tesseract {ocr.version}, variants {ocr.variants}, psm {ocr.psm}"
    except TesseractMissing as e: out["ocr_s_per_image"], out["ocr_config"] = None, str(e)
    return out


def bench_splats(reps, quick=False):
    "Sparse vs dense rasterization (forward + backward) and the sparse renderer's scaling."
    from genbook.splats.render import render, render_dense, random_gaussians, orbit_cameras, project, pixel_pairs, _prepare
    def run(fn, n, size, scale):
        g = random_gaussians(n, generator=torch.Generator().manual_seed(0), scale=scale)
        cams = orbit_cameras(1, radius=2.2, size=size)
        leaves = [t.requires_grad_() for t in (g.means, g.log_scales, g.quats, g.opacities, g.sh)]
        def step():
            out = fn(g, cams)
            (out["rgb"].sum() + out["depth"].sum() + out["alpha"].sum()).backward()
            return out
        t = best(step, reps)
        gf, cf, gidx, _, _ = _prepare(g, cams, 1.0)
        pairs = len(pixel_pairs(project(gf, cf, gidx), size, size)[0])
        return t, pairs / n, step()["rgb"].detach()
    out = {"cases": {}, "scaling": {}}
    for name, scale in (("small", (0.01, 0.04)), ("large", (0.03, 0.15))):
        ts, ppg, img_s = run(render, 4096, 64, scale)
        td, _, img_d = run(render_dense, 4096, 64, scale)
        out["cases"][name] = {"scale": scale, "pairs_per_gaussian": ppg, "sparse_s": ts, "dense_s": td, "dense_over_sparse": td / ts,
                              "max_abs_diff": (img_s - img_d).abs().max().item()}
    for n in ((1024, 4096) if quick else (1024, 4096, 16384)):
        for size in ((64,) if quick else (64, 128)):
            t, ppg, _ = run(render, n, size, (0.01, 0.04))
            out["scaling"][f"{n}@{size}"] = {"sparse_s": t, "pairs_per_gaussian": ppg}
    from genbook.splats.splatter import SplatterNet
    from genbook.splats.render import Cameras
    import numpy as np
    from genbook.splats.data import random_object, random_cameras, render_mesh
    rng = np.random.default_rng(0)
    objs = []
    for _ in range(8):
        mesh, fc = random_object(rng); cams = random_cameras(rng, 6, size=32)
        objs.append((render_mesh(mesh, fc, cams)["rgb"], cams))
    batch = {"images": torch.stack([o[0] for o in objs]), "w2c": torch.stack([o[1].w2c for o in objs]), "K": torch.stack([o[1].K for o in objs])}
    m = SplatterNet()
    def train_step():
        m.zero_grad(); m.loss(batch)["loss"].backward()
    out["splatter_train_step_s"] = best(train_step, reps)
    out["splatter_config"] = "splatter preset (1.3M params), batch 8 objects x 6 views, 32x32, 1024 Gaussians per object"
    return out


def bench_dsplats(reps, quick=False):
    "DSplats: one denoising step (U-Net forward + decoding + rendering the union of Gaussians at the V target views) and its backward; the rasterizer's share; Gaussian-pixel pairs."
    import numpy as np
    from genbook.core import MODELS, import_presets
    from genbook.splats.render import Cameras, render, project, pixel_pairs, _prepare
    from genbook.splats.data import random_object, random_cameras, render_mesh
    import_presets()
    out = {}
    for size in ((16,) if quick else (16, 32)):
        rng = np.random.default_rng(0)
        objs = []
        for _ in range(8):
            mesh, fc = random_object(rng); cams = random_cameras(rng, 4, size=size)
            objs.append((render_mesh(mesh, fc, cams)["rgb"], cams))
        im = torch.stack([o[0] for o in objs]); cams = Cameras(torch.stack([o[1].w2c for o in objs]), torch.stack([o[1].K for o in objs]), size, size)
        torch.manual_seed(0)
        m = MODELS.build("dsplats", img_size=size)
        V = m.V
        xt, t = torch.randn(8, V, 3, size, size), torch.full((8,), 0.5)
        def fwd():
            with torch.no_grad(): m.denoise(xt, t, im[:, 0], cams)
        def fwd_bwd():
            m.zero_grad(); x0, _ = m.denoise(xt, t, im[:, 0], cams); x0.square().mean().backward()
        with torch.no_grad(): _, g = m.denoise(xt, t, im[:, 0], cams)
        leaves = g.map(lambda a: a.detach().clone().requires_grad_())
        tc = cams[:, 1:1 + V]
        def rast():
            render(leaves, tc)["rgb"].square().mean().backward()
        def rast_fwd():
            with torch.no_grad(): render(leaves, tc)
        gf, cf, gidx, _, _ = _prepare(leaves.detach(), tc, 1.0)
        pairs = len(pixel_pairs(project(gf, cf, gidx), size, size)[0])
        r = {"fwd_s": best(fwd, reps), "fwd_bwd_s": best(fwd_bwd, reps), "render_fwd_s": best(rast_fwd, reps), "render_fwd_bwd_s": best(rast, reps),
             "gaussians": g.n * 8, "pairs": pairs, "params": sum(p.numel() for p in m.parameters())}
        r["render_share_fwd"], r["render_share_fwd_bwd"] = r["render_fwd_s"] / r["fwd_s"], r["render_fwd_bwd_s"] / r["fwd_bwd_s"]
        out[f"{size}x{size}"] = r
    out["config"] = "dsplats preset, 8 objects x (input + 3 target views), union of 4 x H x W Gaussians per object rendered at the 3 target views"
    return out


def bench_sim(reps, quick=False):
    "Simplicits step / training step times and analytic vs autograd Newton iterations."
    from genbook.sim.lbs import (BEAM, BEAM_WEIGHTS, beam_object, beam_scene, load_skinning, SkinningMLP, lame,
                                 skinning_losses)
    obj = beam_object()
    lo, hi = obj.bounds
    sk = load_skinning(BEAM_WEIGHTS) if BEAM_WEIGHTS.is_file() else SkinningMLP(BEAM["handles"], 64, BEAM["layers"], lo.tolist(), hi.tolist())
    sc = beam_scene(sk)
    n_steps = 3 if quick else 10
    sc.step(1)
    t = time.perf_counter(); sc.step(n_steps); step_s = (time.perf_counter() - t) / n_steps
    iters = sum(h.newton_iters for h in sc.history[-n_steps:]) / n_steps
    z_n, zd = sc.z.clone(), sc.zdot.clone()
    z = z_n + 1e-3 * torch.randn_like(z_n)
    def analytic():
        _, g, Hm = sc.objective(z, z_n, zd)
        return torch.linalg.solve(Hm, -g.flatten()), Hm
    def autograd():
        f = lambda v: sc.objective(v.reshape_as(z), z_n, zd, derivatives=False)[0]
        g = torch.func.grad(f)(z.flatten())
        Hm = torch.autograd.functional.hessian(f, z.flatten(), vectorize=True)
        return torch.linalg.solve(Hm, -g), Hm
    t_an = best(analytic, reps)
    t_ag = best(autograd, 1)
    H1, H2 = analytic()[1], autograd()[1]
    diff = ((H1 - H2).norm() / H2.norm()).item()
    xn = sk.normalize(obj.pts.float()); mu, lam = (v.float() for v in lame(obj.E, obj.nu))
    opt = torch.optim.Adam(sk.parameters(), 1e-3)
    idx = torch.randint(len(xn), (1000,), generator=torch.Generator().manual_seed(0))
    def train_step():
        le, lo_ = skinning_losses(sk, xn[idx], mu[idx], lam[idx], 1.0, 0.5)
        opt.zero_grad(); (le + lo_).backward(); opt.step()
    t_train = best(train_step, reps)
    return {"config": f"beam scene: {sc.H} handles ({sc.dofs} DOFs), {len(sc.X)} cubature points, float64",
            "sim_step_s": step_s, "newton_iters_per_step": iters, "newton_iter_analytic_s": t_an, "newton_iter_autograd_s": t_ag,
            "autograd_over_analytic": t_ag / t_an, "hessian_rel_diff": diff, "skinning_train_step_s": t_train,
            "train_config": f"1000 points x 10 transforms, MLP width 64 x {BEAM['layers']} layers"}


def bench_starflow(reps, quick=False):
    "Deep-shallow vs uniform STARFlow stacks at equal parameter count: train step and sampling times."
    from genbook.flows.starflow import StarFlow
    from genbook.flows.guidance import GaussianGuidance
    cfg = dict(in_channels=4, img_size=16, patch_size=2, width=128, head_dim=32, num_classes=10)
    stacks = {"deep-shallow [2,2,2,10]": [2, 2, 2, 10], "uniform [4,4,4,4]": [4, 4, 4, 4]}
    B, n = (8, 4) if quick else (32, 16)
    out = {"config": f"16x16x4 flow space, patch 2 (64 tokens x 16 dims), width 128, 10 classes, train batch {B}, {n} samples"}
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(B, 4, 16, 16, generator=g), torch.randint(10, (B,), generator=g)
    ys = torch.arange(n) % 10
    for name, layers in stacks.items():
        torch.manual_seed(0)
        m = StarFlow(layers=layers, **cfg)
        for b in m.blocks: torch.nn.init.normal_(b.proj_out.weight, std=0.01)   # a non-trivial map (zero init = identity)
        opt = torch.optim.AdamW(m.parameters(), 1e-4)
        def step():
            opt.zero_grad(); m(x, y)[1].mean().neg().backward(); opt.step()
        r = {"params": sum(p.numel() for p in m.parameters()), "train_step_s": best(step, reps)}
        m.eval()
        zs = torch.randn(n, m.T, m.D, generator=g)
        with torch.no_grad():
            r["sample_s"] = best(lambda: sample(m, z=zs, y=m.condition(ys, n)), reps)
            r["sample_gaussian_deep_s"] = best(lambda: sample(m, z=zs, y=m.condition(ys, n), guidance=GaussianGuidance(3.0)), reps)
            r["sample_linear_all_s"] = best(lambda: sample(m, z=zs, y=m.condition(ys, n), guidance=LinearGuidance(3.0)), reps)
            xs, rs = sample(m, z=zs, y=m.condition(ys, n))
            t = time.perf_counter(); xj, rj = sample(m, z=zs, y=m.condition(ys, n), method="jacobi", chunk=16, tol=1e-3); r["jacobi_s"] = time.perf_counter() - t
            r["seq_calls"], r["jacobi_calls"], r["jacobi_calls_per_block"] = rs.total_calls, rj.total_calls, rj.calls
            r["jacobi_rel_l2_to_seq"] = ((xj - xs).norm() / xs.norm()).item()
        out[name] = r
    a, u = out["deep-shallow [2,2,2,10]"], out["uniform [4,4,4,4]"]
    out["params_ratio"] = a["params"] / u["params"]
    out["train_uniform_over_deep"] = u["train_step_s"] / a["train_step_s"]
    out["sample_uniform_over_deep"] = u["sample_s"] / a["sample_s"]
    out["guided_uniform_linear_over_deep_gaussian"] = u["sample_linear_all_s"] / a["sample_gaussian_deep_s"]
    return out


def bench_diffusion(reps, quick=False):
    "DART: KV cache vs recompute; DiT: CFG in one batched call vs two calls per step."
    from genbook.diffusion import sample as dsample
    import_presets()
    n = 8 if quick else 64
    out = {"config": f"dart-digits and dit-digits presets (random init), {n} samples, labels 0..9"}
    torch.manual_seed(0)
    m = MODELS.build("dart-digits")
    for p in m.parameters():
        if p.ndim > 1 and p.abs().sum() == 0: torch.nn.init.normal_(p, std=0.02)   # zero-init heads and gates: give them content
    m.eval()
    y = torch.arange(n) % 10
    g = lambda: torch.Generator().manual_seed(0)
    with torch.no_grad():
        out["dart_cached_s"] = best(lambda: m.sample(n, y, generator=g()), reps)
        out["dart_recompute_s"] = best(lambda: m.sample(n, y, generator=g(), use_cache=False), reps)
        out["dart_guided_cached_s"] = best(lambda: m.sample(n, y, guidance=2.0, generator=g()), reps)
        out["dart_max_abs_diff"] = (m.sample(n, y, generator=g()) - m.sample(n, y, generator=g(), use_cache=False)).abs().max().item()
    out["dart_recompute_over_cached"] = out["dart_recompute_s"] / out["dart_cached_s"]
    out["dart_T"] = m.T
    d = MODELS.build("dit-digits")
    for p in d.parameters():
        if p.ndim > 1 and p.abs().sum() == 0: torch.nn.init.normal_(p, std=0.02)
    d.eval()
    steps = 10 if quick else 50
    def two_pass(x, t, cond):
        c, u = d(x, t, cond), d(x, t, torch.full_like(cond, -1))
        return u + 2.0 * (c - u)
    x0 = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out["dit_cfg_one_call_s"] = best(lambda: dsample(d, d.sched, x0.clone(), steps, cond=y, guidance=2.0, uncond=-1, progress=False), reps)
        out["dit_cfg_two_calls_s"] = best(lambda: dsample(two_pass, d.sched, x0.clone(), steps, cond=y, progress=False), reps)
        a_, _ = dsample(d, d.sched, x0.clone(), steps, cond=y, guidance=2.0, uncond=-1, progress=False)
        b_, _ = dsample(two_pass, d.sched, x0.clone(), steps, cond=y, progress=False)
    out["dit_cfg_max_abs_diff"] = (a_ - b_).abs().max().item()
    out["dit_cfg_two_over_one"] = out["dit_cfg_two_calls_s"] / out["dit_cfg_one_call_s"]
    out["dit_steps"] = steps
    return out


def bench_data(reps, quick=False):
    "Images/s of the streaming folder through BatchStream with 0, 1, 2 workers, and of loading the folder into memory."
    import tempfile, numpy as np
    from PIL import Image
    from genbook.data import streaming_folder, image_folder
    from genbook.train import BatchStream
    n, G, steps = (48, 16, 6) if quick else (256, 32, 24)
    out = {"config": f"{n} generated 256x256 JPEGs (quality 90) streamed at 64x64, global batch {G}, {steps} steps"}
    with tempfile.TemporaryDirectory() as d:
        rng = np.random.default_rng(0)
        for i in range(n):   # smooth random images (noise compresses badly and is not what photos look like)
            small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(small).resize((256, 256), Image.BICUBIC).save(f"{d}/{i:04d}.jpg", quality=90)
        data = streaming_folder(d, size=64, test_fraction=0.0)
        for w in (0, 1, 2):   # steady state: the workers are started (and the first batch built) before the clock starts
            ts = []
            for _ in range(reps):
                bs = BatchStream(data, G, seed=0, workers=w); bs.get(0)
                t0 = time.perf_counter()
                for s in range(1, steps + 1): bs.get(s)
                ts.append(time.perf_counter() - t0); bs.close()
            out[f"workers_{w}_img_s"] = G * steps / min(ts)
        out["in_memory_load_img_s"] = n / best(lambda: image_folder(d, size=64), 1)
    out["workers_2_over_0"] = out["workers_2_img_s"] / out["workers_0_img_s"]
    return out


def bench_flops(reps, quick=False):
    "Training-step FLOP rate of a TarFlow at width 256 and 512 as a fraction of the measured fp32 matmul rate; bf16 where native."
    from torch.utils.flop_counter import FlopCounterMode
    cap = torch.backends.cpu.get_cpu_capability()
    native_bf16 = any(k in cap.upper() for k in ("AMX", "BF16")) or torch.cuda.is_available()
    n = 1024 if quick else 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    mm = 2 * n ** 3 / best(lambda: a @ b, reps)
    out = {"cpu_capability": cap, "matmul_fp32_gflops": mm / 1e9, "native_bf16": native_bf16}
    if native_bf16:
        a16, b16 = a.bfloat16(), b.bfloat16()
        out["matmul_bf16_gflops"] = 2 * n ** 3 / best(lambda: a16 @ b16, reps) / 1e9
    for w in ((256,) if quick else (256, 512)):
        torch.manual_seed(0)
        m = TarFlow(in_channels=3, img_size=32, patch_size=4, width=w, num_blocks=4, layers_per_block=2, head_dim=64, num_classes=0)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        x = torch.rand(16, 3, 32, 32) * 2 - 1
        def step(bf16=False):
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16): loss = m.loss({"x": x})["loss"]
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        with FlopCounterMode(display=False) as fc:
            loss = m.loss({"x": x})["loss"]; loss.backward()
        m.zero_grad(set_to_none=True)
        flops = fc.get_total_flops()
        t = best(step, reps)
        r = {"params": sum(p.numel() for p in m.parameters()), "step_flops": flops, "step_s": t, "gflops": flops / t / 1e9}
        r["fraction_of_matmul"] = r["gflops"] * 1e9 / mm
        if native_bf16:
            r["bf16_step_s"] = best(lambda: step(True), reps); r["bf16_speedup"] = t / r["bf16_step_s"]
        out[f"width_{w}"] = r
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions (best is reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--train-steps", type=int, default=400, help="steps for the digits model when none is trained")
    ap.add_argument("--tol", type=float, default=1e-3, help="Jacobi tolerance")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--quick", action="store_true", help="1 repetition, a 30-step digits model: checks that the benchmark runs")
    a = ap.parse_args()
    if a.quick: a.reps, a.train_steps = 1, 30
    torch.set_num_threads(a.threads)
    res = {"threads": a.threads, "torch": torch.__version__}
    r = res["reference_config"] = bench_reference_config(a.reps, (1, 16) if a.quick else (1, 4, 16, 64))
    print(f"[1] TarFlow sampling, {r['config']}, {a.threads} threads, best of {a.reps}:")
    print(f"    sequential: preallocated KV cache {r['seq_cached_s']:.3f}s | torch.cat cache {r['seq_catcache_s']:.3f}s | "
          f"no cache {r['seq_uncached_s']:.3f}s  ->  no cache / cache {r['uncached_over_cached']:.1f}x, cat / preallocated {r['catcache_over_prealloc']:.2f}x")
    print(f"    guidance w=2: one batched call {r['guided_batched_s']:.3f}s | two calls, preallocated {r['guided_two_pass_prealloc_s']:.3f}s | "
          f"two calls + cat caches (ml-tarflow) {r['guided_two_pass_catcache_s']:.3f}s  ->  {r['guided_reference_over_batched']:.2f}x faster, "
          f"max |diff| {r['guided_max_abs_diff']:.1e}")
    print(f"    compiled step (sample(..., compile=True)): guided {r['guided_compiled_s']:.3f}s, unguided {r['seq_compiled_s']:.3f}s "
          f"(first call {r['guided_compiled_first_s']:.1f}s, compilation included)  ->  {r['guided_reference_over_compiled']:.2f}x faster than the "
          f"reference's two calls, {r['guided_batched_over_compiled']:.2f}x faster than the eager batched call, max |diff| {r['guided_compiled_max_abs_diff']:.1e}")
    print(f"    compiled, one step per call instead of {r['unroll']}: guided {r['guided_compiled_1step_s']:.3f}s  ->  unrolling is "
          f"{r['guided_1step_over_unrolled']:.2f}x faster")
    print("    two calls + cat caches / one batched call, by batch size: " + ", ".join(f"B={b}: {v:.2f}x" for b, v in r["guided_ratio_by_batch"].items()))
    m, desc = digits_model(a.train_steps, use_trained=not a.quick)
    r = res["jacobi"] = {"model": desc, **bench_jacobi(m, a.reps, a.tol)}
    print(f"[2] Jacobi vs sequential decoding, {desc}, 40 samples, tol {a.tol}:")
    print(f"    sequential: {r['seq_calls']} calls, {r['seq_s']:.3f}s")
    for c in ("max", "mean"):
        print(f"    jacobi ({c:4s}): {r[f'jacobi_{c}_calls']} calls {r[f'jacobi_{c}_calls_per_block']} ({r[f'seq_over_jacobi_{c}_calls']:.2f}x fewer), "
              f"{r[f'jacobi_{c}_s']:.3f}s, rel. L2 difference to sequential {r[f'jacobi_{c}_rel_l2_to_seq']:.1e}")
    r = res["train"] = bench_train_step()
    print(f"[3] training step, {r['config']}: {r['train_step_s'] * 1000:.0f} ms")
    r = res["typescore"] = bench_typescore(a.reps, 4 if a.quick else 8)
    ocr = f"{r['ocr_s_per_image']:.3f}s per image ({r['ocr_config']})" if r["ocr_s_per_image"] else r["ocr_config"]
    print(f"[4] TypeScore over {r['pairs']} instructions: {r['score_us_per_pair']:.0f} us per scored pair; "
          f"Smith-Waterman pure-Python DP / Biopython {r['sw_dp_over_biopython']:.0f}x; OCR {ocr}")
    r = res["splats"] = bench_splats(a.reps, a.quick)
    print(f"[5] Gaussian splatting, 64x64, 4096 Gaussians, forward + backward, {a.threads} threads:")
    for name, c in r["cases"].items():
        print(f"    {name} Gaussians (std {c['scale'][0]}-{c['scale'][1]}, {c['pairs_per_gaussian']:.0f} pixels each): sparse {c['sparse_s'] * 1e3:.1f} ms | "
              f"dense {c['dense_s'] * 1e3:.0f} ms  ->  {c['dense_over_sparse']:.1f}x faster, max |diff| {c['max_abs_diff']:.1e}")
    print("    sparse scaling (small Gaussians): " + ", ".join(f"{k}: {v['sparse_s'] * 1e3:.0f} ms" for k, v in r["scaling"].items()))
    print(f"    Splatter Image training step ({r['splatter_config']}): {r['splatter_train_step_s'] * 1e3:.0f} ms")
    r = res["dsplats"] = bench_dsplats(a.reps, a.quick)
    print(f"[5b] DSplats denoising step, {r['config']}:")
    for k, c in r.items():
        if k == "config": continue
        print(f"    {k}: forward {c['fwd_s'] * 1e3:.0f} ms (rasterizer {c['render_share_fwd']:.0%}) | forward + backward {c['fwd_bwd_s'] * 1e3:.0f} ms "
              f"(rasterizer {c['render_share_fwd_bwd']:.0%}); {c['gaussians']:,} Gaussians, {c['pairs']:,} Gaussian-pixel pairs per step")
    r = res["sim"] = bench_sim(a.reps, a.quick)
    print(f"[6] Simplicits, {r['config']}: {r['sim_step_s'] * 1e3:.0f} ms per time step ({r['newton_iters_per_step']:.1f} Newton iterations); "
          f"Newton iteration with analytic Hessian {r['newton_iter_analytic_s'] * 1e3:.0f} ms vs autograd Hessian {r['newton_iter_autograd_s'] * 1e3:.0f} ms "
          f"-> {r['autograd_over_analytic']:.0f}x (Hessians agree to {r['hessian_rel_diff']:.1e}); skinning training step {r['skinning_train_step_s'] * 1e3:.0f} ms ({r['train_config']})")
    r = res["starflow"] = bench_starflow(a.reps, a.quick)
    print(f"[7] STARFlow stacks at equal parameters ({r['params_ratio']:.3f}x), {r['config']}:")
    for name in ("deep-shallow [2,2,2,10]", "uniform [4,4,4,4]"):
        c = r[name]
        print(f"    {name}: {c['params'] / 1e6:.2f}M params, train step {c['train_step_s'] * 1e3:.0f} ms | sampling {c['sample_s']:.3f}s, "
              f"guided: Gaussian rule (deep block) {c['sample_gaussian_deep_s']:.3f}s, linear rule (all blocks) {c['sample_linear_all_s']:.3f}s | "
              f"Jacobi (chunk 16) {c['jacobi_calls']} calls {c['jacobi_calls_per_block']} vs {c['seq_calls']} sequential, {c['jacobi_s']:.3f}s")
    print(f"    uniform / deep-shallow: train step {r['train_uniform_over_deep']:.2f}x, sampling {r['sample_uniform_over_deep']:.2f}x, "
          f"guided (uniform + linear everywhere / deep-shallow + Gaussian in the deep block) {r['guided_uniform_linear_over_deep_gaussian']:.2f}x")
    r = res["diffusion"] = bench_diffusion(a.reps, a.quick)
    print(f"[8] Diffusion family, {r['config']}, {a.threads} threads, best of {a.reps}:")
    print(f"    DART (T={r['dart_T']}): KV cache {r['dart_cached_s']:.3f}s | recompute the prefix {r['dart_recompute_s']:.3f}s  ->  "
          f"{r['dart_recompute_over_cached']:.1f}x faster (max |diff| {r['dart_max_abs_diff']:.1e}); guided (w=2, one batched pass) {r['dart_guided_cached_s']:.3f}s")
    print(f"    DiT CFG w=2, {r['dit_steps']} DDIM steps: one batched call {r['dit_cfg_one_call_s']:.3f}s | two calls {r['dit_cfg_two_calls_s']:.3f}s  ->  "
          f"{r['dit_cfg_two_over_one']:.2f}x (max |diff| {r['dit_cfg_max_abs_diff']:.1e})")
    r = res["data"] = bench_data(a.reps, a.quick)
    print(f"[9] Streaming data, {r['config']}: " + ", ".join(f"{w} workers {r[f'workers_{w}_img_s']:.0f} img/s" for w in (0, 1, 2))
          + f"  ->  2 workers / none {r['workers_2_over_0']:.2f}x; loading the folder into memory {r['in_memory_load_img_s']:.0f} img/s")
    r = res["flops"] = bench_flops(a.reps, a.quick)
    print(f"[10] Training FLOP rate (TarFlow, 32x32x3, patch 4, 4 blocks x 2 layers, batch 16, forward + backward + AdamW), CPU {r['cpu_capability']}: "
          f"fp32 matmul {r['matmul_fp32_gflops']:.0f} GFLOP/s" + (f", bf16 matmul {r['matmul_bf16_gflops']:.0f} GFLOP/s" if r["native_bf16"] else ""))
    for k, c in r.items():
        if not k.startswith("width_"): continue
        print(f"    {k.replace('_', ' ')}: {c['params'] / 1e6:.1f}M params, {c['step_flops'] / 1e9:.1f} GFLOP per step in {c['step_s'] * 1e3:.0f} ms -> "
              f"{c['gflops']:.0f} GFLOP/s = {c['fraction_of_matmul']:.0%} of the matmul rate" + (f"; bf16 autocast {c['bf16_speedup']:.2f}x" if "bf16_speedup" in c else ""))
    if not r["native_bf16"]: print(f"    bf16 not measured: CPU capability {r['cpu_capability']} has no native bf16 (emulated bf16 runs 25-40x slower than fp32; train.py --bf16 warns)")
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
