"""Tests for saelab.toy: the toy model of superposition (Chapter 1)."""
import numpy as np
import pytest
import torch

from saelab.toy import (ToyConfig, ToyModel, geometric_importance, sparsity_sweep, toy_forward,
                        toy_loss, train_toy)


def _instance_reference(model, x):
    """Each instance through the single-instance NumPy reference."""
    W = model.W.detach().double().numpy()
    b = model.b.detach().double().numpy()
    xs = x.double().numpy()
    return np.stack([toy_forward(W[k], b[k], xs[:, k]) for k in range(W.shape[0])], axis=1)


def test_batched_forward_matches_single_instance_reference():
    cfg = ToyConfig(n_features=6, d_hidden=3, n_instances=4)
    model = ToyModel(cfg, seed=0)
    with torch.no_grad():
        model.b.normal_(generator=torch.Generator().manual_seed(1))
    x = torch.rand(10, 4, 6, generator=torch.Generator().manual_seed(2))
    out = model(x)
    assert out.shape == (10, 4, 6)
    np.testing.assert_allclose(out.detach().numpy(), _instance_reference(model, x), atol=1e-5)
    assert model.hidden(x).shape == (10, 4, 3)


def test_toy_forward_numpy_and_torch_agree_and_relu():
    rng = np.random.default_rng(0)
    W, b, x = rng.normal(size=(2, 5)), rng.normal(size=5), rng.uniform(size=(7, 5))
    a = toy_forward(W, b, x)
    t = toy_forward(torch.tensor(W), torch.tensor(b), torch.tensor(x))
    np.testing.assert_allclose(a, t.numpy(), atol=1e-12)
    assert a.min() >= 0
    np.testing.assert_allclose(a, np.maximum((W.T @ W @ x.T).T + b, 0), atol=1e-12)


def test_toy_loss_by_hand_and_batched():
    x = np.array([[1.0, 0.0], [0.5, 0.5]])
    x_hat = np.array([[0.0, 0.0], [0.5, 1.5]])
    imp = np.array([1.0, 0.5])
    # example 0: 1 * 1^2 = 1; example 1: 0.5 * 1^2 = 0.5; mean = 0.75
    assert toy_loss(x, x_hat, imp) == pytest.approx(0.75)
    xb = torch.tensor(np.stack([x, x[:, ::-1].copy()], axis=1))  # [batch, 2 inst, 2]
    xhb = torch.tensor(np.stack([x_hat, x_hat[:, ::-1].copy()], axis=1))
    per = toy_loss(xb, xhb, torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64))
    np.testing.assert_allclose(per.numpy(), [0.75, 0.75])
    with pytest.raises(ValueError, match="importance must have length n_features=2"):
        toy_loss(x, x_hat, np.ones(3))


def test_importance_and_sweep():
    np.testing.assert_allclose(geometric_importance(4, 0.9).numpy(), [1, 0.9, 0.81, 0.729], rtol=1e-6)
    s = sparsity_sweep(5, 0.99)
    assert s[0] == 0 and abs(float(s[-1]) - 0.99) < 1e-6 and bool((s.diff() > 0).all())
    with pytest.raises(ValueError, match="max_sparsity must be in \\[0, 1\\], got 1.5"):
        sparsity_sweep(3, 1.5)
    with pytest.raises(ValueError, match="decay must be positive, got -0.5"):
        geometric_importance(3, -0.5)


@pytest.mark.parametrize("field, value, match", [
    ("n_features", 0, "n_features must be at least 1, got 0"),
    ("d_hidden", -1, "d_hidden must be at least 1, got -1"),
    ("max_sparsity", 1.2, "max_sparsity must be in \\[0, 1\\], got 1.2"),
])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        ToyConfig(**{field: value})


def test_train_rejects_bad_input():
    model = ToyModel(ToyConfig(n_features=3, d_hidden=2, n_instances=2), seed=0)
    with pytest.raises(ValueError, match="feature_probability must be in \\[0, 1\\], got 1.5"):
        train_toy(model, 1.5, torch.ones(3), steps=1, progress=False)
    with pytest.raises(ValueError, match="importance must have length n_features=3, got 4"):
        train_toy(model, 0.5, torch.ones(4), steps=1, progress=False)
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        train_toy(model, 0.5, torch.ones(3), steps=0, progress=False)


def test_training_reduces_loss_and_is_reproducible():
    cfg = ToyConfig(n_features=5, d_hidden=2, n_instances=3)
    p = torch.tensor([1.0, 0.3, 0.05])
    runs = []
    for _ in range(2):
        model = ToyModel(cfg, seed=0)
        hist = train_toy(model, p, cfg.importance(), steps=300, batch_size=256, lr=1e-2, seed=0,
                         progress=False)
        runs.append((hist, model.W.detach().clone()))
    hist = runs[0][0]
    assert hist.shape == (300, 3)
    # measured: the last-50-step mean is 45-70% below the first-10-step mean for every instance
    assert bool((hist[-50:].mean(0) < 0.8 * hist[:10].mean(0)).all())
    assert torch.equal(runs[0][1], runs[1][1])


def test_dense_regime_keeps_d_orthogonal_features():
    """Dense features (S = 0), 5 features in 2 dims: two features kept, orthogonal, rest dropped."""
    cfg = ToyConfig(n_features=5, d_hidden=2, n_instances=1)
    model = ToyModel(cfg, seed=0)
    train_toy(model, 1.0, cfg.importance(), steps=1500, lr=1e-2, batch_size=512, seed=0,
              progress=False)
    W = model.W.detach()[0]  # [2, 5]
    norms = W.norm(dim=0)
    # measured: norms about [1.0, 1.0, 0.02, 0.03, 0.02]; cos(W_0, W_1) about 0.01
    assert bool((norms[:2] > 0.9).all()) and bool((norms[2:] < 0.15).all())
    cos = float(W[:, 0] @ W[:, 1] / (norms[0] * norms[1]))
    assert abs(cos) < 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_and_training_run_on_cuda():
    cfg = ToyConfig(n_features=5, d_hidden=2, n_instances=3)
    cpu = ToyModel(cfg, seed=0)
    gpu = ToyModel(cfg, seed=0, device="cuda")
    assert torch.equal(cpu.W.detach(), gpu.W.detach().cpu())  # same init on every device
    x = torch.rand(16, 3, 5)
    torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), atol=1e-5, rtol=1e-5)
    hist = train_toy(gpu, torch.tensor([1.0, 0.3, 0.05]), cfg.importance(), steps=50,
                     batch_size=128, progress=False)
    assert hist.shape == (50, 3) and hist.device.type == "cpu" and gpu.W.device.type == "cuda"
