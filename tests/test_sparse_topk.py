"""The sparse TopK path gives the dense path's numbers and gradients (torch_sae/sparse.py)."""
import numpy as np
import pytest
import torch

from saelab.gradcheck import central_differences, relative_error
from saelab.sae_config import BatchTopKConfig, MatryoshkaConfig, TopKConfig
from saelab.torch_sae import make_sae
from saelab.torch_sae.sparse import (KeptPreActs, decode_sparse, fired_latents, sparse_codes,
                                     to_dense, topk_selection)
from saelab.train import SPARSE_MIN_RATIO, TrainConfig, train_sae, use_sparse_path

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = {
    "topk": TopKConfig(d_in=8, d_sae=40, k=4, k_aux=6),
    "batchtopk": BatchTopKConfig(d_in=8, d_sae=40, k=4, k_aux=6),
    "matryoshka": MatryoshkaConfig(d_in=8, d_sae=40, k=4, k_aux=6, prefix_sizes=(5, 15, 40)),
    "matryoshka_topk": MatryoshkaConfig(d_in=8, d_sae=40, k=4, k_aux=6, prefix_sizes=(10, 40),
                                        activation="topk"),
}


def _sae(name, dtype, seed=0):
    torch.manual_seed(seed)
    sae = make_sae(CONFIGS[name], dtype=dtype)
    with torch.no_grad():  # move off the symmetric init so every term has a gradient
        sae.b_dec.normal_(0, 0.5)
        sae.b_enc.normal_(0, 0.1)
    return sae


def _grads(sae, fn, x, dead):
    sae.zero_grad(set_to_none=True)
    out = fn(x, dead)
    out.loss.backward()
    return out, {name: p.grad.clone() for name, p in sae.named_parameters()}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("dead_frac", [0.0, 0.5, 1.0])
