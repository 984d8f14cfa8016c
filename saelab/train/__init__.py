"""Training loop for the torch SAEs (all families).

One step on a batch ``x`` of shape [batch, d_in]:

    out  = sae(x, dead_mask)                                   # every loss term
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
resample dead latents (:mod:`saelab.dead_latents`); :mod:`saelab.train.guard` stops a diverging
run, restores the last good weights and raises :class:`TrainingDivergedError`.

Speed: TopK-family SAEs train on their sparse path (:mod:`saelab.torch_sae.sparse`: the same
numbers, gradients only over the kept entries) when ``d_sae >= SPARSE_MIN_RATIO * k``; firing
statistics come from the kept indices; Adam is PyTorch's fused kernel where available; the loop
syncs with the device only at logging steps (bench/bench_train_step.py measures all of this).

Taught in Chapter 2 (L1) and used for every family in Chapters 4 to 6.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from saelab._checks import check_int_in_range, check_positive, check_probability, check_sae
from saelab.dead_latents import DeadLatentTracker, resample_dead_latents
from saelab.schedules import lr_at, sparsity_factor_at
from saelab.train import distributed as train_dist
from saelab.train.data import init_b_dec, prepare_data
from saelab.train.firing import step_firing
from saelab.train.memory import keep_freed_memory
from saelab.train.device import PRECISIONS, autocast, maybe_compile, set_tf32, use_bf16
from saelab.train.guard import (DivergenceGuard, TrainingDivergedError, check_lr_fits,
                                final_check)
from saelab.train.pairs import data_width, split_target, step_forward
from saelab.train.state import Checkpointer, loop_state
from saelab.train.stopping import (StopRequest, check_stop, stop_agreed, stop_early,
                                   stop_on_signals)
from saelab.train.window import Window, log_row

__all__ = ["TrainConfig", "TrainHistory", "TrainResult", "TrainingDivergedError", "train_sae",
           "B_DEC_INITS", "SPARSE_MIN_RATIO", "use_sparse_path", "StopRequest", "stop_on_signals"]

B_DEC_INITS = ("geometric_median", "mean", "zeros")
SPARSE_MIN_RATIO = 8  # sparse path when d_sae >= 8 k: measured faster down to d_sae = 16 k


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
    log_every: int = 50  # steps between history rows, divergence checks and progress updates
    seed: int = 0  # seeds batch order and resampling draws (not the SAE's init)
    device: str | None = None  # None: train where the SAE's parameters already are
    sparse: bool | None = None  # TopK family's sparse path; None: when d_sae >= 8 k
    max_fvu_growth: float = 1e3  # batch FVU above this times the first step's: diverged
    precision: str = "float32"  # "bf16": CUDA autocast, float32 master weights (saelab.train.device)
    tf32: bool = True  # CUDA: TensorFloat-32 matmuls (Ampere+); ignored elsewhere
    compile: bool = False  # CUDA: torch.compile the forward pass; warns and skips elsewhere
    keep_memory: bool | None = None  # keep freed memory (glibc); None: when training on a CPU

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
        if self.sparse not in (None, True, False):
            raise ValueError(f"sparse must be None, True or False, got {self.sparse!r}")
        check_positive("max_fvu_growth", self.max_fvu_growth)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.keep_memory not in (None, True, False):
            raise ValueError(f"keep_memory must be None, True or False, got {self.keep_memory!r}")
        for name in ("tf32", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")


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


def use_sparse_path(sae, sparse: bool | None = None) -> bool:
    """Whether :func:`train_sae` uses the sparse path (Chapter 4): ``sparse`` if given, else
    for a TopK-family SAE with ``d_sae >= SPARSE_MIN_RATIO * k``."""
    check_sae("sae", sae)
    if sparse not in (None, True, False):
        raise ValueError(f"sparse must be None, True or False, got {sparse!r}")
    has_path = hasattr(sae, "_forward_sparse")
    if sparse is None:
        return has_path and sae.cfg.d_sae >= SPARSE_MIN_RATIO * sae.cfg.k
    if sparse and not has_path:
        raise ValueError(f"sparse must be None or False for a {sae.cfg.family} SAE (only the "
                         f"TopK family has a sparse path), got True")
    return bool(sparse)


def _make_adam(params, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel where the device supports it (one pass over the
    parameters instead of several); the same update rule either way."""
    kw = dict(lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps)
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, ValueError):  # device or dtype without a fused kernel
        return torch.optim.Adam(params, **kw)


