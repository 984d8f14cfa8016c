"""Features with a known parent/child hierarchy, and how SAEs split them.

Generative model. There are ``n_parents`` parent features, and each parent ``p`` has
``n_children`` child features (child ``c`` belongs to parent ``c // n_children``). For each sample,

    parent p is active independently with probability p_parent;
    if p is active, with probability p_child exactly one of its children (uniformly chosen) is
    active too, otherwise none: a child is never active without its parent;
    x = sum_p a_p P_p + sum_c a_c C_c  (+ Gaussian noise),   a = 1 or uniform in [0.5, 1.5].

The parent directions ``P_p`` are unit vectors; the child directions are

    C_c = cos * P_parent(c) + sqrt(1 - cos^2) * u_c,      cos = child_parent_cos,

with ``u_c`` a unit vector orthogonal to its parent: a child is "its parent plus a child-specific
component". With ``cos = 0`` the child direction is independent of (orthogonal to) the parent's,
the toy setting of Chanin et al. (2024), "A is for Absorption" (arXiv:2409.14507); since the
parent is also active whenever a child is, an input with a child holds ``P_p + C_c`` either way.
With ``orthogonal=True`` every parent and every ``u_c`` is orthonormal (no superposition, exact
tests); otherwise they are random directions as in :mod:`saelab.synthetic`.

Measurements, pure functions of an SAE's codes ``f`` (and decoder) on such data:

* Feature splitting (Bricken et al., 2023, "Towards Monosemanticity"): a feature of a narrow SAE
  breaks up, in a wider SAE, into several latents that each fire on a part of its contexts. Here
  the parts are known: :func:`family_latents` assigns each latent to the parent on whose inputs
  it (almost) only fires, and says whether it is *child-specific* (fires almost only when one
  given child is active). :func:`feature_splitting` compares an SAE of width m with one of width
  4m: a parent has split when the wide SAE holds more child-specific latents for it.
* :func:`firing_by_condition`: how often each latent fires on one parent's inputs, split by
  which child (if any) is active; the table behind Chapter 5's splitting and absorption figures.
* Feature absorption, where a parent latent goes silent wherever a child fires, is measured in
  :mod:`saelab.absorption`.

Taught in Chapter 5.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from saelab._checks import (check_instance, check_int_in_range, check_nonnegative, check_numeric,
                            check_probability)
from saelab.feature_sampling import make_generator

__all__ = ["HierarchicalData", "make_hierarchical_data", "LatentFamilies", "family_latents",
           "FeatureSplitting", "feature_splitting", "firing_by_condition"]

MAGNITUDES = ("one", "uniform")


class HierarchicalData(NamedTuple):
    """Samples with their parent/child ground truth (Chapter 5); all torch tensors."""

    x: torch.Tensor  # [n_samples, d_in]
    parent_codes: torch.Tensor  # [n_samples, n_parents] non-negative magnitudes
    child_codes: torch.Tensor  # [n_samples, n_parents * n_children] non-negative magnitudes
    parent_dictionary: torch.Tensor  # [n_parents, d_in] unit rows P_p
    child_dictionary: torch.Tensor  # [n_parents * n_children, d_in] unit rows C_c
    child_parent: torch.Tensor  # [n_parents * n_children] long: the parent of each child


def _directions(n_parents, n_children, d_in, cos, orthogonal, g) -> tuple[torch.Tensor, ...]:
    """Unit parent rows [n_parents, d_in] and child rows [n_parents * n_children, d_in]."""
    n_child = n_parents * n_children
    if orthogonal:
        q, _ = torch.linalg.qr(torch.randn(d_in, n_parents + n_child, generator=g,
                                           dtype=torch.float64))  # [d_in, n_parents + n_child]
        parents, u = q.T[:n_parents], q.T[n_parents:]  # orthonormal rows
    else:
        parents = torch.randn(n_parents, d_in, generator=g, dtype=torch.float64)
        parents = parents / parents.norm(dim=1, keepdim=True)  # [n_parents, d_in]
        u = torch.randn(n_child, d_in, generator=g, dtype=torch.float64)  # [n_child, d_in]
        own = parents.repeat_interleave(n_children, dim=0)  # [n_child, d_in]
        u = u - (u * own).sum(1, keepdim=True) * own  # orthogonal to its own parent
        u = u / u.norm(dim=1, keepdim=True)
    own = parents.repeat_interleave(n_children, dim=0)  # [n_child, d_in]
    children = cos * own + (1.0 - cos ** 2) ** 0.5 * u  # unit norm: own is orthogonal to u
    return parents, children


def make_hierarchical_data(
    n_samples: int,
    d_in: int = 32,
    n_parents: int = 4,
    n_children: int = 3,
    p_parent: float = 0.1,
    p_child: float = 0.75,
    child_parent_cos: float = 0.0,
    magnitude: str = "one",
    noise_std: float = 0.0,
    orthogonal: bool = False,
    seed: int | None = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> HierarchicalData:
    """Sample data whose features form a known parent/child hierarchy (see the module docstring).

    Introduced in Chapter 5.

    Parameters
    ----------
    n_samples, d_in : int
        Number of rows and their width.
    n_parents, n_children : int
        Parent features, and children per parent (``n_children >= 1``).
    p_parent : float
        Probability that each parent is active, independently of the others.
    p_child : float
        Probability, given its parent is active, that one (uniformly chosen) child is active.
    child_parent_cos : float in [0, 1)
        Cosine between a child direction and its parent's: 0 is the independent-direction toy of
        Chanin et al. (2024); larger values make a child a refinement of its parent.
    magnitude : {"one", "uniform"}
        An active feature's coefficient: exactly 1, or uniform in [0.5, 1.5].
    noise_std : float
        Standard deviation of isotropic Gaussian noise added to ``x``.
    orthogonal : bool
        Draw all parent and child-specific directions orthonormal (needs
        ``n_parents * (1 + n_children) <= d_in``); otherwise random unit vectors.
    seed, device, dtype
        Everything is drawn on the CPU from one generator seeded with ``seed`` (None: torch's
        global state), then moved to ``device`` in ``dtype``.

    Returns
    -------
    HierarchicalData
    """
    check_int_in_range("n_samples", n_samples, 1)
    check_int_in_range("d_in", d_in, 1)
    check_int_in_range("n_parents", n_parents, 1)
    check_int_in_range("n_children", n_children, 1)
    check_probability("p_parent", p_parent)
    check_probability("p_child", p_child)
    if not 0.0 <= check_nonnegative("child_parent_cos", child_parent_cos) < 1.0:
        raise ValueError(f"child_parent_cos must be in [0, 1), got {child_parent_cos}")
    check_nonnegative("noise_std", noise_std)
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {MAGNITUDES}, got {magnitude!r}")
    n_child = n_parents * n_children
    if orthogonal and n_parents + n_child > d_in:
        raise ValueError(f"d_in must be at least n_parents * (1 + n_children) = "
                         f"{n_parents + n_child} for orthogonal directions, got {d_in}")
    if not orthogonal and d_in < 2:
        raise ValueError(f"d_in must be at least 2 (a child needs a direction besides its "
                         f"parent's), got {d_in}")
    g = make_generator(seed)
    parents, children = _directions(n_parents, n_children, d_in, child_parent_cos, orthogonal, g)

    def draw_magnitudes(shape):
        if magnitude == "one":
            return torch.ones(shape, dtype=torch.float64)
        return 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)

    parent_on = torch.rand(n_samples, n_parents, generator=g) < p_parent  # [n, n_parents]
    child_on = parent_on & (torch.rand(n_samples, n_parents, generator=g) < p_child)
    which = torch.randint(n_children, (n_samples, n_parents), generator=g)  # [n, n_parents]
    child_mask = torch.zeros(n_samples, n_parents, n_children, dtype=torch.bool)
    child_mask.scatter_(2, which[..., None], child_on[..., None])  # one child at most
    parent_codes = parent_on * draw_magnitudes((n_samples, n_parents))  # [n, n_parents]
    child_codes = child_mask.reshape(n_samples, n_child) * draw_magnitudes((n_samples, n_child))
    x = parent_codes @ parents + child_codes @ children  # [n, d_in]
    if noise_std > 0:
        x = x + noise_std * torch.randn(x.shape, generator=g, dtype=torch.float64)
    child_parent = torch.arange(n_parents).repeat_interleave(n_children)  # [n_child]
    out = [t.to(device=device, dtype=dtype)
           for t in (x, parent_codes, child_codes, parents, children)]
    return HierarchicalData(*out, child_parent.to(device))


# ----------------------------------------------------------------------------------------------
# Which latents belong to which parent
# ----------------------------------------------------------------------------------------------

def _as_f64(array, name: str = "f") -> np.ndarray:
    """A tensor (any device) or array as a float64 ndarray."""
    array = check_numeric(name, array, finite=False)
    if hasattr(array, "detach"):  # a tensor on any device, maybe requiring grad
        array = array.detach().cpu().double().numpy()
    return np.asarray(array, dtype=np.float64)


def _check_data(data) -> None:
    check_instance("data", data, HierarchicalData, "a HierarchicalData (make_hierarchical_data)")


def _active(name: str, codes, n_rows: int | None = None) -> np.ndarray:
    """Boolean (n, width) mask of the non-zero entries of a code matrix (tensor or ndarray)."""
    check_numeric(name, codes)
    if hasattr(codes, "detach"):  # compare on the tensor's device, copy only the mask
        mask = (codes.detach() != 0).cpu().numpy()
    else:
        mask = np.asarray(codes) != 0
    if mask.ndim != 2 or mask.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n_samples, width) with n_samples >= 1, "
                         f"got {mask.shape}")
    if n_rows is not None and mask.shape[0] != n_rows:
        raise ValueError(f"{name} must have one row per sample of data ({n_rows}), "
                         f"got {mask.shape[0]}")
    return mask


class LatentFamilies(NamedTuple):
    """Which latents of one SAE fire inside which parent's family (Chapter 5)."""

    parent_of_latent: np.ndarray  # (d_sae,) int: assigned parent, -1 for none
    child_of_latent: np.ndarray  # (d_sae,) int: child it is specific to, -1 for none
    n_parent_latents: np.ndarray  # (n_parents,) int: assigned latents that are not child-specific
    n_child_latents: np.ndarray  # (n_parents,) int: child-specific latents of each parent
    children_covered: np.ndarray  # (n_parents,) int: distinct children with a specific latent


