"""The divergence guard of :func:`saelab.train.train_sae`: stop, restore good weights, say why.

Training has diverged when, on the training batch of a checked step,

    the loss is NaN or infinite,  or  a parameter is NaN or infinite,  or
    FVU = ||x - x_hat||^2 / ||x - mean(x)||^2  >  max_fvu_growth * max(1, FVU of the first step).

The loop checks at the first step of every logging window and once more after the final step,
*before* the optimizer step, so the weights it has just evaluated are known to be good: only then
are they copied into a preallocated snapshot ("last good"). Between checks, a device-side flag
records the first step whose loss was not finite, with no host-device sync per step. The cost is
one copy of the weights every ``log_every`` steps instead of every step (measured in
bench/bench_train_step.py). On divergence the snapshot is loaded back and
:class:`TrainingDivergedError` says which check failed, at which step, and what to try.

``lr`` is also checked against the parameter dtype before training: Adam's step is at most
``lr * max(1, (1 - beta1) / sqrt(1 - beta2))`` per entry (Kingma & Ba 2015, "Adam: A Method
for Stochastic Optimization", arXiv:1412.6980, section 2.1), so a
larger ``lr`` than ``finfo.max / 10`` over that factor could overflow on the first step.
Chapter 2 (what divergence looks like and why a lower learning rate helps).
"""
from __future__ import annotations

import math
import numbers

import torch

from saelab._checks import check_float_dtype, check_instance, check_positive, check_sae
from saelab.train.pairs import step_forward

__all__ = ["TrainingDivergedError", "DivergenceGuard", "check_lr_fits"]


class TrainingDivergedError(FloatingPointError):
    """Training diverged (non-finite loss or weights, or exploding FVU); the SAE holds the last
    weights that passed the check. ``step`` is the 1-based step where it was found."""

    def __init__(self, message: str, step: int, history) -> None:
        super().__init__(message)
        self.step = step  # 1-based step where the divergence was found
        self.history = history  # rows logged before it


def check_lr_fits(lr: float, betas: tuple[float, float], dtype: torch.dtype) -> None:
    """Raise ValueError if Adam's first step with ``lr`` could overflow ``dtype``."""
    check_positive("lr", lr)
    if (not isinstance(betas, (tuple, list)) or len(betas) != 2
            or not all(isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    check_instance("dtype", dtype, torch.dtype, "a torch dtype")
    check_float_dtype("dtype", dtype, allow_half_on_cpu=True)
    b1, b2 = betas
    factor = max(1.0, (1 - b1) / math.sqrt(1 - b2))  # bound on |m_hat / sqrt(v_hat)|
    limit = torch.finfo(dtype).max / 10 / factor
    if not lr < limit:
        raise ValueError(f"lr must be below {limit:.3g} for {dtype} parameters (Adam's step can "
                         f"reach {factor:.3g} * lr per entry), got {lr}")


class DivergenceGuard:
    """Snapshot of the last good weights and the checks of the module docstring (Chapter 2)."""

    def __init__(self, sae: torch.nn.Module, max_fvu_growth: float) -> None:
        check_sae("sae", sae)
        max_fvu_growth = check_positive("max_fvu_growth", max_fvu_growth)
        self.snapshot = {name: t.detach().clone() for name, t in sae.state_dict().items()}
        self.max_fvu_growth = max_fvu_growth
        self.fvu_bound: float | None = None  # set at the first check
        self.good_step = 0  # steps done when the snapshot was taken
        self.first_bad = None  # [] long on the device: first 1-based step with a bad loss

    @torch.no_grad()
    def watch(self, loss: torch.Tensor, step: int) -> None:
        """Record ``step`` (1-based) if its loss is not finite; no host-device sync."""
        bad = ~torch.isfinite(loss.detach())  # []
        if self.first_bad is None:
            self.first_bad = torch.zeros((), dtype=torch.long, device=loss.device)
        self.first_bad = torch.where(bad & (self.first_bad == 0), step, self.first_bad)

    @torch.no_grad()
    def check(self, sae, err: torch.Tensor, x: torch.Tensor, at: int, weights_after: int,
              history, lr: float, reduce=None) -> None:
        """Check the weights ``sae`` holds now (those after ``weights_after`` optimizer steps),
        evaluated on ``x`` at 1-based step ``at`` with summed squared error ``err`` []; keep
        them as the last good weights, or restore those and raise. ``reduce`` combines the
        statistics [first bad step, err, centred sum] over ranks (saelab.train.distributed)."""
        bad = torch.zeros((), device=err.device) if self.first_bad is None else self.first_bad
        centred = (x - x.mean(dim=0)).pow(2).sum()  # []
        stats = torch.stack([bad.to(err.dtype), err.detach(), centred])  # [3]
        if reduce is not None:
            stats = reduce(stats)
        problem, at = self._problem(sae, stats, at)
        if problem is None:
            for name, t in sae.state_dict().items():
                self.snapshot[name].copy_(t)
            self.good_step = weights_after
            return
        sae.load_state_dict(self.snapshot)
        raise TrainingDivergedError(
            f"{problem} at step {at} (lr={lr:.3g}); the SAE holds the weights after step "
            f"{self.good_step}, the last that passed the check. Try a lower learning rate "
            f"(e.g. lr={lr / 10:.3g}) or check the scale of the data.", at, history)

    def _problem(self, sae, stats, step):
        first_bad, err, centred = stats.tolist()
        if first_bad:
            return "the loss became NaN or infinite", int(first_bad)
        for name, p in sae.named_parameters():
            if not bool(torch.isfinite(p).all()):
                return f"parameter {name} became NaN or infinite", step
        fvu = err / max(centred, torch.finfo(torch.float32).tiny)
        if not math.isfinite(fvu):
            return "the FVU on the training batch became NaN or infinite", step
        if self.fvu_bound is None:
            self.fvu_bound = self.max_fvu_growth * max(1.0, fvu)
        elif fvu > self.fvu_bound:
            return (f"the FVU on the training batch grew to {fvu:.3g}, past the bound "
                    f"{self.fvu_bound:.3g} (max_fvu_growth times the first step's)"), step
        return None, step


@torch.no_grad()
def final_check(sae, guard: DivergenceGuard, x: torch.Tensor, target: torch.Tensor, done: int,
                history, lr, reduce) -> None:
    """Evaluate the weights after the last optimizer step once, as they will be used (eval)."""
    was_training = sae.training
    sae.eval()
    try:
        out = step_forward(sae, sparse=False)(x, None, target)  # eval: the dense path
        guard.watch(out.loss, done)
        guard.check(sae, out.recon_loss * x.shape[0], target, at=done, weights_after=done,
                    history=history, lr=lr, reduce=reduce)
    finally:
        sae.train(was_training)