def train_sae(sae, data, cfg: TrainConfig | None = None, progress: bool = True,
              callback: Callable[[int, object], None] | None = None, *, checkpoint_dir=None,
              checkpoint_every: int = 0, resume_from=None, stop=None) -> TrainResult:
    """Train ``sae`` in place with Adam; return its history. Introduced in Chapter 2.

    Parameters
    ----------
    sae : saelab.torch_sae.BaseSAE
        An SAE of any family (weights as constructed: ``W_enc = W_dec.T``).
    data : Tensor or ndarray of shape (n, d_in), or an iterable of such batches
        A tensor is sampled in shuffled batches of ``cfg.batch_size``, for as many epochs as
        needed. An iterable is consumed in order, one batch per step (its batch size wins);
        training stops early, with a warning, if it runs out. For a transcoder (Chapter 8)
        rows are ``[input | target]`` of width ``d_in + d_out`` (:mod:`saelab.train.pairs`).
    cfg : TrainConfig, optional
        Defaults to ``TrainConfig()``.
    progress : bool
        Show a tqdm progress bar (works in notebooks and terminals).
    callback : callable ``callback(step, sae)``, optional
        Called after every history row (every ``cfg.log_every`` steps and at the end), for
        measurements the history does not hold, such as MMCS against known features.
    checkpoint_dir, checkpoint_every, resume_from : optional
        Training-state checkpoints (saelab.train.state): into ``checkpoint_dir`` every
        ``checkpoint_every`` steps and after the last; resume from a file or folder of them.
    stop : object with ``is_set()``, optional
        Once set (saelab.train.stop_on_signals sets it on SIGTERM or Ctrl-C), training ends
        after the current step, with a checkpoint of that step in ``checkpoint_dir`` and a
        warning (saelab.train.stopping; under torch.distributed, at the next history row).

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Bad data (wrong width, NaN or infinite values, too few rows), a bad config, or an
        ``lr`` so large that Adam's first step could overflow the parameters' dtype.
    TrainingDivergedError
        Non-finite loss or weights, or a training-batch FVU past the bound (checked every
        ``cfg.log_every`` steps and after the final step); the SAE holds the last good weights.
    KeyboardInterrupt
        Re-raised after constraints are re-applied; ``.partial_result`` holds the TrainResult
        so far (in a notebook: ``sys.last_value.partial_result``).
    """
    cfg = TrainConfig() if cfg is None else cfg
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(sae, torch.nn.Module) or not hasattr(sae, "cfg"):
        raise ValueError(f"sae must be a saelab torch SAE, got {type(sae).__name__}")
    family, d_sae = sae.cfg.family, sae.cfg.d_sae
    check_stop(stop)
    if cfg.resample_every > 0 and family != "l1":
        raise ValueError(f"resample_every must be 0 for a {family} SAE (resampling is for L1 "
                         f"SAEs; TopK uses AuxK), got {cfg.resample_every}")
    sparse = use_sparse_path(sae, cfg.sparse)
    if cfg.device is not None:
        sae.to(cfg.device)
    device, dtype = sae.W_dec.device, sae.W_dec.dtype
    check_lr_fits(cfg.lr, cfg.adam_betas, dtype)
    rank, world_size = train_dist.world()  # (0, 1) unless run under torchrun
    shard = world_size > 1 and isinstance(data, (torch.Tensor, np.ndarray))
    if world_size > 1:
        train_dist.check_same_config(cfg, sae.cfg)
        if cfg.resample_every > 0:
            raise ValueError(f"resample_every must be 0 under torch.distributed, got "
                             f"{cfg.resample_every}")
        if shard and cfg.batch_size % world_size:
            raise ValueError(f"batch_size must be a multiple of the {world_size} ranks, got "
                             f"{cfg.batch_size}")
    ckpt = Checkpointer(cfg, sae, data, checkpoint_dir, checkpoint_every, resume_from, rank,
                        world_size)  # checks the checkpoint's settings; rewinds a stream
    g = torch.Generator().manual_seed(cfg.seed)  # batch order and resampling draws
    batches, sample, draw_pool = prepare_data(data, cfg, data_width(sae), g)
    if not ckpt.resumed:  # a resume loads b_dec with the other weights
        init_b_dec(sae, split_target(sae, sample)[1].to(device, dtype), cfg.b_dec_init)
    reduce = None
    if world_size > 1:
        train_dist.broadcast_state(sae)  # every rank starts from rank 0's weights
        reduce = train_dist.reduce_guard_stats

    forward = step_forward(sae, sparse)  # unchecked: batches are checked already
    forward = maybe_compile(forward, cfg.compile, device)
    bf16 = use_bf16(cfg.precision, device, dtype)  # autocast the forward; weights stay fp32
    opt = _make_adam(sae.parameters(), cfg)
    tracker = DeadLatentTracker(d_sae, cfg.dead_window_tokens, device=device)
    guard = DivergenceGuard(sae, cfg.max_fvu_growth)
    history, resampled, window = TrainHistory(), [], Window(device, world_size)
    resample_until = cfg.n_steps - int(np.ceil(cfg.lr_decay_frac * cfg.n_steps))
    tokens, done, lr, was_training, x, target = 0, 0, cfg.lr, sae.training, None, None
    loop = loop_state(sae, opt, tracker, guard, history, window, resampled, g, batches)
    if ckpt.resumed:  # weights, Adam, counters, history, RNG and data position
        done, tokens, lr = ckpt.restore(loop)
    bar = tqdm(total=cfg.n_steps, initial=done, disable=not progress or rank > 0,
               desc=f"training {family} SAE",
               unit="step")
    sae.train()
    old_tf32 = set_tf32(cfg.tf32, device)
    memory = contextlib.ExitStack()  # saelab.train.memory: no page faults per step on a CPU
    memory.enter_context(keep_freed_memory(
        device.type == "cpu" if cfg.keep_memory is None else cfg.keep_memory))
    try:
        for step in range(done, cfg.n_steps):
            batch = next(batches, None)
            if batch is None:
                warnings.warn(f"data ran out after {step} of {cfg.n_steps} steps; stopping early")
                break
            x = batch[rank::world_size] if shard else batch  # this rank's shard
            x, target = split_target(sae, x.to(device, dtype))  # [batch, d_in], its target
            lr = lr_at(step, cfg.n_steps, cfg.lr, cfg.lr_warmup_steps, cfg.lr_decay_frac)
            for group in opt.param_groups:
                group["lr"] = lr
            factor = sparsity_factor_at(step, cfg.n_steps, cfg.sparsity_warmup_frac)

            with autocast(bf16):
                out = forward(x, tracker.dead_mask, target)
            loss = out.loss - (1.0 - factor) * out.sparsity_loss  # [] sparsity warm-up
            guard.watch(loss, step + 1)
            if world_size > 1:
                train_dist.average_buffers(sae, world_size)  # BatchTopK's threshold
            if step % cfg.log_every == 0:  # check the weights just evaluated, then keep them
                guard.check(sae, out.recon_loss.detach() * x.shape[0], target, at=step + 1,
                            weights_after=step, history=history, lr=lr, reduce=reduce)

            opt.zero_grad(set_to_none=True)
            loss.backward()
            if world_size > 1:  # DDP's all-reduce: the gradient of the global-batch mean
                train_dist.average_gradients(sae.parameters(), world_size)
            if sae.unit_norm_decoder:
                sae.remove_parallel_grad()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip)
            opt.step()
            sae.apply_constraints()

            fired, n_fired = step_firing(out, sparse, d_sae, world_size)
            tracker.update_fired(fired, x.shape[0] * world_size)
            window.add(loss, out.recon_loss, n_fired, target)
            tokens += x.shape[0] * world_size
            done = step + 1
            if (cfg.resample_every > 0 and done % cfg.resample_every == 0
                    and done < resample_until and bool(tracker.dead_mask.any())):
                dead = tracker.dead_mask.clone()
                pool = draw_pool(x).to(device, dtype)  # [n_pool, d_in]
                resampled.append((done, resample_dead_latents(sae, opt, dead, pool, g)))
                tracker.reset(dead)
            if done % cfg.log_every == 0:
                log_row(window, history, done, tokens, tracker, lr, bar)
                if callback is not None and rank == 0:
                    callback(done, sae)
            ckpt.after_step(done, tokens, lr, loop)
            bar.update(1)
            if (stop is not None and done < cfg.n_steps
                    and stop_agreed(stop, done, cfg.log_every, world_size, device)):
                stop_early(stop, ckpt, done, tokens, lr, loop, cfg.n_steps)
                break
        if window.n_steps > 0:  # the last, partial window
            log_row(window, history, done, tokens, tracker, lr, bar)
            if callback is not None and rank == 0:
                callback(done, sae)
        if x is not None:
            final_check(sae, guard, x, target, done, history, lr, reduce)
    except KeyboardInterrupt as interrupt:
        sae.apply_constraints()  # the interrupt may have come between Adam and the projection
        if window.n_steps > 0:
            log_row(window, history, done, tokens, tracker, lr, bar)
        interrupt.partial_result = TrainResult(sae, history, tracker.tokens_since_fired.clone(),
                                               resampled)
        warnings.warn(f"training interrupted after {done} of {cfg.n_steps} steps; the partial "
                      f"TrainResult is the KeyboardInterrupt's .partial_result")
        raise
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
        memory.close()
        bar.close()
        sae.train(was_training)
    return TrainResult(sae, history, tracker.tokens_since_fired.clone(), resampled)
