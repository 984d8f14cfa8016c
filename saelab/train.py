"""Training loop for the torch SAEs (all families).

One step on a batch ``x`` of shape [batch, d_in]:

    out  = sae(x, dead_mask)                                   # SAEOutput with every loss term
    loss = out.loss - (1 - s_t) * out.sparsity_loss            # = recon + s_t * sparsity + aux
    loss.backward(); [unit-norm decoders: sae.remove_parallel_grad()]; clip; Adam step
    sae.apply_constraints()                                    # renormalise rows / clamp theta

with the learning rate ``lr_t`` and sparsity factor ``s_t`` from :mod:`saelab.schedules`
(Anthropic, "Circuits Updates - April 2024": warm the penalty up over the first 5% of steps and
decay the learning rate over the last 20%). The warm-up rescales the sparsity term the forward
pass returned instead of editing ``sae.cfg``: the SAE's forward stays a pure function of its
weights and config, and the loop never has to restore a coefficient it changed. The loss terms
themselves come from the SAE; this file only combines them.

Other pieces: ``b_dec`` starts at the geometric median of a data sample (Bricken et al. 2023);
the encoder starts as the decoder transpose (done in the SAE's constructor); dead latents are
tracked over a token window and passed to the forward pass (AuxK, Gao et al. 2024); L1 SAEs can
resample dead latents (:mod:`saelab.dead_latents`); a non-finite loss stops training, restores the
last weights that gave a finite loss, and raises :class:`TrainingDivergedError`.

Taught in Chapter 2 (L1) and used for every family in Chapters 4 to 6.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from saelab._checks import (check_finite, check_int_in_range, check_positive, check_probability,
                            check_shape)
from saelab.dead_latents import DeadLatentTracker, resample_dead_latents
from saelab.geometric_median import geometric_median
from saelab.schedules import lr_at, sparsity_factor_at

__all__ = ["TrainConfig", "TrainHistory", "TrainResult", "TrainingDivergedError", "train_sae",
           "B_DEC_INITS"]

B_DEC_INITS = ("geometric_median", "mean", "zeros")


@dataclass
class TrainConfig:
    """Settings of :func:`train_sae` (Chapter 2). Defaults suit the toy data of Chapter 2."""

    n_steps: int = 3000  # optimizer steps; tokens seen = n_steps * batch_size
    batch_size: int = 256  # rows per step; real-model SAEs use 4096 or more
    lr: float = 1e-3  # peak Adam rate; fine for toy sizes, real SAEs use ~1e-4 to 3e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)  # PyTorch's defaults; GDM uses (0, 0.999)
    adam_eps: float = 1e-8  # PyTorch's default; OpenAI used 6.25e-10 at their scale
    lr_warmup_steps: int = 0  # linear lr warm-up; Adam from a transpose init rarely needs it
    lr_decay_frac: float = 0.2  # decay lr linearly to 0 over this last fraction (Anthropic 2024)
    sparsity_warmup_frac: float = 0.05  # ramp the sparsity term up over this first fraction
    b_dec_init: str = "geometric_median"  # or "mean" / "zeros"; median ignores outliers
    b_dec_init_samples: int = 4096  # rows used to compute that initial b_dec
    dead_window_tokens: int = 50_000  # silent this long = dead; OpenAI used 10M on real LMs
    resample_every: int = 0  # L1 only: steps between dead-latent resamplings; 0 turns it off
    resample_pool: int = 4096  # inputs scored to choose resampled directions
    grad_clip: float | None = 1.0  # max global gradient norm (SAELens default); None: no clip
    log_every: int = 50  # steps between history rows (and progress-bar updates)
    seed: int = 0  # seeds batch order and resampling draws (not the SAE's init)
    device: str | None = None  # None: train where the SAE's parameters already are

    def __post_init__(self) -> None:
        check_int_in_range("n_steps", self.n_steps, 1)
        check_int_in_range("batch_size", self.batch_size, 1)
        check_positive("lr", self.lr)
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        check_positive("adam_eps", self.adam_eps)
        check_int_in_range("lr_warmup_steps", self.lr_warmup_steps, 0)
        check_probability("lr_decay_frac", self.lr_decay_frac)
        check_probability("sparsity_warmup_frac", self.sparsity_warmup_frac)
        if self.b_dec_init not in B_DEC_INITS:
            raise ValueError(f"b_dec_init must be one of {B_DEC_INITS}, got {self.b_dec_init!r}")
        check_int_in_range("b_dec_init_samples", self.b_dec_init_samples, 1)
        check_int_in_range("dead_window_tokens", self.dead_window_tokens, 1)
        check_int_in_range("resample_every", self.resample_every, 0)
        check_int_in_range("resample_pool", self.resample_pool, 1)
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip)
        check_int_in_range("log_every", self.log_every, 1)
        check_int_in_range("seed", self.seed, 0)


@dataclass
class TrainHistory:
    """One entry per logging step; loss terms are means over the steps since the last row.

    ``loss`` is the objective actually minimised (sparsity term scaled by its warm-up factor);
    ``fvu`` is a training estimate (each batch centred on its own mean); ``dead_frac`` uses the
    token window of the config; ``lr`` is the rate of the row's last step.
    """

    step: list[int] = field(default_factory=list)  # steps done so far
    tokens: list[int] = field(default_factory=list)  # training rows seen so far
    loss: list[float] = field(default_factory=list)
    recon: list[float] = field(default_factory=list)  # mean_b ||x_b - x_hat_b||^2
    l0: list[float] = field(default_factory=list)  # mean active latents per row
    fvu: list[float] = field(default_factory=list)
    dead_frac: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)


class TrainResult(NamedTuple):
    """What :func:`train_sae` returns; the SAE itself is trained in place."""

    sae: torch.nn.Module  # the same object that was passed in
    history: TrainHistory
    tokens_since_fired: torch.Tensor  # [d_sae] at the end of training
    resampled: list[tuple[int, int]]  # (step, number of latents) per resampling event


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite; the SAE holds the last weights with a finite loss."""

    def __init__(self, message: str, step: int, history: TrainHistory) -> None:
        super().__init__(message)
        self.step = step  # 1-based step whose loss was not finite
        self.history = history  # rows logged before it


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def _as_tensor(name: str, batch) -> torch.Tensor:
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
    if not isinstance(batch, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or ndarray, got {type(batch).__name__}")
    return batch


def _shuffled_batches(data: torch.Tensor, batch_size: int, g: torch.Generator):
    """Endless batches of rows of ``data``, a fresh random order each epoch (drop the tail)."""
    n = data.shape[0]
    while True:
        order = torch.randperm(n, generator=g)  # [n]
        for start in range(0, n - batch_size + 1, batch_size):
            yield data[order[start:start + batch_size].to(data.device)]


def _checked_batches(batches: Iterator, d_in: int):
    for i, batch in enumerate(batches):
        batch = _as_tensor(f"batch {i} of data", batch)
        check_shape(f"batch {i} of data", batch, (None, d_in))
        check_finite(f"batch {i} of data", batch)
        yield batch


# ----------------------------------------------------------------------------------------------
# (input, target) pairs: transcoders (Chapter 8)
# ----------------------------------------------------------------------------------------------

def _data_width(sae) -> int:
    """Width of a data row: d_in for an SAE, d_in + d_out for a model with ``cfg.d_out``."""
    return sae.cfg.d_in + getattr(sae.cfg, "d_out", 0)


def _split_target(sae, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) of a batch: an SAE reconstructs its input; a transcoder (``cfg.d_out``)
    reads rows ``[input | target]`` (``saelab.torch_sae.pair_rows``)."""
    if getattr(sae.cfg, "d_out", None) is None:
        return batch, batch
    return batch[:, :sae.cfg.d_in], batch[:, sae.cfg.d_in:]


def _forward(sae, x: torch.Tensor, target: torch.Tensor, dead_mask: torch.Tensor):
    if target is x:
        return sae(x, dead_mask=dead_mask)
    return sae(x, dead_mask=dead_mask, target=target)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------

def _prepare_data(data, cfg: TrainConfig, d_in: int, g: torch.Generator):
    """Validate ``data``; return (batch iterator, sample for b_dec, pool drawer for resampling)."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        data = _as_tensor("data", data)
        check_shape("data", data, (None, d_in))
        check_finite("data", data)
        if data.shape[0] < cfg.batch_size:
            raise ValueError(f"batch_size must be at most the {data.shape[0]} rows of data, "
                             f"got {cfg.batch_size}")
        rows = torch.randperm(data.shape[0], generator=g)[:cfg.b_dec_init_samples]
        sample = data[rows.to(data.device)]

        def draw_pool(current_batch):  # random rows of the whole data set
            rows = torch.randint(data.shape[0], (cfg.resample_pool,), generator=g)
            return data[rows.to(data.device)]

        return _shuffled_batches(data, cfg.batch_size, g), sample, draw_pool
    if isinstance(data, Iterable):
        batches = _checked_batches(iter(data), d_in)
        first = next(batches, None)
        if first is None:
            raise ValueError("data must hold at least one batch, got an empty iterable")
        # a stream cannot be revisited: b_dec starts from the first batch, resampling scores
        # the current batch
        return itertools.chain([first], batches), first[:cfg.b_dec_init_samples], lambda x: x
    raise ValueError(f"data must be a tensor of shape (n, {d_in}) or an iterable of batches, "
                     f"got {type(data).__name__}")


@torch.no_grad()
def _init_b_dec(sae, sample: torch.Tensor, how: str) -> None:
    if how == "zeros":
        sae.b_dec.zero_()
    elif how == "mean":
        sae.b_dec.copy_(sample.mean(dim=0))
    else:
        sae.b_dec.copy_(geometric_median(sample).median)


class _Window:
    """Sums of the logged quantities over the steps since the last history row (on device)."""

    def __init__(self, device: torch.device) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS lacks float64
        self.sums = torch.zeros(5, dtype=dtype, device=device)  # loss, recon, l0, err, centred
        self.n_steps = 0

    @torch.no_grad()
    def add(self, loss: torch.Tensor, out, x: torch.Tensor) -> None:
        l0 = (out.f != 0).sum(dim=1).to(self.sums.dtype).mean()  # []
        err = (x - out.x_hat).pow(2).sum()  # []
        centred = (x - x.mean(dim=0)).pow(2).sum()  # [] each batch about its own mean
        terms = [loss, out.recon_loss, l0, err, centred]
        self.sums += torch.stack([t.detach().to(self.sums.dtype) for t in terms])
        self.n_steps += 1

    def flush(self, history: TrainHistory, step: int, tokens: int, dead_frac: float,
              lr: float) -> None:
        loss, recon, l0, err, centred = self.sums.tolist()
        n = self.n_steps
        row = dict(step=step, tokens=tokens, loss=loss / n, recon=recon / n, l0=l0 / n,
                   fvu=err / centred if centred > 0 else float("nan"), dead_frac=dead_frac, lr=lr)
        for key, value in row.items():
            getattr(history, key).append(value)
        self.sums.zero_()
        self.n_steps = 0


def _log(window: _Window, history: TrainHistory, step: int, tokens: int,
         tracker: DeadLatentTracker, lr: float, bar) -> None:
    """Append a history row and show it on the progress bar."""
    window.flush(history, step, tokens, float(tracker.dead_mask.float().mean()), lr)
    bar.set_postfix(loss=f"{history.loss[-1]:.4g}", l0=f"{history.l0[-1]:.1f}",
                    fvu=f"{history.fvu[-1]:.3f}", dead=f"{history.dead_frac[-1]:.2f}",
                    refresh=False)


def train_sae(sae, data, cfg: TrainConfig | None = None, progress: bool = True,
              callback: Callable[[int, object], None] | None = None) -> TrainResult:
    """Train ``sae`` in place with Adam; return its history. Introduced in Chapter 2.

    Parameters
    ----------
    sae : saelab.torch_sae.BaseSAE
        An L1, TopK or JumpReLU SAE (weights as constructed: ``W_enc = W_dec.T``).
    data : Tensor or ndarray of shape (n, d_in), or an iterable of such batches
        A tensor is sampled in shuffled batches of ``cfg.batch_size``, for as many epochs as
        needed. An iterable is consumed in order, one batch per step (its batch size wins);
        training stops early, with a warning, if it runs out.
        For a transcoder (a model whose ``cfg`` has ``d_out``), rows are ``[input | target]``
        of width ``d_in + d_out`` (``saelab.torch_sae.pair_rows``; Chapter 8).
    cfg : TrainConfig, optional
        Defaults to ``TrainConfig()``.
    progress : bool
        Show a tqdm progress bar (works in notebooks and terminals).
    callback : callable ``callback(step, sae)``, optional
        Called after every history row (every ``cfg.log_every`` steps and at the end), for
        measurements the history does not hold, such as MMCS against known features.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Bad data (wrong width, NaN or infinite values, too few rows) or a bad config.
    TrainingDivergedError
        The loss became NaN or infinite; the SAE is restored to the last good weights.
    """
    cfg = TrainConfig() if cfg is None else cfg
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(sae, torch.nn.Module) or not hasattr(sae, "cfg"):
        raise ValueError(f"sae must be a saelab torch SAE, got {type(sae).__name__}")
    family, d_sae = sae.cfg.family, sae.cfg.d_sae
    if cfg.resample_every > 0 and family != "l1":
        raise ValueError(f"resample_every must be 0 for a {family} SAE (resampling is for L1 "
                         f"SAEs; TopK uses AuxK), got {cfg.resample_every}")
    if cfg.device is not None:
        sae.to(cfg.device)
    device, dtype = sae.W_dec.device, sae.W_dec.dtype
    g = torch.Generator().manual_seed(cfg.seed)  # batch order and resampling draws
    batches, sample, draw_pool = _prepare_data(data, cfg, _data_width(sae), g)
    _init_b_dec(sae, _split_target(sae, sample)[1].to(device, dtype), cfg.b_dec_init)

    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps)
    tracker = DeadLatentTracker(d_sae, cfg.dead_window_tokens, device=device)
    last_good = {name: t.detach().clone() for name, t in sae.state_dict().items()}  # + buffers
    history, resampled, window = TrainHistory(), [], _Window(device)
    resample_until = cfg.n_steps - int(np.ceil(cfg.lr_decay_frac * cfg.n_steps))
    tokens, done, lr, was_training = 0, 0, cfg.lr, sae.training
    bar = tqdm(total=cfg.n_steps, disable=not progress, desc=f"training {family} SAE",
               unit="step")
    sae.train()
    try:
        for step in range(cfg.n_steps):
            x = next(batches, None)
            if x is None:
                warnings.warn(f"data ran out after {step} of {cfg.n_steps} steps; stopping early")
                break
            x, target = _split_target(sae, x.to(device, dtype))  # [batch, d_in], its target
            lr = lr_at(step, cfg.n_steps, cfg.lr, cfg.lr_warmup_steps, cfg.lr_decay_frac)
            for group in opt.param_groups:
                group["lr"] = lr
            factor = sparsity_factor_at(step, cfg.n_steps, cfg.sparsity_warmup_frac)

            out = _forward(sae, x, target, tracker.dead_mask)
            loss = out.loss - (1.0 - factor) * out.sparsity_loss  # [] sparsity warm-up
            with torch.no_grad():
                if not bool(torch.isfinite(loss)):
                    sae.load_state_dict(last_good)
                    raise TrainingDivergedError(
                        f"loss became {loss.item()} at step {step + 1} (lr={lr:.3g}); the SAE "
                        f"holds the last weights with a finite loss. Try a lower learning rate "
                        f"(e.g. lr={cfg.lr / 10:.3g}) or check the scale of the data.",
                        step + 1, history)
                for name, t in sae.state_dict().items():
                    last_good[name].copy_(t)

            opt.zero_grad(set_to_none=True)
            loss.backward()
            if sae.unit_norm_decoder:
                sae.remove_parallel_grad()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip)
            opt.step()
            sae.apply_constraints()

            tracker.update(out.f)
            window.add(loss, out, target)
            tokens += x.shape[0]
            done = step + 1
            if (cfg.resample_every > 0 and done % cfg.resample_every == 0
                    and done < resample_until and bool(tracker.dead_mask.any())):
                dead = tracker.dead_mask.clone()
                pool = draw_pool(x).to(device, dtype)  # [n_pool, d_in]
                resampled.append((done, resample_dead_latents(sae, opt, dead, pool, g)))
                tracker.reset(dead)
            if done % cfg.log_every == 0:
                _log(window, history, done, tokens, tracker, lr, bar)
                if callback is not None:
                    callback(done, sae)
            bar.update(1)
        if window.n_steps > 0:  # the last, partial window
            _log(window, history, done, tokens, tracker, lr, bar)
            if callback is not None:
                callback(done, sae)
    finally:
        bar.close()
        sae.train(was_training)
    return TrainResult(sae, history, tracker.tokens_since_fired.clone(), resampled)
