"""Checkpoint round trips for the BatchTopK and Gated SAEs (their own parameters and buffers).

Everything goes through the real ``save_sae``/``load_sae``: the safetensors file, the state_dict
(BatchTopK's ``threshold`` is a buffer, Gated has no ``b_enc``) and the config metadata.
"""
from __future__ import annotations

import pytest
import torch

from saelab import checkpoint
from saelab.sae_config import BatchTopKConfig, GatedConfig, MatryoshkaConfig
from saelab.torch_sae import make_sae

CONFIGS = [
    BatchTopKConfig(d_in=8, d_sae=24, k=3, k_aux=5, threshold_decay=0.9),
    GatedConfig(d_in=8, d_sae=24, l1_coeff=0.2),
    MatryoshkaConfig(d_in=8, d_sae=24, k=3, k_aux=5, prefix_sizes=(6, 12, 24), threshold_decay=0.9),
]


def _trained(cfg) -> torch.nn.Module:
    torch.manual_seed(0)
    sae = make_sae(cfg)
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    sae.apply_constraints()  # as after a training step: unit rows stay unit
    sae.train()
    for _ in range(3):  # BatchTopK: estimate the running threshold from a few batches
        sae(torch.randn(16, cfg.d_in))
    return sae


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.family)
def test_round_trip_keeps_parameters_buffers_and_outputs(tmp_path, cfg):
    sae = _trained(cfg)
    path = tmp_path / "sae.safetensors"
    checkpoint.save_sae(sae, path)
    loaded = checkpoint.load_sae(path, expect=cfg.family)
    assert type(loaded) is type(sae) and loaded.cfg == cfg
    assert set(loaded.state_dict()) == set(sae.state_dict())
    for name, t in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], t), name
    if cfg.family in ("batchtopk", "matryoshka"):
        assert "threshold" in dict(sae.named_buffers()) and float(loaded.threshold) > 0
    else:
        assert {"b_gate", "r_mag", "b_mag"} <= set(loaded.state_dict())
        assert not hasattr(loaded, "b_enc")
    sae.eval()  # load_sae returns the SAE in eval mode: BatchTopK uses the stored threshold
    x = torch.randn(5, cfg.d_in)
    torch.testing.assert_close(loaded(x).x_hat, sae(x).x_hat, rtol=0, atol=0)


def test_expect_by_class_tells_batchtopk_from_its_topk_parent(tmp_path):
    from saelab.torch_sae import BatchTopKSAE, TopKSAE

    path = tmp_path / "batchtopk.safetensors"
    checkpoint.save_sae(_trained(CONFIGS[0]), path)
    assert isinstance(checkpoint.load_sae(path, expect=BatchTopKSAE), BatchTopKSAE)
    with pytest.raises(ValueError, match="holds a batchtopk SAE .* expected topk"):
        checkpoint.load_sae(path, expect=TopKSAE)
