"""Scoring SAE families on data with a known feature hierarchy, and the price of nesting.

For one trained SAE on :func:`saelab.hierarchy.make_hierarchical_data` data,
:func:`hierarchy_scores` reports, in one row,

* ``absorption``: the course's rate, P(parent latent silent | parent and a child on), mean over
  parents (:func:`saelab.absorption.feature_absorption`);
* ``full_absorption``: the SAEBench-style rate, fully absorbed inputs over every input with the
  parent present (:func:`saelab.absorption.full_absorption`);
* ``split``: share of parents with at least one child-specific latent
  (:func:`saelab.hierarchy.family_latents`);
* ``mmcs_parents`` / ``mmcs_children``: for each true parent (child) direction the largest
  cosine with a decoder row, averaged (MMCS true-to-learned);
* ``fvu`` and ``l0`` of the full reconstruction, in inference mode.

:func:`prefix_fvus` measures what each prefix of the dictionary reconstructs on its own,
``x_hat_m = f[:, :m] @ W_dec[:m] + b_dec``, for any SAE: for a Matryoshka SAE
(Bussmann et al. 2025, arXiv:2503.17547) these are the nested reconstructions its loss trains;
for other families the first m latents are an arbitrary subset. :func:`train_and_score` trains
one config on one seed and scores it. Taught in Chapter 7.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import torch

from saelab import metrics
from saelab._checks import check_int_in_range, check_shape
from saelab.absorption import feature_absorption, full_absorption
from saelab.hierarchy import HierarchicalData, family_latents
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, train_sae

__all__ = ["HierarchyScores", "hierarchy_scores", "prefix_fvus", "train_and_score", "take_rows"]


class HierarchyScores(NamedTuple):
    """One SAE's scores on hierarchical data (Chapter 7); see the module docstring."""

    absorption: float
    full_absorption: float
    split: float
    mmcs_parents: float
    mmcs_children: float
    fvu: float
    l0: float


def take_rows(data: HierarchicalData, rows) -> HierarchicalData:
    """The samples ``rows`` (a slice or index tensor) of ``data``, same directions (Chapter 7).

    Split one draw into training and held-out parts this way: a second call to
    ``make_hierarchical_data`` with another seed would draw other directions too.
    """
    _check_data("data", data)
    n = data.x.shape[0]
    if rows is None or isinstance(rows, (str, bytes, float)):
        raise TypeError(f"rows must be a slice or a sequence/tensor of sample indices, got {rows!r}")
    if not isinstance(rows, slice):
        index = torch.as_tensor(rows)
        if index.dtype == torch.bool:
            check_shape("rows", index, (n,))
        elif index.numel() and (index.dtype.is_floating_point
                                or not -n <= int(index.min()) <= int(index.max()) < n):
            raise ValueError(f"rows must be integer indices in [-{n}, {n}) (data has {n} "
                             f"samples), got {rows!r}")
    x = data.x[rows]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"rows must select at least one sample, got {rows!r}")
    return data._replace(x=x, parent_codes=data.parent_codes[rows],
                         child_codes=data.child_codes[rows])


def _check_sae(sae) -> None:
    if not isinstance(sae, torch.nn.Module) or not hasattr(sae, "cfg"):
        raise ValueError(f"sae must be a saelab torch SAE, got {type(sae).__name__}")


def _check_data(name: str, data) -> None:
    if not isinstance(data, HierarchicalData):
        raise ValueError(f"{name} must be a HierarchicalData, got {type(data).__name__}")


def _codes(sae, x: torch.Tensor) -> torch.Tensor:
    """Codes [n, d_sae] of ``x`` in inference mode (the SAE's mode is restored)."""
    was_training = sae.training
    sae.eval()
    try:
        with torch.no_grad():
            return sae.encode(x)
    finally:
        sae.train(was_training)


def hierarchy_scores(sae, data: HierarchicalData) -> HierarchyScores:
    """Absorption (both rates), splitting, MMCS to parents and children, FVU and L0 (Chapter 7).

    Parameters
    ----------
    sae : saelab.torch_sae.BaseSAE
        Trained on data drawn like ``data`` (same directions), with ``d_in == data.x.shape[1]``.
    data : HierarchicalData
        Evaluation samples with their ground truth.
    """
    _check_sae(sae)
    _check_data("data", data)
    check_shape("data.x", data.x, (None, sae.cfg.d_in))
    f = _codes(sae, data.x)  # [n, d_sae]
    W_dec = sae.W_dec.detach()  # [d_sae, d_in]
    x_hat = f @ W_dec + sae.b_dec.detach()  # [n, d_in]
    families = family_latents(f, data)
    return HierarchyScores(
        absorption=feature_absorption(f, W_dec, data).mean,
        full_absorption=full_absorption(f, W_dec, data).mean,
        split=float(np.mean(families.n_child_latents > 0)),
        mmcs_parents=metrics.mmcs(W_dec, data.parent_dictionary).b_to_a,
        mmcs_children=metrics.mmcs(W_dec, data.child_dictionary).b_to_a,
        fvu=metrics.fvu(data.x, x_hat),
        l0=metrics.l0(f),
    )


def prefix_fvus(sae, x: torch.Tensor, prefix_sizes) -> np.ndarray:
    """FVU of ``f[:, :m] @ W_dec[:m] + b_dec`` for every m in ``prefix_sizes`` (Chapter 7).

    Codes come from the SAE in inference mode, once, over all its latents.

    Parameters
    ----------
    sae : saelab.torch_sae.BaseSAE
    x : Tensor of shape (n_samples, d_in)
    prefix_sizes : sequence of int, each in 1..d_sae

    Returns
    -------
    ndarray of shape (len(prefix_sizes),)
    """
    _check_sae(sae)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    check_shape("x", x, (None, sae.cfg.d_in))
    if isinstance(prefix_sizes, (str, bytes)) or not hasattr(prefix_sizes, "__iter__"):
        raise TypeError(f"prefix_sizes must be a sequence of ints in 1..{sae.cfg.d_sae}, "
                        f"got {prefix_sizes!r}")
    sizes = list(prefix_sizes)
    if not sizes:
        raise ValueError(f"prefix_sizes must not be empty, got {prefix_sizes!r}")
    for m in sizes:
        check_int_in_range("prefix_sizes", m, 1, sae.cfg.d_sae)
    f = _codes(sae, x)  # [n, d_sae]
    W_dec, b_dec = sae.W_dec.detach(), sae.b_dec.detach()
    return np.array([metrics.fvu(x, f[:, :m] @ W_dec[:m] + b_dec) for m in sizes])


def train_and_score(cfg, train: HierarchicalData, test: HierarchicalData,
                    train_cfg: TrainConfig, seed: int = 0):
    """Train ``make_sae(cfg)`` from ``torch.manual_seed(seed)`` on ``train.x``; score on ``test``.

    ``seed`` also sets ``train_cfg.seed`` (the batch order), so seeds differ in both.

    Returns ``(sae, HierarchyScores)``; the SAE is left in inference mode. Chapter 7.
    """
    check_int_in_range("seed", seed, 0)
    _check_data("train", train)
    _check_data("test", test)
    if not isinstance(train_cfg, TrainConfig):
        raise ValueError(f"train_cfg must be a TrainConfig, got {type(train_cfg).__name__}")
    torch.manual_seed(seed)
    sae = make_sae(cfg)
    train_sae(sae, train.x, dataclasses.replace(train_cfg, seed=seed), progress=False)
    sae.eval()
    return sae, hierarchy_scores(sae, test)
