"""The NumPy twin's hand-derived gradients against torch autograd and finite differences.

Every parameter of every family (L1 "unit" and "weighted", TopK and BatchTopK with and without a
dead mask, BatchTopK in inference mode, JumpReLU, Gated) in float64. Relative error = max |a - b| /
max |b| over a parameter's entries. Measured (seeded data below): NumPy vs autograd <= 4.3e-16;
NumPy vs central differences <= 3.3e-9 (L1 weighted; others <= 8.4e-10); JumpReLU theta vs finite
differences of the smoothed surrogate 2.8e-10. Asserted: < 1e-6 (the spec's bound). Stop-gradients
are honoured in the finite differences by freezing what the loss detaches (AuxK's residual; Gated's
decoder in the aux reconstruction).

Kinks (ReLU at 0, the TopK and BatchTopK cut-offs, the JumpReLU and BatchTopK-inference jumps,
Gated's gate and magnitude ReLU) are avoided: each case asserts that no pre-activation lies within
MARGIN of a kink, so a step of H = 1e-6 never crosses one.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saelab import numpy_sae as ns
from saelab import torch_sae as ts
from saelab.gradcheck import central_differences
from saelab.numpy_sae.topk import auxk_loss
from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                               MatryoshkaConfig, TopKConfig)

D_IN, D_SAE, BATCH = 6, 12, 8
H = 1e-6  # finite-difference step
MARGIN = 1e-4  # minimum distance of any pre-activation from a kink; >> H * |d pre / d param|
TOL = 1e-6  # required relative error (spec)

CASES = {
    "l1-unit": (L1Config(D_IN, D_SAE, l1_coeff=0.3, decoder_norm="unit"), False),
    "l1-weighted": (L1Config(D_IN, D_SAE, l1_coeff=0.3, decoder_norm="weighted"), False),
    "topk": (TopKConfig(D_IN, D_SAE, k=3, k_aux=2, aux_coeff=0.5), False),
    "topk-dead": (TopKConfig(D_IN, D_SAE, k=3, k_aux=2, aux_coeff=0.5), True),
    "topk-dead-all": (TopKConfig(D_IN, D_SAE, k=3, k_aux=50, aux_coeff=0.5), True),
    # bandwidth/threshold chosen so many pre-activations fall inside the kernel window
    "jumprelu": (JumpReLUConfig(D_IN, D_SAE, l0_coeff=0.2, bandwidth=0.5, threshold_init=0.3), False),
    "batchtopk": (BatchTopKConfig(D_IN, D_SAE, k=3, k_aux=2, aux_coeff=0.5), False),
    "batchtopk-dead": (BatchTopKConfig(D_IN, D_SAE, k=3, k_aux=2, aux_coeff=0.5), True),
    "batchtopk-eval": (BatchTopKConfig(D_IN, D_SAE, k=3, k_aux=2, aux_coeff=0.5), False),
    "gated": (GatedConfig(D_IN, D_SAE, l1_coeff=0.3), False),
    "matryoshka": (MatryoshkaConfig(D_IN, D_SAE, k=3, prefix_sizes=(3, 7, 12), k_aux=2,
                                    aux_coeff=0.5), False),
    "matryoshka-dead": (MatryoshkaConfig(D_IN, D_SAE, k=3, prefix_sizes=(3, 7, 12), k_aux=2,
                                         aux_coeff=0.5), True),
    "matryoshka-topk": (MatryoshkaConfig(D_IN, D_SAE, k=3, prefix_sizes=(4, 12), k_aux=2,
                                         aux_coeff=0.5, activation="topk"), True),
    "matryoshka-eval": (MatryoshkaConfig(D_IN, D_SAE, k=3, prefix_sizes=(3, 7, 12), k_aux=2,
                                         aux_coeff=0.5), False),
}
EVAL_CASES = {"batchtopk-eval", "matryoshka-eval"}  # inference mode: the threshold rule
EVAL_THRESHOLD = 0.25  # a trained-looking BatchTopK threshold for the inference-mode case


def make_case(name: str):
    """Seeded float64 NumPy SAE with non-trivial biases, inputs x and an optional dead mask."""
    cfg, with_mask = CASES[name]
    rng = np.random.default_rng(1234)
    sae = ns.make_sae(cfg, rng=rng, dtype=np.float64)
    for bias in ("b_enc", "b_gate", "r_mag", "b_mag"):  # the encoder biases this family has
        if bias in sae.param_names:
            getattr(sae, bias)[:] = 0.3 * rng.standard_normal(D_SAE)
    sae.b_dec[:] = 0.3 * rng.standard_normal(D_IN)
    if cfg.family == "jumprelu":
        sae.threshold[:] = cfg.threshold_init + 0.1 * rng.uniform(size=D_SAE)
    if cfg.family == "gated":  # rows off unit norm, so the norm-weighted penalty is really tested
        sae.W_dec *= rng.uniform(0.5, 2.0, size=(D_SAE, 1))
    if name in EVAL_CASES:
        sae.eval()
        sae.threshold[...] = EVAL_THRESHOLD
    x = rng.standard_normal((BATCH, D_IN))
    dead_mask = None
    if with_mask:
        dead_mask = np.zeros(D_SAE, dtype=bool)
        dead_mask[[0, 2, 5, 7, 11]] = True
    return sae, x, dead_mask


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-300))


def kink_margin(sae, x, dead_mask) -> float:
    """Smallest distance of a pre-activation from a place where the loss is not smooth."""
    z = sae.pre_activation(x)  # (batch, d_sae)
    family = sae.cfg.family
    if family == "jumprelu":
        u = z - sae.threshold
        eps = sae.cfg.bandwidth
        return float(min(np.abs(u).min(), np.abs(np.abs(u) - eps / 2).min()))
    margins = [np.abs(z).min()]  # ReLU kink (Gated: the gate's step)
    if family == "gated":
        margins.append(np.abs(sae.magnitude_pre(z)).min())  # the magnitude path's ReLU
    batch_rule = family == "batchtopk" or (family == "matryoshka"
                                            and sae.cfg.activation == "batchtopk")
    if batch_rule and not sae.training:
        margins.append(np.abs(z - sae.threshold).min())  # the inference threshold's jump
    if family in ("topk", "batchtopk", "matryoshka"):
        if batch_rule and sae.training:
            rows = [(z.reshape(1, -1), sae.cfg.k * z.shape[0])]  # one TopK over the whole batch
        else:
            rows = [(z, sae.cfg.k)]
        if dead_mask is not None:
            rows.append((z[:, dead_mask], min(sae.cfg.k_aux, int(dead_mask.sum()))))
        for zz, k in rows:
            s = np.sort(zz, axis=1)[:, ::-1]
            if k < zz.shape[1]:
                margins.append((s[:, k - 1] - s[:, k]).min())  # gap at the TopK cut-off
    return float(min(margins))


def torch_grads(sae, x, dead_mask):
    t = ts.from_numpy(sae)
    t.train(getattr(sae, "training", True))  # BatchTopK: same mode in both twins
    mask = None if dead_mask is None else torch.from_numpy(dead_mask)
    out = t(torch.from_numpy(x), dead_mask=mask)
    out.f.retain_grad()
    out.loss.backward()
    grads = {name: p.grad.numpy() for name, p in t.named_parameters()}
    return out, grads, out.f.grad.numpy()


def loss_objective(sae, x, dead_mask):
    """Closure giving the SAE loss with every stop-gradient honoured: for AuxK the residual e is
    frozen at the starting weights; for Gated the aux reconstruction's W_dec and b_dec are."""
    if sae.cfg.family == "gated":
        W_dec0, b_dec0 = sae.W_dec.copy(), sae.b_dec.copy()

        def gated_objective() -> float:
            out = sae(x)
            x_gate = np.maximum(out.pre_acts, 0) @ W_dec0 + b_dec0  # (batch, d_in)
            return out.recon_loss + out.sparsity_loss + ns.recon_loss(x, x_gate)

        return gated_objective
    if dead_mask is None or not dead_mask.any():
        return lambda: sae(x).loss
    e_frozen = x - sae(x).x_hat  # (batch, d_in): stopgrad(x - x_hat)

    def objective() -> float:
        out = sae(x)
        e_hat = sae.dead_codes(out.pre_acts, dead_mask) @ sae.W_dec  # (batch, d_in)
        return out.recon_loss + sae.cfg.aux_coeff * auxk_loss(e_frozen, e_hat)  # nested recon

    return objective


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_grads_match_torch_autograd(case):
    sae, x, dead_mask = make_case(case)
    out = sae(x, dead_mask=dead_mask)
    grads = sae.backward(x, out, dead_mask=dead_mask)
    t_out, t_grads, _ = torch_grads(sae, x, dead_mask)
    assert out.loss == pytest.approx(float(t_out.loss.detach()), rel=1e-12)
    buffers = {name for name, _ in ts.from_numpy(sae).named_buffers()}  # BatchTopK's threshold
    for name in buffers:  # state, not trained: NumPy reports a zero gradient, torch none
        assert not grads.pop(name).any(), name
    assert set(grads) == set(t_grads)
    for name in grads:
        assert np.abs(t_grads[name]).max() > 0, f"{name}: zero gradient makes the check empty"
        assert rel_err(grads[name], t_grads[name]) < TOL, name
    if dead_mask is not None:  # the aux loss is really active
        assert out.aux_loss > 0


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("jumprelu")])
def test_numpy_grads_match_finite_differences(case):
    sae, x, dead_mask = make_case(case)
    assert kink_margin(sae, x, dead_mask) > MARGIN
    out = sae(x, dead_mask=dead_mask)
    grads = sae.backward(x, out, dead_mask=dead_mask)
    numeric = central_differences(loss_objective(sae, x, dead_mask), sae.parameters(), eps=H)
    if sae.cfg.family == "gated":  # the aux term is really there and really frozen
        assert out.aux_loss > 0
    for name in grads:
        assert rel_err(grads[name], numeric[name]) < TOL, name


