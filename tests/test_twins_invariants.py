"""Invariants every SAE must keep, parametrized over both twins and every family.

decode(encode(x)) == forward(x).x_hat; f >= 0; TopK keeps exactly k non-zeros per row when its
top-k pre-activations are positive; JumpReLU is zero below the threshold and the identity above;
unit-norm decoder rows stay unit norm through training steps; shared initialisation.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saelab import numpy_sae as ns
from saelab import torch_sae as ts
from saelab.sae_config import BatchTopKConfig, TopKConfig
from saelab.sae_output import SAEOutput
from sae_cases import family_configs

D_IN, D_SAE, BATCH = 10, 40, 32
TWINS = ["numpy", "torch"]
CASES = family_configs(D_IN, D_SAE, threshold_init=0.2)
UNIT_CASES = ["l1-unit", "topk", "jumprelu", "batchtopk", "gated", "matryoshka"]
WEIGHTED_CASES = ["l1-weighted"]  # decoder rows start at norm 0.1 and are free


def build(twin: str, cfg, seed: int = 0):
    """A float32 SAE of ``twin`` with random biases (so that all code paths are exercised)."""
    rng = np.random.default_rng(seed)
    sae = ns.make_sae(cfg, rng=rng)
    for bias in ("b_enc", "b_gate", "b_mag"):  # the encoder biases this family has
        if bias in sae.param_names:
            getattr(sae, bias)[:] = 0.2 * rng.standard_normal(cfg.d_sae)
    sae.b_dec[:] = 0.2 * rng.standard_normal(cfg.d_in)
    return sae if twin == "numpy" else ts.from_numpy(sae)


def inputs(twin: str, seed: int = 1, batch: int = BATCH):
    x = np.random.default_rng(seed).standard_normal((batch, D_IN)).astype(np.float32)
    return x if twin == "numpy" else torch.from_numpy(x)


def to_np(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def params_np(sae) -> dict[str, np.ndarray]:
    if isinstance(sae, torch.nn.Module):
        return {name: to_np(p).copy() for name, p in sae.state_dict().items()}
    return {name: p.copy() for name, p in sae.parameters().items()}


def sgd_like_steps(sae, x, dead_mask=None, n_steps=5, lr=0.5):
    """A few large Adam steps with the decoder-norm handling a training loop would apply."""
    if isinstance(sae, torch.nn.Module):
        opt = torch.optim.Adam(sae.parameters(), lr=lr)
        for _ in range(n_steps):
            opt.zero_grad()
            sae(x, dead_mask=dead_mask).loss.backward()
            if sae.unit_norm_decoder:
                sae.remove_parallel_grad()
            opt.step()
            sae.apply_constraints()
    else:
        opt = ns.Adam(sae.parameters(), lr=lr)
        for _ in range(n_steps):
            grads = sae.backward(x, sae(x, dead_mask=dead_mask), dead_mask=dead_mask)
            if sae.unit_norm_decoder:
                sae.remove_parallel_grad(grads)
            opt.step(grads)
            sae.apply_constraints()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("twin", TWINS)
def test_decode_of_encode_is_forward_x_hat(twin, case):
    sae, x = build(twin, CASES[case]), inputs(twin)
    out = sae.forward(x)
    assert isinstance(out, SAEOutput)
    np.testing.assert_array_equal(to_np(sae.decode(sae.encode(x))), to_np(out.x_hat))
    assert to_np(out.x_hat).shape == (BATCH, D_IN)
    assert to_np(out.f).shape == to_np(out.pre_acts).shape == (BATCH, D_SAE)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("twin", TWINS)
def test_codes_are_nonnegative_and_loss_adds_up(twin, case):
    sae, x = build(twin, CASES[case]), inputs(twin)
    out = sae(x)
    f = to_np(out.f)
    assert (f >= 0).all()
    assert 0 < (f > 0).mean() < 1  # neither all-dead nor dense: the check is not vacuous
    loss, recon, sparsity, aux = (float(to_np(v)) for v in out[3:])
    total = recon + sparsity + sae.aux_coeff * aux
    assert loss == pytest.approx(total, rel=1e-6)
    want = ((to_np(x) - to_np(out.x_hat)) ** 2).sum(axis=1).mean()
    if CASES[case].family == "matryoshka":  # recon_loss is the mean over the nested prefixes
        W, b = params_np(sae)["W_dec"], params_np(sae)["b_dec"]
        errs = [((to_np(x) - f[:, :m] @ W[:m] - b) ** 2).sum(axis=1).mean()
                for m in CASES[case].prefix_sizes]
        assert errs[-1] == pytest.approx(want, rel=1e-5) and errs[0] != errs[-1]
        want = np.mean(errs)
    assert recon == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("twin", TWINS)
def test_topk_keeps_exactly_k_nonzeros(twin):
    cfg = CASES["topk"]
    sae, x = build(twin, cfg), inputs(twin)
    assert ((to_np(sae.encode(x)) != 0).sum(axis=1) <= cfg.k).all()
    # shift every pre-activation up so the top k are positive: then exactly k survive the ReLU
    with torch.no_grad():
        sae.b_enc[...] += 100.0
    f, pre = to_np(sae.encode(x)), to_np(sae.pre_activation(x))
    np.testing.assert_array_equal((f != 0).sum(axis=1), cfg.k)
    kept = np.where(f != 0, pre, np.inf).min(axis=1)  # smallest kept pre-activation per row
    dropped = np.where(f == 0, pre, -np.inf).max(axis=1)  # largest dropped one
    assert (kept > dropped).all()
    np.testing.assert_array_equal(f[f != 0], pre[f != 0])


@pytest.mark.parametrize("twin", TWINS)
def test_batchtopk_keeps_exactly_k_times_batch_nonzeros(twin):
    cfg = CASES["batchtopk"]
    sae, x = build(twin, cfg), inputs(twin)
    with torch.no_grad():  # all pre-activations positive: exactly k * batch survive the ReLU
        sae.b_enc[...] += 100.0
    f, pre = to_np(sae.encode(x)), to_np(sae.pre_activation(x))
    per_row = (f != 0).sum(axis=1)
    assert per_row.sum() == cfg.k * BATCH
    assert per_row.min() != per_row.max()  # rows share the budget unevenly: not per-row TopK
    assert pre[f != 0].min() > pre[f == 0].max()  # the kept entries are the batch's largest
    np.testing.assert_array_equal(f[f != 0], pre[f != 0])


@pytest.mark.parametrize("twin", TWINS)
def test_batchtopk_threshold_running_estimate_and_inference(twin):
    cfg = BatchTopKConfig(D_IN, D_SAE, k=5, k_aux=8, threshold_decay=0.75)
    sae = build(twin, cfg)
    x1, x2 = inputs(twin, seed=1), inputs(twin, seed=2)
    sae.encode(x1)  # encode never updates the running threshold
    assert float(to_np(sae.threshold)) == ts.THRESHOLD_UNSET
    m1 = to_np(sae(x1).f)
    m1 = m1[m1 > 0].min()
    assert float(to_np(sae.threshold)) == pytest.approx(m1, rel=1e-6)  # first batch: set
    m2 = to_np(sae(x2).f)
    m2 = m2[m2 > 0].min()
    theta = 0.75 * m1 + 0.25 * m2  # then an EMA
    assert float(to_np(sae.threshold)) == pytest.approx(theta, rel=1e-6)
    sae.eval()
    out = sae(x1)
    assert float(to_np(sae.threshold)) == pytest.approx(theta, rel=1e-6)  # eval: no update
    f, pre = to_np(out.f), to_np(out.pre_acts)
    np.testing.assert_array_equal(f, np.where(pre > theta, pre, 0.0))
    assert (f > 0).any() and ((pre > 0) & (f == 0)).any()
    sae.train()
    assert (to_np(sae(x1).f) != 0).sum() <= cfg.k * BATCH


@pytest.mark.parametrize("twin", TWINS)
def test_untrained_batchtopk_inference_is_relu(twin):
    sae, x = build(twin, CASES["batchtopk"]), inputs(twin)
    sae.eval()
    out = sae(x)
    np.testing.assert_array_equal(to_np(out.f), np.maximum(to_np(out.pre_acts), 0))


@pytest.mark.parametrize("twin", TWINS)
def test_gated_gate_decides_magnitude_path_sizes(twin):
    sae, x = build(twin, CASES["gated"]), inputs(twin)
    rng = np.random.default_rng(5)
    r_mag = (0.5 * rng.standard_normal(D_SAE)).astype(np.float32)
    with torch.no_grad():
        sae.r_mag[...] = r_mag if twin == "numpy" else torch.from_numpy(r_mag)
    out = sae(x)
    f, pi = to_np(out.f), to_np(out.pre_acts)
    p = params_np(sae)
    u = (to_np(x) - p["b_dec"]) @ p["W_enc"]  # shared encoder, no bias
    np.testing.assert_allclose(pi, u + p["b_gate"], rtol=1e-5, atol=1e-6)
    mag = np.maximum(np.exp(p["r_mag"]) * u + p["b_mag"], 0)
    closed = pi <= 0
    assert closed.any() and (~closed & (mag > 0)).any()
    assert (f[closed] == 0).all()
    np.testing.assert_allclose(f[~closed], mag[~closed], rtol=1e-5, atol=1e-6)
    norms = np.linalg.norm(p["W_dec"], axis=1)
    want = sae.cfg.l1_coeff * (np.maximum(pi, 0) * norms).sum(axis=1).mean()
    assert float(to_np(out.sparsity_loss)) == pytest.approx(want, rel=1e-5)
    x_gate = np.maximum(pi, 0) @ p["W_dec"] + p["b_dec"]
    want_aux = ((to_np(x) - x_gate) ** 2).sum(axis=1).mean()
    assert float(to_np(out.aux_loss)) == pytest.approx(want_aux, rel=1e-5)


def test_gated_aux_loss_sends_no_gradient_to_the_decoder():
    sae, x = build("torch", CASES["gated"]), inputs("torch")
    out = sae(x)
    out.aux_loss.backward()
    assert sae.W_dec.grad is None and sae.b_dec.grad is not None  # b_dec: via x - b_dec only
    assert sae.b_gate.grad.abs().max() > 0 and sae.b_mag.grad is None
    np_sae = ns.from_torch(sae)
    grads = np_sae.backward(to_np(x), np_sae(to_np(x)))
    # the magnitude path has no penalty: b_mag's gradient comes from the reconstruction alone
    sae.zero_grad()
    sae(x).recon_loss.backward()
    np.testing.assert_allclose(grads["b_mag"], to_np(sae.b_mag.grad), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("twin", TWINS)
def test_jumprelu_zero_below_threshold_identity_above(twin):
    sae, x = build(twin, CASES["jumprelu"]), inputs(twin)
    theta = np.random.default_rng(2).uniform(0.05, 1.0, D_SAE).astype(np.float32)
    with torch.no_grad():
        sae.threshold[...] = theta if twin == "numpy" else torch.from_numpy(theta)
    out = sae(x)
    f, pre = to_np(out.f), to_np(out.pre_acts)
    below, above = pre < theta, pre > theta
    assert below.any() and above.any()
    assert (f[below] == 0).all()
    np.testing.assert_array_equal(f[above], pre[above])
    assert float(to_np(out.sparsity_loss)) == pytest.approx(sae.cfg.l0_coeff * above.sum(1).mean(), rel=1e-6)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("twin", TWINS)
def test_shared_initialisation(twin, case):
    cfg = CASES[case]
    sae = ns.make_sae(cfg, rng=3) if twin == "numpy" else ts.make_sae(cfg)
    p = params_np(sae)
    assert p["W_enc"].dtype == np.float32
    np.testing.assert_array_equal(p["W_enc"], p["W_dec"].T)
    want_norm = 0.1 if case in WEIGHTED_CASES else 1.0
    np.testing.assert_allclose(np.linalg.norm(p["W_dec"], axis=1), want_norm, rtol=1e-5)
    biases = ["b_gate", "r_mag", "b_mag"] if cfg.family == "gated" else ["b_enc"]
    assert sorted(p) == sorted(["W_enc", "W_dec", "b_dec"] + biases
                               + (["threshold"] if cfg.family in ("jumprelu", "batchtopk", "matryoshka")
                                  else []))
    assert not any(p[name].any() for name in biases) and not p["b_dec"].any()
    if cfg.family == "jumprelu":
        np.testing.assert_allclose(p["threshold"], cfg.threshold_init)
    if cfg.family in ("batchtopk", "matryoshka"):
        assert p["threshold"].shape == () and p["threshold"] == ts.THRESHOLD_UNSET
    assert sae.unit_norm_decoder == (case not in WEIGHTED_CASES)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("twin", TWINS)
def test_decoder_rows_after_training_steps(twin, case):
    cfg = CASES[case]
    sae, x = build(twin, cfg), inputs(twin)
    before = params_np(sae)
    mask = np.zeros(D_SAE, dtype=bool)
    mask[:10] = True
    dead_mask = mask if twin == "numpy" else torch.from_numpy(mask)
    sgd_like_steps(sae, x, dead_mask=dead_mask)
    after = params_np(sae)
    assert np.abs(after["W_dec"] - before["W_dec"]).max() > 1e-2  # the steps did move it
    norms = np.linalg.norm(after["W_dec"], axis=1)
    if case in UNIT_CASES:
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    else:  # the weighted L1 decoder is free: its norms move away from 0.1
        assert np.abs(norms - np.linalg.norm(before["W_dec"], axis=1)).max() > 1e-2
    if cfg.family == "jumprelu":
        assert (after["threshold"] >= ts.THRESHOLD_FLOOR).all()


@pytest.mark.parametrize("twin", TWINS)
def test_remove_parallel_grad_leaves_only_tangent_part(twin):
    sae, x = build(twin, CASES["topk"]), inputs(twin)
    if twin == "numpy":
        grads = sae.backward(x, sae(x))
        raw = grads["W_dec"].copy()
        g = sae.remove_parallel_grad(grads)["W_dec"]
        W = sae.W_dec
    else:
        sae(x).loss.backward()
        raw = to_np(sae.W_dec.grad).copy()
        sae.remove_parallel_grad()
        g, W = to_np(sae.W_dec.grad), to_np(sae.W_dec)
    assert np.abs((raw * W).sum(axis=1)).max() > 1e-3  # there was a parallel part to remove
    np.testing.assert_allclose((g * W).sum(axis=1), 0.0, atol=1e-6)
    # the tangent part is untouched: raw - g is parallel to W row by row
    diff = raw - g
    np.testing.assert_allclose(diff, (diff * W).sum(axis=1, keepdims=True) * W, atol=1e-6)


@pytest.mark.parametrize("twin", TWINS)
def test_jumprelu_threshold_clamped_to_floor(twin):
    sae = build(twin, CASES["jumprelu"])
    with torch.no_grad():
        sae.threshold[:3] = -1.0
    sae.apply_constraints()
    theta = to_np(sae.threshold)
    assert (theta >= ts.THRESHOLD_FLOOR).all() and theta[:3] == pytest.approx(ts.THRESHOLD_FLOOR)
    assert ns.THRESHOLD_FLOOR == ts.THRESHOLD_FLOOR


@pytest.mark.parametrize("twin", TWINS)
def test_missing_loss_terms_are_zero(twin):
    x = inputs(twin)
    no_dead = np.zeros(D_SAE, dtype=bool)
    no_dead = no_dead if twin == "numpy" else torch.from_numpy(no_dead)
    for case in CASES:
        out = build(twin, CASES[case])(x, dead_mask=no_dead)
        if case == "gated":  # Gated's aux reconstruction is always on
            assert float(to_np(out.aux_loss)) > 0
            continue
        assert float(out.aux_loss) == 0.0
        if twin == "torch":
            assert all(isinstance(v, torch.Tensor) for v in out)
        else:
            assert all(isinstance(v, float) for v in out[3:])
    topk_out = build(twin, CASES["topk"])(x)
    assert float(topk_out.sparsity_loss) == 0.0


def test_auxk_gradient_reaches_only_dead_latents():
    cfg = CASES["topk"]
    sae, x = build("numpy", cfg), inputs("numpy")
    mask = np.zeros(D_SAE, dtype=bool)
    mask[::4] = True
    with_aux = sae.backward(x, sae(x, dead_mask=mask), dead_mask=mask)
    without = sae.backward(x, sae(x))
    live = ~mask
    np.testing.assert_array_equal(with_aux["W_enc"][:, live], without["W_enc"][:, live])
    np.testing.assert_array_equal(with_aux["b_enc"][live], without["b_enc"][live])
    np.testing.assert_array_equal(with_aux["W_dec"][live], without["W_dec"][live])
    assert np.abs(with_aux["W_dec"][mask] - without["W_dec"][mask]).max() > 0


def test_auxk_uses_all_dead_latents_when_k_aux_exceeds_them():
    sae, x = build("numpy", TopKConfig(D_IN, D_SAE, k=5, k_aux=1000)), inputs("numpy")
    mask = np.zeros(D_SAE, dtype=bool)
    mask[[1, 4, 9]] = True
    pre = sae.pre_activation(x)
    codes = sae.dead_codes(pre, mask)
    np.testing.assert_array_equal(codes[:, mask], pre[:, mask])  # AuxK keeps the sign
    assert not codes[:, ~mask].any()
    t_out = ts.from_numpy(sae)(torch.from_numpy(x), dead_mask=torch.from_numpy(mask))
    assert float(to_np(t_out.aux_loss)) == pytest.approx(sae(x, dead_mask=mask).aux_loss, rel=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_weights_round_trip_between_twins(case):
    np_sae = build("numpy", CASES[case])
    live = np_sae.parameters()
    back = ns.from_torch(ts.from_numpy(np_sae))
    for name, p in back.parameters().items():
        np.testing.assert_array_equal(p, live[name])
    np_sae.load_parameters({name: np.zeros_like(p) for name, p in live.items()})
    assert all(np_sae.parameters()[n] is live[n] for n in live)  # updated in place
    assert not np_sae.W_dec.any()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", list(CASES))
def test_torch_twin_runs_on_cuda_and_matches_cpu(case):
    cpu = build("torch", CASES[case])
    gpu = ts.from_numpy(ns.from_torch(cpu), device="cuda")
    x = inputs("torch")
    mask = torch.zeros(D_SAE, dtype=torch.bool)
    mask[:10] = True
    out_cpu, out_gpu = cpu(x, dead_mask=mask), gpu(x.cuda(), dead_mask=mask)  # CPU mask is fine
    assert out_gpu.x_hat.device.type == "cuda"
    np.testing.assert_allclose(to_np(out_gpu.x_hat), to_np(out_cpu.x_hat), atol=1e-4)
    assert float(to_np(out_gpu.loss)) == pytest.approx(float(to_np(out_cpu.loss)), rel=1e-4)
    sgd_like_steps(gpu, x.cuda(), dead_mask=mask.cuda())
    if gpu.unit_norm_decoder:
        np.testing.assert_allclose(to_np(gpu.W_dec.norm(dim=1)), 1.0, rtol=1e-5)


@pytest.mark.parametrize("twin", TWINS)
def test_batchtopk_threshold_ignores_a_batch_where_nothing_fired(twin):
    cfg = BatchTopKConfig(D_IN, D_SAE, k=5, k_aux=8, threshold_decay=0.75)
    sae = build(twin, cfg)
    zeros = np.zeros((BATCH, D_SAE), dtype=np.float32)
    codes = zeros if twin == "numpy" else torch.from_numpy(zeros)
    sae.update_threshold(codes)  # unset, nothing fired: stays unset
    assert float(to_np(sae.threshold)) == ts.THRESHOLD_UNSET
    codes[0, 3], codes[2, 1] = 0.5, 0.25
    sae.update_threshold(codes)  # first estimate: the smallest positive code
    assert float(to_np(sae.threshold)) == 0.25
    codes[...] = 0
    sae.update_threshold(codes)  # set, nothing fired: unchanged
    assert float(to_np(sae.threshold)) == 0.25
