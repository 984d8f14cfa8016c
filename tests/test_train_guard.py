"""The divergence guard and the interrupt path of train_sae (saelab/train/guard.py, issue 12)."""
import math

import pytest
import torch

from saelab.sae_config import BatchTopKConfig, JumpReLUConfig, L1Config, TopKConfig
from saelab.synthetic import make_sparse_data
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, TrainingDivergedError, train_sae
from saelab.train.guard import check_lr_fits

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILIES = {
    "topk": TopKConfig(d_in=16, d_sae=64, k=4, k_aux=8),
    "batchtopk": BatchTopKConfig(d_in=16, d_sae=64, k=4, k_aux=8),
    "jumprelu": JumpReLUConfig(d_in=16, d_sae=64, l0_coeff=0.01, bandwidth=0.01,
                               threshold_init=0.01),
    "l1": L1Config(d_in=16, d_sae=64, l1_coeff=0.05),
}


@pytest.fixture(scope="module")
def data():
    return make_sparse_data(2048, d_in=16, n_features=48, n_active=3, seed=0).x


def _sae(name):
    torch.manual_seed(0)
    return make_sae(FAMILIES[name])


def _usable(sae, x):
    for name, p in sae.named_parameters():
        assert bool(torch.isfinite(p).all()), name
    with torch.no_grad():
        out = sae(x[:64])
    fvu = float((x[:64] - out.x_hat).pow(2).sum() / (x[:64] - x[:64].mean(0)).pow(2).sum())
    assert math.isfinite(out.loss.item()) and fvu < 10  # measured: below 2 for every family
    return fvu


@pytest.mark.parametrize("name", ["topk", "jumprelu", "batchtopk"])
@pytest.mark.parametrize("lr", [100.0, 1e6])
def test_large_lr_stops_with_divergence_and_restores(name, lr, data):
    sae = _sae(name)
    cfg = TrainConfig(n_steps=40, batch_size=64, lr=lr, log_every=10)
    with pytest.raises(TrainingDivergedError, match="lower learning rate") as info:
        train_sae(sae, data, cfg, progress=False)
    err = info.value
    assert 1 < err.step <= 41 and len(err.history.step) == (err.step - 1) // 10
    _usable(sae, data)


@pytest.mark.parametrize("name", ["topk", "jumprelu", "l1"])
def test_one_step_at_lr_1e30_is_caught_after_the_final_step(name, data):
    sae = _sae(name)
    with pytest.raises(TrainingDivergedError, match="after step 0") as info:
        train_sae(sae, data, TrainConfig(n_steps=1, batch_size=64, lr=1e30), progress=False)
    assert info.value.step == 1
    _usable(sae, data)


def test_lr_that_would_overflow_adam_is_rejected(data):
    msg = r"lr must be below 1\.08e\+37 for torch\.float32 parameters .* got 1e\+39"
    with pytest.raises(ValueError, match=msg):
        train_sae(_sae("topk"), data, TrainConfig(n_steps=1, batch_size=64, lr=1e39),
                  progress=False)
    check_lr_fits(1e39, (0.9, 0.999), torch.float64)  # fine in float64
    with pytest.raises(ValueError, match="lr must be finite"):
        TrainConfig(lr=float("inf"))


def test_healthy_training_is_not_stopped(data):
    # JumpReLU starts with nearly every latent on (FVU far above 1) and must not trip the bound
    for name in FAMILIES:
        res = train_sae(_sae(name), data, TrainConfig(n_steps=30, batch_size=64, lr=3e-3,
                                                      log_every=1), progress=False)
        assert len(res.history.step) == 30


def test_keyboard_interrupt_keeps_partial_history_and_valid_sae(data):
    def batches():
        for i in range(7):
            yield data[64 * i:64 * (i + 1)]
        raise KeyboardInterrupt

    sae = _sae("topk")
    with pytest.warns(UserWarning, match="interrupted after 7 of 20 steps"):
        with pytest.raises(KeyboardInterrupt) as info:
            train_sae(sae, batches(), TrainConfig(n_steps=20, log_every=5), progress=False)
    partial = info.value.partial_result
    assert partial.sae is sae and partial.history.step == [5, 7]
    assert partial.history.tokens == [320, 448]
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))
    assert sae.training  # mode restored
