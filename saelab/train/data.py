"""Data handling of :func:`saelab.train.train_sae`: shuffled batches of a tensor, or a stream.

A tensor of shape (n, d_in) is checked once and sampled in shuffled batches, a fresh order each
epoch; an iterable is consumed in order, one batch per step, each checked as it arrives. Both
also give the sample that initialises ``b_dec`` and a pool drawer for resampling (Chapter 2).
"""
from __future__ import annotations

import itertools
from typing import Iterable, Iterator

import numpy as np
import torch

from saelab._checks import check_finite, check_instance, check_int_in_range, check_shape
from saelab.geometric_median import geometric_median

__all__ = ["prepare_data"]


def _as_tensor(name: str, batch) -> torch.Tensor:
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
    if not isinstance(batch, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or ndarray, got {type(batch).__name__}")
    return batch


class ShuffledBatches:
    """Endless batches of rows of ``data``, a fresh random order each epoch (drop the tail).

    The epoch's order is drawn from ``g`` lazily, when the first batch of the epoch is asked
    for. ``order`` and ``start`` (the next row of the order) are the data position that a
    training-state checkpoint records (:mod:`saelab.train.state`).
    """

    def __init__(self, data: torch.Tensor, batch_size: int, g: torch.Generator) -> None:
        self.data, self.batch_size, self.g = data, batch_size, g
        self.order: torch.Tensor | None = None  # [n] this epoch's row order (CPU)
        self.start = 0  # next position in order

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        n = self.data.shape[0]
        if self.order is None or self.start + self.batch_size > n:
            self.order, self.start = torch.randperm(n, generator=self.g), 0  # [n]
        rows = self.order[self.start:self.start + self.batch_size]
        self.start += self.batch_size
        return self.data[rows.to(self.data.device)]


def _checked_batches(batches: Iterator, d_in: int, check_every: int):
    """Check each batch's type and shape; its values when it is on the CPU (a scan, no device
    sync), else on the first batch and every ``check_every``-th one only."""
    for i, batch in enumerate(batches):
        batch = _as_tensor(f"batch {i} of data", batch)
        check_shape(f"batch {i} of data", batch, (None, d_in))
        if batch.device.type == "cpu" or i % check_every == 0:
            check_finite(f"batch {i} of data", batch)
        yield batch


@torch.no_grad()
def init_b_dec(sae, sample: torch.Tensor, how: str) -> None:
    """Set ``b_dec`` from a data sample: its geometric median, mean, or zeros (Chapter 2)."""
    if how == "zeros":
        sae.b_dec.zero_()
    elif how == "mean":
        sae.b_dec.copy_(sample.mean(dim=0))
    else:
        sae.b_dec.copy_(geometric_median(sample).median)


def prepare_data(data, cfg, d_in: int, g: torch.Generator):
    """Validate ``data``; return (batch iterator, sample for b_dec, pool drawer for resampling)."""
    from saelab.train import TrainConfig  # here: saelab.train imports this module

    check_instance("cfg", cfg, TrainConfig, "a saelab.train.TrainConfig")
    d_in = check_int_in_range("d_in", d_in, 1)
    check_instance("g", g, torch.Generator, "a torch.Generator")
    if isinstance(data, (torch.Tensor, np.ndarray)):
        data = _as_tensor("data", data)
        check_shape("data", data, (None, d_in))
        check_finite("data", data)
        if data.shape[0] < cfg.batch_size:
            raise ValueError(f"batch_size must be at most the {data.shape[0]} rows of data, "
                             f"got {cfg.batch_size}")
        rows = torch.randperm(data.shape[0], generator=g)[:cfg.b_dec_init_samples]
        sample = data[rows.to(data.device)]

        def draw_pool(current_batch):  # random rows of the whole data set
            rows = torch.randint(data.shape[0], (cfg.resample_pool,), generator=g)
            return data[rows.to(data.device)]

        return ShuffledBatches(data, cfg.batch_size, g), sample, draw_pool
    if isinstance(data, Iterable):
        batches = _checked_batches(iter(data), d_in, cfg.log_every)
        first = next(batches, None)
        if first is None:
            raise ValueError("data must hold at least one batch, got an empty iterable")
        # a stream cannot be revisited: b_dec starts from the first batch, resampling scores
        # the current batch
        sample = first[:cfg.b_dec_init_samples]
        if hasattr(data, "b_dec_sample"):  # e.g. a stream split over ranks: one process's sample
            sample = data.b_dec_sample(cfg.b_dec_init_samples)
        return itertools.chain([first], batches), sample, lambda x: x
    raise ValueError(f"data must be a tensor of shape (n, {d_in}) or an iterable of batches, "
                     f"got {type(data).__name__}")
