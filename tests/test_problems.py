"""The numbers quoted in book/problems.md are the ones saelab/problems.py computes.

Each entry below is a snippet copied from the page (with a little context, so it is found in the
right place) and the value it quotes, formatted from the function that computes it. If the page
or the code changes, one of the two checks fails: the snippet is no longer on the page, or the
function no longer gives the quoted value.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from saelab import lasso, problems
from saelab.geometry import welch_bound

PAGE = (Path(__file__).resolve().parents[1] / "book" / "problems.md").read_text()
P1, P3, P4, P5 = problems.PROBLEM_1, problems.PROBLEM_3, problems.PROBLEM_4, problems.PROBLEM_5


def _thousands(v: float) -> str:
    """6936.98 -> '6{,}937' (how the page writes large numbers in maths)."""
    return f"{round(v):,}".replace(",", "{,}")


def _vec(v) -> str:
    return "(" + ", ".join(f"{float(a):g}" for a in v) + ")"


_TOPK = problems.topk_forward_backward(**P4)
_CAP = [problems.welch_capacity(P5["d"], e) for e in P5["eps"]]

# (snippet as it appears on the page, the quoted value inside it, the value computed now)
QUOTED = [
    (r"16{,}384 / 768 \approx 21.33", "21.33",
     f"{problems.overcomplete_factor(P1['m'], P1['d']):.2f}"),
    ("64 / 16{,}384 = 1/256", "256", f"{1 / problems.active_fraction(P1['l0'], P1['m']):.0f}"),
    ("that is 0.39% of the latents", "0.39",
     f"{100 * problems.active_fraction(P1['l0'], P1['m']):.2f}"),
    ("16{,}384 + 768 = 25{,}182{,}976", "25{,}182{,}976",
     _thousands(problems.sae_parameter_count(P1['m'], P1['d']))),
    ("The ratio is $m / L_0 = 256$", "256",
     f"{problems.sparse_decode_speedup(P1['m'], P1['l0']):.0f}"),
    (r"\binom{16384}{64} \approx 10^{180.6}", "180.6",
     f"{problems.log10_supports(P1['m'], P1['l0']):.1f}"),
    (r"the threshold is $\lambda / 2 = 0.15$", "0.15", f"{P3['lam'] / 2:g}"),
    ("the code is $1 - 0.15 = 0.85$", "0.85", f"{problems.l1_shrunk_code(P3['a'], P3['lam']):g}"),
    ("= 0.0225 + 0.255 = 0.2775", "0.2775", f"{problems.l1_optimal_loss(P3['a'], P3['lam']):g}"),
    ("the reconstruction pays\n  $0.0225$", "0.0225",
     f"{(P3['a'] - problems.l1_shrunk_code(P3['a'], P3['lam'])) ** 2:g}"),
    ("- $a = 0.1$: $0.1 < 0.15$, so the code is $0$", "0",
     f"{problems.l1_shrunk_code(P3['a_small'], P3['lam']):g}"),
    ("p = (0.9,\\ -0.3,\\ 2.1,\\ 1.4,\\ 0.2,\\ 1.7), \\qquad k = 3", "0.9,\\ -0.3,\\ 2.1,\\ 1.4,\\ 0.2,\\ 1.7",
     ",\\ ".join(f"{a:g}" for a in P4["pre"])),
    ("\\frac{\\partial L}{\\partial f} = (0.5,\\ -1,\\ 0.25,\\ 2,\\ -0.5,\\ 1)", "0.5,\\ -1,\\ 0.25,\\ 2,\\ -0.5,\\ 1",
     ",\\ ".join(f"{a:g}" for a in P4["grad_f"])),
    ("$f = (0, 0, 2.1, 1.4, 0, 1.7)$", "(0, 0, 2.1, 1.4, 0, 1.7)", _vec(_TOPK.f)),
    ("\\partial L / \\partial p = (0, 0, 0.25, 2, 0, 1)$", "(0, 0, 0.25, 2, 0, 1)", _vec(_TOPK.grad_pre)),
    ("(positions 3, 6 and 4)", "3, 6 and 4",
     ", ".join(str(i + 1) for i in np.argsort(-np.asarray(P4["pre"]))[:2]) + " and "
     + str(int(np.argsort(-np.asarray(P4["pre"]))[2]) + 1)),
    (r"m \le 4096 \cdot 0.9999 / 0.5904 \approx 6{,}937$", "6{,}937", _thousands(_CAP[0])),
    ("only 1.69 times $d$", "1.69", f"{_CAP[0] / P5['d']:.2f}"),
    (r"m \le 4096 \cdot 0.999775 / 0.0784 \approx 52{,}233$", "52{,}233", _thousands(_CAP[1])),
    ("already 12.75 times $d$", "12.75", f"{_CAP[1] / P5['d']:.2f}"),
    ("buys 7.5 times as many vectors", "7.5", f"{_CAP[1] / _CAP[0]:.1f}"),
    (r"$\varepsilon = 1/\sqrt{d} = 0.015625$", "0.015625", f"{problems.welch_critical_eps(P5['d']):g}"),
    (r"gives $\mu \ge 0.0135$", "0.0135", f"{problems.sae_welch_coherence():.4f}"),
    ("which is $0.093$ already", "0.093",
     f"{problems.random_coherence_estimate(round(_CAP[0]), P5['d']):.3f}"),
]


@pytest.mark.parametrize("snippet, quoted, computed", QUOTED, ids=[q[1] for q in QUOTED])
def test_page_quotes_the_computed_value(snippet, quoted, computed):
    assert snippet in PAGE, f"snippet not on the page any more: {snippet!r}"
    assert quoted in snippet
    assert quoted == computed, f"the page says {quoted}, saelab.problems computes {computed}"


def test_intermediate_numbers_of_the_welch_solution():
    d = P5["d"]
    for eps, d_eps2, one_minus in zip(P5["eps"], ("0.4096", "0.9216"), ("0.9999", "0.999775")):
        assert f"d \\varepsilon^2 = {d_eps2}" in PAGE
        assert f"{d * eps ** 2:.4f}" == d_eps2
        assert f"{1 - eps ** 2:g}" == one_minus
        assert f"{1 - d * eps ** 2:.4f}".rstrip("0") in PAGE


def test_problem_inputs_are_the_ones_on_the_page():
    assert "$d = 768$ inputs, $m = 16{,}384$ latents" in PAGE
    assert "$L_0 = 64$ active latents" in PAGE
    assert P1 == dict(m=16_384, d=768, l0=64)
    assert "with $\\lambda = 0.3$" in PAGE and P3["lam"] == 0.3
    assert "$\\varepsilon = 0.01$ and $\\varepsilon = 0.015$" in PAGE and P5["eps"] == (0.01, 0.015)
    assert "$d = 4096$" in PAGE and P5["d"] == 4096


def test_every_solution_is_collapsed():
    n_problems = PAGE.count("\n## Problem ")
    assert n_problems == 5
    assert PAGE.count("```{admonition} Solution\n:class: dropdown\n") == n_problems


# ---- the functions themselves are right -------------------------------------------------------

def test_topk_backward_matches_torch_autograd():
    pre = torch.tensor(P4["pre"], dtype=torch.float64, requires_grad=True)
    vals, idx = torch.topk(pre, P4["k"])
    f = torch.zeros_like(pre).scatter(0, idx, vals)
    f.backward(torch.tensor(P4["grad_f"], dtype=torch.float64))
    np.testing.assert_array_equal(_TOPK.f, f.detach().numpy())
    np.testing.assert_array_equal(_TOPK.grad_pre, pre.grad.numpy())


def test_shrinkage_matches_the_lasso_solvers():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((8, 3)))
    D = q.T  # (3, 8) orthonormal rows
    for a in (P3["a"], P3["a_small"]):
        x = a * D[1:2]  # (1, 8): one atom with magnitude a
        z = lasso.fista(x, D, P3["lam"], tol=1e-15).z
        np.testing.assert_allclose(z, [[0.0, problems.l1_shrunk_code(a, P3["lam"]), 0.0]], atol=1e-9)
        f = lasso.lasso_objective(x, D, z, P3["lam"])
        np.testing.assert_allclose(f, problems.l1_optimal_loss(a, P3["lam"]), atol=1e-9)


def test_welch_capacity_is_where_the_bound_is_tight():
    d = P5["d"]
    for eps in P5["eps"]:
        m = problems.welch_capacity(d, eps)
        assert welch_bound(math.floor(m), d) <= eps < welch_bound(math.floor(m) + 2, d)
    assert problems.welch_capacity(d, problems.welch_critical_eps(d) * 1.001) == math.inf


def test_counts_and_bad_input():
    assert problems.sae_parameter_count(3, 2) == 2 * 3 * 2 + 3 + 2
    assert problems.log10_supports(10, 3) == pytest.approx(math.log10(120))
    with pytest.raises(ValueError, match="l0 must be at most m"):
        problems.active_fraction(100, 10)
    with pytest.raises(ValueError, match="k must be"):
        problems.topk_forward_backward([1.0, 2.0], 3, [0.0, 0.0])
