"""The sparse path of the TopK family: score every latent densely, then touch only the kept ones.

A TopK-style SAE (TopK, BatchTopK, Matryoshka) keeps ``n`` entries of its [batch, d_sae] codes
(``n = k * batch``). The dense path of Chapter 4 writes them into a [batch, d_sae] matrix and
multiplies densely, forward and backward. Everything after the selection can instead work on the
``n`` kept entries, stored as a :class:`SparseCodes` (row, latent, value) list sorted by row:

    pre      = x @ W_enc + (b_enc - b_dec @ W_enc)        dense, no graph    [batch, d_sae]
    (r, c)   = selection(pre)                             TopK / BatchTopK   [n], [n]
    z_j      = (x_{r_j} - b_dec) . W_enc[:, c_j] + b_enc[c_j]      KeptPreActs    [n]
    v_j      = ReLU(z_j)                                                          [n]
    x_hat_b  = sum_{j: r_j = b} v_j W_dec[c_j] + b_dec    embedding_bag gather   [batch, d_in]

The backward of ``KeptPreActs`` (derived from the line above, for an upstream gradient g [n]):

    dL/db_enc[c]    = sum_{j: c_j = c} g_j
    dL/dW_enc[:, c] = sum_{j: c_j = c} g_j (x_{r_j} - b_dec)
    dL/db_dec       = -W_enc @ dL/db_enc
    dL/dx_b         = sum_{j: r_j = b} g_j W_enc[:, c_j]

so the encoder's gradient costs O(n d_in) instead of one dense [batch x d_in x d_sae] product,
and the decoder's (``embedding_bag``'s own backward) likewise. The gradients are exactly those of
the dense path; tests/test_sparse_topk.py checks them against it and against finite differences.
The same idea is used by EleutherAI's ``sparsify`` library; the folded encoder bias is the
NumPy twin's. Prefix partial sums (Matryoshka SAEs) are ``decode_sparse(codes, W_dec, limit=m)``.
Chapter 4 (speed box).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from saelab._checks import check_int_in_range, check_shape

__all__ = ["SparseCodes", "SparseOutput", "KeptPreActs", "dense_pre_acts", "topk_selection",
           "batch_topk_selection", "sparse_codes", "decode_sparse", "to_dense", "fired_latents"]


class SparseCodes(NamedTuple):
    """The kept entries of a [batch, d_sae] code matrix, sorted by row (Chapter 4).

    ``values`` carries the gradient (to the encoder parameters, through :class:`KeptPreActs`).
    """

    rows: torch.Tensor  # [n] long, the batch row of each entry, non-decreasing
    latents: torch.Tensor  # [n] long, the latent of each entry
    values: torch.Tensor  # [n] the code value ReLU(pre_acts[row, latent])
    offsets: torch.Tensor  # [batch] long, where each row's entries start (for embedding_bag)


class SparseOutput(NamedTuple):
    """What ``sparse_forward`` returns: :class:`~saelab.sae_output.SAEOutput` with ``codes``
    (kept entries) in place of the dense ``f`` and ``pre_acts`` (Chapter 4)."""

    x_hat: torch.Tensor  # [batch, d_in]
    codes: SparseCodes
    loss: torch.Tensor  # [] recon_loss + sparsity_loss + aux_coeff * aux_loss
    recon_loss: torch.Tensor  # []
    sparsity_loss: torch.Tensor  # [] zero for the TopK family
    aux_loss: torch.Tensor  # [] unweighted AuxK loss


class KeptPreActs(torch.autograd.Function):
    """Pre-activations at the kept entries, with gradients over those entries only (Chapter 4).

    Forward: ``z_j = (x[r_j] - b_dec) @ W_enc[:, c_j] + b_enc[c_j]``, returned from the
    already-computed dense pre-activations ``pre_kept``; backward: the four lines of the module
    docstring.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # bf16 autocast
    def forward(ctx, pre_kept, x, W_enc, b_enc, b_dec, rows, latents):
        # pre_kept: [n], x: [batch, d_in], W_enc: [d_in, d_sae], rows/latents: [n]
        ctx.save_for_backward(x, W_enc, b_dec, rows, latents)
        ctx.d_sae = W_enc.shape[1]
        return pre_kept.clone()  # [n]

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, g):
        x, W_enc, b_dec, rows, latents = ctx.saved_tensors
        d_sae = ctx.d_sae
        grad_x = grad_W_enc = grad_b_enc = grad_b_dec = None
        need = ctx.needs_input_grad
        g_b_enc = g.new_zeros(d_sae).index_add_(0, latents, g)  # [d_sae]
        if need[2]:
            offsets = torch.searchsorted(rows, torch.arange(x.shape[0], device=rows.device))
            grad_W_enc = _bag_table_grad(latents, offsets, g, x - b_dec, d_sae).T  # [d_in, d_sae]
        if need[3]:
            grad_b_enc = g_b_enc
        if need[4]:
            grad_b_dec = -(W_enc @ g_b_enc)  # [d_in]
        if need[1]:
            cols = W_enc.T.index_select(0, latents)  # [n, d_in]
            grad_x = torch.zeros_like(x).index_add_(0, rows, cols * g[:, None])
        return None, grad_x, grad_W_enc, grad_b_enc, grad_b_dec, None, None


