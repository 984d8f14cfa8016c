"""Per-window sums of the logged quantities of :func:`saelab.train.train_sae` (Chapter 2).

The loop adds each step's loss, reconstruction error, L0 and the batch's centred sum of squares
to device-side sums (no host sync); every ``log_every`` steps one row of the history is written
from them (summed over ranks under ``torch.distributed``) and shown on the progress bar.

Internal to :mod:`saelab.train`: ``train_sae`` calls these (most on every step) unchecked;
users call ``train_sae``, not this module (hence the empty ``__all__``).
"""
from __future__ import annotations

import torch

from saelab.train import distributed as train_dist
from saelab.dead_latents import DeadLatentTracker

__all__: list[str] = []  # internal to saelab.train (see the module docstring)


class Window:
    """Sums of the logged quantities over the steps since the last history row (on device)."""

    def __init__(self, device: torch.device, world_size: int = 1) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS lacks float64
        self.sums = torch.zeros(5, dtype=dtype, device=device)  # loss, recon, l0, err, centred
        self.n_steps = 0
        self.world_size = world_size  # ranks whose sums are added at each row

    @torch.no_grad()
    def add(self, loss: torch.Tensor, recon: torch.Tensor, n_fired: torch.Tensor,
            x: torch.Tensor) -> None:
        batch = x.shape[0]
        centred = (x - x.mean(dim=0)).pow(2).sum()  # [] each batch about its own mean
        terms = [loss, recon, n_fired / batch, recon * batch, centred]  # err = batch * recon
        self.sums += torch.stack([t.detach().to(self.sums.dtype) for t in terms])
        self.n_steps += 1

    def flush(self, history, step: int, tokens: int, dead_frac: float,
              lr: float) -> None:
        sums = self.sums if self.world_size == 1 else train_dist.sum_over_ranks(self.sums)
        loss, recon, l0, err, centred = sums.tolist()
        n = self.n_steps * self.world_size  # loss, recon and l0 are means over ranks
        row = dict(step=step, tokens=tokens, loss=loss / n, recon=recon / n, l0=l0 / n,
                   fvu=err / centred if centred > 0 else float("nan"), dead_frac=dead_frac, lr=lr)
        for key, value in row.items():
            getattr(history, key).append(value)
        self.sums.zero_()
        self.n_steps = 0


def log_row(window: Window, history, step: int, tokens: int,
         tracker: DeadLatentTracker, lr: float, bar) -> None:
    """Append a history row and show it on the progress bar."""
    window.flush(history, step, tokens, float(tracker.dead_mask.float().mean()), lr)
    bar.set_postfix(loss=f"{history.loss[-1]:.4g}", l0=f"{history.l0[-1]:.1f}",
                    fvu=f"{history.fvu[-1]:.3f}", dead=f"{history.dead_frac[-1]:.2f}",
                    refresh=False)
