"""The loop's firing bookkeeping (saelab.train.firing) and kept memory (saelab.train.memory)."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest
import torch

from saelab.dead_latents import DeadLatentTracker
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, train_sae
from saelab.train.firing import step_firing
from saelab.train.memory import can_keep_memory, keep_freed_memory
from sae_cases import family_configs


@pytest.mark.parametrize("name", sorted(family_configs(8, 32)))
def test_dense_firing_matches_a_scan_of_the_codes(name):
    """max_b f_bi > 0 is f != 0 somewhere only because every family's codes are >= 0."""
    torch.manual_seed(0)
    sae = make_sae(family_configs(8, 32, threshold_init=0.05)[name])
    x = torch.randn(64, 8) * 3
    out = sae._forward(x, None)
    assert out.f.min() >= 0, f"{name} codes can be negative; step_firing's rule breaks"
    fired, n = step_firing(out, sparse=False, d_sae=32)
    assert torch.equal(fired, (out.f != 0).any(dim=0))
    assert int(n) == int((out.f != 0).sum()) > 0


def test_sparse_and_dense_firing_give_the_same_tracker_state():
    torch.manual_seed(0)
    sae = make_sae(family_configs(8, 64)["topk"])
    x = torch.randn(32, 8)
    dense, sparse = DeadLatentTracker(64, 10), DeadLatentTracker(64, 10)
    for tracker, path in ((dense, False), (sparse, True)):
        tracker.tokens_since_fired += 50
        out = (sae._forward_sparse if path else sae._forward)(x, None)
        fired, n = step_firing(out, path, 64)
        tracker.update_fired(fired, 32)
        assert int(n) == 32 * 5  # k = 5 positive codes per row on this data
    assert torch.equal(dense.tokens_since_fired, sparse.tokens_since_fired)
    assert 0 < int((dense.tokens_since_fired == 0).sum()) < 64


_FAULTS_SCRIPT = """
import json, resource, torch
from saelab.train.memory import keep_freed_memory

def faults(n, mib=64):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        torch.empty(mib << 18).fill_(1.0)  # float32: mib MiB, touched, then freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

before = faults(8)
with keep_freed_memory():
    with keep_freed_memory():  # nested use: only the outer one restores
        faults(1)  # the first block is faulted in once ...
    kept = faults(8)  # ... and reused by the next ones
after = faults(4, mib=256)  # larger than any block left free in the heap: mmapped again
print(json.dumps({"before": before, "kept": kept, "after": after}))
"""


@pytest.mark.skipif(not can_keep_memory(), reason="needs glibc (Linux)")
def test_kept_memory_stops_refaulting_large_temporaries():
    """In a fresh process, so that no earlier test's heap decides where blocks come from."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=120, check=True)
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    pages = (64 << 20) // resource.getpagesize()  # 16,384 on 4 KiB pages
    assert counts["before"] > 7 * pages  # glibc default: every 64 MiB block is mmapped afresh
    # measured: 0, or now and then one block (16,384) when the heap's top was split once
    assert counts["kept"] < 2 * pages, counts
    assert counts["after"] > 3 * 4 * pages, counts  # defaults restored on exit


def test_keep_memory_option_is_checked_and_gives_the_same_training():
    with pytest.raises(ValueError, match="keep_memory must be None, True or False, got 'yes'"):
        TrainConfig(keep_memory="yes")
    x = torch.randn(512, 8, generator=torch.Generator().manual_seed(1))
    weights = []
    for keep in (True, False):
        torch.manual_seed(0)
        sae = make_sae(family_configs(8, 32)["topk"])
        train_sae(sae, x, TrainConfig(n_steps=20, batch_size=64, keep_memory=keep),
                  progress=False)
        weights.append(sae.W_dec.detach().clone())
    assert torch.equal(*weights)