def _bag_table_grad(latents, offsets, weights, grad_out, n_table: int) -> torch.Tensor:
    """``G[c] = sum_{j: latents_j = c} weights_j grad_out[row_j]``: [n_table, d] (Chapter 4).

    This is exactly the gradient that ``embedding_bag(latents, table, offsets,
    per_sample_weights=weights)`` sends to its table when its output receives ``grad_out``
    [batch, d], so torch's own embedding_bag backward computes it, without materialising the
    [n, d] products an ``index_add_`` would need. The table is a stride-0 view of one zero.
    """
    table = grad_out.new_zeros(1, 1).expand(n_table, grad_out.shape[1])  # [n_table, d], no memory
    table = table.detach().requires_grad_()
    with torch.enable_grad():
        out = F.embedding_bag(latents, table, offsets, mode="sum", per_sample_weights=weights)
        (grad,) = torch.autograd.grad(out, table, grad_out)
    return grad  # [n_table, d]


@torch.no_grad()
def dense_pre_acts(x, W_enc, b_enc, b_dec) -> torch.Tensor:
    """``x @ W_enc + (b_enc - b_dec @ W_enc)`` without a graph: [batch, d_in] -> [batch, d_sae].

    Equal to ``(x - b_dec) @ W_enc + b_enc``; folding ``b_dec`` into the bias saves the
    [batch, d_in] subtraction and, in a dense backward, one dense product.
    """
    return torch.addmm(b_enc - b_dec @ W_enc, x, W_enc)  # [batch, d_sae]


def _check_pre(pre) -> None:
    if not isinstance(pre, torch.Tensor) or not pre.is_floating_point():
        got = getattr(pre, "dtype", type(pre).__name__)
        raise TypeError(f"pre must be a floating-point torch.Tensor, got {got}")
    check_shape("pre", pre, (None, None))


@torch.no_grad()
def topk_selection(pre: torch.Tensor, k: int):
    """Rows, latents and pre-activations of the k largest entries of each row of ``pre``.

    pre: [batch, d_sae]. Returns (rows [batch*k], latents [batch*k], values [batch*k]).
    """
    _check_pre(pre)
    check_int_in_range("k", k, 1, pre.shape[1])
    values, latents = pre.topk(k, dim=-1, sorted=False)  # [batch, k]
    rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(k)  # [batch*k]
    return rows, latents.reshape(-1), values.reshape(-1)


@torch.no_grad()
def batch_topk_selection(pre: torch.Tensor, n_keep: int):
    """The ``n_keep`` largest entries of the whole batch, sorted by row (BatchTopK).

    pre: [batch, d_sae]. Returns (rows [n_keep], latents [n_keep], values [n_keep]).
    """
    _check_pre(pre)
    check_int_in_range("n_keep", n_keep, 1, pre.numel())
    d_sae = pre.shape[1]
    values, flat = pre.reshape(-1).topk(n_keep, sorted=False)  # [n_keep]
    flat, order = flat.sort()  # row-major order: sorted by row
    return flat // d_sae, flat % d_sae, values[order]


def sparse_codes(x, W_enc, b_enc, b_dec, rows, latents, pre_kept,
                 relu: bool = True) -> SparseCodes:
    """SparseCodes for the selected entries; ``values`` is (ReLU of) a :class:`KeptPreActs`.

    rows and latents: [n] long, rows non-decreasing; pre_kept: [n] their pre-activations.
    ``relu=False`` keeps negative values (AuxK's codes of dead latents, see topk.py).
    """
    for name, t in (("rows", rows), ("latents", latents)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.long:
            raise TypeError(f"{name} must be a torch.long tensor, got {getattr(t, 'dtype', t)!r}")
        check_shape(name, t, (pre_kept.shape[0],))
    z = KeptPreActs.apply(pre_kept, x, W_enc, b_enc, b_dec, rows, latents)  # [n]
    batch = torch.arange(x.shape[0], device=rows.device)  # [batch]
    offsets = torch.searchsorted(rows, batch)  # [batch] first entry of each row
    return SparseCodes(rows, latents, torch.relu(z) if relu else z, offsets)


def decode_sparse(codes: SparseCodes, W_dec: torch.Tensor, limit: int | None = None):
    """``sum_j values_j W_dec[latents_j]`` per row, without ``b_dec``: -> [batch, d_in].

    A gather of the kept decoder rows (``embedding_bag``); its backward reaches ``W_dec`` and
    ``values`` at the kept entries only. ``limit=m`` keeps only latents ``< m``: the partial
    sum over the prefix of the dictionary that a Matryoshka SAE reconstructs from.
    """
    if not isinstance(codes, SparseCodes):
        raise TypeError(f"codes must be a SparseCodes, got {type(codes).__name__}")
    if limit is not None:
        check_int_in_range("limit", limit, 0, W_dec.shape[0])
    values = codes.values  # [n]
    if limit is not None:
        values = values * (codes.latents < limit).to(values.dtype)  # [n] prefix only
    return F.embedding_bag(codes.latents, W_dec, codes.offsets, mode="sum",
                           per_sample_weights=values)  # [batch, d_in]


@torch.no_grad()
def to_dense(codes: SparseCodes, d_sae: int) -> torch.Tensor:
    """The [batch, d_sae] code matrix that ``codes`` stands for (no graph)."""
    check_int_in_range("d_sae", d_sae, 1)
    f = codes.values.new_zeros(codes.offsets.shape[0], d_sae)  # [batch, d_sae]
    f[codes.rows, codes.latents] = codes.values.detach()
    return f


@torch.no_grad()
def fired_latents(codes: SparseCodes) -> torch.Tensor:
    """Latents with a positive code somewhere in the batch (with repeats): [n_fired] long."""
    return codes.latents[codes.values > 0]
