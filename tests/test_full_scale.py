"""The papers' configurations as presets (issue 24, section 1): each builds on PyTorch's meta device (no memory)
with the parameter count of the reference implementation.

Reference counts:
- TarFlow: apple/ml-tarflow `Model(...)` with the README's arguments (counts given in the issue; genbook's
  `load_ml_tarflow` maps those weights one to one).
- DiT: facebookresearch/DiT `models.py` (commit ed81ce2), `DiT_models[name](input_size=32, num_classes=1000)`
  instantiated on the meta device (timm's PatchEmbed / Attention / Mlp replaced by layers with the same
  parameters), trainable parameters (the sin-cos positional table is frozen there and a buffer here). The
  reference also outputs a learned variance (learn_sigma): genbook's count is the reference's minus those
  rows, width * p^2 * C + p^2 * C, stated separately below."""
import pytest
import torch
from genbook.core import MODELS, import_presets

import_presets()

TARFLOW = {"tarflow-imagenet64": 460_142_784, "tarflow-imagenet64-cond": 466_286_784,
           "tarflow-imagenet128-cond": 823_927_552, "tarflow-afhq256": 463_481_856}
DIT = {"dit-s-2": (32_865_056, 384), "dit-b-2": (130_315_808, 768), "dit-l-2": (457_840_672, 1024), "dit-xl-2": (674_834_720, 1152)}


def count(name):
    with torch.device("meta"): m = MODELS.build(name)
    assert all(p.is_meta for p in m.parameters())
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", sorted(TARFLOW))
def test_tarflow_presets_match_ml_tarflow(name):
    assert count(name) == TARFLOW[name]


@pytest.mark.parametrize("name", sorted(DIT))
def test_dit_presets_match_the_reference(name):
    ref, width = DIT[name]
    learned_sigma = width * 2 * 2 * 4 + 2 * 2 * 4      # the reference's variance output rows (final linear, p=2, C=4)
    assert count(name) == ref - learned_sigma


def test_paper_schedules():
    "The training settings are the papers' (steps = epochs x ceil(images / batch); DiT's lr is constant)."
    t = MODELS.train_defaults("tarflow-imagenet128-cond")
    assert (t["batch_size"], t["max_steps"], t["warmup"], t["lr"], t["min_lr"], t["grad_clip"]) == (768, 320 * 1669, 1669, 1e-4, 1e-6, None)
    d = MODELS.train_defaults("dit-xl-2")
    assert (d["batch_size"], d["lr"], d["min_lr"], d["weight_decay"], d["warmup"], d["ema"]) == (256, 1e-4, 1e-4, 0.0, 0, 0.9999)


DART = {"dart-s": "dit-s-2", "dart-b": "dit-b-2", "dart-l": "dit-l-2", "dart-xl": "dit-xl-2"}


@pytest.mark.parametrize("name", sorted(DART))
def test_dart_presets_are_dit_sized(name):
    "DART's transformer is DiT's at the same size (adaLN-Zero layers, embedders, final layer; RoPE instead of DiT's sin-cos buffer) plus its unconditional adaLN input c0: the DiT reference count minus the learned-variance rows plus the width."
    ref, width = DIT[DART[name]]
    learned_sigma = width * 2 * 2 * 4 + 2 * 2 * 4
    assert count(name) == ref - learned_sigma + width
    with torch.device("meta"): m = MODELS.build(name)
    assert (m.T, m.N, m.D) == (16, 256, 16)                  # 16 steps of 256 tokens of 2x2x4 latent values


def test_starflow_3b_matches_ml_starflow():
    "apple/ml-starflow configs/starflow_3B_t2i_256x256.yaml: its Model counts 3,858,281,544 parameters (the issue's count); genbook's preset computes the same function (load_ml_starflow parity in nb 16) with the same parameters."
    assert count("starflow-3b-t2i-256") == 3_858_281_544
    with torch.device("meta"): m = MODELS.build("starflow-3b-t2i-256")
    assert [len(b.layers) for b in m.blocks] == [2, 2, 2, 2, 2, 24] and m.blocks[-1].cond_proj.in_features == 2048 and not m.blocks[-1].flip
    t = MODELS.train_defaults("starflow-3b-t2i-256")
    assert (t["batch_size"], t["lr"], t["min_lr"], t["betas"], t["grad_clip"]) == (1024, 6.4e-5, 1e-6, (0.9, 0.95), None)
