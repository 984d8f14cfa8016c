"""Tests for the training loop and its parts: schedules, geometric median, dead latents."""
import math

import numpy as np
import pytest
import torch

from saelab.dead_latents import DeadLatentTracker, resample_dead_latents
from saelab.geometric_median import geometric_median
from saelab.schedules import lr_at, sparsity_factor_at
from saelab.sae_config import JumpReLUConfig, L1Config, TopKConfig
from saelab.synthetic import make_sparse_data
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, TrainingDivergedError, train_sae

FAMILIES = {
    "l1-unit": L1Config(d_in=16, d_sae=64, l1_coeff=0.05, decoder_norm="unit"),
    "l1-weighted": L1Config(d_in=16, d_sae=64, l1_coeff=0.05, decoder_norm="weighted"),
    "topk": TopKConfig(d_in=16, d_sae=64, k=4, k_aux=8),
    "jumprelu": JumpReLUConfig(d_in=16, d_sae=64, l0_coeff=0.01, bandwidth=0.01,
                               threshold_init=0.01),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def data():
    return make_sparse_data(2048, d_in=16, n_features=48, n_active=3, seed=0)


def _sae(name, seed=0):
    torch.manual_seed(seed)
    return make_sae(FAMILIES[name])


# ---------------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------------

def test_lr_schedule_warmup_plateau_decay():
    lrs = [lr_at(t, 100, 1.0, warmup_steps=10, decay_frac=0.2) for t in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == 1.0
    assert all(v == 1.0 for v in lrs[10:80])
    assert lrs[80] == 1.0 and lrs[81] == pytest.approx(19 / 20) and lrs[99] == pytest.approx(1 / 20)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # never rises after warm-up
    assert [lr_at(t, 5, 0.3, 0, 0.0) for t in range(5)] == [0.3] * 5
    # decay over everything: straight line from lr down to lr / n
    assert lr_at(0, 4, 1.0, 0, 1.0) == 1.0 and lr_at(3, 4, 1.0, 0, 1.0) == 0.25


def test_sparsity_warmup():
    f = [sparsity_factor_at(t, 100, 0.05) for t in range(100)]
    assert f[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0]) and all(v == 1.0 for v in f[5:])
    assert sparsity_factor_at(0, 100, 0.0) == 1.0


def test_schedule_bad_input():
    with pytest.raises(ValueError, match="step must be in 0..9, got 10"):
        lr_at(10, 10, 1e-3)
    with pytest.raises(ValueError, match="lr must be positive, got -1"):
        lr_at(0, 10, -1)
    with pytest.raises(ValueError, match="decay_frac must be in"):
        lr_at(0, 10, 1e-3, decay_frac=1.5)
    with pytest.raises(ValueError, match="warmup_frac must be in"):
        sparsity_factor_at(0, 10, -0.1)


# ---------------------------------------------------------------------------------------------
# geometric median
# ---------------------------------------------------------------------------------------------

def test_geometric_median_matches_scipy_minimiser():
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(size=(200, 5)), 50 + rng.normal(size=(20, 5))])  # outliers
    res = geometric_median(pts, tol=1e-10, max_iter=1000)
    assert res.converged and isinstance(res.median, np.ndarray)

    def objective(m):
        return np.linalg.norm(pts - m, axis=1).sum()

    ref = minimize(objective, pts.mean(0), method="Nelder-Mead",
                   options=dict(xatol=1e-10, fatol=1e-12, maxiter=50_000, maxfev=50_000)).x
    assert objective(res.median) <= objective(ref) + 1e-7
    np.testing.assert_allclose(res.median, ref, atol=1e-4)
    # robust: the 9% outliers pull the mean ~4.5 away, the median far less
    assert np.linalg.norm(res.median) < 1.0 < np.linalg.norm(pts.mean(0))


def test_geometric_median_torch_types_and_stopping():
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float32)
    res = geometric_median(pts, tol=1e-9, max_iter=1000)
    assert res.median.dtype == torch.float32 and res.median.shape == (2,)
    # Fermat point of this right triangle: all angles < 120 deg, so it is interior, on x = y
    assert res.median[0].item() == pytest.approx(res.median[1].item(), abs=1e-6)
    one = geometric_median(pts, tol=1e-12, max_iter=1)
    assert one.n_iter == 1 and not one.converged
    # a single point, and duplicated points sitting on the answer (the eps guard)
    assert torch.equal(geometric_median(pts[:1]).median, pts[0])
    dup = torch.cat([pts[:1].repeat(10, 1), pts])
    assert geometric_median(dup).median.norm().item() < 1e-6


