"""Feature absorption: a parent latent that goes silent wherever one of its children fires.

On data with a known parent/child hierarchy (:mod:`saelab.hierarchy`), the latent that looks like
parent ``p`` (its decoder row is closest to ``P_p``) should fire on every input where p is active.
Absorption (Chanin et al., 2024, "A is for Absorption", arXiv:2409.14507) is when it does fire
on parent-only inputs but stays silent where a child is active, because a child latent has taken
over the parent direction: an input ``P_p + C_c`` is then coded by one latent instead of two,
which the sparsity penalty (L1 or L0) rewards. The absorption rate of parent ``p``,

    rate_p = P(parent latent silent | p active, some child of p active),

counts only when the latent works as a parent detector elsewhere (see
:func:`feature_absorption`). Taught in Chapter 5.

The rate that Chanin et al. and SAEBench (Karvonen et al. 2025) publish differs in its
denominator and in its numerator (:func:`full_absorption`, used from Chapter 7): it divides by
*every* input where the feature is present (SAEBench: the probe's true positives; here the ground
truth), and counts an input only if the main latent is silent *and* one other latent carries at
least a share (SAEBench: 40%) of the input's projection on the feature direction,

    full_rate_p = #{p present, parent latent silent, top latent's projection on P_p
                    >= min_share * (x . P_p)} / #{p present}.

So parent-only inputs sit in its denominator (lowering it), and a silent parent latent whose
direction nobody else carries is not counted (it is lost, not absorbed).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from saelab._checks import check_finite, check_probability, check_shape
from saelab.hierarchy import HierarchicalData, _active, _as_f64, _check_data

__all__ = ["Absorption", "feature_absorption", "FullAbsorption", "full_absorption"]


class Absorption(NamedTuple):
    """Absorption of each parent feature by its children (Chapter 5)."""

    parent_latent: np.ndarray  # (n_parents,) int: latent best aligned with P_p, -1 if none
    cosine: np.ndarray  # (n_parents,) that latent's decoder cosine with P_p
    parent_only_recall: np.ndarray  # (n_parents,) P(latent fires | parent on, no child on)
    rates: np.ndarray  # (n_parents,) absorption rate; NaN where not valid
    child_rates: np.ndarray  # (n_parents * n_children,) P(latent silent | child c on); NaN: no data
    valid: np.ndarray  # (n_parents,) bool: rate is defined (see feature_absorption)
    mean: float  # mean of rates over valid parents; NaN if none is valid


def feature_absorption(f, W_dec, data: HierarchicalData, min_cos: float = 0.5,
                       min_recall: float = 0.5) -> Absorption:
    """Absorption rate of each parent: how often its latent is silent where a child is active.

    For parent ``p`` the *parent latent* is the latent whose decoder row has the largest cosine
    with ``P_p`` (absorption distorts the parent latent's encoder, which learns to exclude the
    child directions, while its decoder keeps pointing along the parent). Then, on ``data``,

        parent_only_recall_p = P(parent latent fires | p active, no child of p active)
        rate_p               = P(parent latent silent | p active, some child of p active)
        child_rate_c         = P(parent latent silent | child c active)

    ``rate_p`` is 0 for a latent that fires on all of p's inputs and 1 for one that fires on
    none of those with a child: the child latents have absorbed the parent. It counts as
    absorption only if the latent does work as a parent detector elsewhere, so ``rate_p`` is
    *valid* (not NaN) only when a parent latent exists (``cosine >= min_cos``), its parent-only
    recall is at least ``min_recall``, and both kinds of inputs occur. This follows the spirit of
    Chanin et al. (2024, arXiv:2409.14507), who additionally require an absorbing latent; here the
    ground truth tells us the feature is present. Chapter 5.

    Parameters
    ----------
    f : ndarray or Tensor of shape (n_samples, d_sae)
        The SAE's codes on ``data.x`` (in inference mode).
    W_dec : ndarray or Tensor of shape (d_sae, d_in)
        The SAE's decoder rows.
    data : HierarchicalData
    min_cos : float
        Smallest decoder cosine with ``P_p`` for a latent to count as p's latent.
    min_recall : float
        Smallest parent-only recall for the latent to count as a working parent detector.

    Returns
    -------
    Absorption
    """
    check_probability("min_cos", min_cos)
    check_probability("min_recall", min_recall)
    _check_data(data)
    W = _as_f64(W_dec, "W_dec")  # [d_sae, d_in]
    fires = _active("f", f, data.x.shape[0])  # [n, d_sae]
    check_shape("W_dec", W, (fires.shape[1], data.parent_dictionary.shape[1]))
    check_finite("W_dec", W)
    P = _as_f64(data.parent_dictionary)  # [n_parents, d_in]
    norms = np.linalg.norm(W, axis=1)  # [d_sae]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.nan_to_num((P @ W.T) / norms[None, :], nan=-1.0)  # [n_parents, d_sae]
    best = cos.argmax(1)  # [n_parents]
    best_cos = cos.max(1)
    found = best_cos >= min_cos
    parents = _active("data.parent_codes", data.parent_codes)  # [n, n_parents]
    children = _active("data.child_codes", data.child_codes)  # [n, n_child]
    child_parent = data.child_parent.cpu().numpy()  # [n_child]
    n_parents = parents.shape[1]
    any_child = np.zeros_like(parents)  # [n, n_parents]: some child of p active
    for c, p in enumerate(child_parent):
        any_child[:, p] |= children[:, c]
    latent_fires = fires[:, best]  # [n, n_parents]: parent p's latent fires
    recall, rates = np.full(n_parents, np.nan), np.full(n_parents, np.nan)
    for p in range(n_parents):
        alone, with_child = parents[:, p] & ~any_child[:, p], any_child[:, p]
        if alone.any():
            recall[p] = latent_fires[alone, p].mean()
        if with_child.any():
            rates[p] = 1.0 - latent_fires[with_child, p].mean()
    child_rates = np.array([1.0 - latent_fires[children[:, c], p].mean() if children[:, c].any()
                            else np.nan for c, p in enumerate(child_parent)])
    child_rates[~found[child_parent]] = np.nan
    valid = found & (np.nan_to_num(recall) >= min_recall) & ~np.isnan(rates)
    rates = np.where(valid, rates, np.nan)
    mean = float(rates[valid].mean()) if valid.any() else float("nan")
    return Absorption(np.where(found, best, -1), best_cos, recall, rates, child_rates, valid,
                      mean)


class FullAbsorption(NamedTuple):
    """Full absorption as SAEBench counts it, per parent feature (Chapter 7)."""

    parent_latent: np.ndarray  # (n_parents,) int: latent best aligned with P_p, -1 if none
    n_present: np.ndarray  # (n_parents,) int: inputs with parent p active (the denominator)
    n_absorbed: np.ndarray  # (n_parents,) int: of those, fully absorbed inputs
    absorbing_latent: np.ndarray  # (n_parents,) int: the latent absorbing p most often, -1 none
    rates: np.ndarray  # (n_parents,) n_absorbed / n_present; NaN without a parent latent
    mean: float  # mean of the defined rates; NaN if none is defined


def full_absorption(f, W_dec, data: HierarchicalData, min_share: float = 0.4,
                    min_absorber_cos: float = 0.025, min_cos: float = 0.5) -> FullAbsorption:
    """Full-absorption rate of each parent, with SAEBench's absorbing-latent criterion.

    The parent latent L is chosen as in :func:`feature_absorption` (largest decoder cosine with
    ``P_p``, at least ``min_cos``); ``P_p`` plays the role of SAEBench's probe direction and the
    ground truth that of the probe's true positives. An input with p present is *fully absorbed*
    when

    * L does not fire,
    * ``x . P_p > 0``, and the latent with the largest projection ``f_i (W_dec,i . P_p)`` has
      decoder cosine with ``P_p`` of at least ``min_absorber_cos`` (SAEBench: 0.025) and a
      projection of at least ``min_share * (x . P_p)`` (SAEBench: 0.4).

    SAEBench projects with ``f_i cos_i`` (decoder rows of unit norm); here ``f_i (W_dec,i . P_p)``
    is the latent's actual contribution to the reconstruction along ``P_p``, the same for unit
    rows. After Chanin et al. (2024), arXiv:2409.14507, and SAEBench (Karvonen et al. 2025).

    Parameters
    ----------
    f : ndarray or Tensor of shape (n_samples, d_sae)
        The SAE's codes on ``data.x`` (in inference mode).
    W_dec : ndarray or Tensor of shape (d_sae, d_in)
    data : HierarchicalData
    min_share : float in [0, 1]
        Share of ``x . P_p`` the absorbing latent must carry.
    min_absorber_cos : float in [0, 1]
        Smallest decoder cosine of the absorbing latent with ``P_p``.
    min_cos : float in [0, 1]
        Smallest decoder cosine with ``P_p`` for a latent to count as p's latent.

    Returns
    -------
    FullAbsorption
    """
    check_probability("min_share", min_share)
    check_probability("min_absorber_cos", min_absorber_cos)
    check_probability("min_cos", min_cos)
    _check_data(data)
    F = _as_f64(f)  # [n, d_sae]
    fires = _active("f", f, data.x.shape[0])  # [n, d_sae]
    W = _as_f64(W_dec)  # [d_sae, d_in]
    check_shape("W_dec", W, (F.shape[1], data.parent_dictionary.shape[1]))
    check_finite("W_dec", W)
    P = _as_f64(data.parent_dictionary)  # [n_parents, d_in]
    X = _as_f64(data.x)  # [n, d_in]
    dots = P @ W.T  # [n_parents, d_sae]: W_dec,i . P_p
    norms = np.linalg.norm(W, axis=1)  # [d_sae]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.nan_to_num(dots / norms[None, :], nan=-1.0)  # [n_parents, d_sae]
    parents = _active("data.parent_codes", data.parent_codes)  # [n, n_parents]
    n_parents = P.shape[0]
    latent = np.where(cos.max(1) >= min_cos, cos.argmax(1), -1)  # [n_parents]
    n_present = parents.sum(0).astype(int)  # [n_parents]
    n_absorbed = np.zeros(n_parents, dtype=int)
    absorber = np.full(n_parents, -1)
    rates = np.full(n_parents, np.nan)
    for p in range(n_parents):
        if latent[p] < 0 or n_present[p] == 0:
            continue
        rows = parents[:, p]  # inputs with p present
        contrib = F[rows] * dots[p]  # [n_p, d_sae]: each latent's projection on P_p
        top = contrib.argmax(1)  # [n_p]
        top_proj = contrib[np.arange(len(top)), top]  # [n_p]
        probe = X[rows] @ P[p]  # [n_p]: x . P_p
        absorbed = (~fires[rows, latent[p]] & (probe > 0) & (cos[p, top] >= min_absorber_cos)
                    & (top_proj >= min_share * probe))
        n_absorbed[p] = int(absorbed.sum())
        rates[p] = n_absorbed[p] / n_present[p]
        if absorbed.any():
            absorber[p] = int(np.bincount(top[absorbed]).argmax())
    defined = ~np.isnan(rates)
    mean = float(rates[defined].mean()) if defined.any() else float("nan")
    return FullAbsorption(latent, n_present, n_absorbed, absorber, rates, mean)
