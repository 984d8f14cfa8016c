"""Each SAE family recovers the true features of synthetic data (Chapter 2 and 4 figures).

Data: 512 unit-norm true features in d_in = 64 (superposition, 8 features per dimension), each
active with probability 5/512 (about 5 per sample) with magnitude uniform in [0, 1]; 20,000
training samples. Each family trains a 512-latent SAE with the settings below (tuned by hand,
single thread). We measure the mean max cosine similarity (MMCS) between the learned decoder
rows and the true features in both directions and assert it stays a small margin below the
value measured when the test was written (noted next to each threshold).
"""
import pytest
import torch

from saelab.metrics import fvu, mmcs
from saelab.sae_config import BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config, TopKConfig
from saelab.synthetic import make_sparse_data
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, train_sae

D_IN, N_FEATURES, N_ACTIVE = 64, 512, 5

# family -> (SAE config, training config, min learned->true, min true->learned)
CASES = {
    "l1": (L1Config(D_IN, 512, l1_coeff=0.3, decoder_norm="weighted"),
           TrainConfig(n_steps=2000, batch_size=256, lr=3e-3),
           0.975, 0.965),  # measured 0.9877 / 0.9777 (held-out L0 6.6, FVU 0.28)
    "topk": (TopKConfig(D_IN, 512, k=5, k_aux=64),
             TrainConfig(n_steps=3000, batch_size=256, lr=3e-3),
             0.965, 0.970),  # measured 0.9747 / 0.9783 (held-out L0 4.8, FVU 0.21)
    "jumprelu": (JumpReLUConfig(D_IN, 512, l0_coeff=0.05, bandwidth=0.05, threshold_init=0.1),
                 TrainConfig(n_steps=3000, batch_size=256, lr=3e-3),
                 0.885, 0.895),  # measured 0.8959 / 0.9079 (0.9027 / 0.9134 before the
                                 # fused Adam of issue 19: this run is sensitive to rounding)
    "batchtopk": (BatchTopKConfig(D_IN, 512, k=5, k_aux=64),
                  TrainConfig(n_steps=3000, batch_size=256, lr=3e-3),
                  0.910, 0.930),  # measured 0.9222 / 0.9411 (held-out L0 5.4, FVU 0.30)
    "gated": (GatedConfig(D_IN, 512, l1_coeff=1.0),
              TrainConfig(n_steps=2000, batch_size=256, lr=3e-3),
              0.950, 0.950),  # measured 0.9614 / 0.9606 (held-out L0 3.1, FVU 0.35)
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def toy():
    train = make_sparse_data(20_000, d_in=D_IN, n_features=N_FEATURES, n_active=N_ACTIVE, seed=0)
    test = make_sparse_data(4_000, dictionary=train.dictionary, n_active=N_ACTIVE, seed=1)
    return train, test


def test_untrained_sae_does_not_recover(toy):
    """The thresholds below mean something: a random decoder scores far lower."""
    train, _ = toy
    torch.manual_seed(0)
    res = mmcs(make_sae(CASES["topk"][0]).W_dec, train.dictionary)
    assert res.a_to_b < 0.45 and res.b_to_a < 0.45  # measured 0.369 / 0.370


@pytest.mark.slow
@pytest.mark.parametrize("family", list(CASES))
def test_family_recovers_true_features(family, toy):
    train, test = toy
    sae_cfg, train_cfg, min_learned_to_true, min_true_to_learned = CASES[family]
    torch.manual_seed(0)
    sae = make_sae(sae_cfg)
    train_sae(sae, train.x, train_cfg, progress=False)
    res = mmcs(sae.W_dec, train.dictionary)
    assert res.a_to_b >= min_learned_to_true, f"learned->true MMCS {res.a_to_b:.3f}"
    assert res.b_to_a >= min_true_to_learned, f"true->learned MMCS {res.b_to_a:.3f}"
    sae.eval()  # inference mode (BatchTopK switches to its learned threshold)
    with torch.no_grad():
        out = sae(test.x)
    assert fvu(test.x, out.x_hat) < 0.45  # held-out reconstruction; measured 0.21 to 0.39
