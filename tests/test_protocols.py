"""One shared test of the generative-model interface: every registered model preset, built small, satisfies
genbook.core's protocols and returns a finite scalar loss on a 4-item batch of a matching dataset preset."""
import math
import pytest
import torch

from genbook.core import MODELS, DATA, Trainable, Sampler, Evaluable, Previewable, import_presets
from genbook.data import check_batch

import_presets()

# preset -> (dataset preset, dataset arguments, model overrides that make it tiny, protocols it must satisfy)
IMG = (Trainable, Sampler, Evaluable)
ZDATA = dict(n_objects=4, size=16, fit_views=2, extra_views=1, heldout_views=1, steps=3, progress=False)   # 4 objects fitted in 3 steps
ZSMALL = dict(views=2, img_size=16, width=32, depth=1, head_dim=16, cond_depth=1, sample_steps=2)
CASES = {
    "tarflow-digits": ("digits", {}, dict(width=64, layers_per_block=1, num_blocks=2), IMG),
    "tarflow": ("digits", {}, dict(in_channels=1, img_size=8, patch_size=2, num_classes=10, levels=17,
                                    width=64, layers_per_block=1, num_blocks=2), IMG),
    "starflow-pixel": ("digits", {}, dict(layers=[1, 1], width=32), IMG),
    "starflow": ("digits", {}, dict(layers=[1, 1], width=32, autoencoder="<tiny-vae>"), IMG),
    "starflow-text": ("digits-captions", {}, dict(layers=[1, 1], width=32, autoencoder="<tiny-vae>"), IMG),
    "vae-digits": ("digits", {}, dict(width=8), (Trainable, Evaluable)),
    "attr-vae": ("digits", {}, dict(width=8, in_channels=1, img_size=8), (Trainable, Evaluable)),   # trained on attribute images (nb 35), which no dataset preset serves
    "dit-digits": ("digits", {}, dict(width=64, depth=1), IMG),
    **{n: ("digits", {}, dict(in_channels=1, img_size=8, num_classes=10, width=64, depth=1, head_dim=32), IMG)    # the paper-size DiTs, built small
       for n in ("dit-s-2", "dit-b-2", "dit-l-2", "dit-xl-2")},
    **{n: ("digits", {}, dict(in_channels=1, img_size=8, patch_size=2, num_classes=10 if c else 0, width=64, num_blocks=2, layers_per_block=1), IMG)
       for n, c in (("tarflow-imagenet64", 0), ("tarflow-imagenet64-cond", 1), ("tarflow-imagenet128-cond", 1), ("tarflow-afhq256", 1))},
    "dit-fm-digits": ("digits", {}, dict(width=64, depth=1), IMG),
    "dart-digits": ("digits", {}, dict(width=64, depth=1, T=4), IMG),
    "dart-fm-digits": ("digits", {}, dict(width=64, depth=1, T=4), IMG),
    "dart-text": ("digits-captions", {}, dict(width=64, depth=1, T=4, text_len=16), IMG),
    **{n: ("digits", {}, dict(in_channels=1, img_size=8, patch_size=4, num_classes=10, width=64, depth=1, head_dim=32, T=4), IMG)   # the paper-size DARTs, built small
       for n in ("dart-s", "dart-b", "dart-l", "dart-xl")},
    "gpt": ("mult", dict(digits=1, test_size=20), dict(dim=32, depth=1), (Trainable, Evaluable)),
    "splatter": ("multiview", dict(n_objects=4, views=2, size=16), dict(img_size=16, width=8), (Trainable, Evaluable, Previewable)),
    "wvd": ("clips", dict(n_clips=4, progress=False), dict(width=32, depth=2, head_dim=16), IMG),
    "wvd-regress": ("clips", dict(n_clips=4, progress=False), dict(width=32, depth=2, head_dim=16), (Trainable, Evaluable, Previewable)),
    "shapetokens": ("shapes", dict(n_shapes=4, points=256, num_points=96, progress=False),
                    dict(width=32, depth=1, enc_depth=1, head_dim=16, num_tokens=4, cond_points=64, flow_points=32), (Trainable, Evaluable, Previewable)),
    "pointcloud-ae": ("shapes", dict(n_shapes=4, points=256, num_points=96, progress=False),
                      dict(latent=32, hidden=32, out_points=64, cond_points=64), (Trainable, Evaluable, Previewable)),
    "zero1tog": ("splat-attributes", ZDATA, ZSMALL, (Trainable, Evaluable, Previewable)),
    "zero1tog-image": ("splat-attributes", ZDATA, ZSMALL, (Trainable, Evaluable, Previewable)),
    "dsplats": ("multiview", dict(n_objects=4, views=3, size=16), dict(img_size=16, views=2, width=8, temb=16, attn_head_dim=16, sample_steps=2), (Trainable, Evaluable, Previewable)),
    "dsplats-images": ("multiview", dict(n_objects=4, views=3, size=16), dict(img_size=16, views=2, width=8, temb=16, attn_head_dim=16, sample_steps=2, fit_steps=2), (Trainable, Evaluable, Previewable)),
    "dit-signs": ("signs", dict(n=8, cache=False), dict(width=32, depth=1, text_len=16), IMG),
    "dart-signs": ("signs", dict(n=8, cache=False), dict(width=32, depth=1, T=2, text_len=16), IMG),
    "starflow-signs": ("signs", dict(n=8, cache=False), dict(width=32, layers=[1, 1], text_max_len=16), IMG),
    "vid2sim-prior": ("sim-clips", dict(n_clips=4, steps=4, progress=False), dict(frames=5, width=48, depth=1, head_dim=24), (Trainable, Evaluable)),
}
SKIP = {"starflow-3b-t2i-256": "it trains on precomputed T5-XL caption states (batch key text_states), which no dataset preset provides; its function is checked by load_ml_starflow parity and a small prefix_dim model in nb 16, its size in test_full_scale"}  # preset -> reason


