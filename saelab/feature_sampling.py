"""Synthetic sparse features with known ground truth.

Two generators, both in torch and on any device:

* :func:`sample_toy_features` draws the inputs of the toy model of superposition
  (Elhage et al., 2022): each feature is zero with probability ``S = 1 - p`` (the *sparsity*) and
  otherwise uniform in [0, 1], independently. The output is batched over model instances,
  ``[batch, n_instances, n_features]``, so that one tensor feeds a whole sparsity sweep.
* :func:`sample_sparse_codes` draws codes ``z`` whose entries are active with probability ``p``,
  with magnitude 1 or uniform in [0, 1], and optionally a random sign. Signed codes have mean
  zero, which makes the first-order interference formula ``E[(sum_j z_j c_j)^2] = E[z^2] sum_j c_j^2``
  exact (Chapter 1); later chapters use the same codes over a known dictionary as ground truth.

Taught in Chapter 1; reused as ground-truth data in Chapters 2 to 5.
"""
from __future__ import annotations

import torch

from saelab._checks import check_int_in_range, check_not_none, check_probability

__all__ = ["make_generator", "sample_toy_features", "sample_sparse_codes", "probability_tensor"]

MAGNITUDES = ("one", "uniform")


def make_generator(seed: int | None = None, generator: torch.Generator | None = None,
                   device: str | torch.device | None = None) -> torch.Generator | None:
    """Return ``generator`` if given, else a new generator on ``device`` seeded with ``seed``.

    With neither, returns ``None`` (torch's global random state is used). Introduced in Chapter 1.
    """
    if generator is not None and seed is not None:
        raise ValueError(f"pass either seed or generator, not both (got seed={seed})")
    if generator is not None:
        return generator
    if seed is None:
        return None
    check_int_in_range("seed", seed, 0)
    g = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    g.manual_seed(seed)
    return g


def probability_tensor(name: str, value, n_instances: int, n_features: int,
                       device=None, dtype=torch.float32) -> torch.Tensor:
    """Validate a probability given as a number, ``[n_instances]`` or ``[n_instances, n_features]``.

    Returns a tensor of shape ``[n_instances, n_features]`` on ``device``. Every entry must lie in
    [0, 1]; otherwise ``ValueError`` names ``name`` and the offending value.
    """
    check_not_none(name, value, "a probability (a number or a tensor of them)")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        check_probability(name, value)  # reports the number exactly as the caller wrote it
    t = torch.as_tensor(value, dtype=dtype).detach().cpu()
    if t.ndim == 0:
        check_probability(name, float(t))
        t = t.expand(n_instances, n_features)
    elif t.ndim == 1:
        if t.shape[0] != n_instances:
            raise ValueError(
                f"{name} must have one entry per instance ({n_instances}), got shape {tuple(t.shape)}"
            )
        t = t[:, None].expand(n_instances, n_features)
    elif t.ndim == 2:
        if tuple(t.shape) != (n_instances, n_features):
            raise ValueError(
                f"{name} must have shape ({n_instances}, {n_features}), got {tuple(t.shape)}"
            )
    else:
        raise ValueError(f"{name} must be a number, a 1-D or a 2-D tensor, got shape {tuple(t.shape)}")
    bad = (t < 0) | (t > 1) | ~torch.isfinite(t)
    if bool(bad.any()):
        raise ValueError(f"{name} must be in [0, 1], got {t[bad][0].item():.6g}")
    return t.to(device).contiguous()


def sample_toy_features(
    n_batch: int,
    feature_probability,
    n_features: int,
    n_instances: int = 1,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Sample inputs of the toy model of superposition.

    Each entry is 0 with probability ``1 - feature_probability`` (the sparsity S) and otherwise
    uniform in [0, 1], independently across batch, instances and features. Introduced in Chapter 1.

    Parameters
    ----------
    n_batch, n_features, n_instances : int
        Sizes, all positive.
    feature_probability : float, or tensor of shape [n_instances] or [n_instances, n_features]
        Probability that a feature is non-zero (``p = 1 - S``), per instance (and per feature).
    generator, seed : optional
        Source of randomness; give at most one. ``seed`` builds a generator on ``device``.
    device : optional
        Where to put the result (default: CPU, or the generator's device).

    Returns
    -------
    Tensor of shape [n_batch, n_instances, n_features]
    """
    check_int_in_range("n_batch", n_batch, 1)
    check_int_in_range("n_features", n_features, 1)
    check_int_in_range("n_instances", n_instances, 1)
    if device is None and generator is not None:
        device = generator.device
    g = make_generator(seed, generator, device)
    p = probability_tensor("feature_probability", feature_probability, n_instances, n_features, device)
    return _draw_toy_features(n_batch, p, g)


def _draw_toy_features(n_batch: int, p: torch.Tensor, generator) -> torch.Tensor:
    """Unchecked core of :func:`sample_toy_features`; ``p: [inst, feat]`` already on its device."""
    shape = (n_batch, *p.shape)
    active = torch.rand(shape, generator=generator, device=p.device) < p  # [batch, inst, feat]
    values = torch.rand(shape, generator=generator, device=p.device)  # [batch, inst, feat]
    return torch.where(active, values, torch.zeros_like(values))


def sample_sparse_codes(
    n_batch: int,
    n_features: int,
    p,
    magnitude: str = "one",
    signed: bool = False,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sample sparse codes: each entry is active with probability ``p``, independently.

    Introduced in Chapter 1 (interference), reused in Chapters 2 to 5 as ground-truth codes.

    Parameters
    ----------
    n_batch, n_features : int
        Sizes, both positive.
    p : float or tensor of shape [n_features]
        Probability that an entry is active.
    magnitude : {"one", "uniform"}
        Active entries have magnitude 1, or uniform in [0, 1].
    signed : bool
        If True, each active entry gets an independent random sign, so ``E[z] = 0``.

    Returns
    -------
    Tensor of shape [n_batch, n_features]
        Second moment ``E[z^2] = p`` (magnitude "one") or ``p / 3`` ("uniform"); mean
        ``p`` or ``p / 2`` unsigned, 0 signed.
    """
    check_int_in_range("n_batch", n_batch, 1)
    check_int_in_range("n_features", n_features, 1)
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {MAGNITUDES}, got {magnitude!r}")
    if device is None and generator is not None:
        device = generator.device
    g = make_generator(seed, generator, device)
    prob = torch.as_tensor(p, dtype=dtype)
    if prob.ndim == 1:
        prob = prob.reshape(1, -1)  # one row: probability_tensor wants [n_instances, n_features]
    probs = probability_tensor("p", prob, 1, n_features, device, dtype)[0]  # [feat]
    shape = (n_batch, n_features)
    z = (torch.rand(shape, generator=g, device=device, dtype=dtype) < probs).to(dtype)  # [batch, feat]
    if magnitude == "uniform":
        z = z * torch.rand(shape, generator=g, device=device, dtype=dtype)
    if signed:
        sign = torch.randint(0, 2, shape, generator=g, device=device).to(dtype) * 2 - 1
        z = z * sign
    return z
