"""Adam in NumPy, with the same update rule as ``torch.optim.Adam`` (no weight decay, no AMSGrad).

At step t (starting at 1), for every parameter p with gradient g:

    m     <- m + (1 - beta1) (g - m)                 = beta1 m + (1 - beta1) g
    v     <- beta2 v + (1 - beta2) g^2
    p     <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

Note where eps sits: it is added to the bias-corrected sqrt(v_hat), as in torch, so NumPy and
torch runs agree to rounding error step after step. From Kingma & Ba (2015), "Adam: A Method for
Stochastic Optimization", arXiv:1412.6980. Taught in Chapter 2.
"""
from __future__ import annotations

import numpy as np

from saelab._checks import check_array, check_nonnegative, check_positive, check_shape

MAX_LR = 1e3  # Adam moves each weight by about lr per step: beyond this no SAE trains, and
# near 1e38 the float32 weights themselves overflow to inf


def _check_lr(lr) -> float:
    lr = check_nonnegative("lr", lr)
    if lr > MAX_LR:
        raise ValueError(f"lr must be at most {MAX_LR:g} (Adam moves every weight by about lr "
                         f"per step), got {lr:g}")
    return lr


class Adam:
    """Adam optimizer for a dict of NumPy arrays, updated in place (Chapter 2).

    Parameters
    ----------
    params : dict of str to ndarray
        The live parameter arrays, e.g. ``sae.parameters()``.
    lr : float
        Learning rate; may be changed between steps (``opt.lr = ...``) for schedules.
    betas : tuple of float
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float
        Added to the bias-corrected root second moment.
    """

    def __init__(self, params: dict, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr = _check_lr(lr)
        if not isinstance(params, dict) or not params:
            raise TypeError(f"params must be a non-empty dict of name -> ndarray (e.g. "
                            f"sae.parameters()), got {type(params).__name__}")
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"params[{name!r}] must be a floating-point ndarray, got "
                                f"{getattr(p, 'dtype', type(p).__name__)}")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        beta1, beta2 = betas
        for name, beta in (("betas[0]", beta1), ("betas[1]", beta2)):
            if not 0.0 <= check_nonnegative(name, beta) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta}")
        self.betas = (float(beta1), float(beta2))
        self.eps = check_positive("eps", eps)
        self.params = params
        self.m = {name: np.zeros_like(p) for name, p in params.items()}  # first moments
        self.v = {name: np.zeros_like(p) for name, p in params.items()}  # second moments
        self.t = 0  # number of steps taken

    def step(self, grads: dict) -> None:
        """Update every parameter in place from ``grads`` (name -> array of the same shape).

        A NaN or infinite gradient raises ``ValueError`` before any parameter changes.
        """
        if not isinstance(grads, dict):
            raise TypeError(f"grads must be a dict of name -> ndarray, got {type(grads).__name__}")
        missing = set(self.params) - set(grads)
        if missing:
            raise ValueError(f"grads is missing gradients for {sorted(missing)}")
        _check_lr(self.lr)  # lr may have been changed since __init__
        for name, p in self.params.items():
            g = check_array(f"grads[{name!r}]", grads[name], nonempty=False)
            check_shape(f"grads[{name!r}]", g, p.shape)
        beta1, beta2 = self.betas
        self.t += 1
        bias_correction1 = 1 - beta1**self.t
        bias_correction2_sqrt = (1 - beta2**self.t) ** 0.5
        step_size = self.lr / bias_correction1
        for name, p in self.params.items():
            g, m, v = grads[name], self.m[name], self.v[name]
            m += (1 - beta1) * (g - m)
            v *= beta2
            v += (1 - beta2) * g * g
            denom = np.sqrt(v) / bias_correction2_sqrt + self.eps
            p -= step_size * m / denom
