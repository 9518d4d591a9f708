"""Retrain the CPU presets the tutorials draw from and write their weights into the package (genbook/weights).

    python scripts/ship_weights.py                      # every preset in SHIPPED: train (scripts/train.py defaults), then ship
    python scripts/ship_weights.py --skip-train         # ship from the existing runs/<preset> folders
    python scripts/ship_weights.py --presets dit-digits # a subset

Each preset is trained by `scripts/train.py --model <preset> --data <data>` with the preset's defaults (seed 0)
into runs/<preset>, then `genbook.train.ship_run` writes genbook/weights/<preset>.safetensors: the EMA weights
where the run kept them, stored in fp16 unless that moves a held-out metric by more than --tol (relative).
The latent STARFlow presets read the digits VAE, so it is shipped first (genbook/weights/vae-digits.safetensors).
"""
import argparse, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (model preset, data preset): the presets whose trained weights the notebooks load with genbook.train.pretrained
SHIPPED = [("tarflow-digits", "digits"), ("starflow", "digits"), ("starflow-text", "digits-captions"), ("starflow-pixel", "digits"),
           ("dit-digits", "digits"), ("dart-digits", "digits"), ("dit-fm-digits", "digits"), ("dart-fm-digits", "digits"),
           ("dart-text", "digits-captions"), ("splatter", "multiview"), ("gpt", "mult"), ("vid2sim-prior", "sim-clips"),
           ("wvd", "clips"), ("wvd-regress", "clips"), ("shapetokens", "shapes"),
           ("dit-signs", "signs"), ("dart-signs", "signs"), ("starflow-signs", "signs")]


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", help=f"subset of {', '.join(n for n, _ in SHIPPED)}")
    p.add_argument("--runs", default=str(ROOT / "runs"), help="folder of the training runs (runs/<preset>)")
    p.add_argument("--out", help="where the weights go (default: the package's genbook/weights)")
    p.add_argument("--skip-train", action="store_true", help="ship the existing runs instead of training them again")
    p.add_argument("--no-vae", action="store_true", help="do not rewrite vae-digits.safetensors")
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
    out = Path(args.out) if args.out else weights_dir()
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_vae:
        m = ship_vae(out)
        print(f"vae-digits: float32, psnr {m['eval_fp32']['psnr']:.3f} dB", flush=True)
    for name, data in chosen.items():
        run = Path(args.runs) / name
        if not args.skip_train:
            t0 = time.time()
            cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--model", name, "--data", data, "--out", str(run), "--overwrite", "--no-progress"]
            print("$", " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
            print(f"{name}: trained in {time.time() - t0:.0f} s", flush=True)
        m = ship_run(run, out / f"{name}.safetensors", preset=name, eval_data=DATA.build(data, split="test"), tol=args.tol)
        size = (out / f"{name}.safetensors").stat().st_size
        print(f"{name}: step {m['step']}, {m['dtype']}, {size / 2**10:.0f} KiB; held-out " +
              ", ".join(f"{k} {v:.4f}" for k, v in m["eval_fp32"].items()) + f"; largest change from fp16: {m['eval_change']:.1e}", flush=True)
    total = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    print(f"{out}: {total / 2**20:.2f} MiB in {len(list(out.glob('*.safetensors')))} files")


if __name__ == "__main__":
    main()
