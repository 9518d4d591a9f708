#!/usr/bin/env python
"""Train a genbook model preset on a dataset preset.

    python scripts/train.py                                   # TarFlow on digits, CPU, a few minutes
    torchrun --standalone --nproc_per_node 2 scripts/train.py # 2 ranks, DDP
    deepspeed --num_gpus 2 scripts/train.py --deepspeed_config configs/ds_zero2.json
    python scripts/train.py --config run.toml --max-steps 100  # flags from an experiment file; the command line wins

Writes metrics.jsonl, tensorboard/ (the same records as TensorBoard events), checkpoints/, samples.png
and config.json (the fully resolved configuration; --config config.json repeats the run) into --out
(default runs/<model>) and prints the test metrics. The same file runs unchanged under python, torchrun and deepspeed.

A folder that already holds a run is never written into by accident: --resume continues it (with the
run's own config.json for every flag not given on the command line, so `--resume runs/X` alone continues
run X as it started; the schedule flags --lr/--warmup/--max-steps must match the checkpoint's), --overwrite
replaces it. Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and exits 130 / 143;
--max-skipped consecutive skipped (non-finite) steps stop a diverged run with exit 1.
"""
import argparse, inspect, math, os, sys, time, json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class ArgParser(argparse.ArgumentParser):
    "Bad flags end in one line, not a usage block."
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_kv(items, what):
    from genbook.core import parse_value
    out = {}
    for it in items or []:
        if "=" not in it: raise ValueError(f"{what} expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip().replace("-", "_")] = parse_value(v)
    return out


def get_parser():
    p = ArgParser(prog="train.py", description=__doc__.split("\n")[0])
    p.add_argument("--config", metavar="FILE", help="experiment file (.toml, .yaml/.yml or .json): any flag below as a key (dashes or underscores), "
                   "model_args / data_args tables for --model-arg / --data-arg; flags given on the command line win; a run's config.json repeats it")
    p.add_argument("--model", default="tarflow-digits", help="model preset (--list shows them)")
    p.add_argument("--data", default="digits", help="dataset preset (--list shows them)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="override a model argument (repeatable)")
    p.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="dataset argument, e.g. path=/data/imgs (repeatable)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="global batch size over all ranks (default: the preset's)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    p.add_argument("--warmup", type=int, help="warm-up steps (default: the preset's)")
    p.add_argument("--direction", choices=["l2r", "r2l"], help="token order for text datasets (passed to the dataset as direction=)")
    p.add_argument("--ema", type=float, metavar="DECAY", help="keep an EMA of the weights with this decay (e.g. 0.999) for evaluation and sampling (default: the preset's, else none; 0: none)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (DeepSpeed: bf16 mode unless the JSON says otherwise)")
    p.add_argument("--grad-checkpoint", action="store_true", help="activation checkpointing: every transformer layer recomputes its forward in backward (less memory, about one more forward per step)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard events (tensorboard/ in the run folder)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, data order and noise")
    p.add_argument("--out", help="run folder (default runs/<model>; with --resume, the resumed run's folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out: deletes its metrics.jsonl, checkpoints/, samples.png, result.json, tensorboard/ and config.json (other files stay)")
    p.add_argument("--until", type=int, help="stop (with a checkpoint) at this step (>= 1); the schedule still ends at --max-steps")
    p.add_argument("--resume", help="checkpoint folder, or run folder (its latest checkpoint); flags not given come from the run's config.json")
    p.add_argument("--deepspeed_config", "--deepspeed-config", dest="deepspeed_config", help="DeepSpeed JSON (configs/ds_zero{0,1,2,3}.json)")
    p.add_argument("--max-skipped", type=int, default=50, help="stop with an error after this many consecutive skipped (non-finite) steps (0: never)")
    p.add_argument("--log-every", type=int, default=10, help="steps between metric records")
    p.add_argument("--ckpt-every", type=int, help="steps between checkpoints (0: only at the end; default: every tenth of the run, so a killed run loses at most a tenth)")
    p.add_argument("--keep-checkpoints", type=int, default=3, help="keep the newest this many step checkpoints (0: all)")
    p.add_argument("--num-samples", type=int, default=100, help="images in samples.png (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list model and dataset presets and exit")
    p.add_argument("--dry-run", action="store_true", help="build data, model, optimizer and engine, print the parameters and the memory per device of ZeRO stages 0-3, "
                   "take one optimizer step at micro-batch 1 (timed, peak memory per rank) and write nothing")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # set by the deepspeed launcher
    return p


RUN_FILES = ("metrics.jsonl", "checkpoints", "samples.png", "result.json", "tensorboard", "config.json")   # what a run writes, and --overwrite removes
SCHEDULE = {"lr": "--lr", "warmup": "--warmup", "max_steps": "--max-steps"}


NOT_IN_CONFIG = {"config", "list", "dry_run", "local_rank", "model_arg", "data_arg"}   # command-line only (model_args / data_args are tables)
RUN_ONLY = {"out", "resume", "overwrite", "until"}                                    # where and whether to run, not what: not written to config.json


def read_config(path):
    "The dict in an experiment file (.toml, .yaml/.yml, .json); keys starting with '_' are information and are dropped."
    f = Path(path)
    if not f.is_file(): raise FileNotFoundError(f"--config {path}: no such file")
    kind = f.suffix.lower()
    try:
        if kind == ".toml":
            try: import tomllib
            except ModuleNotFoundError:   # Python 3.10
                try: import tomli as tomllib
                except ModuleNotFoundError: raise ValueError(f"--config {path}: TOML needs Python 3.11+ or the tomli package; or use a .yaml / .json file") from None
            d = tomllib.loads(f.read_text())
        elif kind in (".yaml", ".yml"):
            import yaml
            d = yaml.safe_load(f.read_text())
        elif kind == ".json": d = json.loads(f.read_text())
        else: raise ValueError(f"--config {path}: expected a .toml, .yaml, .yml or .json file, got {kind or 'no extension'!r}")
    except ValueError as e:
        if str(e).startswith("--config"): raise
        raise ValueError(f"--config {path}: cannot parse it ({e})") from None
    except Exception as e:   # yaml.YAMLError and friends
        raise ValueError(f"--config {path}: cannot parse it ({type(e).__name__}: {e})") from None
    if d is None: d = {}
    if not isinstance(d, dict): raise ValueError(f"--config {path}: expected a table of flags at the top level, got a {type(d).__name__}")
    return {str(k).replace("-", "_"): v for k, v in d.items() if not str(k).startswith("_")}


def apply_config(p, argv, path):
    "Parse argv again with the file's values as defaults (so the command line wins); returns (args, model_args, data_args) of the file."
    import difflib
    d = read_config(path)
    tables = {}
    for k in ("model_args", "data_args"):
        t = d.pop(k, {}) or {}
        if not isinstance(t, dict): raise ValueError(f"--config {path}: {k} must be a table of key = value, got {t!r}")
        tables[k] = {str(a).replace("-", "_"): v for a, v in t.items()}
    acts = {a.dest: a for a in p._actions if a.dest not in NOT_IN_CONFIG and a.dest != "help"}
    for k, v in d.items():
        if k not in acts:
            near = difflib.get_close_matches(k, list(acts) + ["model_args", "data_args"], n=1)
            raise ValueError(f"--config {path}: unknown key {k!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                             + ("; set --model-arg / --data-arg values in the model_args / data_args tables" if k in ("model_arg", "data_arg") else ""))
        a, flag = acts[k], "--" + k.replace("_", "-")
        if isinstance(a, argparse._StoreTrueAction):
            if not isinstance(v, bool): raise ValueError(f"--config {path}: {k} = {v!r}: expected true or false ({flag} is a switch)")
        elif v is not None and a.type in (int, float):
            if isinstance(v, str):   # YAML 1.1 reads 1e-4 (no dot) as a string
                try: v = float(v)
                except ValueError: pass
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (a.type is int and not float(v).is_integer()):
                raise ValueError(f"--config {path}: {k} = {v!r}: expected {'an integer' if a.type is int else 'a number'} ({flag})")
            v = d[k] = a.type(v)
        elif v is not None and not isinstance(v, str): raise ValueError(f"--config {path}: {k} = {v!r}: expected a string ({flag})")
        if a.choices is not None and v is not None and v not in a.choices: raise ValueError(f"--config {path}: {k} = {v!r}: expected one of {list(a.choices)}")
    p.set_defaults(**d)
    return p.parse_args(argv), tables["model_args"], tables["data_args"]


def resumed_config(resume):
    "The config.json of the run that --resume points into (its folder, its checkpoints/ folder or one checkpoint), or None."
    p = Path(resume)
    for d in (p, p.parent, p.parent.parent):
        if (d / "checkpoints").is_dir() and (d / "config.json").is_file(): return d / "config.json"
    return None


def write_config(out, args, cfg, model_args, data_args, model, tr):
    "config.json in the run folder: the flags as resolved (loadable by --config) and, under _resolved, what they resolved to."
    import platform, torch, genbook
    from genbook.train import model_config
    flags = {k: v for k, v in vars(args).items() if k not in NOT_IN_CONFIG | RUN_ONLY}
    flags.update({k: cfg[k] for k in ("max_steps", "batch_size", "lr", "warmup") if k in cfg})
    flags["ema"] = cfg.get("ema") or 0                   # 0: no EMA (null would mean "the preset's")
    if flags.get("deepspeed_config"): flags["deepspeed_config"] = str(Path(flags["deepspeed_config"]).resolve())
    rec = {**flags, "model_args": model_args, "data_args": data_args,
           "_resolved": {"model": type(model).__name__, "model_config": model_config(model), "train": {**cfg, "accum": tr.accum, "bf16": tr.bf16},
                         "world": tr.world, "micro_batch": tr.batch_size // (tr.world * tr.accum), "engine": "deepspeed" if tr.ds else "ddp" if tr.ddp else "torch",
                         "deepspeed": tr.ds_config if tr.ds else None, "command": " ".join(sys.argv),
                         "versions": {"genbook": genbook.__version__, "torch": torch.__version__, "python": platform.python_version()},
                         "written": time.strftime("%Y-%m-%d %H:%M:%S")}}
    tmp = out / "config.json.tmp"
    tmp.write_text(json.dumps(rec, indent=1, default=str)); tmp.replace(out / "config.json")


def check_args(p, args):
    "Values that could only train nothing, or fail after the expensive part, end here in one line."
    if args.batch_size is not None and args.batch_size < 1: p.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr >= 0): p.error(f"--lr must be a finite number >= 0, got {args.lr}")
    if args.max_steps is not None and args.max_steps < 1: p.error(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.warmup is not None and args.warmup < 0: p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.max_skipped < 0: p.error(f"--max-skipped must be >= 0 (0: never stop), got {args.max_skipped}")
    if args.until is not None and args.until < 1: p.error(f"--until must be a step >= 1 (omit it to train to --max-steps), got {args.until}")
    if args.log_every < 1: p.error(f"--log-every must be >= 1, got {args.log_every}")
    if args.ckpt_every is not None and args.ckpt_every < 0: p.error(f"--ckpt-every must be >= 0 (0: only at the end), got {args.ckpt_every}")
    if args.keep_checkpoints < 0: p.error(f"--keep-checkpoints must be >= 0 (0: all), got {args.keep_checkpoints}")
    if args.num_samples < 0: p.error(f"--num-samples must be >= 0 (0: none), got {args.num_samples}")


def check_types(overrides, defaults, flag):
    "A --model-arg / --data-arg value that cannot be of its parameter's type (text for a number or a switch) ends here, not deep in torch."
    for k, v in overrides.items():
        d = defaults.get(k)
        if not isinstance(v, str) or d is None or isinstance(d, str): continue
        if isinstance(d, bool): raise ValueError(f"{flag} {k}={v}: expected true or false (default {d})")
        if isinstance(d, (int, float)): raise ValueError(f"{flag} {k}={v}: expected a number (default {d!r})")


def check_out(out):
    "Fail before any work when the run folder cannot be written (rather than after the first step)."
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test_{os.getpid()}"
        probe.write_text("ok"); probe.unlink()
    except OSError as e:
        raise ValueError(f"--out {out} is not writable ({e.strerror or e}); choose another --out") from None


def resume_schedule(ckpt, args, cfg):
    "On resume the schedule is the checkpoint's: flags left out take its values, a different value is refused."
    from genbook.train import read_meta
    theirs = read_meta(ckpt).get("train", {})   # absent in older checkpoints
    diff = []
    for k, flag in SCHEDULE.items():
        if k not in theirs: continue
        if getattr(args, k) is None: cfg[k] = theirs[k]
        elif getattr(args, k) != theirs[k]: diff.append(f"{flag} {getattr(args, k)} (the checkpoint has {theirs[k]})")
    if diff: raise ValueError(f"--resume {args.resume} continues that run's schedule: " + ", ".join(diff)
                              + "; leave the flag out or give the same value, or start a new run with another --out")


def run_folder(args, ckpt):
    "--out, checked: a folder holding a run is continued (--resume into it), replaced (--overwrite) or refused."
    if args.out: out = Path(args.out)
    elif ckpt is not None and ckpt.parent.name == "checkpoints": out = ckpt.parent.parent
    else: out = ROOT / "runs" / args.model
    if not ((out / "metrics.jsonl").is_file() or (out / "checkpoints").is_dir()): check_out(out); return out
    here = ckpt is not None and out.resolve() in ckpt.resolve().parents
    if here and args.overwrite: raise ValueError(f"--overwrite would delete the checkpoint that --resume {args.resume} continues from; drop --overwrite")
    if here: check_out(out); return out
    if not args.overwrite:
        if ckpt is not None: raise ValueError(f"--out {out} already holds another run than --resume {args.resume}; choose a new --out, or --overwrite to replace it")
        raise ValueError(f"--out {out} already holds a run (metrics.jsonl or checkpoints/); continue it with --resume {out}, "
                         f"replace it with --overwrite, or choose another --out")
    if int(os.environ.get("RANK", 0)) == 0:
        import shutil
        for f in RUN_FILES:
            if (out / f).is_dir(): shutil.rmtree(out / f)
            elif (out / f).exists(): (out / f).unlink()
        print(f"--overwrite: removed {', '.join(f for f in RUN_FILES)} from {out}", flush=True)
    check_out(out)
    return out


def build_data(name, args):
    import inspect
    from genbook.core import DATA
    fn, _ = DATA.get(name)
    has_split = "split" in inspect.signature(fn).parameters
    train = DATA.build(name, **({"split": "train"} if has_split else {}), **args)
    test = DATA.build(name, **{"split": "test"}, **args) if has_split else None
    return train, test


def build_model(name, overrides, data):
    "Model preset; shape/label/level arguments the preset leaves open are taken from the data."
    from genbook.core import MODELS
    cfg = MODELS.config(name, **overrides)
    shape = getattr(data, "shape", None)
    derived = {}
    if shape is not None and len(shape) == 3:
        derived.update(in_channels=shape[0], img_size=shape[1])
    if shape is not None and len(shape) == 5:                       # stacks of per-view images (V, A, C, H, W): splat attributes
        derived.update(views=shape[0], img_size=shape[-1])
    if hasattr(data, "num_classes"): derived["num_classes"] = data.num_classes
    if hasattr(data, "levels"): derived["levels"] = data.levels
    if hasattr(data, "vocab_size"): derived["vocab_size"] = data.vocab_size
    if hasattr(data, "seq_len"): derived["max_len"] = data.seq_len
    if hasattr(data, "frames"): derived["frames"] = data.frames
    for k, v in derived.items():
        if k in cfg and k not in overrides and cfg[k] != v:
            _, preset = MODELS.get(name)
            if k in preset:
                raise ValueError(f"model preset {name!r} has {k}={cfg[k]} but the data has {k}={v}; "
                                 f"use --model-arg {k}={v} or a matching preset")
            cfg[k] = v
    return MODELS.get(name)[0](**cfg)


def _bytes(b): return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.1f} MiB"


def memory_report(model, world):
    "Rank 0, before the engine is built: parameters and model-state memory per device of ZeRO stages 0-3 at this world size."
    from genbook.train import zero_memory_estimate
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    est = zero_memory_estimate(model, devices=world)
    print(f"dry run: {n:,} trainable parameters; model states per device at world {world} (16-bit weights, fp32 master weights and Adam; "
          "DeepSpeed's accounting, activations not included): " + ", ".join(f"ZeRO-{k} {_bytes(v)}" for k, v in est.items()), flush=True)


_HARD_EXIT = False   # set by shutdown after a DeepSpeed run: leave without the interpreter's teardown


def shutdown(tr):
    "Release DeepSpeed's engine (its ZeRO-3 hooks) and the process group before exit; without it a ZeRO-3 run could abort at exit ('terminate called without an active exception', exit 250)."
    global _HARD_EXIT
    import torch.distributed as dist
    if tr.engine is not None and hasattr(tr.engine, "destroy"): tr.engine.destroy()
    if dist.is_initialized(): dist.barrier(); dist.destroy_process_group()
    # Even so, the ZeRO-3 dry run on 2 CPU ranks was seen to abort in the interpreter's teardown again, in a clean-clone CI
    # run (a C++ thread destroyed while joinable). Everything is written and closed by now, so a DeepSpeed run exits
    # without that teardown (see __main__).
    _HARD_EXIT = tr.engine is not None


def dry_run(tr):
    "One timed optimizer step at micro-batch 1 and each rank's peak memory; nothing is written."
    import resource, torch
    import torch.distributed as dist
    if tr.device.type == "cuda": torch.cuda.reset_peak_memory_stats(tr.device)
    t0 = time.time()
    rec = tr.train_step()
    wall = time.time() - t0
    peak = torch.cuda.max_memory_allocated(tr.device) if tr.device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rows = [(tr.rank, wall, peak)]
    if tr.world > 1:
        rows = [None] * tr.world; dist.all_gather_object(rows, (tr.rank, wall, peak))
    if tr.rank == 0:
        what = "peak GPU memory allocated" if tr.device.type == "cuda" else "peak resident memory (RSS)"
        print(f"dry run: one optimizer step at micro-batch 1 (global batch {tr.batch_size}): loss {rec['loss']:.4f}, gradient norm {rec['grad_norm']:.4g}", flush=True)
        for r, w, pk in rows: print(f"  rank {r}: step {w:.2f} s, {what} {_bytes(pk)}", flush=True)
        print("dry run: nothing written", flush=True)
    shutdown(tr)
    return 0


def main(argv=None):
    p = get_parser()
    args = p.parse_args(argv)
    file_model_args, file_data_args = {}, {}
    cfg_file = args.config or (resumed_config(args.resume) if args.resume else None)
    if cfg_file:
        if not args.config and int(os.environ.get("RANK", 0)) == 0:
            print(f"train.py: --resume {args.resume}: flags not given on the command line are taken from {cfg_file}")
        args, file_model_args, file_data_args = apply_config(p, argv, cfg_file)
    check_args(p, args)
    import torch
    from genbook.core import MODELS, DATA, import_presets, seed_everything, Sampler, Evaluable, Previewable
    import_presets()
    if args.list:
        print("models:\n" + MODELS.describe() + "\n\ndatasets:\n" + DATA.describe()); return 0
    if args.deepspeed_config:
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions"))
    from genbook.train import Trainer, TensorBoardLogger, dist_env, param_groups, describe_groups, find_checkpoint
    from genbook.viz import save_grid
    rank = dist_env()[0]
    cfg = MODELS.train_defaults(args.model)
    for k in ("max_steps", "batch_size", "lr", "warmup", "ema"):
        if getattr(args, k) is not None: cfg[k] = getattr(args, k)
    if args.grad_checkpoint: cfg["grad_checkpoint"] = True
    if cfg.get("ema") == 0: cfg["ema"] = None   # --ema 0: no EMA (e.g. a preset's EMA under ZeRO-3)
    ckpt = find_checkpoint(args.resume) if args.resume else None
    if ckpt is not None: resume_schedule(ckpt, args, cfg)
    model_args = {**file_model_args, **parse_kv(args.model_arg, "--model-arg")}
    data_args = {**file_data_args, **parse_kv(args.data_arg, "--data-arg")}
    check_types(model_args, MODELS.config(args.model), "--model-arg"); check_types(data_args, DATA.config(args.data), "--data-arg")
    if args.deepspeed_config:   # a bad JSON fails here, not after data building and DeepSpeed's start-up
        from genbook.train import build_ds_config
        from genbook.core import get_device
        ds = build_ds_config(args.deepspeed_config, cfg.get("batch_size", 64), dist_env()[2], cfg.get("accum", 1), cfg.get("grad_clip", 1.0),
                             args.bf16, get_device(local_rank=dist_env()[1]))
    out = run_folder(args, ckpt) if not args.dry_run else None
    if args.dry_run:   # one step at micro-batch 1 on every rank (and accumulation step)
        accum = ds["gradient_accumulation_steps"] if args.deepspeed_config else cfg.get("accum", 1)
        cfg.update(batch_size=dist_env()[2] * accum, max_steps=1, warmup=0)
    ckpt_every = args.ckpt_every if args.ckpt_every is not None else max(1, math.ceil(cfg.get("max_steps", 1000) / 10))

    if args.direction:
        if "direction" not in inspect.signature(DATA.get(args.data)[0]).parameters:
            raise ValueError(f"--direction: dataset {args.data!r} has no direction (text datasets such as 'mult' do)")
        data_args["direction"] = args.direction
    train, test = build_data(args.data, data_args)
    seed_everything(args.seed)
    model = build_model(args.model, model_args, train)
    if args.dry_run and rank == 0: memory_report(model, dist_env()[2])
    eval_fn = (lambda m: m.evaluate(test)) if (test is not None and isinstance(model, Evaluable)) else None
    groups = describe_groups(param_groups(model, cfg.get("weight_decay", inspect.signature(Trainer).parameters["weight_decay"].default)))   # before ZeRO-3 partitions the tensors
    tr = Trainer(model, train, out=out, seed=args.seed, bf16=args.bf16, log_every=args.log_every,
                 ckpt_every=ckpt_every, eval_fn=eval_fn, deepspeed_config=args.deepspeed_config,
                 progress=not args.no_progress, max_skipped=args.max_skipped, keep_checkpoints=args.keep_checkpoints,
                 callbacks=[] if args.no_tensorboard or args.dry_run else [TensorBoardLogger()], **cfg)
    if rank == 0:
        print(f"{args.model} ({sum(getattr(p, 'ds_numel', p.numel()) for p in model.parameters() if p.requires_grad)/1e6:.2f}M trainable params) on {args.data} "
              f"({len(train)} train): {tr.max_steps} steps, global batch {tr.batch_size}, world {tr.world}, "
              f"engine {'deepspeed' if tr.ds else 'ddp' if tr.ddp else 'torch'}, device {tr.device}"
              + (", dry run: nothing written" if out is None else f", checkpoint every {tr.ckpt_every} steps" + (f" (newest {args.keep_checkpoints} kept)" if args.keep_checkpoints else "") if tr.ckpt_every else ", checkpoint at the end")
              + (f", EMA {tr.ema.decay}" if tr.ema is not None else "") + (", activation checkpointing" if tr.grad_checkpoint else ""), flush=True)
        print("param groups: " + groups, flush=True)
    if args.dry_run: return dry_run(tr)
    if ckpt is not None: tr.load_checkpoint(ckpt)            # a checkpoint that does not fit fails here, before anything is written
    if rank == 0 and (ckpt is None or not (out / "config.json").is_file()):   # a resumed run keeps the record of how it started
        write_config(out, args, cfg, {**model_args}, {**data_args}, model, tr)
    t0 = time.time()
    tr.fit(until=args.until)
    wall = time.time() - t0
    if args.num_samples and isinstance(model, Sampler):
        nc = getattr(model, "num_classes", 0)
        y = torch.arange(nc).repeat_interleave(max(1, args.num_samples // nc))[: args.num_samples].to(tr.device) if nc else None
        if y is None and test is not None and getattr(getattr(model, "cond", None), "text", False):   # a caption model: the test set's captions
            tb = test.get_batch(torch.arange(min(args.num_samples, len(test))))
            if tb.get("text"): y = list(tb["text"])
        n = len(y) if y is not None else args.num_samples
        with tr.gathered(), tr.ema_weights(): xs = model.sample(n, y, generator=torch.Generator(tr.device).manual_seed(args.seed))
        nrow = max(1, n // max(nc, 1)) if nc else None
        if xs.ndim == 5: nrow, xs = xs.shape[1], xs[:, :, :3].flatten(0, 1)   # clips (n, F, C, H, W): one row per clip, the RGB channels
        if rank == 0: save_grid(xs, out / "samples.png", nrow=nrow)
    elif args.num_samples and isinstance(model, Previewable) and test is not None:
        with tr.gathered(), tr.ema_weights(): xs = model.preview(test, n=max(1, min(8, args.num_samples)))
        if rank == 0: save_grid(xs, out / "samples.png", nrow=len(xs) // max(1, min(8, args.num_samples, len(test))))
    if rank == 0:
        last = tr.history[-1] if tr.history else {}
        evals = {k[5:]: v for k, v in last.items() if k.startswith("eval_")}
        wrote = "metrics.jsonl, config.json, checkpoints/" + (", tensorboard/" if not args.no_tensorboard else "") + (", samples.png" if (out / "samples.png").is_file() and args.num_samples else "")
        print(f"done in {wall:.1f}s: step {tr.step}, train loss {last.get('loss', float('nan')):.4f}, "
              f"skipped steps {tr.skipped}; wrote {wrote} in {out}")
        for k, v in evals.items(): print(f"test {k}: {v:.4f}")
        (out / "result.json").write_text(json.dumps({"step": tr.step, "wall_s": round(wall, 1), **{f"test_{k}": v for k, v in evals.items()}}, indent=1))
    shutdown(tr)
    return 0


if __name__ == "__main__":
    try:
        code = main()
        if _HARD_EXIT:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code or 0)
        sys.exit(code)
    except KeyboardInterrupt as e:   # genbook.train.TrainingInterrupted: SIGINT/SIGTERM after a checkpoint
        import signal
        if str(e) and int(os.environ.get("RANK", 0)) == 0:
            ck = getattr(e, "checkpoint", None)
            print(f"train.py: interrupted: {e}" + (f"; continue with --resume {ck.parent.parent}" if ck is not None else ""), file=sys.stderr)
        sys.exit(143 if getattr(e, "signum", None) == signal.SIGTERM else 130)
    except (FileNotFoundError, ValueError, KeyError, TypeError, NotImplementedError) as e:
        from genbook.train import CheckpointError  # noqa
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        sys.exit(f"train.py: error: {msg}")
    except Exception as e:
        from genbook.train import CheckpointError, TrainingDiverged
        if isinstance(e, (CheckpointError, TrainingDiverged)): sys.exit(f"train.py: error: {e}")
        raise
