"""SAELens-format round trips against the real ``sae-lens`` package, for every family (offline).

saelab -> folder -> ``sae_lens.SAE.load_from_disk`` and SAELens -> ``save_model`` /
``save_inference_model`` -> ``import_saelens`` must give the same ``encode`` and ``decode`` on the
same inputs (float32). The folds of ``import_saelens`` (apply_b_dec_to_input = false,
rescale_acts_by_decoder_norm, expected_average_only_in) are checked the same way.
"""
import json

import pytest
import torch

from saelab.interop import (export_saelens, import_saelens, read_saelens_config,
                            read_saelens_sparsity)
from saelab.lm.scaling import fold_input_scale
from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                                MatryoshkaConfig, TopKConfig)
from saelab.torch_sae import make_sae

sae_lens = pytest.importorskip("sae_lens", reason="sae-lens is in the test extra: "
                                                   "pip install -e '.[test]'")

D_IN, D_SAE, K = 24, 80, 6
CONFIGS = {
    "l1": L1Config(d_in=D_IN, d_sae=D_SAE, l1_coeff=0.3),
    "l1_unit": L1Config(d_in=D_IN, d_sae=D_SAE, decoder_norm="unit"),
    "topk": TopKConfig(d_in=D_IN, d_sae=D_SAE, k=K),
    "jumprelu": JumpReLUConfig(d_in=D_IN, d_sae=D_SAE),
    "batchtopk": BatchTopKConfig(d_in=D_IN, d_sae=D_SAE, k=K),
    "gated": GatedConfig(d_in=D_IN, d_sae=D_SAE),
    "matryoshka": MatryoshkaConfig(d_in=D_IN, d_sae=D_SAE, k=K, prefix_sizes=(10, 40, D_SAE)),
    "matryoshka_topk": MatryoshkaConfig(d_in=D_IN, d_sae=D_SAE, k=K, prefix_sizes=(10, D_SAE),
                                        activation="topk"),
}
ARCHITECTURE = {"l1": "standard", "l1_unit": "standard", "topk": "topk", "jumprelu": "jumprelu",
                "batchtopk": "jumprelu", "gated": "gated", "matryoshka": "jumprelu",
                "matryoshka_topk": "topk"}
ATOL = 2e-5  # float32; measured max |difference| 0 to 1e-6 (Gated: exp(r_mag) applied elsewhere)


def _trained_looking(cfg, seed=0):
    """A saelab SAE with random non-trivial weights (all biases non-zero), in eval mode."""
    torch.manual_seed(seed)
    sae = make_sae(cfg)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            if name == "threshold":
                p.uniform_(0.05, 0.6)
            else:
                p.add_(0.2 * torch.randn_like(p))
        if cfg.family in ("batchtopk", "matryoshka"):
            sae.threshold.fill_(0.4)
    return sae.eval()


def _inputs(seed=1, scale=1.0):
    torch.manual_seed(seed)
    return scale * torch.randn(128, D_IN)


def _same(a, b):
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=ATOL, rtol=1e-5), (a - b).abs().max().item()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_saelab_export_loads_in_sae_lens_with_the_same_encode_and_decode(name, tmp_path):
    sae = _trained_looking(CONFIGS[name])
    export_saelens(sae, tmp_path, model_name="gpt2", hook_name="blocks.6.hook_resid_pre",
                   context_size=128)
    theirs = sae_lens.SAE.load_from_disk(tmp_path)
    assert theirs.cfg.architecture() == ARCHITECTURE[name]
    assert theirs.cfg.metadata.hook_name == "blocks.6.hook_resid_pre"
    x = _inputs()
    with torch.no_grad():
        f = sae.encode(x)
        _same(theirs.encode(x), f)
        _same(theirs.decode(f), sae.decode(f))
    assert 0 < (f != 0).float().sum(dim=1).mean() < D_SAE  # the codes are neither all nor none


