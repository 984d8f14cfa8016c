"""Transcoder (Chapter 8): forward/backward invariants, training on pairs, checkpoints, bad
input."""
import pytest
import torch

from saelab.checkpoint import load_sae, save_sae
from saelab.torch_sae import Transcoder, TranscoderConfig, make_sae, pair_rows, split_pair
from saelab.train import TrainConfig, train_sae


def _tc(skip=False, **kw):
    torch.manual_seed(0)
    cfg = TranscoderConfig(**{**dict(d_in=6, d_out=4, d_sae=16, k=3, skip=skip), **kw})
    return Transcoder(cfg, dtype=torch.float64)


def test_forward_shapes_sparsity_and_loss_terms():
    tc = _tc()
    x, y = torch.randn(10, 6, dtype=torch.float64), torch.randn(10, 4, dtype=torch.float64)
    out = tc(x, target=y)
    assert out.x_hat.shape == (10, 4) and out.f.shape == (10, 16)
    assert int((out.f != 0).sum(1).max()) <= 3 and bool((out.f >= 0).all())
    assert torch.allclose(out.recon_loss, (y - out.x_hat).pow(2).sum(1).mean())
    assert torch.allclose(out.loss, out.recon_loss)  # no dead mask: no AuxK term
    assert torch.allclose(tc.predict(x), out.x_hat)


def test_skip_connection_gets_gradient_and_is_linear():
    tc = _tc(skip=True)
    x, y = torch.randn(10, 6, dtype=torch.float64), torch.randn(10, 4, dtype=torch.float64)
    tc(x, target=y).loss.backward()
    assert tc.W_skip.grad is not None and float(tc.W_skip.grad.abs().sum()) > 0
    with torch.no_grad():
        tc.W_skip.copy_(torch.randn(6, 4))
        f = torch.zeros(10, 16, dtype=torch.float64)
        assert torch.allclose(tc.predict(x, f), tc.b_dec + x @ tc.W_skip)


def test_auxk_uses_dead_latents():
    tc = _tc()
    x, y = torch.randn(10, 6, dtype=torch.float64), torch.randn(10, 4, dtype=torch.float64)
    dead = torch.zeros(16, dtype=torch.bool)
    dead[:8] = True
    out = tc(x, dead_mask=dead, target=y)
    assert float(out.aux_loss) > 0
    assert torch.allclose(out.loss, out.recon_loss + tc.cfg.aux_coeff * out.aux_loss)


def test_train_sae_trains_a_transcoder_on_pair_rows():
    torch.manual_seed(1)
    x = torch.randn(3000, 8)
    y = torch.relu(x @ torch.randn(8, 5))
    tc = Transcoder(TranscoderConfig(d_in=8, d_out=5, d_sae=64, k=4))
    res = train_sae(tc, pair_rows(x, y), TrainConfig(n_steps=200, batch_size=128, lr=3e-3),
                    progress=False)
    assert res.history.fvu[-1] < 0.3  # measured 0.17
    assert res.history.fvu[-1] < res.history.fvu[0]
    assert abs(res.history.l0[-1] - 4) < 1e-6


@pytest.mark.parametrize("skip", [False, True])
def test_checkpoint_round_trip(tmp_path, skip):
    tc = _tc(skip=skip)
    save_sae(tc, tmp_path / "tc.safetensors")
    back = load_sae(tmp_path / "tc.safetensors", expect="transcoder")
    assert back.cfg == tc.cfg
    x = torch.randn(5, 6, dtype=torch.float64)
    assert torch.allclose(back.predict(x), tc.predict(x))
    assert isinstance(make_sae(tc.cfg), Transcoder)


def test_pair_rows_split_pair_round_trip_and_errors():
    x, y = torch.randn(4, 3), torch.randn(4, 2)
    a, b = split_pair(pair_rows(x, y), 3)
    assert torch.equal(a, x) and torch.equal(b, y)
    with pytest.raises(ValueError, match="same number of rows"):
        pair_rows(x, y[:3])
    with pytest.raises(ValueError, match="d_in"):
        split_pair(pair_rows(x, y), 5)


def test_bad_input_names_the_argument():
    tc = _tc()
    x = torch.randn(4, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="target"):
        tc(x)
    with pytest.raises(ValueError, match="target"):
        tc(x, target=torch.randn(4, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="x"):
        tc.predict(torch.randn(4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="d_out"):
        TranscoderConfig(d_out=0)
    with pytest.raises(ValueError, match="skip"):
        TranscoderConfig(skip="yes")
    with pytest.raises(ValueError, match="cfg"):
        Transcoder(object())