def test_geometric_median_bad_input():
    with pytest.raises(ValueError, match="points must have shape"):
        geometric_median(np.ones(3))
    with pytest.raises(ValueError, match="points contains 1 NaN"):
        geometric_median(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="tol must be positive"):
        geometric_median(np.ones((2, 2)), tol=0)


# ---------------------------------------------------------------------------------------------
# dead latents
# ---------------------------------------------------------------------------------------------

def test_dead_latent_tracker_counts_tokens_since_firing():
    tr = DeadLatentTracker(3, window_tokens=10)
    tr.update(torch.tensor([[1.0, 0, 0], [0, 0, 0]]))
    assert tr.tokens_since_fired.tolist() == [0, 2, 2]
    for _ in range(4):
        tr.update(torch.tensor([[0.0, 0, 2.0], [0, 0, 0]]))
    assert tr.tokens_since_fired.tolist() == [8, 10, 0]
    assert tr.dead_mask.tolist() == [False, True, False]
    tr.reset(tr.dead_mask)
    assert tr.tokens_since_fired.tolist() == [8, 0, 0]


@pytest.mark.parametrize("norm", ["unit", "weighted"])
def test_resample_dead_latents(norm):
    torch.manual_seed(0)
    sae = make_sae(L1Config(d_in=8, d_sae=16, l1_coeff=0.1, decoder_norm=norm))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    x = torch.randn(64, 8)
    sae(x).loss.backward()
    opt.step()
    before = {k: v.clone() for k, v in sae.state_dict().items()}
    moments = {k: opt.state[p]["exp_avg"].clone() for k, p in sae.named_parameters()}
    dead = torch.zeros(16, dtype=torch.bool)
    dead[[2, 5]] = True
    pool = 0.01 * torch.randn(50, 8)
    pool[7] = 100.0  # one very badly reconstructed input: both dead latents should pick it...
    pool[9] = -80.0  # ...or this one; nothing else has a chance (probability ~ loss^2)
    n = resample_dead_latents(sae, opt, dead, pool, generator=torch.Generator().manual_seed(0))
    assert n == 2
    targets = torch.stack([pool[7], pool[9]]) - sae.b_dec
    targets = targets / targets.norm(dim=1, keepdim=True)
    got = sae.W_dec[dead] / sae.W_dec[dead].norm(dim=1, keepdim=True)
    assert {int((got[i] @ targets.T).argmax()) for i in range(2)} == {0, 1}
    torch.testing.assert_close((got @ targets.T).max(dim=1).values, torch.ones(2))
    alive = ~dead
    want_norm = 1.0 if norm == "unit" else before["W_dec"][alive].norm(dim=1).mean().item()
    torch.testing.assert_close(sae.W_dec[dead].norm(dim=1), torch.full((2,), want_norm))
    enc_norm = 0.2 * before["W_enc"][:, alive].norm(dim=0).mean()
    torch.testing.assert_close(sae.W_enc[:, dead].norm(dim=0), enc_norm.expand(2))
    assert torch.all(sae.b_enc[dead] == 0)
    # untouched elsewhere, Adam moments zeroed exactly on the resampled rows/columns
    assert torch.equal(sae.W_dec[alive], before["W_dec"][alive])
    assert torch.equal(sae.W_enc[:, alive], before["W_enc"][:, alive])
    assert torch.all(opt.state[sae.W_dec]["exp_avg"][dead] == 0)
    assert torch.all(opt.state[sae.W_enc]["exp_avg_sq"][:, dead] == 0)
    assert torch.all(opt.state[sae.b_enc]["exp_avg"][dead] == 0)
    assert torch.equal(opt.state[sae.W_dec]["exp_avg"][alive], moments["W_dec"][alive])
    assert resample_dead_latents(sae, opt, torch.zeros(16, dtype=torch.bool), pool) == 0


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------

