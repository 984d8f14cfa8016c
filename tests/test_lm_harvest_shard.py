"""Rank-sharded harvesting (saelab.lm.harvesting): under torch.distributed, or with explicit
rank/world_size, each rank harvests windows rank::world_size; the ranks' windows are disjoint and
together give the 1-process harvest. Two gloo processes on saelab-tiny (offline)."""
import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from saelab import lm  # noqa: E402
from saelab.lm.harvesting import rank_shard  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

HOOK, SEQ = "blocks.1.hook_resid_pre", 24


def _texts():
    from saelab.lm.models import SHIPPED_DIR
    body = (SHIPPED_DIR / "heldout.txt").read_text(encoding="utf-8")[:6000]
    return [body[i:i + 1500] for i in range(0, 6000, 1500)]  # 4 documents


def _per_window(model, **kw):
    """Activations of each window separately (batch_size=1): a list with one tensor per window."""
    return [rows.clone() for rows in lm.iter_activations(model, _texts(), HOOK, seq_len=SEQ,
                                                         batch_size=1, progress=False, **kw)]


def _worker(rank, world_size, init_file, out_file, model):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=120))
    try:
        result = {"stream": _per_window(model),  # sharded by the process group
                  "harvest": lm.harvest(model, _texts(), HOOK, seq_len=SEQ, batch_size=4,
                                        progress=False)}
    finally:
        dist.destroy_process_group()
    torch.save(result, f"{out_file}.{rank}")


@pytest.fixture(scope="module")
def model():
    return lm.load_model(lm.SHIPPED_MODEL)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
def test_two_ranks_harvest_disjoint_windows_that_make_up_the_whole(model, tmp_path):
    whole = _per_window(model)  # one process
    assert len(whole) >= 8
    out = tmp_path / "rank"
    # fork (where there is one): the children inherit the imports and the model, no reloading
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(out), model), nprocs=2,
                       start_method=method)
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1)]
    for r, got in enumerate(ranks):
        want = whole[r::2]  # windows rank::2, in order
        assert len(got["stream"]) == len(want)
        assert all(torch.equal(a, b) for a, b in zip(got["stream"], want))
        torch.testing.assert_close(got["harvest"], torch.cat(want))  # batched: to float tolerance
    assert len(ranks[0]["stream"]) + len(ranks[1]["stream"]) == len(whole)  # nothing twice


def test_explicit_rank_and_world_size(model, tmp_path):
    whole = _per_window(model)
    for r in range(3):
        assert all(torch.equal(a, b) for a, b in
                   zip(_per_window(model, rank=r, world_size=3), whole[r::3], strict=True))
    windows = lm.token_windows(model, _texts(), SEQ)  # a tensor corpus, through the disk cache
    rows = list(lm.iter_activations(model, windows, HOOK, batch_size=1, progress=False,
                                    rank=1, world_size=2, cache_dir=tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(rows, whole[1::2], strict=True))
    assert (tmp_path / "rank_1_of_2" / "meta.json").is_file()  # a folder per rank


def test_bad_rank_arguments(model):
    assert rank_shard() == (0, 1) and rank_shard(2, 4) == (2, 4)
    with pytest.raises(ValueError, match="rank and world_size must be given together"):
        rank_shard(rank=1)
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        rank_shard(2, 2)
    with pytest.raises(ValueError, match="world_size must be at least 1"):
        lm.iter_activations(model, _texts(), HOOK, rank=0, world_size=0)
    windows = lm.token_windows(model, _texts(), SEQ, max_windows=2)
    with pytest.raises(ValueError, match="more than rank = 2 windows"):
        lm.harvest(model, windows, HOOK, rank=2, world_size=3, progress=False)