def test_jumprelu_smooth_params_match_finite_differences():
    """Away from the jump, f = z * H(z - theta) is smooth in W_enc, b_enc, W_dec, b_dec and
    the L0 term is locally constant, so the true derivative exists and must match."""
    sae, x, _ = make_case("jumprelu")
    assert kink_margin(sae, x, None) > MARGIN
    grads = sae.backward(x, sae(x))
    numeric = central_differences(lambda: sae(x).loss, sae.parameters(), eps=H)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert rel_err(grads[name], numeric[name]) < TOL, name


def ramp(u: np.ndarray, eps: float) -> np.ndarray:
    """Integrated rectangle kernel: the smoothed step H_eps(u) = clip(u / eps + 1/2, 0, 1)."""
    return np.clip(u / eps + 0.5, 0.0, 1.0)


def test_jumprelu_threshold_pseudo_gradient_matches_smoothed_surrogate():
    """The rectangle-kernel pseudo-gradient is the exact theta-derivative of a smoothed surrogate.

    Replace H(z - theta) by the ramp H_eps (whose derivative in theta is -(1/eps) K), freeze the
    jump height at theta_0 (the paper's d f / d theta = -(theta/eps) K uses the height theta,
    not z) and freeze the upstream gradient G = dL/df taken from torch autograd:

        Phi(theta) = sum_bi G_bi theta0_i H_eps(z_bi - theta_i)
                     + (l0_coeff / B) sum_bi H_eps(z_bi - theta_i)

    d Phi / d theta at theta_0 is, by construction, the JumpReLU pseudo-gradient; a finite
    difference of Phi checks the sign, the 1/eps scale and the kernel window of the NumPy formula.
    """
    sae, x, _ = make_case("jumprelu")
    eps, l0 = sae.cfg.bandwidth, sae.cfg.l0_coeff
    assert kink_margin(sae, x, None) > MARGIN  # also keeps z away from the ramp's corners
    z = sae.pre_activation(x)  # (batch, d_sae)
    inside = np.abs(z - sae.threshold) < eps / 2
    assert inside.sum() >= 10, "too few pre-activations in the kernel window for a real check"
    _, _, G = torch_grads(sae, x, None)
    theta0 = sae.threshold.copy()

    def phi(theta):
        h = ramp(z - theta, eps)
        return float((G * theta0 * h).sum() + l0 / x.shape[0] * h.sum())

    numeric = np.zeros(D_SAE)
    for i in range(D_SAE):
        up, down = theta0.copy(), theta0.copy()
        up[i] += H
        down[i] -= H
        numeric[i] = (phi(up) - phi(down)) / (2 * H)
    grads = sae.backward(x, sae(x))
    assert np.abs(numeric).max() > 0
    assert rel_err(grads["threshold"], numeric) < TOL


