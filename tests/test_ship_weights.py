"""The trained weights shipped in the package (genbook/weights) and scripts/ship_weights.py, which writes them."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from ship_weights import SHIPPED, AUTOENCODERS, data_args  # noqa: E402


FITTED = {"scaling_factor", "shift_factor"}   # set by fitting after training (the VAE's latent scaling), not preset settings
# arguments that scripts/train.py's build_model took from the shipped data because the preset leaves them open, where they
# differ from the constructor's default (gpt's max_len is the mult data's seq_len, 11; zero1tog's image side is the
# 16x16 of its data); one explicit entry per case: {preset: {argument: what of the data it was taken from}}, checked
# against the shipped data preset (with ship_weights' data arguments) below
FROM_DATA = {"gpt": {"max_len": lambda d: d.seq_len}, "zero1tog": {"img_size": lambda d: d.shape[-1]}}
# factory arguments the model does not record (its config is the constructed model's): dsplats' init names the run it
# started from, whose weights the trained ones replace
FACTORY_ONLY = {"dsplats": {"init"}}


def norm(v): return json.loads(json.dumps(v, default=str))   # tuples -> lists, as the file's JSON header holds them


def test_every_listed_preset_ships_and_matches_the_preset_today():
    "A preset whose defaults changed after its weights were shipped fails here (the notebooks would show another model)."
    import torch
    from genbook.core import DATA, MODELS, import_presets
    from genbook.train import shipped_weights, weights_metadata, pretrained
    import_presets()
    shipped = shipped_weights()
    assert set(shipped) == {n for n, _ in SHIPPED} | AUTOENCODERS, sorted(shipped)
    for name, f in shipped.items():
        meta = weights_metadata(f)
        assert meta["preset"] == name and meta["dtype"] in ("float16", "float32"), (name, meta.get("dtype"))
        defaults, have = MODELS.config(name), meta["config"]
        own = set(defaults) - FITTED - FACTORY_ONLY.get(name, set())
        assert own <= set(have), f"{name}: the file's config lacks {sorted(own - set(have))}"
        stale = {k: (have[k], norm(defaults[k])) for k in own if have[k] != norm(defaults[k]) and k not in set(FROM_DATA.get(name, {}))}
        assert not stale, f"{name}: shipped with {stale} (file, preset now); rerun scripts/ship_weights.py --presets {name}"
        if name in FROM_DATA:
            data = DATA.build(dict(SHIPPED)[name], split="test", **data_args(name))
            for k, get in FROM_DATA[name].items(): assert have[k] == get(data), (name, k, have[k], get(data))
        m = pretrained(name)
        assert not m.training and all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in m.parameters())
        if name not in AUTOENCODERS:
            td, tr = MODELS.train_defaults(name), meta["train"]                     # trained at the preset's defaults
            assert meta["step"] == td["max_steps"]
            for k in ("max_steps", "batch_size", "lr", "warmup"): assert tr[k] in (None, td[k]), (name, k, tr[k], td[k])
            assert (tr.get("ema") or None) == (td.get("ema") or None), (name, tr.get("ema"), td.get("ema"))
            assert meta["eval_change"] <= 1e-3 or meta["dtype"] == "float32"          # fp16 only where it changes no number


def test_ship_weights_script_writes_a_loadable_file(tmp_path):
    "A tiny run shipped by the script (no training): fp16, the run's step, and `pretrained` reads it; a preset it does not ship is refused."
    env = {**os.environ, "MPLBACKEND": "Agg"}
    py = [sys.executable]
    r = subprocess.run(py + [str(ROOT / "scripts" / "train.py"), "--model", "dit-digits", "--model-arg", "width=32", "--model-arg", "depth=1",
                             "--max-steps", "2", "--num-samples", "0", "--no-progress", "--out", str(tmp_path / "runs" / "dit-digits")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(py + [str(ROOT / "scripts" / "ship_weights.py"), "--skip-train", "--no-vae", "--presets", "dit-digits",
                             "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "w")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "dit-digits: step 2, float16" in r.stdout, r.stdout
    from genbook.train import pretrained, weights_metadata
    m = pretrained("dit-digits", path=tmp_path / "w" / "dit-digits.safetensors")
    assert m.config["width"] == 32 and weights_metadata(tmp_path / "w" / "dit-digits.safetensors")["step"] == 2
    r = subprocess.run(py + [str(ROOT / "scripts" / "ship_weights.py"), "--skip-train", "--presets", "tarflow-imagenet64"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "--presets: not shipped: tarflow-imagenet64" in r.stderr, r.stderr


def test_a_run_autoencoder_folder_is_named_by_its_shipped_copy(tmp_path):
    "ship_weights stores a run's autoencoder folder as the shipped file's name only when the tensors are the same (zero1tog's runs/attr-vae-ft -> attr-vae)."
    import torch
    from ship_weights import shipped_name
    from genbook.latent import load_autoencoder, save_autoencoder
    from genbook.train import weights_dir
    ae = load_autoencoder("attr-vae")
    assert shipped_name(save_autoencoder(ae, tmp_path / "same"), weights_dir()) == "attr-vae"
    with torch.no_grad(): ae.decoder[0].bias.add_(1e-3)
    assert shipped_name(save_autoencoder(ae, tmp_path / "other"), weights_dir()) is None
    assert shipped_name(None, weights_dir()) is None and shipped_name(tmp_path / "missing", weights_dir()) is None
