"""A shuffling buffer of bounded memory between activation harvesting and SAE training.

    fill  : copy incoming rows into a [capacity, d] store until it is full (or the source ends)
    shuffle the stored rows; yield batches until only capacity * (1 - refill_fraction) rows
    remain, then fill again; when the source ends, yield what is left, shuffled

Consecutive tokens of one text are highly correlated; training on them in order biases each
step. Mixing through a buffer (as SAELens and Anthropic's pipelines do) decorrelates batches
while holding at most ``capacity`` rows plus one incoming chunk. Taught in Chapter 6.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch

from saelab._checks import check_int_in_range, check_probability

__all__ = ["ActivationBuffer"]


class ActivationBuffer:
    """Shuffled training batches [batch_size, d] from a stream of activation chunks [n_i, d].

    Parameters
    ----------
    source : iterable of Tensor [n_i, d]
        For example ``saelab.lm.iter_activations(...)``.
    capacity : int
        Rows held at most (the store is allocated once, at the first chunk's width and dtype).
    batch_size : int
        Rows per yielded batch; the last batch may be smaller when the source runs dry.
    refill_fraction : float in (0, 1]
        Refill once this fraction of the store has been emitted (0.5: half old, half new rows).
    seed : int
        Seed of the shuffling generator.

    Attributes
    ----------
    peak_rows : int
        Most rows held at once (store plus the unconsumed part of the incoming chunk).
    """

    def __init__(self, source: Iterable[torch.Tensor], capacity: int, batch_size: int,
                 refill_fraction: float = 0.5, seed: int = 0) -> None:
        self.capacity = check_int_in_range("capacity", capacity, 1)
        self.batch_size = check_int_in_range("batch_size", batch_size, 1, capacity)
        self.refill_fraction = check_probability("refill_fraction", refill_fraction)
        if self.refill_fraction == 0:
            raise ValueError("refill_fraction must be in (0, 1], got 0")
        self.source = source
        self.generator = torch.Generator().manual_seed(seed)
        self.peak_rows = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        source = iter(self.source)
        store, n = None, 0  # store: [capacity, d]; rows 0..n-1 are live
        pending = None  # unconsumed tail of the last chunk
        low = self.capacity - max(self.batch_size, int(self.capacity * self.refill_fraction))
        exhausted = False
        while True:
            while n < self.capacity and not exhausted:  # fill
                if pending is None or pending.shape[0] == 0:
                    pending = next(source, None)
                    if pending is None:
                        exhausted = True
                        break
                    if pending.ndim != 2:
                        raise ValueError(f"source chunks must be [n, d], got shape "
                                         f"{tuple(pending.shape)}")
                if store is None:
                    store = pending.new_empty(self.capacity, pending.shape[1])
                take = min(self.capacity - n, pending.shape[0])
                store[n:n + take] = pending[:take]
                n += take
                pending = pending[take:]
                self.peak_rows = max(self.peak_rows, n + pending.shape[0])
            if n == 0:
                return
            perm = torch.randperm(n, generator=self.generator).to(store.device)
            store[:n] = store[:n][perm]
            stop = 0 if exhausted else low  # drain everything once the source is done
            while n > stop and (exhausted or n >= self.batch_size):  # emit from the end
                take = min(self.batch_size, n)
                yield store[n - take:n].clone()
                n -= take
