"""train_sae under torch.distributed: 2 CPU processes (gloo) train the same weights as 1 process
on the same global batches (saelab/train/distributed.py)."""
import datetime

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from saelab.sae_config import JumpReLUConfig, TopKConfig
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, train_sae

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                 reason="needs torch.distributed with gloo")]

SAES = {"topk": TopKConfig(d_in=16, d_sae=64, k=4, k_aux=8),  # sparse path (64 >= 8 * 4)
        "jumprelu": JumpReLUConfig(d_in=16, d_sae=64, l0_coeff=0.01, bandwidth=0.01,
                                   threshold_init=0.01)}  # dense path


def _train_all(lr=3e-3):
    data = torch.randn(512, 16, generator=torch.Generator().manual_seed(1))
    out = {}
    for name, cfg in SAES.items():
        torch.manual_seed(0)
        sae = make_sae(cfg)
        res = train_sae(sae, data, TrainConfig(n_steps=12, batch_size=64, lr=lr, log_every=4,
                                               dead_window_tokens=10**6, b_dec_init="mean"),
                        progress=False)
        out[name] = ({k: v.clone() for k, v in sae.state_dict().items()}, res.history,
                     res.tokens_since_fired)
    return out


def _worker(rank, world_size, init_file, out_file, lr_by_rank):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=120))
    try:
        result = _train_all(lr_by_rank[rank])
    except ValueError as err:
        result = str(err)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        torch.save(result, out_file)


def _spawn(tmp_path, lr_by_rank):
    out_file = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out_file), lr_by_rank), nprocs=2)
    return torch.load(out_file, weights_only=False)


def test_two_processes_train_the_same_weights_as_one(tmp_path):
    single = _train_all()
    double = _spawn(tmp_path, [3e-3, 3e-3])
    for name in SAES:
        (w1, h1, t1), (w2, h2, t2) = single[name], double[name]
        for key in w1:
            torch.testing.assert_close(w2[key], w1[key], atol=1e-5, rtol=1e-5)
        assert h2.tokens == h1.tokens == [256, 512, 768]
        assert h2.recon == pytest.approx(h1.recon, rel=1e-4)  # means over both shards
        assert h2.loss == pytest.approx(h1.loss, rel=1e-4)
        # each shard is centred on its own mean, so the 2-process FVU reads a little higher
        assert h2.fvu == pytest.approx(h1.fvu, rel=0.05)  # measured 1.7% higher
        assert torch.equal(t1, t2)


def test_ranks_that_disagree_fail_at_start_naming_the_field(tmp_path):
    message = _spawn(tmp_path, [3e-3, 1e-3])
    assert "cfg.lr must be the same on every rank" in message
