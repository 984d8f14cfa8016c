"""Impossible input to the SAE configs, both twins and the NumPy Adam -> ValueError that names the
argument and the value it got."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saelab import numpy_sae as ns
from saelab import torch_sae as ts
from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                               MatryoshkaConfig, TopKConfig)

D_IN, D_SAE = 6, 12


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: TopKConfig(D_IN, D_SAE, k=0), r"k must be in 1\.\.12, got 0"),
        (lambda: TopKConfig(D_IN, D_SAE, k=13), r"k must be in 1\.\.12, got 13"),
        (lambda: TopKConfig(D_IN, D_SAE, k=2.5), r"k must be an integer, got 2\.5"),
        (lambda: TopKConfig(D_IN, D_SAE, k=2, k_aux=0), r"k_aux must be at least 1, got 0"),
        (lambda: TopKConfig(D_IN, D_SAE, k=2, aux_coeff=-0.1), r"aux_coeff must be non-negative, got -0\.1"),
        (lambda: L1Config(D_IN, D_SAE, l1_coeff=-1.0), r"l1_coeff must be non-negative, got -1\.0"),
        (lambda: L1Config(D_IN, D_SAE, l1_coeff=float("nan")), r"l1_coeff must be finite, got nan"),
        (lambda: L1Config(D_IN, D_SAE, decoder_norm="l2"), r"decoder_norm must be one of .*got 'l2'"),
        (lambda: JumpReLUConfig(D_IN, D_SAE, l0_coeff=-2), r"l0_coeff must be non-negative, got -2"),
        (lambda: JumpReLUConfig(D_IN, D_SAE, bandwidth=0.0), r"bandwidth must be positive, got 0\.0"),
        (lambda: JumpReLUConfig(D_IN, D_SAE, bandwidth=-1e-3), r"bandwidth must be positive, got -0\.001"),
        (lambda: JumpReLUConfig(D_IN, D_SAE, threshold_init=0), r"threshold_init must be positive, got 0"),
        (lambda: L1Config(0, D_SAE), r"d_in must be at least 1, got 0"),
        (lambda: TopKConfig(D_IN, -4, k=1), r"d_sae must be at least 1, got -4"),
        (lambda: BatchTopKConfig(D_IN, D_SAE, k=0), r"k must be in 1\.\.12, got 0"),
        (lambda: BatchTopKConfig(D_IN, D_SAE, k=13), r"k must be in 1\.\.12, got 13"),
        (lambda: BatchTopKConfig(D_IN, D_SAE, k=2, k_aux=0), r"k_aux must be at least 1, got 0"),
        (lambda: BatchTopKConfig(D_IN, D_SAE, k=2, aux_coeff=-1), r"aux_coeff must be non-negative, got -1"),
        (lambda: BatchTopKConfig(D_IN, D_SAE, k=2, threshold_decay=1.0),
         r"threshold_decay must be in \[0, 1\), got 1\.0"),
        (lambda: BatchTopKConfig(D_IN, D_SAE, k=2, threshold_decay=-0.5),
         r"threshold_decay must be non-negative, got -0\.5"),
        (lambda: GatedConfig(D_IN, D_SAE, l1_coeff=-0.1), r"l1_coeff must be non-negative, got -0\.1"),
        (lambda: GatedConfig(D_IN, D_SAE, l1_coeff=float("inf")), r"l1_coeff must be finite, got inf"),
        (lambda: GatedConfig(D_IN, 0), r"d_sae must be at least 1, got 0"),
    ],
)
def test_bad_config_values(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


CFGS = [L1Config(D_IN, D_SAE), TopKConfig(D_IN, D_SAE, k=3), JumpReLUConfig(D_IN, D_SAE),
        BatchTopKConfig(D_IN, D_SAE, k=3), GatedConfig(D_IN, D_SAE),
        MatryoshkaConfig(D_IN, D_SAE, k=3, prefix_sizes=(4, D_SAE))]


def build(twin, cfg):
    return ns.make_sae(cfg, rng=0) if twin == "numpy" else ts.make_sae(cfg)


def arr(twin, a):
    return np.asarray(a, dtype=np.float32) if twin == "numpy" else torch.tensor(a, dtype=torch.float32)


def good_x(twin, batch=4):
    return arr(twin, np.random.default_rng(0).standard_normal((batch, D_IN)))


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.family)
@pytest.mark.parametrize("twin", ["numpy", "torch"])
@pytest.mark.parametrize(
    "shape, pattern",
    [
        ((4, D_IN + 1), r"x must have shape \(any, 6\), got \(4, 7\)"),
        ((D_IN,), r"x must have shape \(any, 6\), got \(6,\)"),
        ((2, 4, D_IN), r"x must have shape \(any, 6\), got \(2, 4, 6\)"),
    ],
)
def test_wrong_x_shape(twin, cfg, shape, pattern):
    sae, x = build(twin, cfg), arr(twin, np.zeros(shape))
    for call in (lambda: sae(x), lambda: sae.encode(x)):
        with pytest.raises(ValueError, match=pattern):
            call()


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.family)
@pytest.mark.parametrize("twin", ["numpy", "torch"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(twin, cfg, bad):
    sae = build(twin, cfg)
    x = np.random.default_rng(0).standard_normal((4, D_IN))
    x[1, 2] = x[3, 0] = bad
    with pytest.raises(ValueError, match=r"x contains 2 NaN or infinite value\(s\) \(shape \(4, 6\)\)"):
        sae(arr(twin, x))


@pytest.mark.parametrize("twin", ["numpy", "torch"])
def test_bad_dead_mask(twin):
    sae, x = build(twin, CFGS[1]), good_x(twin)
    wrong_shape = np.zeros(D_SAE + 1, dtype=bool)
    wrong_dtype = np.zeros(D_SAE, dtype=np.float32)
    if twin == "torch":
        wrong_shape, wrong_dtype = torch.from_numpy(wrong_shape), torch.from_numpy(wrong_dtype)
    with pytest.raises(ValueError, match=r"dead_mask must have shape \(12\), got \(13,\)"):
        sae(x, dead_mask=wrong_shape)
    with pytest.raises(ValueError, match=r"dead_mask must have dtype .*bool, got .*float32"):
        sae(x, dead_mask=wrong_dtype)


@pytest.mark.parametrize("cfg", [CFGS[1], CFGS[3]], ids=lambda c: c.family)
@pytest.mark.parametrize("twin", ["numpy", "torch"])
def test_auxk_works_on_one_row(twin, cfg):
    # AuxK is a sum of squares like the reconstruction loss (no batch variance to divide by),
    # so a single row with every latent dead gives a finite, positive loss.
    sae = build(twin, cfg)
    mask = np.ones(D_SAE, dtype=bool)
    mask = mask if twin == "numpy" else torch.from_numpy(mask)
    with torch.no_grad():
        aux = float(sae(good_x(twin, batch=1), dead_mask=mask).aux_loss)
    assert np.isfinite(aux) and aux > 0


@pytest.mark.parametrize("cfg", [CFGS[0], CFGS[4]], ids=lambda c: c.family)
def test_numpy_backward_checks_x(cfg):
    sae = build("numpy", cfg)
    x = good_x("numpy")
    out = sae(x)
    with pytest.raises(ValueError, match=r"x must have shape \(any, 6\), got \(4, 5\)"):
        sae.backward(x[:, :5], out)


@pytest.mark.parametrize("twin", ["numpy", "torch"])
def test_config_of_wrong_family(twin):
    module = ns if twin == "numpy" else ts
    with pytest.raises(ValueError, match=r"cfg must be a TopKConfig, got L1Config"):
        module.TopKSAE(CFGS[0])
    with pytest.raises(ValueError, match=r"cfg must be a TopKConfig, got BatchTopKConfig"):
        module.TopKSAE(CFGS[3])
    with pytest.raises(ValueError, match=r"cfg must be a BatchTopKConfig, got TopKConfig"):
        module.BatchTopKSAE(CFGS[1])
    with pytest.raises(ValueError, match=r"cfg must be a GatedConfig, got L1Config"):
        module.GatedSAE(CFGS[0])
    with pytest.raises(ValueError, match=r"cfg must be an L1Config, TopKConfig, JumpReLUConfig, "
                                         r"BatchTopKConfig, GatedConfig or MatryoshkaConfig, got 3"):
        module.make_sae(3)


def test_torch_twin_rejects_numpy_input():
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor, got ndarray"):
        build("torch", CFGS[0])(good_x("numpy"))


def test_load_parameters_checks_keys_and_shapes():
    sae = build("numpy", CFGS[2])
    params = {name: p.copy() for name, p in sae.parameters().items()}
    with pytest.raises(ValueError, match=r"params must have exactly the keys .*threshold"):
        sae.load_parameters({k: v for k, v in params.items() if k != "threshold"})
    params["W_dec"] = params["W_dec"].T
    with pytest.raises(ValueError, match=r"params\['W_dec'\] must have shape \(12, 6\), got \(6, 12\)"):
        sae.load_parameters(params)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(lr=-1.0), r"lr must be non-negative, got -1\.0"),
        (dict(betas=(1.0, 0.999)), r"betas\[0\] must be in \[0, 1\), got 1\.0"),
        (dict(betas=(0.9, 1.5)), r"betas\[1\] must be in \[0, 1\), got 1\.5"),
        (dict(betas=(-0.1, 0.999)), r"betas\[0\] must be non-negative, got -0\.1"),
        (dict(eps=0.0), r"eps must be positive, got 0\.0"),
    ],
)
def test_bad_adam_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ns.Adam(build("numpy", CFGS[0]).parameters(), **kwargs)


def test_adam_needs_every_gradient():
    sae = build("numpy", CFGS[0])
    opt = ns.Adam(sae.parameters())
    with pytest.raises(ValueError, match=r"grads is missing gradients for \['b_dec'\]"):
        opt.step({k: np.zeros_like(v) for k, v in sae.parameters().items() if k != "b_dec"})


def test_torch_sae_names_a_dtype_mismatch():
    import torch

    from saelab.sae_config import TopKConfig
    from saelab.torch_sae import make_sae

    sae = make_sae(TopKConfig(d_in=4, d_sae=8, k=2))  # float32
    with pytest.raises(ValueError, match="x must have the SAE's dtype torch.float32, got torch.float64"):
        sae(torch.zeros(3, 4, dtype=torch.float64))
