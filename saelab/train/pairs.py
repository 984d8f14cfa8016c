"""(input, target) rows for models that predict one activation from another (Chapter 8).

An SAE reconstructs its input. A transcoder (a model whose config has ``d_out``) reads the MLP's
input and predicts its output, so its training rows are ``[input | target]`` of width
``d_in + d_out`` (``saelab.torch_sae.pair_rows``): the loop's shuffling, tensor and stream paths
then work unchanged, and the pair is split only when a batch reaches the model.

Internal to :mod:`saelab.train`: ``train_sae`` calls these (most on every step) unchecked;
users call ``train_sae``, not this module (hence the empty ``__all__``).
"""
from __future__ import annotations

from typing import Callable

import torch

__all__: list[str] = []  # internal to saelab.train (see the module docstring)


def _d_out(sae):
    return getattr(sae.cfg, "d_out", None)


def data_width(sae) -> int:
    """Width of a data row: ``d_in`` for an SAE, ``d_in + d_out`` for a transcoder."""
    return sae.cfg.d_in + (_d_out(sae) or 0)


def split_target(sae, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input [batch, d_in], target) of a batch; an SAE's target is its input."""
    if _d_out(sae) is None:
        return batch, batch
    return batch[:, :sae.cfg.d_in], batch[:, sae.cfg.d_in:]


def step_forward(sae, sparse: bool) -> Callable:
    """The unchecked forward the loop calls, as ``fn(x, dead_mask, target) -> output``."""
    if _d_out(sae) is not None:
        return sae._forward  # the transcoder's loss compares its prediction with the target
    fn = sae._forward_sparse if sparse else sae._forward
    return lambda x, dead_mask, target: fn(x, dead_mask)