def test_every_preset_has_a_case():
    "A new model preset must be added to CASES (or SKIP with a reason), so the shared test covers it."
    missing = sorted(set(MODELS.names()) - set(CASES) - set(SKIP))
    assert not missing, f"add these model presets to tests/test_protocols.py CASES: {missing}"


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    "An untrained conv VAE saved as a folder: the latent presets are built on it instead of the cached pretrained one."
    from genbook.latent import ConvVAE, save_autoencoder
    torch.manual_seed(0)
    return str(save_autoencoder(ConvVAE(in_channels=1, img_size=8, latent_channels=4, factor=2, width=8), tmp_path_factory.mktemp("vae")))


@pytest.mark.parametrize("name", sorted(CASES))
def test_preset_follows_the_protocol(name, tiny_vae, tmp_path, monkeypatch):
    if name in SKIP: pytest.skip(SKIP[name])
    monkeypatch.setenv("GENBOOK_CACHE", str(tmp_path / "cache"))
    data_name, data_args, overrides, protocols = CASES[name]
    overrides = {k: (tiny_vae if v == "<tiny-vae>" else v) for k, v in overrides.items()}
    data = DATA.build(data_name, **data_args)
    torch.manual_seed(0)
    model = MODELS.build(name, **overrides)
    for P in protocols: assert isinstance(model, P), f"{name} is not {P.__name__}"
    scalars = [n for n, p in model.named_parameters() if p.dim() == 0]
    assert not scalars, f"{name}: 0-d parameters {scalars}; DeepSpeed cannot broadcast them (make them shape (1,))"
    cfg = getattr(model, "config", None)                      # load_run rebuilds a run from its saved config via the factory
    if cfg is not None: assert type(MODELS.get(name)[0](**cfg)) is type(model), f"{name}: the factory does not rebuild its model from model.config"
    batch = data.get_batch(torch.arange(4), torch.Generator().manual_seed(0))
    assert check_batch(batch) == 4
    out = model.loss(batch)
    assert isinstance(out, dict) and "loss" in out, f"{name}.loss returned {type(out).__name__} without 'loss'"
    loss = out["loss"]
    assert torch.is_tensor(loss) and loss.ndim == 0 and math.isfinite(loss.item()), f"{name}: loss {loss!r}"
    assert loss.requires_grad, f"{name}: the loss does not depend on trainable parameters"