SHORT = dict(n_steps=60, batch_size=64, lr=3e-3, log_every=20, dead_window_tokens=1000)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_training_reduces_loss_and_logs_history(name, data):
    sae = _sae(name)
    res = train_sae(sae, data.x, TrainConfig(**SHORT), progress=False)
    h = res.history
    assert res.sae is sae
    assert h.step == [20, 40, 60] and h.tokens == [1280, 2560, 3840]
    for key in ("loss", "recon", "l0", "fvu", "dead_frac", "lr"):
        assert len(getattr(h, key)) == 3 and all(math.isfinite(v) for v in getattr(h, key))
    assert h.recon[-1] < 0.7 * h.recon[0]
    assert h.fvu[-1] < h.fvu[0]
    assert h.lr == pytest.approx([lr_at(t - 1, 60, 3e-3, 0, 0.2) for t in h.step])
    if name != "l1-weighted":  # every unit-norm family keeps its rows on the sphere
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))
    if name == "topk":
        assert h.l0[-1] <= 4.0
    if name == "jumprelu":
        assert bool((sae.threshold > 0).all())


def test_same_seed_same_history_and_weights(data):
    cfg = TrainConfig(**SHORT, seed=3)
    a, b = _sae("topk"), _sae("topk")
    ha = train_sae(a, data.x, cfg, progress=False).history
    hb = train_sae(b, data.x, cfg, progress=False).history
    assert ha == hb
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    c = _sae("topk")
    hc = train_sae(c, data.x, TrainConfig(**SHORT, seed=4), progress=False).history
    assert hc.loss != ha.loss


def test_b_dec_init_choices(data):
    tiny = dict(n_steps=1, batch_size=64, lr=1e-12, b_dec_init_samples=4096)
    for how, want in [("zeros", torch.zeros(16)), ("mean", data.x.mean(0)),
                      ("geometric_median", geometric_median(data.x).median)]:
        sae = _sae("l1-unit")
        train_sae(sae, data.x, TrainConfig(**tiny, b_dec_init=how), progress=False)
        torch.testing.assert_close(sae.b_dec.detach(), want, atol=1e-6, rtol=1e-5)
    med, mean = geometric_median(data.x).median, data.x.mean(0)
    assert (med - mean).norm() > 0.01  # the two inits really differ on sparse data


def test_sparsity_warmup_scales_only_the_sparsity_term(data):
    kw = dict(n_steps=10, batch_size=64, lr=1e-3, log_every=1, b_dec_init="zeros")
    full = train_sae(_sae("l1-unit"), data.x, TrainConfig(**kw, sparsity_warmup_frac=0.0),
                     progress=False).history
    warm = train_sae(_sae("l1-unit"), data.x, TrainConfig(**kw, sparsity_warmup_frac=0.5),
                     progress=False).history
    # step 1: same weights, same batch; warm-up factor 1/5 on the L1 term only
    assert warm.recon[0] == pytest.approx(full.recon[0], rel=1e-6)
    assert warm.loss[0] - warm.recon[0] == pytest.approx((full.loss[0] - full.recon[0]) / 5,
                                                         rel=1e-5)


def test_dead_latents_feed_auxk_and_resampling(data):
    # TopK with k=1 and a short window: some latents never win and are reported dead
    torch.manual_seed(0)
    sae = make_sae(TopKConfig(d_in=16, d_sae=64, k=1, k_aux=8))
    res = train_sae(sae, data.x, TrainConfig(**{**SHORT, "dead_window_tokens": 256}),
                    progress=False)
    assert max(res.history.dead_frac) > 0  # measured 0.09-0.2 on this data
    assert res.tokens_since_fired.shape == (64,)
    # an L1 SAE with a crushing penalty kills latents; resampling revives some
    torch.manual_seed(0)
    l1 = make_sae(L1Config(d_in=16, d_sae=64, l1_coeff=10.0, decoder_norm="unit"))
    cfg = TrainConfig(n_steps=150, batch_size=64, lr=3e-3, log_every=10, dead_window_tokens=640,
                      resample_every=70, sparsity_warmup_frac=0.0)
    res = train_sae(l1, data.x, cfg, progress=False)
    assert [s for s, _ in res.resampled] == [70]  # 140 is inside the final lr decay: skipped
    assert res.resampled[0][1] > 0  # measured: 9 of 64 latents
    h = res.history
    assert h.dead_frac[h.step.index(60)] > 0 and h.dead_frac[h.step.index(70)] == 0
    assert h.l0[h.step.index(80)] > 2 * h.l0[h.step.index(60)]  # revived latents fire again


