"""Train a list of SAE configs on the same data and measure each at inference.

For the sparsity-reconstruction Pareto frontier each family is trained with a sweep of its one
sparsity knob (``FAMILY_KNOBS``: lambda for L1 and Gated, k for TopK and BatchTopK, the L0
coefficient for JumpReLU), on the same data, with the same training settings and seed, and then
evaluated on the same held-out inputs with Chapter 5's report (``saelab.evaluation.evaluate``:
L0, FVU, relative reconstruction bias ``E||x_hat||^2 / E[x . x_hat]``, dead and dense latents).

Evaluation runs in inference mode (``sae.eval()``), which matters for BatchTopK: its codes then
come from the learned threshold, not from the batch. Taught in Chapter 4.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from tqdm.auto import tqdm

from saelab._checks import check_not_none
from saelab.evaluation import EvalReport, evaluate
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, TrainResult, train_sae

__all__ = ["FAMILY_KNOBS", "SweepRun", "train_sweep", "knob_value"]

FAMILY_KNOBS = {"l1": "l1_coeff", "topk": "k", "batchtopk": "k", "jumprelu": "l0_coeff",
                "gated": "l1_coeff", "matryoshka": "k"}
"""Family -> the config field that sets its sparsity."""


class SweepRun(NamedTuple):
    """One trained SAE of a sweep (Chapter 4)."""

    cfg: object  # the family config
    sae: torch.nn.Module  # trained, left in eval (inference) mode
    result: TrainResult  # training history
    eval: EvalReport  # every Chapter 5 metric on the held-out inputs


def knob_value(cfg) -> float:
    """The value of ``cfg``'s sparsity knob (``FAMILY_KNOBS``). Chapter 4."""
    if getattr(cfg, "family", None) not in FAMILY_KNOBS:
        raise ValueError(f"cfg must be an SAE family config, got {cfg!r}")
    return getattr(cfg, FAMILY_KNOBS[cfg.family])


def train_sweep(configs: Sequence, x_train, x_eval, train_cfg: TrainConfig, seed: int = 0,
                progress: bool = True) -> list[SweepRun]:
    """Train one SAE per config on ``x_train`` and evaluate it on ``x_eval`` (Chapter 4).

    Every SAE starts from ``torch.manual_seed(seed)`` and is trained with the same ``train_cfg``
    (batch order included), so the runs differ only in their configs. One progress bar counts
    the configs; the training loops run without bars.

    Returns
    -------
    list of SweepRun, in the order of ``configs``
    """
    configs = list(check_not_none("configs", configs, "a list of SAE configs"))
    if not configs:
        raise ValueError("configs must hold at least one SAE config, got an empty list")
    runs = []
    for cfg in tqdm(list(configs), desc="sweep", disable=not progress):
        torch.manual_seed(seed)
        sae = make_sae(cfg)
        result = train_sae(sae, x_train, train_cfg, progress=False)
        sae.eval()  # left in inference mode, as the runs are used
        runs.append(SweepRun(cfg, sae, result, evaluate(sae, x_eval)))
    return runs
