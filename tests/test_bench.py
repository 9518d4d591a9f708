"""scripts/bench.py runs end to end and reports the ratios it promises (no timing assertions)."""
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick(tmp_path):
    r = subprocess.run([sys.executable, ROOT / "scripts/bench.py", "--quick", "--json", tmp_path / "b.json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "b.json").read_text())
    ref = res["reference_config"]
    assert ref["guided_max_abs_diff"] < 1e-4                 # batched guidance gives the same samples
    assert ref["uncached_over_cached"] > 0 and set(ref["guided_ratio_by_batch"]) == {"1", "16"}
    assert ref["guided_compiled_max_abs_diff"] < 1e-4 and ref["guided_reference_over_compiled"] > 0 and ref["seq_compiled_s"] > 0   # the compiled step too
    assert ref["guided_compiled_1step_s"] > 0 and ref["unroll"] == 7                 # and at one step per call (63 steps = 9 calls of 7)
    j = res["jacobi"]
    assert j["seq_calls"] == 60 and j["jacobi_max_calls"] <= 60 and j["jacobi_max_rel_l2_to_seq"] < 1e-2
    assert res["train"]["train_step_s"] > 0
    t = res["typescore"]
    assert t["pairs"] >= 100 and t["score_us_per_pair"] > 0 and t["sw_dp_over_biopython"] > 0
    sp = res["splats"]
    for c in sp["cases"].values():
        assert c["max_abs_diff"] < 1e-4 and c["dense_over_sparse"] > 0 and c["pairs_per_gaussian"] > 0   # sparse == dense
    assert set(sp["scaling"]) == {"1024@64", "4096@64"} and sp["splatter_train_step_s"] > 0
    sim = res["sim"]
    assert sim["hessian_rel_diff"] < 1e-10 and sim["sim_step_s"] > 0 and sim["autograd_over_analytic"] > 0 and sim["skinning_train_step_s"] > 0
    sf = res["starflow"]
    assert abs(sf["params_ratio"] - 1) < 0.01                # equal parameter count
    for k in ("deep-shallow [2,2,2,10]", "uniform [4,4,4,4]"):
        c = sf[k]
        assert c["train_step_s"] > 0 and c["seq_calls"] == 4 * 63 and c["jacobi_calls"] <= c["seq_calls"] and c["jacobi_rel_l2_to_seq"] < 1e-2
    df = res["diffusion"]
    assert df["dart_max_abs_diff"] < 1e-4 and df["dit_cfg_max_abs_diff"] < 1e-4    # cache and batched CFG change nothing
    assert df["dart_T"] == 16 and df["dart_recompute_over_cached"] > 0 and df["dit_cfg_two_over_one"] > 0
    da = res["data"]
    assert all(da[f"workers_{w}_img_s"] > 0 for w in (0, 1, 2)) and da["in_memory_load_img_s"] > 0
    fl = res["flops"]
    assert fl["matmul_fp32_gflops"] > 0 and fl["native_bf16"] == ("bf16_speedup" in fl["width_256"])   # bf16 only where native
    w = fl["width_256"]
    assert w["step_flops"] > 6 * w["params"] * 16 * 64 * 0.5 and 0 < w["fraction_of_matmul"]       # at least ~6 N D FLOPs counted
