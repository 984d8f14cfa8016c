"""The Matryoshka SAE's own invariants and bad input (Chapter 7), in both twins.

A one-prefix Matryoshka SAE is a BatchTopK SAE on the same weights (same codes, loss and
gradients); the last prefix's reconstruction is ``decode(encode(x))``; the nested loss is the
mean of the prefixes' errors; early prefixes get gradient from every term. The twin-wide tests
(gradients, 50-step parity, shared invariants) cover the family through ``tests/sae_cases.py`` and
their own case tables.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saelab import numpy_sae as ns
from saelab import torch_sae as ts
from saelab.sae_config import BatchTopKConfig, MatryoshkaConfig, default_prefix_sizes
from saelab.sweeps import knob_value

D_IN, D_SAE, BATCH = 8, 32, 16
TWINS = ["numpy", "torch"]


def pair(twin, cfg, seed=0):
    rng = np.random.default_rng(seed)
    sae = ns.make_sae(cfg, rng=rng, dtype=np.float64)
    sae.b_enc[:] = 0.2 * rng.standard_normal(cfg.d_sae)
    sae.b_dec[:] = 0.2 * rng.standard_normal(cfg.d_in)
    x = rng.standard_normal((BATCH, cfg.d_in))
    if twin == "torch":
        return ts.from_numpy(sae), torch.from_numpy(x)
    return sae, x


def to_np(v):
    return v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


@pytest.mark.parametrize("twin", TWINS)
def test_one_prefix_matryoshka_is_batchtopk(twin):
    m_cfg = MatryoshkaConfig(D_IN, D_SAE, k=4, k_aux=6, prefix_sizes=(D_SAE,))
    b_cfg = BatchTopKConfig(D_IN, D_SAE, k=4, k_aux=6)
    mat, x = pair(twin, m_cfg)
    bat, _ = pair(twin, b_cfg)
    mask = np.zeros(D_SAE, dtype=bool)
    mask[::3] = True
    mask = mask if twin == "numpy" else torch.from_numpy(mask)
    out_m, out_b = mat(x, dead_mask=mask), bat(x, dead_mask=mask)
    for a, b in zip(out_m, out_b):
        np.testing.assert_allclose(to_np(a), to_np(b), rtol=1e-12, atol=1e-14)
    assert float(to_np(out_m.aux_loss)) > 0
    assert float(to_np(mat.threshold)) == pytest.approx(float(to_np(bat.threshold)))
    if twin == "numpy":
        g_m, g_b = mat.backward(x, out_m, mask), bat.backward(x, out_b, mask)
    else:
        out_m.loss.backward()
        out_b.loss.backward()
        g_m = {n: p.grad for n, p in mat.named_parameters()}
        g_b = {n: p.grad for n, p in bat.named_parameters()}
    for name in g_b:
        np.testing.assert_allclose(to_np(g_m[name]), to_np(g_b[name]), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("activation", ["batchtopk", "topk"])
@pytest.mark.parametrize("twin", TWINS)
def test_prefix_reconstructions_and_nested_loss(twin, activation):
    cfg = MatryoshkaConfig(D_IN, D_SAE, k=4, prefix_sizes=(4, 12, D_SAE), activation=activation)
    sae, x = pair(twin, cfg)
    out = sae(x)
    x_hats = to_np(sae.prefix_reconstructions(out.f))
    assert x_hats.shape == (3, BATCH, D_IN)
    full = to_np(sae.decode(sae.encode(x)))  # the last prefix is the whole dictionary
    np.testing.assert_allclose(x_hats[-1], full, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(to_np(out.x_hat), full)
    f = to_np(out.f)
    p = {n: to_np(v) for n, v in (sae.parameters().items() if twin == "numpy"
                                   else sae.state_dict().items())}
    errs = []
    for j, m in enumerate(cfg.prefix_sizes):  # by hand: only the first m latents
        want = f[:, :m] @ p["W_dec"][:m] + p["b_dec"]
        np.testing.assert_allclose(x_hats[j], want, rtol=1e-12, atol=1e-12)
        errs.append(((to_np(x) - want) ** 2).sum(axis=1).mean())
    assert len(set(np.round(errs, 9))) == 3  # the prefixes really reconstruct differently
    assert float(to_np(out.recon_loss)) == pytest.approx(np.mean(errs), rel=1e-12)
    if activation == "topk":
        assert ((f > 0).sum(axis=1) <= cfg.k).all()


def test_early_latents_get_gradient_from_every_prefix():
    """A latent of the first group sits in every prefix; doubling its share of the loss terms
    changes its gradient, while the last group's latents only feel the full reconstruction."""
    cfg = MatryoshkaConfig(D_IN, D_SAE, k=4, prefix_sizes=(8, D_SAE))
    sae, x = pair("numpy", cfg)
    out = sae(x)
    grads = sae.backward(x, out)
    x_hats = sae.prefix_reconstructions(out.f)
    g = (2.0 / (2 * BATCH)) * (x_hats - x)  # (2, batch, d_in)
    np.testing.assert_allclose(grads["W_dec"][8:], out.f[:, 8:].T @ g[1], rtol=1e-12)
    np.testing.assert_allclose(grads["W_dec"][:8], out.f[:, :8].T @ (g[0] + g[1]), rtol=1e-12)