@pytest.mark.parametrize("name", list(CONFIGS))
def test_saelab_round_trip_keeps_the_function_and_the_config(name, tmp_path):
    sae = _trained_looking(CONFIGS[name])
    export_saelens(sae, tmp_path, model_name="m", hook_name="h")
    back = import_saelens(tmp_path)
    x = _inputs()
    with torch.no_grad():
        _same(back.encode(x), sae.encode(x))
        _same(back.decode(sae.encode(x)), sae.decode(sae.encode(x)))
    if name in ("batchtopk", "matryoshka"):  # exported as JumpReLU, as SAELens does
        assert back.cfg.family == "jumprelu"
        assert torch.equal(back.threshold, torch.full((D_SAE,), 0.4))
    elif name == "matryoshka_topk":  # the nesting shapes training only: a TopK SAE at inference
        assert back.cfg.family == "topk" and back.cfg.k == K
    else:
        assert back.cfg == sae.cfg  # the saelab config travels in the metadata


def test_unset_batchtopk_threshold_is_written_as_zero_the_same_function(tmp_path):
    sae = _trained_looking(CONFIGS["batchtopk"])
    sae.threshold.fill_(-1.0)  # THRESHOLD_UNSET: inference is plain ReLU
    export_saelens(sae, tmp_path, model_name="m", hook_name="h")
    theirs = sae_lens.SAE.load_from_disk(tmp_path)
    assert torch.equal(theirs.threshold, torch.zeros(D_SAE))
    with torch.no_grad():
        _same(theirs.encode(_inputs()), sae.encode(_inputs()))


def test_folded_activation_scale_survives_the_trip(tmp_path):
    """Chapter 6 folds s into the weights; the exported SAE reads raw (large) activations."""
    sae = _trained_looking(CONFIGS["topk"])
    sae.normalize_decoder()  # unit rows, as after TopK training
    s = 0.05  # residual norms in the tens, as in GPT-2
    x_raw = _inputs(scale=1 / s)
    with torch.no_grad():
        codes_on_scaled = sae.encode(s * x_raw)
        fold_input_scale(sae, s)
        export_saelens(sae, tmp_path, model_name="m", hook_name="h")
        theirs, back = sae_lens.SAE.load_from_disk(tmp_path), import_saelens(tmp_path)
        assert theirs.cfg.normalize_activations == "none"
        for other in (theirs, back):
            _same(other.encode(x_raw), codes_on_scaled)
            assert torch.allclose(other.W_dec.norm(dim=1), torch.full((D_SAE,), 1 / s))


def _sae_lens_sae(arch, apply_b_dec=True, **extra):
    from sae_lens.saes import GatedSAEConfig, JumpReLUSAEConfig, StandardSAEConfig, TopKSAEConfig

    cls = {"standard": StandardSAEConfig, "topk": TopKSAEConfig, "jumprelu": JumpReLUSAEConfig,
           "gated": GatedSAEConfig}[arch]
    cfg = cls(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=apply_b_dec, **extra)
    torch.manual_seed(3)
    sae = sae_lens.SAE.from_dict(cfg.to_dict())
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.rand_like(p) * 0.5 if name == "threshold" else
                    p + 0.3 * torch.randn_like(p))
    return sae


@pytest.mark.parametrize("arch,apply_b_dec,extra", [
    ("standard", True, {}), ("standard", False, {}), ("topk", True, {"k": K}),
    ("topk", False, {"k": K, "rescale_acts_by_decoder_norm": True}), ("jumprelu", True, {}),
    ("jumprelu", False, {}), ("gated", True, {}), ("gated", False, {})])
def test_sae_lens_saved_sae_imports_with_the_same_encode_and_decode(arch, apply_b_dec, extra,
                                                                    tmp_path):
    theirs = _sae_lens_sae(arch, apply_b_dec, **extra)
    theirs.save_model(tmp_path)
    ours = import_saelens(tmp_path)
    assert ours.cfg.family == {"standard": "l1"}.get(arch, arch)
    x = _inputs()
    with torch.no_grad():
        f = theirs.encode(x)
        _same(ours.encode(x), f)
        _same(ours.decode(f), theirs.decode(f))
    assert 0 < (f != 0).float().sum(dim=1).mean() < D_SAE