def family_latents(f, data: HierarchicalData, min_precision: float = 0.9,
                   min_fires: int = 10) -> LatentFamilies:
    """Assign each latent to the parent (and possibly the child) on whose inputs it fires.

    The *precision* of latent ``i`` for an event (parent ``p`` active, child ``c`` active) is the
    share of its total activation ``sum_b |f_bi|`` that falls on rows where the event holds:

        precision_i(p) = sum_{b : parent p on} |f_bi| / sum_b |f_bi|

    (weighting by activation, not by counting firings, so that the faint spurious firings of an
    L1 SAE do not hide a latent's job). Latent ``i`` belongs to parent ``p`` when it fires
    (``f_bi != 0``) at least ``min_fires`` times and ``precision_i(p) >= min_precision``: it
    fires almost only inside p's family. An assigned latent is *child-specific* for child ``c``
    of ``p`` when also ``precision_i(c) >= min_precision``; otherwise it is a parent latent. The
    assignment uses when latents fire, not their decoder directions, so it works whatever
    ``child_parent_cos`` is. Chapter 5.

    Parameters
    ----------
    f : ndarray or Tensor of shape (n_samples, d_sae)
        The SAE's codes on ``data.x`` (in inference mode).
    data : HierarchicalData
    min_precision : float in (0.5, 1]
        How exclusively a latent must fire inside a family (above 0.5, so at most one parent or
        child can qualify).
    min_fires : int
        Latents firing fewer times are left unassigned (too little evidence).
    """
    check_probability("min_precision", min_precision)
    if min_precision <= 0.5:
        raise ValueError(f"min_precision must be in (0.5, 1], got {min_precision}")
    check_int_in_range("min_fires", min_fires, 1)
    _check_data(data)
    n_fires = _active("f", f, data.x.shape[0]).sum(0)  # [d_sae]
    mass = np.abs(_as_f64(f))  # [n, d_sae]
    parents = _active("data.parent_codes", data.parent_codes).astype(np.float64)  # [n, P]
    children = _active("data.child_codes", data.child_codes).astype(np.float64)  # [n, C]
    child_parent = data.child_parent.cpu().numpy()  # [C]
    n_parents = parents.shape[1]
    total = mass.sum(0)  # [d_sae]
    with np.errstate(invalid="ignore", divide="ignore"):
        prec_parent = (mass.T @ parents) / total[:, None]  # [d_sae, P]
        prec_child = (mass.T @ children) / total[:, None]  # [d_sae, C]
    enough = n_fires >= min_fires
    best_parent = np.nan_to_num(prec_parent).argmax(1)  # [d_sae]
    assigned = enough & (np.nan_to_num(prec_parent).max(1) >= min_precision)
    best_child = np.nan_to_num(prec_child).argmax(1)  # [d_sae]
    specific = (assigned & (np.nan_to_num(prec_child).max(1) >= min_precision)
                & (child_parent[best_child] == best_parent))
    parent_of = np.where(assigned, best_parent, -1)
    child_of = np.where(specific, best_child, -1)
    n_child_latents = np.bincount(parent_of[specific], minlength=n_parents)
    n_parent_latents = np.bincount(parent_of[assigned & ~specific], minlength=n_parents)
    covered = np.bincount(child_parent[np.unique(child_of[specific])], minlength=n_parents)
    return LatentFamilies(parent_of, child_of, n_parent_latents, n_child_latents, covered)


