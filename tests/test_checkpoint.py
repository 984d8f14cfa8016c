"""Tests for saelab.checkpoint: safetensors round trips and clear errors."""
import json

import pytest
import torch
from safetensors.torch import save_file

import saelab
from saelab.checkpoint import load_sae, read_config, save_sae
from saelab.sae_config import JumpReLUConfig, L1Config, TopKConfig
from saelab.torch_sae import JumpReLUSAE, L1SAE, TopKSAE, make_sae

CONFIGS = [
    L1Config(d_in=8, d_sae=24, l1_coeff=0.3, decoder_norm="unit"),
    L1Config(d_in=8, d_sae=24, l1_coeff=0.2, decoder_norm="weighted"),
    TopKConfig(d_in=8, d_sae=24, k=3, k_aux=5, aux_coeff=0.05),
    JumpReLUConfig(d_in=8, d_sae=24, l0_coeff=0.01, bandwidth=0.02, threshold_init=0.05),
]


def _trained_looking(cfg, dtype=torch.float32):
    torch.manual_seed(0)
    sae = make_sae(cfg, dtype=dtype)
    with torch.no_grad():  # move every parameter off its init so the round trip is meaningful
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p).abs())
    sae.apply_constraints()  # as after a training step: unit rows stay unit
    return sae


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.family}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_every_family(tmp_path, cfg, dtype):
    sae = _trained_looking(cfg, dtype)
    path = tmp_path / "sae.safetensors"
    save_sae(sae, path)
    loaded = load_sae(path, expect=type(cfg))
    assert type(loaded) is type(sae) and loaded.cfg == cfg
    assert loaded.W_dec.dtype == dtype
    for name, p in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], p), name
    x = torch.randn(5, cfg.d_in, dtype=dtype)
    torch.testing.assert_close(loaded(x).x_hat, sae(x).x_hat, rtol=0, atol=0)
    assert read_config(path) == cfg
    # dtype conversion on load
    assert load_sae(path, dtype=torch.float64).W_enc.dtype == torch.float64


def test_metadata_holds_family_config_and_version(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "sae.safetensors"
    save_sae(_trained_looking(CONFIGS[2]), path)
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["saelab_family"] == "topk"
    assert json.loads(meta["saelab_config"])["k"] == 3
    assert meta["saelab_version"] == saelab.__version__


def test_expect_accepts_names_classes_and_configs(tmp_path):
    path = tmp_path / "sae.safetensors"
    save_sae(_trained_looking(CONFIGS[2]), path)
    for expect in ("topk", TopKSAE, TopKConfig, TopKConfig(d_in=8, d_sae=24, k=7),
                   make_sae(TopKConfig(d_in=8, d_sae=24, k=2))):
        assert isinstance(load_sae(path, expect=expect), TopKSAE)


def test_wrong_family_or_shape_is_a_clear_error(tmp_path):
    path = tmp_path / "sae.safetensors"
    save_sae(_trained_looking(CONFIGS[2]), path)
    msg = r"file holds a topk SAE with d_in=8, d_sae=24; expected l1"
    for expect in ("l1", L1SAE, L1Config):
        with pytest.raises(ValueError, match=msg):
            load_sae(path, expect=expect)
    with pytest.raises(ValueError, match=r"holds a topk SAE .*; expected jumprelu"):
        load_sae(path, expect=JumpReLUSAE)
    with pytest.raises(ValueError, match=r"d_sae=24; expected a topk SAE with d_in=8, d_sae=48"):
        load_sae(path, expect=TopKConfig(d_in=8, d_sae=48, k=3))
    with pytest.raises(ValueError, match=r"d_sae=24; expected a topk SAE with d_in=8, d_sae=12"):
        load_sae(path, expect=make_sae(TopKConfig(d_in=8, d_sae=12, k=3)))
    with pytest.raises(ValueError, match="expect must be"):
        load_sae(path, expect="ghost")


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no SAE checkpoint"):
        load_sae(tmp_path / "nope.safetensors")
    path = tmp_path / "sae.safetensors"
    save_sae(_trained_looking(CONFIGS[0]), path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt|could not read"):
        load_sae(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_sae(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not a saelab SAE checkpoint"):
        load_sae(foreign)


def test_tensors_that_disagree_with_the_config(tmp_path):
    path = tmp_path / "bad.safetensors"
    sae = _trained_looking(CONFIGS[0])
    tensors = {k: v.contiguous() for k, v in sae.state_dict().items()}
    tensors["W_dec"] = tensors["W_dec"][:5]
    meta = {"saelab_family": "l1", "saelab_version": saelab.__version__,
            "saelab_config": json.dumps({"d_in": 8, "d_sae": 24, "l1_coeff": 0.3,
                                         "decoder_norm": "unit"})}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match="do not match an l1 SAE|do not match a l1 SAE"):
        load_sae(path)


def test_save_rejects_non_sae(tmp_path):
    with pytest.raises(ValueError, match="sae must be a saelab torch SAE"):
        save_sae(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")
