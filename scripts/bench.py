#!/usr/bin/env python
"""Speed ratios measured in one run (never wall-clock limits in tests).

    python scripts/bench.py            # TarFlow sampling: KV cache vs recomputation vs a torch.cat cache

Setting of flows.md's reference numbers: 32x32x3 images, patch 4, width 128, 4 blocks x 2 layers, batch 16.
"""
import argparse, json, time
import torch
from genbook.flows.tarflow import TarFlow
import genbook.nn as gnn


class CatCache:
    "ml-tarflow's style of cache: a growing torch.cat of all keys/values (for comparison only)."
    def __init__(self): self.k = self.v = None; self.len = 0
    def update(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], 2)
        self.v = v if self.v is None else torch.cat([self.v, v], 2)
        self.len = self.k.shape[2]
        return self.k, self.v


def timeit(fn, reps):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return min(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = TarFlow(in_channels=3, img_size=32, patch_size=4, width=128, num_blocks=4, layers_per_block=2, num_classes=10).eval()
    for b in m.blocks: torch.nn.init.normal_(b.proj_out.weight, std=0.01)
    z = torch.randn(16, m.T, m.D); y = torch.arange(16) % 10
    res = {}
    with torch.no_grad():
        res["cached_s"] = timeit(lambda: m.inverse(z, y, use_cache=True), a.reps)
        res["uncached_s"] = timeit(lambda: m.inverse(z, y, use_cache=False), a.reps)
        orig = gnn.Attention.new_cache
        gnn.Attention.new_cache = lambda self, *args, **kw: CatCache()
        try: res["catcache_s"] = timeit(lambda: m.inverse(z, y, use_cache=True), a.reps)
        finally: gnn.Attention.new_cache = orig
        err = (m.inverse(z, y) - m.inverse(z, y, use_cache=False)).abs().max().item()
    res["uncached_over_cached"] = res["uncached_s"] / res["cached_s"]
    res["catcache_over_prealloc"] = res["catcache_s"] / res["cached_s"]
    res["max_abs_diff_cached_vs_uncached"] = err
    print(f"TarFlow sampling, 16 x 32x32x3, p4, width 128, 4x2 layers, {a.threads} threads (best of {a.reps}):")
    print(f"  preallocated KV cache {res['cached_s']:.3f}s | torch.cat cache {res['catcache_s']:.3f}s | no cache {res['uncached_s']:.3f}s")
    print(f"  no cache / cache = {res['uncached_over_cached']:.1f}x ; cat cache / preallocated = {res['catcache_over_prealloc']:.2f}x ; max |diff| {err:.1e}")
    if a.json:
        with open(a.json, "w") as f: json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
