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

AuxK (topk.py) reconstructs the residual from each row's ``k_aux`` largest pre-activations among
the ``n_dead`` dead latents. ``k_aux`` is large (OpenAI's 256, SAELens's d_in / 2), so when few
latents are dead those codes fill a large share of the dead columns: ``_auxk_decode`` then
multiplies densely over the dead columns only (BLAS products of [batch x d_in x n_dead]), else
it gathers as above. Same numbers either way (tests/test_sparse_topk.py). Measured on a CPU at
d_in 768, d_sae 16,384, batch 1024, k_aux 384: the whole training step with 5% of latents dead
took 644 ms with the gather and 462 ms with the dense form (bench/bench_train_step.py); for
the AuxK term alone, 825 dead latents took 282 ms gathered and 114 ms dense, 3,185 took 297 ms
and 344 ms, so the crossover near 7 k_aux is an estimate from those two points and the switch
sits below it, at 4 k_aux.
Both need the number of dead latents on the host, a device sync; on an accelerator the SAEs call
``_auxk_decode_no_sync`` instead, which keeps every count on the device (the same numbers).
The public functions check their input; the SAEs' sparse forward and the training loop call the
unchecked private twins (``_topk_selection`` ...) on every step, after checking ``x`` once.
Chapter 4 (speed box).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from saelab._checks import check_instance, check_int_in_range, check_shape, check_tensor

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


def _check_params(x, W_enc, b_enc, b_dec) -> None:
    """Types, shapes and dtypes of the encoder inputs (NaN only on the CPU: no device sync)."""
    check_tensor("x", x, 2)
    check_tensor("W_enc", W_enc, 2)
    check_tensor("b_enc", b_enc, 1)
    check_tensor("b_dec", b_dec, 1)
    d_in, d_sae = W_enc.shape
    check_shape("x", x, (None, d_in))
    check_shape("b_enc", b_enc, (d_sae,))
    check_shape("b_dec", b_dec, (d_in,))
    for name, t in (("x", x), ("b_enc", b_enc), ("b_dec", b_dec)):
        if t.dtype != W_enc.dtype:
            raise TypeError(f"{name} must have W_enc's dtype {W_enc.dtype}, got {t.dtype}")


def _check_codes(codes) -> SparseCodes:
    check_instance("codes", codes, SparseCodes, "a SparseCodes (rows, latents, values, offsets)")
    for name in SparseCodes._fields:
        check_tensor(f"codes.{name}", getattr(codes, name), 1, nonempty=False,
                     floating=name == "values")
    n = codes.values.shape[0]
    for name in ("rows", "latents"):
        check_shape(f"codes.{name}", getattr(codes, name), (n,))
    return codes


@torch.no_grad()
def dense_pre_acts(x, W_enc, b_enc, b_dec) -> torch.Tensor:
    """``x @ W_enc + (b_enc - b_dec @ W_enc)`` without a graph: [batch, d_in] -> [batch, d_sae].

    Equal to ``(x - b_dec) @ W_enc + b_enc``; folding ``b_dec`` into the bias saves the
    [batch, d_in] subtraction and, in a dense backward, one dense product.
    """
    _check_params(x, W_enc, b_enc, b_dec)
    return _dense_pre_acts(x, W_enc, b_enc, b_dec)


@torch.no_grad()
def _dense_pre_acts(x, W_enc, b_enc, b_dec) -> torch.Tensor:
    return torch.addmm(b_enc - b_dec @ W_enc, x, W_enc)  # [batch, d_sae]


def _check_pre(pre) -> None:
    check_tensor("pre", pre, 2)  # NaN on the CPU: a NaN would be "selected" as the largest


@torch.no_grad()
def topk_selection(pre: torch.Tensor, k: int):
    """Rows, latents and pre-activations of the k largest entries of each row of ``pre``.

    pre: [batch, d_sae]. Returns (rows [batch*k], latents [batch*k], values [batch*k]).
    """
    _check_pre(pre)
    check_int_in_range("k", k, 1, pre.shape[1])
    return _topk_selection(pre, k)


@torch.no_grad()
def _topk_selection(pre: torch.Tensor, k: int):
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
    return _batch_topk_selection(pre, n_keep)


@torch.no_grad()
def _batch_topk_selection(pre: torch.Tensor, n_keep: int):
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
    _check_params(x, W_enc, b_enc, b_dec)
    check_tensor("pre_kept", pre_kept, 1)
    if pre_kept.dtype != W_enc.dtype:
        raise TypeError(f"pre_kept must have W_enc's dtype {W_enc.dtype}, got {pre_kept.dtype}")
    bounds = {"rows": x.shape[0], "latents": W_enc.shape[1]}
    for name, t in (("rows", rows), ("latents", latents)):
        check_instance(name, t, torch.Tensor, "a torch.long tensor")
        if t.dtype != torch.long:
            raise TypeError(f"{name} must be a torch.long tensor, got dtype {t.dtype}")
        check_shape(name, t, (pre_kept.shape[0],))
        if t.numel() and not (0 <= int(t.min()) and int(t.max()) < bounds[name]):
            raise ValueError(f"{name} must lie in 0..{bounds[name] - 1}, got values in "
                             f"{int(t.min())}..{int(t.max())}")
    if rows.numel() > 1 and bool((rows[1:] < rows[:-1]).any()):
        raise ValueError("rows must be non-decreasing (entries sorted by row), got an unsorted "
                         "tensor")
    if not isinstance(relu, bool):
        raise TypeError(f"relu must be True or False, got {relu!r}")
    return _sparse_codes(x, W_enc, b_enc, b_dec, rows, latents, pre_kept, relu)


