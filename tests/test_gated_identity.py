"""A Gated SAE is a JumpReLU SAE on rescaled pre-activations (Chapter 4).

With u = (x - b_dec) W_enc, a Gated SAE codes f = 1[u + b_gate > 0] ReLU(e^{r_mag} u + b_mag).
Put z = e^{r_mag} u + b_mag: the gate u > -b_gate is z > theta with theta = b_mag - e^{r_mag} b_gate,
so for theta >= 0, f = z 1[z > theta], a JumpReLU SAE with W_enc' = W_enc e^{r_mag}, b_enc = b_mag
and threshold theta. Special cases: r_mag = 0 and b_mag = 0 give threshold -b_gate on u;
r_mag = 0 and b_mag = b_gate give theta = 0, a plain ReLU SAE with b_enc = b_gate. Checked on
both twins, against the library's own JumpReLU and L1 SAEs.
"""
import numpy as np
import pytest
import torch

from saelab import numpy_sae, torch_sae
from saelab.sae_config import GatedConfig, JumpReLUConfig, L1Config

D_IN, D_SAE, BATCH = 6, 10, 64


def _gated_params(case: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = {"W_enc": rng.normal(size=(D_IN, D_SAE)), "W_dec": rng.normal(size=(D_SAE, D_IN)),
         "b_dec": rng.normal(size=D_IN) * 0.3, "b_gate": -rng.uniform(0.05, 0.6, D_SAE)}
    if case == "general":
        p["r_mag"] = rng.normal(size=D_SAE) * 0.5
        p["b_mag"] = rng.uniform(0.0, 0.5, D_SAE)  # theta = b_mag - e^r b_gate > 0
    elif case == "b_mag = 0":
        p["r_mag"], p["b_mag"] = np.zeros(D_SAE), np.zeros(D_SAE)
    else:  # "b_mag = b_gate": a plain ReLU SAE
        p["r_mag"], p["b_mag"] = np.zeros(D_SAE), p["b_gate"].copy()
    return p


def _equivalent(case: str, p: dict) -> tuple[str, dict]:
    """The family and parameters of the SAE the Gated SAE should equal."""
    scale = np.exp(p["r_mag"])
    out = {"W_enc": p["W_enc"] * scale, "b_enc": p["b_mag"], "W_dec": p["W_dec"], "b_dec": p["b_dec"]}
    if case == "b_mag = b_gate":
        return "l1", out
    out["threshold"] = p["b_mag"] - scale * p["b_gate"]
    if case == "b_mag = 0":
        np.testing.assert_allclose(out["threshold"], -p["b_gate"])  # the threshold is -b_gate
    return "jumprelu", out


def _numpy_sae(family, params):
    cfg = {"gated": GatedConfig, "jumprelu": JumpReLUConfig, "l1": L1Config}[family](
        d_in=D_IN, d_sae=D_SAE)
    sae = {"gated": numpy_sae.GatedSAE, "jumprelu": numpy_sae.JumpReLUSAE,
           "l1": numpy_sae.L1SAE}[family](cfg, dtype=np.float64)
    for name, value in params.items():
        setattr(sae, name, value.astype(np.float64))
    return sae


def _torch_sae(family, params):
    cfg = {"gated": GatedConfig, "jumprelu": JumpReLUConfig, "l1": L1Config}[family](
        d_in=D_IN, d_sae=D_SAE)
    sae = {"gated": torch_sae.GatedSAE, "jumprelu": torch_sae.JumpReLUSAE,
           "l1": torch_sae.L1SAE}[family](cfg, dtype=torch.float64)
    with torch.no_grad():
        for name, value in params.items():
            getattr(sae, name).copy_(torch.from_numpy(value))
    return sae


CASES = ["general", "b_mag = 0", "b_mag = b_gate"]


@pytest.mark.parametrize("case", CASES)
def test_numpy_gated_equals_jumprelu(case):
    p = _gated_params(case)
    family, q = _equivalent(case, p)
    x = np.random.default_rng(1).normal(size=(BATCH, D_IN))
    f_gated = _numpy_sae("gated", p).encode(x)
    f_other = _numpy_sae(family, q).encode(x)
    assert 0.1 < (f_gated > 0).mean() < 0.9  # measured 0.3-0.5: neither all off nor all on
    np.testing.assert_allclose(f_gated, f_other, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_torch_gated_equals_jumprelu(case):
    p = _gated_params(case)
    family, q = _equivalent(case, p)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(BATCH, D_IN)))
    with torch.no_grad():
        out_gated = _torch_sae("gated", p)(x)
        out_other = _torch_sae(family, q)(x)
    assert 0.1 < (out_gated.f > 0).double().mean() < 0.9
    torch.testing.assert_close(out_gated.f, out_other.f, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out_gated.x_hat, out_other.x_hat, rtol=1e-12, atol=1e-12)


def test_the_old_claim_b_mag_equal_b_gate_is_not_jumprelu_at_minus_b_gate():
    """The identity fails for the wrong special case: it is a ReLU, not a JumpReLU at -b_gate."""
    p = _gated_params("b_mag = b_gate")
    q = {"W_enc": p["W_enc"], "b_enc": np.zeros(D_SAE), "W_dec": p["W_dec"], "b_dec": p["b_dec"],
         "threshold": -p["b_gate"]}
    x = np.random.default_rng(1).normal(size=(BATCH, D_IN))
    assert not np.allclose(_numpy_sae("gated", p).encode(x), _numpy_sae("jumprelu", q).encode(x))
