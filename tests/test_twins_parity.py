"""Parity of the twins: same initial weights and batches -> same 50 Adam steps in NumPy and torch.

Each step: forward, backward (hand-derived / autograd), gradient projection for unit-norm
decoders, Adam (saelab.numpy_sae.Adam vs torch.optim.Adam), then ``apply_constraints``
(row renormalisation, JumpReLU threshold clamp). float64 throughout.
Measured max relative difference (max |a - b| / max |b|) over the 50 losses: <= 2.7e-16, over the
final parameters: <= 5.2e-16, every family (BatchTopK's running threshold included). Asserted: rtol
1e-9 (the spec's bound; the margin leaves room for other BLAS builds).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saelab import numpy_sae as ns
from saelab import torch_sae as ts
from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                               MatryoshkaConfig, TopKConfig)

D_IN, D_SAE, BATCH, STEPS, LR = 8, 32, 16, 50, 1e-2
RTOL = 1e-9

CASES = {
    "l1-unit": L1Config(D_IN, D_SAE, l1_coeff=0.1, decoder_norm="unit"),
    "l1-weighted": L1Config(D_IN, D_SAE, l1_coeff=0.1, decoder_norm="weighted"),
    "topk-dead": TopKConfig(D_IN, D_SAE, k=4, k_aux=6),
    # bandwidth wide enough that theta really moves during the 50 steps
    "jumprelu": JumpReLUConfig(D_IN, D_SAE, l0_coeff=0.05, bandwidth=0.2, threshold_init=0.2),
    # threshold_decay 0.9 so the running threshold moves visibly over 50 batches
    "batchtopk-dead": BatchTopKConfig(D_IN, D_SAE, k=4, k_aux=6, threshold_decay=0.9),
    "gated": GatedConfig(D_IN, D_SAE, l1_coeff=0.1),
    "matryoshka-dead": MatryoshkaConfig(D_IN, D_SAE, k=4, k_aux=6, prefix_sizes=(4, 8, 16, 32),
                                        threshold_decay=0.9),
    "matryoshka-topk": MatryoshkaConfig(D_IN, D_SAE, k=4, k_aux=6, prefix_sizes=(8, 32),
                                        activation="topk"),
}


def batches(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((BATCH, D_IN)) for _ in range(STEPS)]


def dead_mask_for(cfg) -> np.ndarray | None:
    if cfg.family not in ("topk", "batchtopk", "matryoshka"):
        return None
    mask = np.zeros(D_SAE, dtype=bool)
    mask[::3] = True  # 11 "dead" latents, more than k_aux
    return mask


def train_numpy(sae, data, dead_mask):
    opt = ns.Adam(sae.parameters(), lr=LR)
    losses = []
    for x in data:
        out = sae(x, dead_mask=dead_mask)
        grads = sae.backward(x, out, dead_mask=dead_mask)
        if sae.unit_norm_decoder:
            sae.remove_parallel_grad(grads)
        opt.step(grads)
        sae.apply_constraints()
        losses.append(out.loss)
    return np.array(losses)


def train_torch(sae, data, dead_mask):
    opt = torch.optim.Adam(sae.parameters(), lr=LR)
    mask = None if dead_mask is None else torch.from_numpy(dead_mask)
    losses = []
    for x in data:
        out = sae(torch.from_numpy(x), dead_mask=mask)
        opt.zero_grad()
        out.loss.backward()
        if sae.unit_norm_decoder:
            sae.remove_parallel_grad()
        opt.step()
        sae.apply_constraints()
        losses.append(float(out.loss.detach()))
    return np.array(losses)


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("case", list(CASES))
def test_fifty_adam_steps_agree(case):
    cfg = CASES[case]
    np_sae = ns.make_sae(cfg, rng=7, dtype=np.float64)
    t_sae = ts.from_numpy(np_sae)
    start = {name: p.copy() for name, p in np_sae.parameters().items()}
    data, dead_mask = batches(), dead_mask_for(cfg)

    np_losses = train_numpy(np_sae, data, dead_mask)
    t_losses = train_torch(t_sae, data, dead_mask)

    np.testing.assert_allclose(np_losses, t_losses, rtol=RTOL)
    for name, p in t_sae.state_dict().items():
        np.testing.assert_allclose(np_sae.parameters()[name], p.numpy(), rtol=RTOL, atol=1e-12)
    # the runs did something: loss fell and every parameter moved
    assert np_losses[-10:].mean() < np_losses[:10].mean()
    for name, p in np_sae.parameters().items():
        if name == "threshold" and getattr(cfg, "activation", "") == "topk":
            continue  # Matryoshka with TopK codes never estimates BatchTopK's threshold
        assert not np.allclose(p, start[name]), f"{name} never changed"
    if getattr(cfg, "activation", "batchtopk") == "batchtopk" and cfg.family in ("batchtopk",
                                                                             "matryoshka"):
        # the running threshold (a torch buffer) was estimated
        assert np_sae.threshold > 0