def test_torch_jumprelu_functions_match_formulas():
    """The two autograd.Functions give exactly the spec's pseudo-gradients on hand-set inputs."""
    eps = 0.5
    z = torch.tensor([[0.1, 0.45, 0.9], [0.31, 0.0, 1.4]], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64, requires_grad=True)
    f = ts.JumpReLUFunction.apply(z, theta, eps)
    assert torch.equal(f.detach(), torch.tensor([[0.0, 0.45, 0.9], [0.31, 0.0, 1.4]], dtype=torch.float64))
    f.sum().backward()
    # |z - theta| < eps/2 = 0.25 at (0,0), (1,0) and (0,1): two hits in column 0, one in column 1
    assert torch.equal(z.grad, torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], dtype=torch.float64))
    assert torch.allclose(theta.grad, torch.tensor([-2 * 0.3 / eps, -0.3 / eps, 0.0], dtype=torch.float64))
    z.grad, theta.grad = None, None
    h = ts.StepFunction.apply(z, theta, eps)
    assert torch.equal(h.detach(), torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], dtype=torch.float64))
    h.sum().backward()
    assert z.grad is None  # d H / d z = 0: no gradient reaches z (autograd's zero)
    assert torch.allclose(theta.grad, torch.tensor([-2 / eps, -1 / eps, 0.0], dtype=torch.float64))
