"""One call that measures an SAE with every metric of Chapter 5 and prints them as one table.

``evaluate(sae, activations)`` runs the SAE in inference mode over the activations, batch by
batch (a tensor, an array or any iterable of batches), and accumulates in float64:

    FVU      = sum_b ||x_b - x_hat_b||^2 / sum_b ||x_b - mean(x)||^2   (metrics.FVUAccumulator)
    EV       = 1 - FVU
    L0       = mean_b #{i : f_bi != 0}
    density  = fraction of tokens on which each latent fires; dense = density > 1% and > 10%
    dead     = fraction of latents that never fire in the first ``dead_window_tokens`` tokens
               (the report keeps each latent's first firing, so any shorter window can be read
               off afterwards with ``report.dead_fraction_within(window)``)
    bias     = sum_b ||x_hat_b||^2 / sum_b x_b . x_hat_b   (relative reconstruction bias,
               Rajamanoharan et al. 2024, arXiv:2404.16014)

and, when given, MMCS against true features in both directions (Sharkey et al. 2022) and the
downstream CE loss recovered and delta loss. With ``show_wrong_fvu=True`` the report also holds the
three wrong FVU variants of :mod:`saelab.metrics` next to the right one: the pitfall of Chapter 5.
The formulas themselves live in :mod:`saelab.metrics`; this file only streams and collects them.

Taught in Chapter 5; used by Chapters 2, 4 and 6 to report an SAE.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Iterable

import numpy as np
import torch

from saelab import metrics
from saelab._checks import check_finite, check_int_in_range, check_shape

__all__ = ["EvalReport", "evaluate"]


@dataclass(frozen=True, eq=False)  # eq=False: firing_density is an array
class EvalReport:
    """Every Chapter 5 metric of one SAE on one evaluation set; ``print(report)`` shows a table.

    Optional metrics are ``None`` when their input was not given. Introduced in Chapter 5.
    """

    n_tokens: int  # rows evaluated
    fvu: float  # fraction of variance unexplained (the right one)
    explained_variance: float  # 1 - fvu
    l0: float  # mean active latents per token
    dead_fraction: float  # latents silent over the whole dead-latent window
    dead_window_tokens: int  # length of that window (a prefix of the evaluation set)
    dense_fraction_1pct: float  # latents firing on more than 1% of tokens
    dense_fraction_10pct: float  # latents firing on more than 10% of tokens
    relative_reconstruction_bias: float  # E||x_hat||^2 / E[x.x_hat]; < 1: shrinkage; NaN: undefined
    firing_density: np.ndarray  # (d_sae,) fraction of tokens each latent fires on
    first_fire: np.ndarray  # (d_sae,) int: row of each latent's first firing, -1 if it never did
    mmcs_learned_to_true: float | None = None  # mean over latents of best cos with a true feature
    mmcs_true_to_learned: float | None = None  # mean over true features of best cos with a latent
    ce_clean: float | None = None  # LM cross-entropy as is (nats/token)
    ce_sae: float | None = None  # with the SAE's reconstruction spliced in
    ce_zero: float | None = None  # with the activation zero-ablated
    ce_loss_recovered: float | None = None  # (ce_zero - ce_sae) / (ce_zero - ce_clean)
    delta_ce_loss: float | None = None  # ce_sae - ce_clean
    fvu_wrong_uncentered: float | None = None  # WRONG: variance about zero
    fvu_wrong_mean_of_squares: float | None = None  # WRONG: SAELens #659 denominator
    fvu_wrong_per_token_ratio: float | None = None  # WRONG: mean of per-token ratios

    _NOTES = {
        "n_tokens": "rows evaluated",
        "fvu": "sum||x-x_hat||^2 / sum||x-mean||^2, float64",
        "explained_variance": "1 - FVU",
        "l0": "mean #active latents per token",
        "dead_fraction": "never fired in the window",
        "dense_fraction_1pct": "fire on > 1% of tokens",
        "dense_fraction_10pct": "fire on > 10% of tokens",
        "relative_reconstruction_bias": "E||x_hat||^2 / E[x.x_hat]; 1 = unbiased",
        "mmcs_learned_to_true": "does every latent match a true feature?",
        "mmcs_true_to_learned": "is every true feature found?",
        "ce_clean": "LM cross-entropy as is (nats/token)",
        "ce_sae": "with the SAE's x_hat spliced in",
        "ce_zero": "with the activation zero-ablated",
        "ce_loss_recovered": "(CE_zero - CE_sae) / (CE_zero - CE_clean)",
        "delta_ce_loss": "CE_sae - CE_clean (nats/token)",
        "fvu_wrong_uncentered": "WRONG: variance about 0",
        "fvu_wrong_mean_of_squares": "WRONG: SAELens #659 denominator",
        "fvu_wrong_per_token_ratio": "WRONG: mean of per-token ratios",
    }

    def rows(self) -> list[tuple[str, str, str]]:
        """(metric, value, note) for every metric that was measured, in table order."""
        out = []
        for fld in fields(self):
            value = getattr(self, fld.name)
            if value is None or isinstance(value, np.ndarray):
                continue
            if isinstance(value, (int, np.integer)):
                text = f"{value:,}"
            else:
                text = f"{value:.4f}"
            note = self._NOTES.get(fld.name, "")
            if fld.name == "dead_fraction":
                note = f"never fired in {self.dead_window_tokens:,} tokens"
            if fld.name == "dead_window_tokens":
                continue
            out.append((fld.name, text, note))
        return out

    def dead_fraction_within(self, window: int) -> float:
        """Fraction of latents that fire on none of the first ``window`` rows evaluated.

        Read off ``first_fire``, so one evaluation gives the dead fraction for every window up
        to ``n_tokens``: the longer the window, the fewer latents look dead. Chapter 5.
        """
        check_int_in_range("window", window, 1, self.n_tokens)
        alive = (self.first_fire >= 0) & (self.first_fire < window)  # [d_sae]
        return float(np.mean(~alive))

    def table(self) -> str:
        """The report as one aligned plain-text table (metric, value, definition)."""
        rows = [("metric", "value", "definition")] + self.rows()
        w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
        lines = [f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _batches(activations, batch_size: int, d_in: int):
    """Yield float tensors of shape [batch, d_in], checked for width and finiteness."""
    if isinstance(activations, np.ndarray):
        activations = torch.from_numpy(activations)
    if isinstance(activations, torch.Tensor):
        check_shape("activations", activations, (None, d_in))
        for start in range(0, activations.shape[0], batch_size):
            batch = activations[start:start + batch_size]
            check_finite(f"activations[{start}:{start + batch.shape[0]}]", batch)
            yield batch
        return
    if not isinstance(activations, Iterable):
        raise ValueError(f"activations must be a tensor, an ndarray or an iterable of batches, "
                         f"got {type(activations).__name__}")
    for i, batch in enumerate(activations):
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch)
        if not isinstance(batch, torch.Tensor):
            raise ValueError(f"batch {i} of activations must be a tensor or ndarray, "
                             f"got {type(batch).__name__}")
        check_shape(f"batch {i} of activations", batch, (None, d_in))
        check_finite(f"batch {i} of activations", batch)
        yield batch


def _ce(ce_fn, sae) -> tuple[float, float, float]:
    values = ce_fn(sae)
    if not isinstance(values, (tuple, list)) or len(values) != 3:
        raise ValueError(f"ce_fn must return (ce_clean, ce_sae, ce_zero), got {values!r}")
    return tuple(float(v) for v in values)


@torch.no_grad()
def evaluate(sae, activations, *, batch_size: int = 4096, dead_window_tokens: int | None = None,
             true_features=None, ce_fn: Callable | None = None,
             show_wrong_fvu: bool = False) -> EvalReport:
    """Measure ``sae`` on ``activations`` with every metric of Chapter 5, in one pass.

    The SAE runs in inference mode (``sae.eval()``, which matters for BatchTopK's threshold) and
    is put back in the mode it was in. Introduced in Chapter 5.

    Parameters
    ----------
    sae : saelab.torch_sae.BaseSAE
        Any family.
    activations : Tensor or ndarray of shape (n, d_in), or an iterable of such batches
        A tensor is cut into batches of ``batch_size`` rows; an iterable's batches are used as
        they come (their rows are moved to the SAE's device and dtype).
    batch_size : int
        Rows per forward pass for tensor input.
    dead_window_tokens : int, optional
        A latent is dead if it fires on none of the first ``dead_window_tokens`` rows (default:
        all rows). Must not exceed the number of rows evaluated.
    true_features : Tensor or ndarray of shape (n_features, d_in), optional
        Ground-truth directions; adds MMCS in both directions against the decoder rows.
    ce_fn : callable, optional
        ``ce_fn(sae) -> (ce_clean, ce_sae, ce_zero)``: the language model's cross-entropy as is,
        with this SAE spliced in at the hook, and with the activation zero-ablated. Adds CE loss
        recovered and delta loss.
    show_wrong_fvu : bool
        Also report the three wrong FVU variants of :mod:`saelab.metrics` (Chapter 5's pitfall).
        The per-token variant needs the data mean first, so it reads ``activations`` twice:
        pass a tensor, an array or a re-iterable collection (a list of batches), not a generator.

    Returns
    -------
    EvalReport

    Raises
    ------
    ValueError
        Activations of the wrong width, with NaN or infinite values, or none at all; a window
        longer than the data; true features of the wrong width.
    """
    d_in, d_sae = sae.cfg.d_in, sae.cfg.d_sae
    check_int_in_range("batch_size", batch_size, 1)
    if dead_window_tokens is not None:
        check_int_in_range("dead_window_tokens", dead_window_tokens, 1)
    if true_features is not None:
        check_shape("true_features", true_features, (None, d_in))
        check_finite("true_features", true_features)
    if (show_wrong_fvu and isinstance(activations, Iterable)
            and not isinstance(activations, (torch.Tensor, np.ndarray))
            and iter(activations) is activations):
        raise ValueError("show_wrong_fvu needs activations it can read twice (a tensor, an "
                         "ndarray or a list of batches), got a one-shot "
                         f"{type(activations).__name__}")
    device, dtype = sae.W_dec.device, sae.W_dec.dtype
    was_training = sae.training
    sae.eval()
    try:
        acc = metrics.FVUAccumulator()
        n, l0_sum, sq_x, sq_hat, cross = 0, 0.0, 0.0, 0.0, 0.0
        fired_count = np.zeros(d_sae)  # [d_sae] tokens each latent fired on
        first_fire = np.full(d_sae, -1)  # [d_sae] row of the first firing, -1: not yet
        for batch in _batches(activations, batch_size, d_in):
            if batch.shape[0] == 0:
                continue
            x = batch.to(device, dtype)  # [batch, d_in]
            f = sae.encode(x)  # [batch, d_sae]
            x_hat = sae.decode(f)  # [batch, d_in]
            acc.update(x, x_hat)
            rows = x.shape[0]
            fires = (f != 0).cpu().numpy()  # [batch, d_sae] bool, 1 byte per entry on the CPU
            l0_sum += float(fires.sum())  # active latents over the batch's rows
            fired_count += fires.sum(axis=0)
            new = (first_fire < 0) & fires.any(axis=0)  # [d_sae] first firing in this batch
            first_fire[new] = n + fires[:, new].argmax(axis=0)
            x64, hat64 = x.double(), x_hat.double()  # [batch, d_in] float64 sums
            sq_x += float(x64.pow(2).sum())
            sq_hat += float(hat64.pow(2).sum())
            cross += float((x64 * hat64).sum())
            n += rows
        if n == 0:
            raise ValueError("activations must hold at least one row, got none")
        if dead_window_tokens is not None and dead_window_tokens > n:
            raise ValueError(f"dead_window_tokens must be at most the {n} rows evaluated, "
                             f"got {dead_window_tokens}")
        density = fired_count / n  # [d_sae]
        fvu = acc.value
        window = n if dead_window_tokens is None else int(dead_window_tokens)
        in_window = (first_fire >= 0) & (first_fire < window)  # [d_sae] fired within the window
        report = dict(
            n_tokens=n, fvu=fvu, explained_variance=1.0 - fvu, l0=l0_sum / n,
            dead_fraction=float(np.mean(~in_window)), dead_window_tokens=window,
            dense_fraction_1pct=float(np.mean(density > 0.01)),
            dense_fraction_10pct=float(np.mean(density > 0.10)),
            relative_reconstruction_bias=sq_hat / cross if cross > 0 else float("nan"),
            firing_density=density, first_fire=first_fire)
        if true_features is not None:
            m = metrics.mmcs(sae.W_dec, true_features)
            report.update(mmcs_learned_to_true=m.a_to_b, mmcs_true_to_learned=m.b_to_a)
        if ce_fn is not None:
            clean, spliced, zero = _ce(ce_fn, sae)
            report.update(ce_clean=clean, ce_sae=spliced, ce_zero=zero,
                          ce_loss_recovered=metrics.ce_loss_recovered(clean, spliced, zero),
                          delta_ce_loss=metrics.delta_ce_loss(clean, spliced))
        if show_wrong_fvu:
            report.update(_wrong_fvus(sae, activations, batch_size, d_in, acc, n, sq_x))
    finally:
        sae.train(was_training)
    return EvalReport(**report)


def _wrong_fvus(sae, activations, batch_size, d_in, acc, n, sq_x) -> dict:
    """The wrong FVU variants of :mod:`saelab.metrics`, streamed (second pass for per-token).

    Same formulas as ``metrics.fvu_wrong_*`` applied to all rows at once (the tests check it).
    """
    mean_of_squares = sq_x / (n * d_in)  # scalar mean over rows and dimensions of x_d^2
    buggy_denominator = sq_x / n - mean_of_squares ** 2
    per_token_sum = 0.0
    mean = torch.as_tensor(acc.mean)  # [d_in] float64 data mean
    for batch in _batches(activations, batch_size, d_in):
        x = batch.to(sae.W_dec.device, sae.W_dec.dtype)  # [batch, d_in]
        x_hat = sae.decode(sae.encode(x)).double().cpu()  # [batch, d_in]
        x = x.double().cpu()
        total = (x - mean).pow(2).sum(1)  # [batch]
        if bool((total <= 0).any()):
            raise ValueError("some token equals the mean exactly; the per-token ratio is undefined")
        per_token_sum += float(((x - x_hat).pow(2).sum(1) / total).sum())
    return dict(
        fvu_wrong_uncentered=acc.residual / sq_x if sq_x > 0 else float("nan"),
        fvu_wrong_mean_of_squares=(acc.residual / n / buggy_denominator
                                   if buggy_denominator != 0 else float("nan")),
        fvu_wrong_per_token_ratio=per_token_sum / n)
