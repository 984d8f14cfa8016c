"""Accelerator options of train_sae (saelab/train/device.py): CPU fallbacks here, CUDA on a GPU."""
import pytest
import torch

from saelab.sae_config import BatchTopKConfig, TopKConfig
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, train_sae

pytestmark = pytest.mark.usefixtures("one_thread")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _run(device="cpu", **options):
    torch.manual_seed(0)
    sae = make_sae(TopKConfig(d_in=16, d_sae=128, k=4, k_aux=8), device=device)
    data = torch.randn(1024, 16, device=device)
    cfg = TrainConfig(n_steps=20, batch_size=64, log_every=10, **options)
    return sae, train_sae(sae, data, cfg, progress=False)


def test_cpu_falls_back_with_warnings():
    with pytest.warns(UserWarning, match="precision='bf16' needs a CUDA device"):
        sae, res = _run(precision="bf16")
    assert sae.W_enc.dtype == torch.float32 and len(res.history.step) == 2
    with pytest.warns(UserWarning, match="compile=True is used on CUDA only"):
        _run(compile=True)
    before = torch.backends.cuda.matmul.allow_tf32
    _run(tf32=not before)
    assert torch.backends.cuda.matmul.allow_tf32 == before  # untouched off CUDA


def test_bad_options():
    with pytest.raises(ValueError, match="precision must be one of .*got 'fp16'"):
        TrainConfig(precision="fp16")


@pytest.mark.gpu
@needs_cuda
def test_bf16_autocast_keeps_fp32_master_weights_and_learns():
    sae, res = _run(device="cuda", precision="bf16")
    assert all(p.dtype == torch.float32 for p in sae.parameters())
    assert res.history.fvu[-1] < res.history.fvu[0]


@pytest.mark.gpu
@needs_cuda
def test_compile_and_tf32_match_eager_float32():
    a, ra = _run(device="cuda", tf32=False)
    b, rb = _run(device="cuda", tf32=False, compile=True)
    torch.testing.assert_close(a.W_dec, b.W_dec, atol=1e-4, rtol=1e-4)
    c, rc = _run(device="cuda", tf32=True)
    assert abs(rc.history.fvu[-1] - ra.history.fvu[-1]) < 0.05


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("family", ["topk", "batchtopk"])
def test_sparse_forward_with_dead_latents_does_not_sync(family):
    """AuxK keeps the dead count on the device and BatchTopK's threshold update uses
    torch.where: a sparse forward with dead latents makes no host-device sync."""
    cls = {"topk": TopKConfig, "batchtopk": BatchTopKConfig}[family]
    sae = make_sae(cls(d_in=64, d_sae=1024, k=8, k_aux=32), device="cuda")
    x = torch.randn(256, 64, device="cuda")
    dead = torch.rand(1024, device="cuda") < 0.1
    sae._forward_sparse(x, dead)  # warm-up: lazy initialisation may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = sae._forward_sparse(x, dead)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert float(out.aux_loss) > 0
