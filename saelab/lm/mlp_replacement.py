"""Train and score a sparse stand-in for one MLP of a language model (Chapter 8).

Three stand-ins at equal L0 (k active latents), each trained with ``saelab.train.train_sae``:

    "transcoder"       ln2.hook_normalized -> hook_mlp_out              (Dunefsky et al. 2024)
    "skip_transcoder"  the same plus a dense W_skip                     (Paulo et al. 2025)
    "sae"              a TopK SAE reconstructing hook_mlp_out from itself (Gao et al. 2024)

Scores on held-out windows: FVU of the MLP output,

    FVU = sum_n ||y_n - y_hat_n||^2 / sum_n ||y_n - mean(y)||^2

and CE loss recovered when the prediction replaces the MLP output in the forward pass,
``(CE_zero - CE_spliced) / (CE_zero - CE_clean)``. The SAE sees the MLP output it reconstructs,
the transcoders only the MLP's input: the SAE's task is easier, but it explains nothing about how
the output was computed. ``scripts/ch08_transcoders.py`` runs this for every layer of
saelab-tiny into ``saelab/results/ch08_transcoders.json``.
"""
from __future__ import annotations

import torch

from saelab._checks import check_int_in_range, check_tensor, check_token_ids
from saelab.lm.pairs import harvest_pairs, mlp_hook_names, transcoder_ce_losses
from saelab.lm.splice import ce_loss_recovered, ce_losses
from saelab.sae_config import TopKConfig
from saelab.torch_sae import TopKSAE
from saelab.torch_sae.transcoder import Transcoder, TranscoderConfig, pair_rows
from saelab.train import TrainConfig, train_sae

__all__ = ["KINDS", "fit_mlp_replacement", "fvu_of"]

KINDS = ("transcoder", "skip_transcoder", "sae")


def fvu_of(y: torch.Tensor, y_hat: torch.Tensor) -> float:
    """``sum ||y - y_hat||^2 / sum ||y - mean(y)||^2`` over rows [n, d] (Chapter 5's FVU)."""
    for name, t in (("y", y), ("y_hat", y_hat)):
        check_tensor(name, t, 2, finite=True)
    if y.shape != y_hat.shape or y.ndim != 2:
        raise ValueError(f"y and y_hat must be [n, d] of one shape, got {tuple(y.shape)} "
                         f"and {tuple(y_hat.shape)}")
    return float((y - y_hat).pow(2).sum() / (y - y.mean(dim=0)).pow(2).sum())


def fit_mlp_replacement(model, layer: int, kind: str, train_windows: torch.Tensor,
                        eval_windows: torch.Tensor, *, d_sae: int = 512, k: int = 16,
                        n_steps: int = 300, batch_size: int = 256, lr: float = 2e-3,
                        seed: int = 0, progress: bool = False):
    """Train a stand-in of ``kind`` for block ``layer``'s MLP; return (module, scores).

    ``scores`` is a dict with ``fvu`` (held-out MLP output), ``ce_clean``, ``ce_spliced``,
    ``ce_zero`` and ``ce_recovered``. ``train_windows``/``eval_windows`` are token windows
    [n, seq_len] (``saelab.lm.token_windows``). ``seed`` seeds the initialisation and batches.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    check_int_in_range("layer", layer, 0, model.cfg.n_layers - 1)
    for name, windows in (("train_windows", train_windows), ("eval_windows", eval_windows)):
        check_token_ids(name, windows, model.cfg.d_vocab)
        if windows.ndim != 2 or not 2 <= windows.shape[1] <= model.cfg.n_ctx:
            raise ValueError(f"{name} must be token windows [n, seq_len] with 2..n_ctx = "
                             f"{model.cfg.n_ctx} positions, got shape {tuple(windows.shape)}")
    check_int_in_range("d_sae", d_sae, 1)
    check_int_in_range("k", k, 1, d_sae)
    in_hook, out_hook = mlp_hook_names(layer)
    x, y = harvest_pairs(model, train_windows, in_hook, out_hook, progress=progress)
    ex, ey = harvest_pairs(model, eval_windows, in_hook, out_hook, progress=progress)
    torch.manual_seed(seed)
    tcfg = TrainConfig(n_steps=n_steps, batch_size=batch_size, lr=lr, seed=seed)
    if kind == "sae":
        module = TopKSAE(TopKConfig(d_in=y.shape[1], d_sae=d_sae, k=k))
        train_sae(module, y, tcfg, progress=progress)
    else:
        cfg = TranscoderConfig(d_in=x.shape[1], d_out=y.shape[1], d_sae=d_sae, k=k,
                               skip=kind == "skip_transcoder")
        module = Transcoder(cfg)
        train_sae(module, pair_rows(x, y), tcfg, progress=progress)
    module.eval()
    with torch.no_grad():
        y_hat = module(ey).x_hat if kind == "sae" else module.predict(ex)
        if kind == "sae":
            losses = ce_losses(model, module, eval_windows, out_hook)
        else:
            losses = transcoder_ce_losses(model, module, eval_windows, layer)
    scores = dict(fvu=fvu_of(ey, y_hat), ce_clean=losses.clean, ce_spliced=losses.spliced,
                  ce_zero=losses.zero_ablated, ce_recovered=ce_loss_recovered(losses))
    return module, scores