def test_sparse_forward_matches_dense(name, dtype, tol, dead_frac):
    sae = _sae(name, dtype)
    x = torch.randn(16, 8, dtype=dtype, generator=torch.Generator().manual_seed(1))
    dead = torch.rand(40, generator=torch.Generator().manual_seed(2)) < dead_frac
    dense, g_dense = _grads(sae, sae.forward, x, dead)
    sparse, g_sparse = _grads(sae, sae.sparse_forward, x, dead)
    for field in ("x_hat", "loss", "recon_loss", "aux_loss"):
        torch.testing.assert_close(getattr(sparse, field), getattr(dense, field), atol=tol,
                                   rtol=tol)
    torch.testing.assert_close(to_dense(sparse.codes, 40), dense.f.detach(), atol=tol, rtol=tol)
    assert (dense.aux_loss > 0) == (dead_frac > 0)
    for key in g_dense:
        torch.testing.assert_close(g_sparse[key], g_dense[key], atol=tol, rtol=tol)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sparse_gradients_match_finite_differences(name):
    sae = _sae(name, torch.float64)
    x = torch.randn(6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    dead = None  # AuxK's stop-gradient on e is invisible to finite differences (dense test above)
    _, grads = _grads(sae, sae.sparse_forward, x, dead)
    params = {n: p.detach().numpy() for n, p in sae.named_parameters()}  # views: shared memory

    def objective():
        with torch.no_grad():
            return float(sae.sparse_forward(x, dead).loss)

    numeric = central_differences(objective, params, eps=1e-6)
    for key, value in numeric.items():
        assert relative_error(grads[key].numpy(), value) < 1e-6, key  # measured 2.5e-10 to 3.7e-10


def test_kept_pre_acts_input_gradient_and_prefix_decode():
    torch.manual_seed(0)
    d_in, d_sae, batch = 5, 12, 4
    x = torch.randn(batch, d_in, dtype=torch.float64, requires_grad=True)
    W_enc = torch.randn(d_in, d_sae, dtype=torch.float64, requires_grad=True)
    b_enc = torch.randn(d_sae, dtype=torch.float64, requires_grad=True)
    b_dec = torch.randn(d_in, dtype=torch.float64, requires_grad=True)
    W_dec = torch.randn(d_sae, d_in, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        pre = (x - b_dec) @ W_enc + b_enc
    rows, latents, kept = topk_selection(pre, 3)

    def fn(x, W_enc, b_enc, b_dec, W_dec):  # every input of KeptPreActs and the decoder
        codes = sparse_codes(x, W_enc, b_enc, b_dec, rows, latents,
                             ((x - b_dec) @ W_enc + b_enc).detach()[rows, latents])
        return decode_sparse(codes, W_dec, limit=7)

    assert torch.autograd.gradcheck(fn, (x, W_enc, b_enc, b_dec, W_dec))
    # the prefix sum uses only latents < 7: equal to the dense product over that prefix
    f = torch.relu(pre).new_zeros(batch, d_sae)
    f[rows, latents] = torch.relu(kept)
    want = f[:, :7] @ W_dec[:7]
    torch.testing.assert_close(fn(x, W_enc, b_enc, b_dec, W_dec), want.detach())
    assert KeptPreActs.__doc__


def test_fired_latents_skip_zero_codes():
    pre = torch.tensor([[3.0, -1.0, 2.0, -5.0], [-1.0, -2.0, -3.0, 4.0]])
    rows, latents, kept = topk_selection(pre, 2)
    codes = sparse_codes(torch.zeros(2, 1), torch.zeros(1, 4), torch.zeros(4), torch.zeros(1),
                         rows, latents, kept)
    assert sorted(fired_latents(codes).tolist()) == [0, 2, 3]  # row 1 keeps -1.0: not fired


def test_training_on_either_path_gives_the_same_weights():
    torch.manual_seed(0)
    data = torch.randn(512, 8, dtype=torch.float64)
    results = []
    for sparse in (False, True):
        sae = _sae("topk", torch.float64)
        cfg = TrainConfig(n_steps=20, batch_size=32, lr=1e-3, log_every=5,
                          dead_window_tokens=64, sparse=sparse)
        res = train_sae(sae, data, cfg, progress=False)
        results.append((sae, res))
    (a, ra), (b, rb) = results
    assert max(ra.history.dead_frac) > 0  # AuxK ran on both paths
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-10, rtol=1e-10)
    assert torch.equal(ra.tokens_since_fired, rb.tokens_since_fired)
    np.testing.assert_allclose(ra.history.fvu, rb.history.fvu, rtol=1e-9)


def test_sparse_path_rule_and_bad_input():
    assert use_sparse_path(make_sae(TopKConfig(d_in=8, d_sae=64, k=8)))  # 64 >= 8 * 8
    assert not use_sparse_path(make_sae(TopKConfig(d_in=8, d_sae=64, k=9)))
    assert SPARSE_MIN_RATIO == 8
    assert not use_sparse_path(make_sae(TopKConfig(d_in=8, d_sae=64, k=8)), sparse=False)
    from saelab.sae_config import L1Config
    with pytest.raises(ValueError, match="sparse must be None or False for a l1 SAE"):
        use_sparse_path(make_sae(L1Config(d_in=8, d_sae=16)), sparse=True)
    with pytest.raises(ValueError, match="sparse must be None, True or False, got 'yes'"):
        TrainConfig(sparse="yes")
    sae = make_sae(CONFIGS["batchtopk"]).eval()
    with pytest.raises(ValueError, match="needs training mode"):
        sae.sparse_forward(torch.randn(4, 8))
    with pytest.raises(ValueError, match=r"x must have shape \(any, 8\)"):
        make_sae(CONFIGS["topk"]).sparse_forward(torch.randn(4, 7))


def test_auxk_keeps_latents_alive_at_a_high_learning_rate():
    # At lr 1e-2 many TopK latents are pushed below zero on every input. AuxK codes that keep
    # their sign still give those latents a gradient; with a ReLU on them (the old saelab
    # default, and sparsify's) 46.5% never fired on held-out data, against 27.7% now, at the
    # same held-out FVU (0.1315 vs 0.1308). (AuxK divided by the residual's variance, saelab
    # before issue 19, was stronger here: 9.4%; SAELens 6.54 on this data: 21.9%.)
    from saelab.synthetic import make_sparse_data
    d = make_sparse_data(29600, d_in=32, n_features=128, n_active=3, seed=0)
    x, held = d.x[:-4000], d.x[-4000:]
    torch.manual_seed(0)
    sae = make_sae(TopKConfig(d_in=32, d_sae=256, k=4, k_aux=16))
    cfg = TrainConfig(n_steps=400, batch_size=256, lr=1e-2, dead_window_tokens=5000,
                      log_every=50)
    train_sae(sae, x, cfg, progress=False)
    with torch.no_grad():
        f = sae.encode(held)
        fvu = float((held - sae.decode(f)).pow(2).sum() / (held - held.mean(0)).pow(2).sum())
    never = float(((f != 0).sum(0) == 0).float().mean())
    assert never < 0.35 and fvu < 0.16  # measured 0.277 and 0.131


def test_sparse_helpers_bad_input():
    pre = torch.randn(4, 10)
    with pytest.raises(ValueError, match=r"k must be in 1..10, got 11"):
        topk_selection(pre, 11)
    with pytest.raises(TypeError, match="pre must be a floating-point tensor"):
        topk_selection(torch.ones(4, 10, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"pre must be 2-dimensional"):
        topk_selection(torch.randn(10), 2)
    with pytest.raises(ValueError, match=r"pre contains 1 NaN"):  # NaN would be "selected"
        topk_selection(torch.where(pre == pre[0, 0], float("nan"), pre), 2)
    rows, latents, kept = topk_selection(pre, 2)
    args = (torch.zeros(4, 3), torch.zeros(3, 10), torch.zeros(10), torch.zeros(3))
    with pytest.raises(TypeError, match="latents must be a torch.long tensor"):
        sparse_codes(*args, rows, latents.float(), kept)
    with pytest.raises(ValueError, match="rows must be non-decreasing"):
        sparse_codes(*args, rows.flip(0), latents, kept)
    codes = sparse_codes(*args, rows, latents, kept)
    with pytest.raises(ValueError, match=r"limit must be in 0..10, got 11"):
        decode_sparse(codes, torch.zeros(10, 3), limit=11)
    with pytest.raises(TypeError, match="codes must be a SparseCodes"):
        decode_sparse((rows, latents), torch.zeros(10, 3))


@pytest.mark.parametrize("n_dead", [3, 12, 40])
def test_auxk_dense_and_gather_forms_agree(monkeypatch, n_dead):
    """_auxk_decode multiplies densely over the dead columns while n_dead <= 4 k_aux, else it
    gathers: both forms give the same loss and gradients (float64)."""
    from saelab.torch_sae import sparse as sparse_mod
    x = torch.randn(16, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dead = torch.zeros(40, dtype=torch.bool)
    dead[torch.randperm(40, generator=torch.Generator().manual_seed(3))[:n_dead]] = True
    results = []
    for ratio in (0, 10**6):  # always gather / always dense
        monkeypatch.setattr(sparse_mod, "AUXK_DENSE_MAX_RATIO", ratio)
        sae = _sae("topk", torch.float64)
        results.append(_grads(sae, sae.sparse_forward, x, dead))
    (gather, g_gather), (dense, g_dense) = results
    assert float(dense.aux_loss) > 0
    torch.testing.assert_close(dense.aux_loss, gather.aux_loss, atol=1e-12, rtol=1e-12)
    for key in g_dense:
        torch.testing.assert_close(g_dense[key], g_gather[key], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", ["topk", "batchtopk", "matryoshka"])
@pytest.mark.parametrize("n_dead", [0, 3, 40])
def test_auxk_without_sync_matches_the_cpu_path(monkeypatch, name, n_dead):
    """On an accelerator AuxK keeps the dead count on the device (_auxk_decode_no_sync): the
    same loss and gradients as the CPU path, with no latent dead, fewer than k_aux, or all."""
    from saelab.torch_sae import topk as topk_mod
    x = torch.randn(16, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dead = torch.zeros(40, dtype=torch.bool)
    dead[torch.randperm(40, generator=torch.Generator().manual_seed(3))[:n_dead]] = True
    results = []
    for no_sync in (False, True):
        monkeypatch.setattr(topk_mod, "AUX_WITHOUT_SYNC", no_sync)
        sae = _sae(name, torch.float64)
        results.append(_grads(sae, sae.sparse_forward, x, dead))
    (cpu, g_cpu), (acc, g_acc) = results
    assert (float(acc.aux_loss) > 0) == (n_dead > 0)
    torch.testing.assert_close(acc.loss, cpu.loss, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(acc.aux_loss, cpu.aux_loss, atol=1e-12, rtol=1e-12)
    for key in g_cpu:
        torch.testing.assert_close(g_acc[key], g_cpu[key], atol=1e-12, rtol=1e-12)
