"""Sparse autoencoders in NumPy with hand-derived gradients (Chapters 2 and 4).

Classes ``L1SAE``, ``TopKSAE``, ``JumpReLUSAE``, ``BatchTopKSAE``, ``GatedSAE`` and
``MatryoshkaSAE`` (Chapter 7) share parameter
names, shapes and layout with their torch twins in ``saelab.torch_sae``; ``Adam`` matches
``torch.optim.Adam``; ``from_torch`` copies a torch SAE's weights into a new NumPy SAE.
"""
from __future__ import annotations

import numpy as np

from saelab._checks import check_float_dtype

from saelab.numpy_sae.adam import Adam
from saelab.numpy_sae.base import BaseSAE, recon_loss
from saelab.numpy_sae.batchtopk import THRESHOLD_UNSET, BatchTopKSAE, batch_topk_relu
from saelab.numpy_sae.gated import GatedSAE
from saelab.numpy_sae.jumprelu import THRESHOLD_FLOOR, JumpReLUSAE, rectangle
from saelab.numpy_sae.l1 import L1SAE
from saelab.numpy_sae.matryoshka import MatryoshkaSAE, nested_recon_loss
from saelab.numpy_sae.topk import TopKSAE, auxk_loss, topk_relu
from saelab.numpy_sae.training import MAX_FVU, train_numpy_sae
from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                                MatryoshkaConfig, TopKConfig)

SAE_CLASSES = {"l1": L1SAE, "topk": TopKSAE, "jumprelu": JumpReLUSAE,
               "batchtopk": BatchTopKSAE, "gated": GatedSAE,
               "matryoshka": MatryoshkaSAE}
"""Family name (``cfg.family``) -> NumPy SAE class."""


def make_sae(cfg, rng=None, dtype=np.float32) -> BaseSAE:
    """Build the NumPy SAE of ``cfg``'s family (``L1Config`` -> ``L1SAE``, ...). Chapter 4."""
    check_float_dtype("dtype", dtype)
    family = getattr(cfg, "family", None)
    if family not in SAE_CLASSES:
        raise ValueError(f"cfg must be an L1Config, TopKConfig, JumpReLUConfig, BatchTopKConfig, "
                         f"GatedConfig or MatryoshkaConfig, got {cfg!r}")
    return SAE_CLASSES[family](cfg, rng=rng, dtype=dtype)


def from_torch(t_sae, dtype=None) -> BaseSAE:
    """A NumPy SAE with the same config and weights as torch SAE ``t_sae`` (for parity tests).

    ``dtype=None`` keeps the tensors' dtype. Chapter 2.
    """
    if not hasattr(t_sae, "state_dict") or getattr(getattr(t_sae, "cfg", None), "family",
                                                   None) not in SAE_CLASSES:
        raise TypeError(f"t_sae must be a saelab.torch_sae SAE, got {type(t_sae).__name__}")
    params = {name: t.detach().cpu().numpy() for name, t in t_sae.state_dict().items()}
    sae = make_sae(t_sae.cfg, dtype=dtype if dtype is not None else params["W_enc"].dtype)
    sae.load_parameters(params)
    return sae


__all__ = [
    "Adam",
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
    "THRESHOLD_FLOOR",
    "SAE_CLASSES",
    "make_sae",
    "from_torch",
    "train_numpy_sae",
    "MAX_FVU",
    "recon_loss",
    "topk_relu",
    "auxk_loss",
    "rectangle",
    "L1Config",
    "TopKConfig",
    "JumpReLUConfig",
    "BatchTopKConfig",
    "GatedConfig",
    "MatryoshkaConfig",
]
