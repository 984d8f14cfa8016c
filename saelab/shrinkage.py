"""Shrinkage: how much an SAE's codes underestimate the true feature magnitudes.

For one active feature of true magnitude a on a unit-norm atom d (orthonormal dictionary, so
nothing else interferes), x = a d. With a unit-norm decoder the L1 SAE loss of a code f >= 0 on
that atom is

    L(f) = ||a d - f d||^2 + lambda f = (a - f)^2 + lambda f,

so dL/df = 2 (f - a) + lambda = 0 gives the optimum

    f* = max(a - lambda / 2, 0)                                  (soft thresholding)

every active code is pulled down by lambda/2 and features weaker than lambda/2 vanish (Tibshirani
1996 for the LASSO; Wright et al. 2024 and Rajamanoharan et al. 2024, arXiv:2404.16014, for SAEs).
TopK, JumpReLU and Gated SAEs put no price on the magnitude of a code that is on, so their optimum
is f* = a when the feature is kept: JumpReLU keeps it when a > theta, TopK when it is among the k
largest. This module holds these closed forms and the measurements that compare them with trained
SAEs on ground-truth data (:mod:`saelab.synthetic`): per true feature, the latent whose decoder row
points its way, and the (true, coded) magnitude pairs on the inputs where the feature is active.

Taught in Chapter 4.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from saelab._checks import check_nonnegative, check_numeric, check_probability

__all__ = ["l1_optimal_code", "jumprelu_optimal_code", "MatchedMagnitudes", "matched_magnitudes",
           "ShrinkageFit", "fit_shrinkage"]


def _as_f64(name: str, value) -> np.ndarray:
    value = check_numeric(name, value)
    if hasattr(value, "detach"):  # a tensor on any device, maybe requiring grad
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def l1_optimal_code(a, l1_coeff: float) -> np.ndarray:
    """The L1 SAE's optimal code ``max(a - l1_coeff / 2, 0)`` for true magnitudes ``a`` (Chapter 4).

    Exact for an orthonormal dictionary with unit-norm decoder rows and the loss
    ``||x - x_hat||^2 + l1_coeff * sum_i f_i``; elementwise over an array ``a`` of any shape.
    """
    check_nonnegative("l1_coeff", l1_coeff)
    return np.maximum(_as_f64("a", a) - l1_coeff / 2.0, 0.0)


def jumprelu_optimal_code(a, theta: float) -> np.ndarray:
    """The JumpReLU code ``a * 1[a > theta]`` of an aligned latent: no shrinkage (Chapter 4)."""
    check_nonnegative("theta", theta)
    a = _as_f64("a", a)
    return a * (a > theta)


class MatchedMagnitudes(NamedTuple):
    """(true, coded) magnitude pairs for the well-recovered true features (Chapter 4)."""

    true: np.ndarray  # (n_pairs,) true code c_bj where feature j is active in input b
    coded: np.ndarray  # (n_pairs,) the matched latent's code f_b,latent(j) on the same input
    feature: np.ndarray  # (n_pairs,) index j of the true feature
    latent: np.ndarray  # (n_features,) latent matched to each true feature
    cosine: np.ndarray  # (n_features,) cosine between that latent's decoder row and feature j


def matched_magnitudes(codes, f, W_dec, dictionary, min_cosine: float = 0.9) -> MatchedMagnitudes:
    """Pair true and coded magnitudes through each feature's best-matching latent (Chapter 4).

    Parameters
    ----------
    codes : array of shape (batch, n_features)
        True non-negative codes of the inputs.
    f : array of shape (batch, d_sae)
        The SAE's codes of the same inputs.
    W_dec : array of shape (d_sae, d_in)
        The SAE's decoder (rows: atoms, any norm).
    dictionary : array of shape (n_features, d_in)
        The true feature directions.
    min_cosine : float
        Keep only features whose matched latent has at least this cosine (others are not
        recovered, and their "magnitude" would measure something else).

    Returns
    -------
    MatchedMagnitudes
        Pairs over all inputs b and kept features j with ``codes[b, j] > 0``. A coded magnitude
        is divided by nothing: with unit-norm decoder rows it is the length of the feature's
        contribution to x_hat along the atom; for free rows it is scaled by ||W_dec,i||.
    """
    check_probability("min_cosine", min_cosine)
    codes, f, W_dec, dictionary = (_as_f64(n, v) for n, v in (("codes", codes), ("f", f),
                                                                ("W_dec", W_dec),
                                                                ("dictionary", dictionary)))
    for name, v in (("codes", codes), ("f", f), ("W_dec", W_dec), ("dictionary", dictionary)):
        if v.ndim != 2:
            raise ValueError(f"{name} must be 2-dimensional, got shape {v.shape}")
    if codes.shape[0] != f.shape[0]:
        raise ValueError(f"codes and f must have the same number of rows, got {codes.shape[0]} "
                         f"and {f.shape[0]}")
    if W_dec.shape[0] != f.shape[1] or W_dec.shape[1] != dictionary.shape[1]:
        raise ValueError(f"W_dec must have shape ({f.shape[1]}, {dictionary.shape[1]}), "
                         f"got {W_dec.shape}")
    norms = np.linalg.norm(W_dec, axis=1)  # (d_sae,)
    atoms = W_dec / np.maximum(norms, 1e-12)[:, None]  # (d_sae, d_in)
    truth = dictionary / np.linalg.norm(dictionary, axis=1, keepdims=True)  # (n_features, d_in)
    cos = truth @ atoms.T  # (n_features, d_sae)
    latent = cos.argmax(axis=1)  # (n_features,)
    best = cos[np.arange(len(latent)), latent]  # (n_features,)
    coded_all = f[:, latent] * norms[latent]  # (batch, n_features): length along the atom
    mask = (codes > 0) & (best >= min_cosine)[None, :]  # (batch, n_features)
    _, feature = np.nonzero(mask)
    return MatchedMagnitudes(codes[mask], coded_all[mask], feature, latent, best)


class ShrinkageFit(NamedTuple):
    """Summary of coded vs true magnitudes (Chapter 4)."""

    slope: float  # least-squares slope of coded on true, over pairs where the latent fired
    intercept: float  # its intercept: about -lambda/2 for an L1 SAE, about 0 without shrinkage
    mean_ratio: float  # sum(coded) / sum(true) over pairs where the latent fired
    missed: float  # fraction of active true features whose latent did not fire


def fit_shrinkage(true, coded) -> ShrinkageFit:
    """Fit ``coded = slope * true + intercept`` on the pairs where the latent fired (Chapter 4)."""
    true, coded = _as_f64("true", true), _as_f64("coded", coded)
    if true.shape != coded.shape or true.ndim != 1:
        raise ValueError(f"true and coded must be 1-d of the same length, got {true.shape} and "
                         f"{coded.shape}")
    fired = coded > 0
    if fired.sum() < 2:
        raise ValueError(f"coded must have at least 2 positive entries to fit, got {fired.sum()}")
    slope, intercept = np.polyfit(true[fired], coded[fired], 1)
    return ShrinkageFit(float(slope), float(intercept),
                        float(coded[fired].sum() / true[fired].sum()), float(1 - fired.mean()))
