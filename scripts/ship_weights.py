"""Retrain the CPU presets the tutorials draw from and write their weights into the package (genbook/weights).

    python scripts/ship_weights.py                      # every preset in SHIPPED: train (scripts/train.py defaults), then ship
    python scripts/ship_weights.py --skip-train         # ship from the existing runs/<preset> folders
    python scripts/ship_weights.py --presets dit-digits # a subset

Each preset is trained by `scripts/train.py --model <preset> --data <data>` with the preset's defaults (seed 0), plus the
few arguments in TRAIN_ARGS (the data settings of the notebook study it serves, the run a model starts from), into
runs/<preset>; then `genbook.train.ship_run` writes genbook/weights/<preset>.safetensors: the EMA weights where the run
kept them, stored in fp16 unless that moves a held-out metric by more than --tol (relative).
Two autoencoders ship beside the presets (AUTOENCODERS), float32: the digits VAE of the latent STARFlow presets
(vae-digits) and Zero-1-to-G's attribute-image autoencoder with its fine-tuned decoder (attr-vae); a preset names them
by file name (`autoencoder="attr-vae"`).
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (model preset, data preset): the presets whose trained weights the notebooks load with genbook.train.pretrained
SHIPPED = [("tarflow-digits", "digits"), ("starflow", "digits"), ("starflow-text", "digits-captions"), ("starflow-pixel", "digits"),
           ("dit-digits", "digits"), ("dart-digits", "digits"), ("dit-fm-digits", "digits"), ("dart-fm-digits", "digits"),
           ("dart-text", "digits-captions"), ("splatter", "multiview"), ("gpt", "mult"), ("vid2sim-prior", "sim-clips"),
           ("wvd", "clips"), ("wvd-regress", "clips"), ("shapetokens", "shapes"),
           ("dit-signs", "signs"), ("dart-signs", "signs"), ("starflow-signs", "signs"),
           ("zero1tog", "splat-attributes"), ("dsplats-images", "multiview"), ("dsplats", "multiview")]
AUTOENCODERS = {"vae-digits", "attr-vae"}   # shipped beside the presets; trained by genbook functions, not scripts/train.py

# scripts/train.py arguments beyond the preset's defaults ("{runs}": the --runs folder): the data of the notebook study
# each model serves (35: 128 + 32 objects at 16x16; 36: multiview at 16x16), and DSplats' start from the image model
_ZDATA = ["--data-arg", "size=16", "--data-arg", "n_objects=128", "--data-arg", "n_test=32", "--data-arg", "random_input=True"]
TRAIN_ARGS = {"zero1tog": _ZDATA, "dsplats-images": ["--data-arg", "size=16"],
              "dsplats": ["--data-arg", "size=16", "--model-arg", "init={runs}/dsplats-images"]}


def data_args(preset:str)->dict:
    "The --data-arg values of TRAIN_ARGS[preset], parsed as scripts/train.py parses them."
    from genbook.core import parse_value
    a = TRAIN_ARGS.get(preset, [])
    return dict((k, parse_value(v)) for k, v in (a[i + 1].split("=", 1) for i in range(len(a) - 1) if a[i] == "--data-arg"))


def ship_vae(out: Path) -> dict:
    "Write the digits VAE that the latent STARFlow presets are trained on (the cached one, trained if absent)."
    from genbook.latent import pretrained_digits_vae
    from genbook.data import digits
    from genbook.train import save_weights
    import torch
    vae = pretrained_digits_vae(shipped=False)            # steps 1000, seed 0: the defaults the presets use
    torch.manual_seed(0)
    ev = {k: float(v) for k, v in vae.evaluate(digits("test")).items()}
    meta = {"_class_name": "ConvVAE", "model": "ConvVAE", "preset": "vae-digits", "step": 1000, "steps": 1000, "seed": 0, "dtype": "float32",
            "source": "genbook.latent.pretrained_digits_vae(steps=1000, seed=0)", "eval_fp32": ev}
    save_weights(vae, out / "vae-digits.safetensors", metadata=meta)
    return meta


def ship_attr_vae(out: Path, runs: Path) -> dict:
    "Write Zero-1-to-G's attribute autoencoder (runs/attr-vae-ft, its decoder fine-tuned; trained with train_attribute_vae if absent)."
    import json
    import torch
    from genbook.latent import load_autoencoder, save_autoencoder
    from genbook.splats.fit import splat_attributes
    from genbook.train import save_weights
    from genbook.zero1tog import train_attribute_vae, autoencoder_quality
    src, d = runs / "attr-vae-ft", dict(n_objects=128, n_test=32, size=16)
    if not src.is_dir():
        vae, ft, hist = train_attribute_vae(splat_attributes("train", **d, progress=False), progress=False)
        save_autoencoder(vae, runs / "attr-vae"); save_autoencoder(ft, src)
        (src / "quality.json").write_text(json.dumps({"hist": hist}))
    ae = load_autoencoder(src)
    torch.manual_seed(0)
    ev = {k: float(v) for k, v in autoencoder_quality(ae, splat_attributes("test", **d, progress=False)).items()}
    meta = {"_class_name": "ConvVAE", "model": "ConvVAE", "preset": "attr-vae", "step": 1500, "finetune_steps": 400, "seed": 0, "dtype": "float32",
            "source": "genbook.zero1tog.train_attribute_vae(splat_attributes('train', n_objects=128, size=16), steps=1500, finetune_steps=400, seed=0)",
            "eval_fp32": ev}
    save_weights(ae, out / "attr-vae.safetensors", metadata=meta)
    return meta


def shipped_name(autoencoder, out: Path):
    "The name under which `out` holds the same weights as the autoencoder folder a run was trained with (None: no such file)."
    import torch
    from genbook.latent import load_autoencoder
    if autoencoder is None or not Path(autoencoder).exists(): return None
    a = load_autoencoder(autoencoder).state_dict()
    for f in sorted(out.glob("*.safetensors")):
        if f.stem not in AUTOENCODERS: continue
        b = load_autoencoder(f).state_dict()
        if a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a): return f.stem
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", help=f"subset of {', '.join(n for n, _ in SHIPPED)}")
    p.add_argument("--runs", default=str(ROOT / "runs"), help="folder of the training runs (runs/<preset>)")
    p.add_argument("--out", help="where the weights go (default: the package's genbook/weights)")
    p.add_argument("--skip-train", action="store_true", help="ship the existing runs instead of training them again")
    p.add_argument("--no-vae", action="store_true", help="do not rewrite the autoencoders (vae-digits, attr-vae)")
    p.add_argument("--tol", type=float, default=1e-3, help="largest relative change of a held-out metric that fp16 storage may cause")
    args = p.parse_args(argv)
    from genbook.core import DATA, import_presets
    from genbook.train import ship_run, weights_dir
    import_presets()
    chosen = dict(SHIPPED)
    if args.presets:
        bad = [n for n in args.presets if n not in chosen]
        if bad: p.error(f"--presets: not shipped: {', '.join(bad)} (shipped: {', '.join(chosen)})")
        chosen = {n: chosen[n] for n in args.presets}
    out = Path(args.out).resolve() if args.out else weights_dir()
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(args.runs).resolve()
    os.chdir(ROOT)                                      # runs record their autoencoder folders relative to the repository
    if not args.no_vae:
        m = ship_vae(out)
        print(f"vae-digits: float32, psnr {m['eval_fp32']['psnr']:.3f} dB", flush=True)
        m = ship_attr_vae(out, runs)
        print(f"attr-vae: float32, renders of autoencoded held-out splats {m['eval_fp32']['psnr']:.3f} dB", flush=True)
    for name, data in chosen.items():
        run = runs / name
        if not args.skip_train:
            t0 = time.time()
            cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--model", name, "--data", data, "--out", str(run), "--overwrite", "--no-progress",
                   *(a.format(runs=runs) for a in TRAIN_ARGS.get(name, []))]
            print("$", " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
            print(f"{name}: trained in {time.time() - t0:.0f} s", flush=True)
        rename = {}
        cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
        ae = (cfg.get("model_args") or {}).get("autoencoder")
        if ae is not None and Path(ae).exists():   # trained on the latents of an autoencoder folder: name its shipped copy instead
            rename["autoencoder"] = shipped_name(ae, out)
            if rename["autoencoder"] is None: raise SystemExit(f"{name}: trained with autoencoder={ae}, which is not shipped in {out} ({', '.join(sorted(AUTOENCODERS))})")
        m = ship_run(run, out / f"{name}.safetensors", preset=name, eval_data=DATA.build(data, split="test", **data_args(name)), tol=args.tol, config=rename)
        size = (out / f"{name}.safetensors").stat().st_size
        print(f"{name}: step {m['step']}, {m['dtype']}, {size / 2**10:.0f} KiB; held-out " +
              ", ".join(f"{k} {v:.4f}" for k, v in m["eval_fp32"].items()) + f"; largest change from fp16: {m['eval_change']:.1e}"
              + "".join(f"; {k} {cfg['model_args'][k]} stored as {v!r}" for k, v in rename.items()), flush=True)
    total = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    print(f"{out}: {total / 2**20:.2f} MiB in {len(list(out.glob('*.safetensors')))} files")


if __name__ == "__main__":
    main()
