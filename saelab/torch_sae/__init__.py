"""Sparse autoencoders in PyTorch: the torch twin of ``saelab.numpy_sae`` (Chapters 2 and 4).

Classes ``L1SAE``, ``TopKSAE``, ``JumpReLUSAE``, ``BatchTopKSAE``, ``GatedSAE`` and
``MatryoshkaSAE`` (Chapter 7) share parameter
names, shapes and layout with their NumPy twins; ``from_numpy`` copies a NumPy SAE's weights into
a new torch SAE.
"""
from __future__ import annotations

import numpy as np
import torch

from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                                MatryoshkaConfig, TopKConfig)
from saelab.torch_sae.base import BaseSAE, recon_loss
from saelab.torch_sae.batchtopk import THRESHOLD_UNSET, BatchTopKSAE, batch_topk_relu
from saelab.torch_sae.gated import GatedSAE
from saelab.torch_sae.jumprelu import THRESHOLD_FLOOR, JumpReLUFunction, JumpReLUSAE, StepFunction
from saelab.torch_sae.l1 import L1SAE
from saelab.torch_sae.matryoshka import MatryoshkaSAE, nested_recon_loss
from saelab.torch_sae.topk import TopKSAE, auxk_loss, topk_relu
from saelab.torch_sae.transcoder import Transcoder, TranscoderConfig, pair_rows, split_pair

SAE_CLASSES = {"l1": L1SAE, "topk": TopKSAE, "jumprelu": JumpReLUSAE,
               "batchtopk": BatchTopKSAE, "gated": GatedSAE,
               "matryoshka": MatryoshkaSAE}
SAE_CLASSES["transcoder"] = Transcoder  # Chapter 8: MLP input -> MLP output
"""Family name (``cfg.family``) -> torch SAE class."""


def make_sae(cfg, device=None, dtype=None) -> BaseSAE:
    """Build the torch SAE of ``cfg``'s family (``L1Config`` -> ``L1SAE``, ...). Chapter 4."""
    family = getattr(cfg, "family", None)
    if family not in SAE_CLASSES:
        raise ValueError(f"cfg must be an L1Config, TopKConfig, JumpReLUConfig, BatchTopKConfig, "
                         f"GatedConfig or MatryoshkaConfig, got {cfg!r}")
    return SAE_CLASSES[family](cfg, device=device, dtype=dtype)


def from_numpy(np_sae, device=None, dtype=None) -> BaseSAE:
    """A torch SAE with the same config and weights as NumPy SAE ``np_sae`` (for parity tests).

    ``dtype=None`` keeps the NumPy arrays' dtype. Chapter 2.
    """
    if not hasattr(np_sae, "param_names") or not hasattr(np_sae, "cfg"):
        raise TypeError(f"np_sae must be a saelab.numpy_sae SAE, got {type(np_sae).__name__}")
    params = np_sae.parameters()
    if dtype is None:
        dtype = torch.as_tensor(params["W_enc"]).dtype
    sae = make_sae(np_sae.cfg, device=device, dtype=dtype)
    sae.load_state_dict({name: torch.as_tensor(np.array(value)) for name, value in params.items()})
    return sae


__all__ = [
    "BaseSAE",
    "L1SAE",
    "TopKSAE",
    "JumpReLUSAE",
    "BatchTopKSAE",
    "GatedSAE",
    "MatryoshkaSAE",
    "nested_recon_loss",
    "THRESHOLD_UNSET",
    "batch_topk_relu",
    "JumpReLUFunction",
    "StepFunction",
    "THRESHOLD_FLOOR",
    "SAE_CLASSES",
    "make_sae",
    "from_numpy",
    "recon_loss",
    "topk_relu",
    "auxk_loss",
    "L1Config",
    "TopKConfig",
    "JumpReLUConfig",
    "BatchTopKConfig",
    "GatedConfig",
    "MatryoshkaConfig",
    "Transcoder",
    "TranscoderConfig",
    "pair_rows",
    "split_pair",
]
