"""Data-parallel training with ``torch.distributed``: what :func:`saelab.train.train_sae` does
when it runs under ``torchrun --nproc_per_node N`` (an initialised default process group).

Every rank holds the same SAE; each step, each rank takes its shard of the global batch (a
tensor data set: rows ``rank::world`` of the same shuffled batch on every rank; an iterable:
the rank's own stream, e.g. a harvest sharded by rank), and

    gradients      all-reduced and divided by the world size  (what DDP does: the mean over
                   equal shards is the gradient of the global-batch mean loss)
    fired latents  all-reduced (max), so every rank's dead mask is the same
    BatchTopK      the threshold estimate averaged over ranks
    guard, history loss sums and squared errors summed over ranks before any decision

so clipping, Adam and the constraints act identically on every rank and the weights stay equal.
AuxK is a mean over rows like the reconstruction loss, so its gradient averages over ranks in the
same way. Rank 0 shows the progress bar and calls the callback. Chapter 4 (training at scale).

Internal to :mod:`saelab.train`: ``train_sae`` calls these (most on every step) unchecked;
users call ``train_sae``, not this module (hence the empty ``__all__``).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist

__all__: list[str] = []  # internal to saelab.train (see the module docstring)


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when no process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def check_same_config(train_cfg, sae_cfg) -> None:
    """Raise ValueError naming the first field on which the ranks disagree."""
    mine = {f"cfg.{k}": repr(v) for k, v in dataclasses.asdict(train_cfg).items()}
    mine.update({f"sae.cfg.{k}": repr(v) for k, v in dataclasses.asdict(sae_cfg).items()})
    mine["sae family"] = sae_cfg.family
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    for rank, theirs in enumerate(everyone):
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                raise ValueError(f"{key} must be the same on every rank, got {mine.get(key)} on "
                                 f"rank {dist.get_rank()} and {theirs.get(key)} on rank {rank}")


@torch.no_grad()
def broadcast_state(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    for t in module.state_dict().values():
        dist.broadcast(t, src=0)


@torch.no_grad()
def average_gradients(params, world_size: int) -> None:
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world_size


@torch.no_grad()
def all_fired(latents: torch.Tensor, d_sae: int) -> torch.Tensor:
    """Latents that fired on any rank: bool [d_sae], from this rank's ``latents`` (long indices
    or a bool [d_sae] mask); no host-device sync."""
    fired = torch.zeros(d_sae, dtype=torch.int32, device=latents.device)
    fired[latents] = 1
    dist.all_reduce(fired, op=dist.ReduceOp.MAX)
    return fired.bool()


@torch.no_grad()
def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (a new tensor)."""
    t = t.clone()
    dist.all_reduce(t)
    return t


@torch.no_grad()
def average_buffers(module: torch.nn.Module, world_size: int) -> None:
    """Average floating-point buffers over ranks (BatchTopK's threshold estimate)."""
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b /= world_size


@torch.no_grad()
def reduce_guard_stats(stats: torch.Tensor) -> torch.Tensor:
    """[first bad step, err, centred]: max of the first, sums of the others, over ranks."""
    first, sums = stats[:1].clone(), stats[1:].clone()
    dist.all_reduce(first, op=dist.ReduceOp.MAX)
    dist.all_reduce(sums)
    return torch.cat([first, sums])