def test_sae_lens_batchtopk_training_sae_saved_for_inference_imports_as_jumprelu(tmp_path):
    from sae_lens.saes import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig

    torch.manual_seed(4)
    trainer = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K))
    with torch.no_grad():
        trainer.b_enc.add_(0.1 * torch.randn(D_SAE))
        trainer.topk_threshold.fill_(0.35)
    trainer.save_inference_model(tmp_path)
    theirs = sae_lens.SAE.load_from_disk(tmp_path)
    ours = import_saelens(tmp_path)
    assert ours.cfg.family == "jumprelu"
    x = _inputs()
    with torch.no_grad():
        _same(ours.encode(x), theirs.encode(x))
        _same(ours.decode(theirs.encode(x)), theirs.decode(theirs.encode(x)))


def test_expected_average_only_in_is_folded_with_the_given_factor(tmp_path):
    theirs = _sae_lens_sae("standard")
    theirs.cfg.normalize_activations = "expected_average_only_in"
    theirs.save_model(tmp_path)
    with pytest.raises(ValueError, match="normalize_activations.*norm_scaling_factor"):
        import_saelens(tmp_path)
    s = 0.1
    ours = import_saelens(tmp_path, norm_scaling_factor=s)
    x_raw = _inputs(scale=1 / s)
    with torch.no_grad():  # the published SAE wants s * x in and returns s * x_hat
        # inputs 1/s = 10x larger: float32 rounding grows with them (measured 7.6e-5 on encode,
        # saelab computing x @ W_enc + (b_enc - b_dec @ W_enc) where SAELens subtracts b_dec first)
        for a, b in ((ours.encode(x_raw), theirs.encode(s * x_raw)),
                     (ours.decode(ours.encode(x_raw)), theirs.decode(theirs.encode(s * x_raw)) / s)):
            assert torch.allclose(a, b, atol=ATOL / s, rtol=1e-5), (a - b).abs().max().item()


def test_pre_v6_cfg_is_read_like_sae_lens_does(tmp_path):
    theirs = _sae_lens_sae("topk", k=K)
    theirs.save_model(tmp_path)
    old = {"d_in": D_IN, "d_sae": D_SAE, "dtype": "torch.float32", "model_name": "gpt2-small",
           "hook_point": "blocks.6.hook_resid_pre", "hook_point_layer": 6, "context_size": 128,
           "activation_fn_str": "topk", "activation_fn_kwargs": {"k": K},
           "normalize_activations": False, "lr": 4e-4, "l1_coefficient": 8e-5}
    (tmp_path / "cfg.json").write_text(json.dumps(old))
    cfg = read_saelens_config(tmp_path)
    assert cfg["pre_v6"] and cfg["architecture"] == "topk" and cfg["k"] == K
    assert cfg["metadata"]["hook_name"] == "blocks.6.hook_resid_pre"
    ours, again = import_saelens(tmp_path), sae_lens.SAE.load_from_disk(tmp_path)
    x = _inputs()
    with torch.no_grad():
        _same(ours.encode(x), again.encode(x))


def test_firing_density_is_written_as_log10_sparsity(tmp_path):
    sae = _trained_looking(CONFIGS["topk"])
    density = torch.linspace(0, 1, D_SAE)
    export_saelens(sae, tmp_path, model_name="m", hook_name="h", firing_density=density)
    log = read_saelens_sparsity(tmp_path)
    assert log[0] == pytest.approx(-10.0) and log[-1] == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(10 ** log[1:].double(), density[1:].double(), rtol=1e-5)
    export_saelens(sae, tmp_path, model_name="m", hook_name="h", overwrite=True)
    assert read_saelens_sparsity(tmp_path) is None  # the stale file went with the old SAE
