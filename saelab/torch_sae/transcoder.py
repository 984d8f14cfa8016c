"""Transcoders: a sparse, wide layer that reads an MLP's input and predicts its output (Chapter 8).

    pre_acts = x @ W_enc + b_enc                # [batch, d_sae]   x: MLP input  [batch, d_in]
    f        = ReLU(TopK_k(pre_acts))           # [batch, d_sae]   (saelab.torch_sae.topk)
    y_hat    = f @ W_dec + b_dec  [+ x @ W_skip]  # [batch, d_out]  y: MLP output [batch, d_out]
    loss     = mean_b ||y_b - y_hat_b||^2 + aux_coeff * AuxK(y - y_hat, dead latents)

Unlike an SAE, the target is not the input: ``forward(x, target=y)``. With the MLP replaced by
this map, the MLP output is a sum of decoder rows weighted by latents, so paths between latents
of different layers are linear once attention patterns and LayerNorm scales are frozen.
Transcoders: Dunefsky, Chlenski and Nanda (2024), arXiv:2406.11944. The skip connection
``W_skip`` (a dense linear map from input to output, initialised at zero) is the skip transcoder
of Paulo, Shabalin and Belrose (2025), arXiv:2501.18823: the linear part of the MLP no longer
costs latents. The encoder has no ``- b_dec`` (input and output live in different spaces).

Training uses ``saelab.train.train_sae`` on rows ``[x | y]`` of width ``d_in + d_out``
(``pair_rows``; the loop splits them with ``split_pair``). No NumPy twin: the new pieces (a
second bias space, the skip map) are a few lines over the TopK twin already taught in Chapter 4,
and the chapter needs autograd through a language model anyway.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from saelab._checks import (check_float_dtype, check_int_in_range, check_nonnegative, check_shape,
                            check_tensor)
from saelab.sae_output import SAEOutput
from saelab.torch_sae.base import BaseSAE, recon_loss
from saelab.torch_sae.topk import auxk_loss, _dead_topk_codes, topk_relu

__all__ = ["TranscoderConfig", "Transcoder", "pair_rows", "split_pair"]


@dataclass
class TranscoderConfig:
    """A TopK transcoder from ``d_in`` (MLP input) to ``d_out`` (MLP output), Chapter 8."""

    family: ClassVar[str] = "transcoder"

    d_in: int = 128  # width of the MLP input (blocks.L.ln2.hook_normalized)
    d_sae: int = 1024  # number of latents
    d_out: int = 128  # width of the MLP output (blocks.L.hook_mlp_out)
    k: int = 16  # active latents per token
    k_aux: int = 256  # dead latents used by AuxK (Gao et al. 2024)
    aux_coeff: float = 1 / 32  # AuxK weight (Gao et al. 2024)
    skip: bool = False  # add the dense linear map W_skip (skip transcoder)

    def __post_init__(self) -> None:
        check_int_in_range("d_in", self.d_in, 1)
        check_int_in_range("d_sae", self.d_sae, 1)
        check_int_in_range("d_out", self.d_out, 1)
        check_int_in_range("k", self.k, 1, self.d_sae)
        check_int_in_range("k_aux", self.k_aux, 1)
        check_nonnegative("aux_coeff", self.aux_coeff)
        if not isinstance(self.skip, bool):
            raise ValueError(f"skip must be True or False, got {self.skip!r}")


def pair_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Training rows ``[x | y]``: [n, d_in] and [n, d_out] -> [n, d_in + d_out] (Chapter 8)."""
    for name, t in (("x", x), ("y", y)):
        check_tensor(name, t, 2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of rows, got {x.shape[0]} and "
                         f"{y.shape[0]}")
    return torch.cat([x, y], dim=1)