def _sparse_codes(x, W_enc, b_enc, b_dec, rows, latents, pre_kept, relu=True) -> SparseCodes:
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
    _check_codes(codes)
    check_tensor("W_dec", W_dec, 2)
    if codes.values.dtype != W_dec.dtype:
        raise TypeError(f"codes.values must have W_dec's dtype {W_dec.dtype}, got "
                        f"{codes.values.dtype}")
    lat = codes.latents
    if lat.numel() and not (0 <= int(lat.min()) and int(lat.max()) < W_dec.shape[0]):
        raise ValueError(f"codes.latents must lie in 0..{W_dec.shape[0] - 1} (the rows of W_dec), "
                         f"got values in {int(lat.min())}..{int(lat.max())}")
    if limit is not None:
        check_int_in_range("limit", limit, 0, W_dec.shape[0])
    return _decode_sparse(codes, W_dec, limit)


def _decode_sparse(codes: SparseCodes, W_dec: torch.Tensor, limit: int | None = None):
    values = codes.values  # [n]
    if limit is not None:
        values = values * (codes.latents < limit).to(values.dtype)  # [n] prefix only
    return F.embedding_bag(codes.latents, W_dec, codes.offsets, mode="sum",
                           per_sample_weights=values)  # [batch, d_in]


AUXK_DENSE_MAX_RATIO = 4  # dense AuxK over the dead columns while n_dead <= 4 k_aux


def _auxk_decode(x, pre, dead, k_aux: int, W_enc, b_enc, b_dec, W_dec) -> torch.Tensor:
    """AuxK's reconstruction ``e_hat`` [batch, d_in]: each row's ``k_aux`` largest (signed)
    pre-activations among the ``dead`` latents (long [n_dead]) times their decoder rows.

    ``pre`` [batch, d_sae] (no graph) selects; the values carry gradients to the encoder and
    decoder as on the dense path. See the module docstring for the two ways.
    """
    pre_dead = pre.index_select(1, dead)  # [batch, n_dead]
    if dead.numel() > AUXK_DENSE_MAX_RATIO * k_aux:
        rows, local, pre_kept = _topk_selection(pre_dead, k_aux)
        codes = _sparse_codes(x, W_enc, b_enc, b_dec, rows, dead[local], pre_kept, relu=False)
        return _decode_sparse(codes, W_dec)  # [batch, d_in]
    kept = pre_dead.topk(k_aux, dim=-1, sorted=False).indices  # [batch, k_aux]
    mask = torch.zeros_like(pre_dead, dtype=torch.bool).scatter_(1, kept, True)  # [batch, n_dead]
    # the dead columns as rows of W_enc.T: their gradient then has the layout of the main
    # path's (KeptPreActs), so autograd adds the two without a strided copy
    W_dead = W_enc.T.index_select(0, dead)  # [n_dead, d_in]
    z = torch.addmm(b_enc.index_select(0, dead), x - b_dec, W_dead.T)  # [batch, n_dead]
    return (z * mask) @ W_dec.index_select(0, dead)  # [batch, d_in]


def _auxk_decode_no_sync(x, pre, dead_mask, k_aux: int, W_enc, b_enc, b_dec, W_dec):
    """``_auxk_decode`` with no host-device sync, for accelerators: (e_hat [batch, d_in], whether
    any latent is dead [] bool). The number of dead latents stays on the device: each row keeps
    its ``min(k_aux, d_sae)`` largest entries with live latents at -inf, and the entries past
    the number of dead latents keep value 0, so they add nothing and receive no gradient."""
    batch, d_sae = pre.shape
    k_aux = min(k_aux, d_sae)
    values, latents = pre.masked_fill(~dead_mask, float("-inf")).topk(k_aux, dim=-1, sorted=False)
    valid = torch.isfinite(values).reshape(-1)  # [batch * k_aux] False past the dead latents
    rows = torch.arange(batch, device=pre.device).repeat_interleave(k_aux)  # [batch * k_aux]
    pre_kept = torch.where(valid, values.reshape(-1), 0.0)  # [batch * k_aux]
    codes = _sparse_codes(x, W_enc, b_enc, b_dec, rows, latents.reshape(-1), pre_kept, relu=False)
    codes = codes._replace(values=codes.values * valid.to(codes.values.dtype))
    return _decode_sparse(codes, W_dec), dead_mask.any()


@torch.no_grad()
def to_dense(codes: SparseCodes, d_sae: int) -> torch.Tensor:
    """The [batch, d_sae] code matrix that ``codes`` stands for (no graph)."""
    _check_codes(codes)
    check_int_in_range("d_sae", d_sae, 1)
    lat = codes.latents
    if lat.numel() and int(lat.max()) >= d_sae:
        raise ValueError(f"d_sae must exceed the largest latent in codes ({int(lat.max())}), "
                         f"got {d_sae}")
    f = codes.values.new_zeros(codes.offsets.shape[0], d_sae)  # [batch, d_sae]
    f[codes.rows, codes.latents] = codes.values.detach()
    return f


@torch.no_grad()
def fired_latents(codes: SparseCodes) -> torch.Tensor:
    """Latents with a positive code somewhere in the batch (with repeats): [n_fired] long."""
    return _fired_latents(_check_codes(codes))


@torch.no_grad()
def _fired_latents(codes: SparseCodes) -> torch.Tensor:
    return codes.latents[codes.values > 0]