class FeatureSplitting(NamedTuple):
    """Latent families of a narrow and a wide SAE on the same data (Chapter 5)."""

    narrow: LatentFamilies
    wide: LatentFamilies
    split_fraction: float  # parents with more child-specific latents in the wide SAE
    mean_child_latents_narrow: float  # child-specific latents per parent, narrow SAE
    mean_child_latents_wide: float  # child-specific latents per parent, wide SAE


def feature_splitting(f_narrow, f_wide, data: HierarchicalData, min_precision: float = 0.9,
                      min_fires: int = 10) -> FeatureSplitting:
    """Compare how a narrow (width m) and a wide (width 4m) SAE cover each parent's family.

    A parent *has split* when the wide SAE holds more child-specific latents for it than the
    narrow one (see :func:`family_latents` for the assignment): the wide SAE represents the
    parent's inputs by several latents that each fire on one child's share of them, as in the
    feature splitting of Bricken et al. (2023). ``split_fraction`` is the fraction of parents that
    split. Chapter 5.

    Parameters
    ----------
    f_narrow, f_wide : ndarray or Tensor of shape (n_samples, d_sae)
        The two SAEs' codes on ``data.x``.
    data : HierarchicalData
    min_precision, min_fires
        As in :func:`family_latents`.
    """
    _check_data(data)
    _active("f_narrow", f_narrow, data.x.shape[0])
    _active("f_wide", f_wide, data.x.shape[0])
    narrow = family_latents(f_narrow, data, min_precision, min_fires)
    wide = family_latents(f_wide, data, min_precision, min_fires)
    split = float(np.mean(wide.n_child_latents > narrow.n_child_latents))
    return FeatureSplitting(narrow, wide, split, float(narrow.n_child_latents.mean()),
                            float(wide.n_child_latents.mean()))