def test_default_prefix_sizes_and_groups():
    assert default_prefix_sizes(512, 32) == (64, 128, 256, 512)
    assert default_prefix_sizes(64, 10) == (16, 32, 64)
    cfg = MatryoshkaConfig(D_IN, D_SAE, k=4)
    assert cfg.prefix_sizes == (4, 8, 16, 32)
    assert cfg.groups() == [(0, 4), (4, 8), (8, 16), (16, 32)]
    assert MatryoshkaConfig(D_IN, D_SAE, k=4, prefix_sizes=[8, 32]).prefix_sizes == (8, 32)
    assert knob_value(cfg) == 4


@pytest.mark.parametrize("sizes, pattern", [
    ((), r"prefix_sizes must be a non-empty sequence of ints, got \(\)"),
    ("32", r"prefix_sizes must be a non-empty sequence of ints, got '32'"),
    ((8, 8, 32), r"prefix_sizes must be strictly increasing, got \(8, 8, 32\)"),
    ((16, 8, 32), r"prefix_sizes must be strictly increasing, got \(16, 8, 32\)"),
    ((8, 16), r"prefix_sizes must end at d_sae=32, got \(8, 16\)"),
    ((8, 40), r"prefix_sizes must end at d_sae=32, got \(8, 40\)"),
    ((2, 32), r"prefix_sizes must all be >= k=4 .* got \(2, 32\)"),
    ((8.0, 32), r"prefix_sizes must hold ints, got 8\.0"),
])
def test_bad_prefix_sizes(sizes, pattern):
    with pytest.raises(ValueError, match=pattern):
        MatryoshkaConfig(D_IN, D_SAE, k=4, prefix_sizes=sizes)


def test_bad_activation_and_k_above_a_prefix():
    with pytest.raises(ValueError, match=r"activation must be one of .*got 'jumprelu'"):
        MatryoshkaConfig(D_IN, D_SAE, k=4, activation="jumprelu")
    with pytest.raises(ValueError, match=r"prefix_sizes must all be >= k=10"):
        MatryoshkaConfig(D_IN, D_SAE, k=10, prefix_sizes=(8, 32))
    with pytest.raises(ValueError, match="cfg must be a MatryoshkaConfig, got BatchTopKConfig"):
        ns.MatryoshkaSAE(BatchTopKConfig(D_IN, D_SAE, k=4))
    with pytest.raises(ValueError, match="cfg must be a MatryoshkaConfig, got BatchTopKConfig"):
        ts.MatryoshkaSAE(BatchTopKConfig(D_IN, D_SAE, k=4))


@pytest.mark.parametrize("twin", TWINS)
def test_nan_input(twin):
    sae, x = pair(twin, MatryoshkaConfig(D_IN, D_SAE, k=4))
    x[2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"x contains 1 NaN or infinite value"):
        sae(x)