def test_nan_loss_stops_restores_and_names_the_step(data):
    sae = _sae("l1-weighted")
    cfg = TrainConfig(n_steps=50, batch_size=64, lr=1e30, grad_clip=None, log_every=1)
    with pytest.raises(TrainingDivergedError, match=r"at step \d+ .*lower learning rate") as info:
        train_sae(sae, data.x, cfg, progress=False)
    err = info.value
    assert 1 < err.step <= 50 and len(err.history.step) == err.step - 1
    for p in sae.parameters():
        assert bool(torch.isfinite(p).all())
    with torch.no_grad():
        assert math.isfinite(sae(data.x[:64]).loss.item())  # the restored weights are usable


def test_iterable_data_and_running_out(data):
    batches = [data.x[i:i + 32].numpy() for i in range(0, 320, 32)]  # 10 ndarray batches
    res = train_sae(_sae("topk"), batches, TrainConfig(n_steps=10, log_every=5), progress=False)
    assert res.history.tokens == [160, 320]
    gen = (data.x[i:i + 32] for i in range(0, 160, 32))  # only 5 batches
    with pytest.warns(UserWarning, match="data ran out after 5 of 10 steps"):
        res = train_sae(_sae("topk"), gen, TrainConfig(n_steps=10, log_every=3), progress=False)
    assert res.history.step == [3, 5] and res.history.tokens == [96, 160]  # partial last row


def test_progress_bar_runs(data, capsys):
    train_sae(_sae("topk"), data.x, TrainConfig(n_steps=3, batch_size=64, log_every=1))
    assert "training topk SAE" in capsys.readouterr().err


def test_bad_input(data):
    cfg = TrainConfig(n_steps=2, batch_size=64)
    with pytest.raises(ValueError, match=r"data must have shape \(any, 16\), got \(2048, 8\)"):
        train_sae(_sae("topk"), data.x[:, :8], cfg, progress=False)
    bad = data.x.clone()
    bad[3, 3] = float("nan")
    with pytest.raises(ValueError, match="data contains 1 NaN"):
        train_sae(_sae("topk"), bad, cfg, progress=False)
    with pytest.raises(ValueError, match="batch 1 of data contains 1 NaN"):
        train_sae(_sae("topk"), [data.x[:8], bad[:8]], cfg, progress=False)
    with pytest.raises(ValueError, match="batch_size must be at most the 10 rows"):
        train_sae(_sae("topk"), data.x[:10], cfg, progress=False)
    with pytest.raises(ValueError, match="empty iterable"):
        train_sae(_sae("topk"), [], cfg, progress=False)
    with pytest.raises(ValueError, match="resample_every must be 0 for a topk SAE"):
        train_sae(_sae("topk"), data.x, TrainConfig(resample_every=10), progress=False)
    with pytest.raises(ValueError, match="data must be a tensor"):
        train_sae(_sae("topk"), 3.0, cfg, progress=False)
    for field, value, msg in [("lr", 0.0, "lr must be positive, got 0.0"),
                              ("lr", -1e-3, "lr must be positive"),
                              ("batch_size", 0, "batch_size must be at least 1, got 0"),
                              ("n_steps", -5, "n_steps must be at least 1"),
                              ("b_dec_init", "median", "b_dec_init must be one of"),
                              ("grad_clip", 0.0, "grad_clip must be positive"),
                              ("adam_betas", (0.9, 1.0), "adam_betas must be two numbers")]:
        with pytest.raises(ValueError, match=msg):
            TrainConfig(**{field: value})


def test_callback_is_called_after_every_history_row():
    torch.manual_seed(0)
    sae = make_sae(TopKConfig(d_in=8, d_sae=16, k=2))
    data = torch.randn(256, 8)
    calls = []
    result = train_sae(sae, data, TrainConfig(n_steps=25, batch_size=32, log_every=10),
                       progress=False, callback=lambda step, s: calls.append((step, s is sae)))
    assert calls == [(10, True), (20, True), (25, True)]
    assert result.history.step == [10, 20, 25]