def firing_by_condition(f, data: HierarchicalData, parent: int) -> np.ndarray:
    """How often each latent fires on parent ``parent``'s inputs, by which child is active.

    Column 0 is ``P(latent fires | parent on, none of its children on)``; column ``1 + j`` is
    ``P(latent fires | child j of the parent on)`` (child ``j`` is global child
    ``parent * n_children + j``). Other parents may be active too, as they are in the data. A
    parent latent fires across the whole row; after splitting, each child-specific latent fires
    in one column only; an absorbed parent latent fires in column 0 only. Chapter 5.

    Parameters
    ----------
    f : ndarray or Tensor of shape (n_samples, d_sae)
        The SAE's codes on ``data.x`` (in inference mode).
    data : HierarchicalData
    parent : int
        Which parent's family.

    Returns
    -------
    ndarray of shape (d_sae, 1 + n_children)
        Firing rates in [0, 1]; NaN in a column whose condition never occurs.
    """
    _check_data(data)
    fires = _active("f", f, data.x.shape[0]).astype(np.float64)  # [n, d_sae]
    parents = _active("data.parent_codes", data.parent_codes)  # [n, n_parents]
    children = _active("data.child_codes", data.child_codes)  # [n, n_child]
    check_int_in_range("parent", parent, 0, parents.shape[1] - 1)
    own = np.flatnonzero(data.child_parent.cpu().numpy() == parent)  # this parent's children
    conditions = [parents[:, parent] & ~children[:, own].any(axis=1)]
    conditions += [children[:, c] for c in own]
    out = np.full((fires.shape[1], len(conditions)), np.nan)
    for j, rows in enumerate(conditions):
        if rows.any():
            out[:, j] = fires[rows].mean(axis=0)
    return out