def split_pair(rows: torch.Tensor, d_in: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of ``pair_rows``: rows [n, d_in + d_out] -> (x [n, d_in], y [n, d_out])."""
    if not isinstance(rows, torch.Tensor) or rows.ndim != 2:
        raise ValueError(f"rows must be a 2-d torch.Tensor, got "
                         f"{getattr(rows, 'shape', type(rows).__name__)}")
    check_int_in_range("d_in", d_in, 1, rows.shape[1] - 1)
    return rows[:, :d_in], rows[:, d_in:]


class Transcoder(BaseSAE):
    """TopK transcoder, optionally with a skip connection (Chapter 8).

    Parameters: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out] (unit rows),
    b_dec [d_out], and W_skip [d_in, d_out] when ``cfg.skip``. Reuses BaseSAE's decoder-norm
    handling and TopK's activation and AuxK loss.
    """

    def __init__(self, cfg: TranscoderConfig, device=None, dtype=None) -> None:
        if not isinstance(cfg, TranscoderConfig):
            raise ValueError(f"cfg must be a TranscoderConfig, got {type(cfg).__name__}")
        check_float_dtype("dtype", dtype, device=device)
        nn.Module.__init__(self)  # BaseSAE's constructor assumes d_out == d_in
        self.cfg = cfg
        kw = dict(device=device, dtype=dtype)
        W_dec = torch.randn(cfg.d_sae, cfg.d_out, **kw)  # [d_sae, d_out]
        W_enc = torch.randn(cfg.d_in, cfg.d_sae, **kw)  # [d_in, d_sae]
        self.W_enc = nn.Parameter(W_enc / W_enc.norm(dim=0, keepdim=True))  # unit columns
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, **kw))
        self.W_dec = nn.Parameter(W_dec / W_dec.norm(dim=1, keepdim=True))  # unit rows
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_out, **kw))
        if cfg.skip:
            self.W_skip = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_out, **kw))  # [d_in, d_out]

    @property
    def aux_coeff(self) -> float:
        return self.cfg.aux_coeff

    def activation(self, pre_acts: torch.Tensor) -> torch.Tensor:
        return topk_relu(pre_acts, self.cfg.k)  # [batch, d_sae]

    def sparsity_loss(self, pre_acts: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return pre_acts.new_zeros(())  # [] TopK needs no penalty

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W_enc + b_enc``: [batch, d_in] -> [batch, d_sae] (no ``- b_dec``)."""
        return x @ self.W_enc + self.b_enc

    def predict(self, x: torch.Tensor, f: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted MLP output ``f @ W_dec + b_dec [+ x @ W_skip]``: [batch, d_out]."""
        self._check_x(x)
        f = self.encode(x) if f is None else f
        y_hat = f @ self.W_dec + self.b_dec  # [batch, d_out]
        if self.cfg.skip:
            y_hat = y_hat + x @ self.W_skip
        return y_hat

    def forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None = None,
                target: torch.Tensor | None = None) -> SAEOutput:
        """Forward pass with losses; ``x_hat`` holds the prediction y_hat [batch, d_out].

        x: [batch, d_in] MLP inputs; target: [batch, d_out] true MLP outputs (required: a
        transcoder's loss compares with the MLP's output, not with its input).
        """
        self._check_x(x)
        self._check_dead_mask(dead_mask)
        if target is None:
            raise ValueError("target must be the MLP output [batch, d_out] that the transcoder "
                             "predicts, got None; use predict(x) for the prediction alone")
        check_shape("target", target, (x.shape[0], self.cfg.d_out))
        return self._forward(x, dead_mask, target)

    def _forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None,
                 target: torch.Tensor) -> SAEOutput:
        """``forward`` without the input checks (the training loop checks its batches once)."""
        pre_acts = self.pre_activation(x)  # [batch, d_sae]
        f = self.activation(pre_acts)  # [batch, d_sae]
        y_hat = self.predict(x, f)  # [batch, d_out]
        recon = recon_loss(target, y_hat)  # []
        aux = self.aux_loss(target, y_hat, pre_acts, dead_mask)  # []
        loss = recon + self.aux_coeff * aux
        return SAEOutput(y_hat, f, pre_acts, loss, recon, pre_acts.new_zeros(()), aux)

    def aux_loss(self, y, y_hat, pre_acts, dead_mask) -> torch.Tensor:
        if dead_mask is None or not bool(dead_mask.any()):
            return y.new_zeros(())  # []
        codes = _dead_topk_codes(pre_acts, dead_mask, self.cfg.k_aux)  # [batch, d_sae], signed
        e_hat = codes @ self.W_dec  # [batch, d_out]
        return auxk_loss((y - y_hat).detach(), e_hat)  # as TopKSAE's
