"""Configuration dataclasses for the SAE families, shared by the NumPy and torch twins.

Every sparse autoencoder in saelab computes

    pre_acts = (x - b_dec) @ W_enc + b_enc        (batch, d_sae)
    f        = activation(pre_acts)                (batch, d_sae)
    x_hat    = f @ W_dec + b_dec                   (batch, d_in)

and the families differ only in ``activation`` and in the loss terms added to the
reconstruction error:

* ``L1Config``: ReLU and an L1 penalty (Bricken et al. 2023; decoder-norm-weighted variant from
  Anthropic's April 2024 update). Taught in Chapter 2.
* ``TopKConfig``: keep the k largest pre-activations, plus the AuxK dead-latent loss
  (Gao et al. 2024, arXiv:2406.04093). Taught in Chapter 4.
* ``JumpReLUConfig``: z * H(z - theta) with a learned threshold and an L0 penalty trained with
  straight-through pseudo-gradients (Rajamanoharan et al. 2024, arXiv:2407.14435).
  Taught in Chapter 4.
* ``BatchTopKConfig``: keep the k * batch largest pre-activations of the whole batch in training
  and a running threshold at inference (Bussmann et al. 2024, arXiv:2412.06410). Chapter 4.
* ``GatedConfig``: a gate path (which latents fire, with an L1 penalty) and a magnitude path
  (how strongly) sharing W_enc (Rajamanoharan et al. 2024, arXiv:2404.16014). Chapter 4.
* ``MatryoshkaConfig``: BatchTopK (or TopK) codes trained to reconstruct from every nested prefix
  of the dictionary (Bussmann, Nabeshima, Karvonen & Nanda 2025, arXiv:2503.17547). Chapter 7.

Default coefficients assume inputs scaled so that E||x||^2 is about 1 (as in the JumpReLU paper);
raise the sparsity coefficients for larger-scale inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from saelab._checks import check_int_in_range, check_nonnegative, check_positive

DECODER_NORMS = ("unit", "weighted")


def _check_sizes(d_in, d_sae) -> None:
    check_int_in_range("d_in", d_in, 1)
    check_int_in_range("d_sae", d_sae, 1)


def _check_batchtopk_fields(cfg) -> None:
    """The fields BatchTopK and Matryoshka SAEs share: sizes, k, AuxK and the threshold's EMA."""
    _check_sizes(cfg.d_in, cfg.d_sae)
    check_int_in_range("k", cfg.k, 1, cfg.d_sae)
    check_int_in_range("k_aux", cfg.k_aux, 1)
    check_nonnegative("aux_coeff", cfg.aux_coeff)
    if not 0.0 <= check_nonnegative("threshold_decay", cfg.threshold_decay) < 1.0:
        raise ValueError(f"threshold_decay must be in [0, 1), got {cfg.threshold_decay}")


@dataclass
class L1Config:
    """ReLU SAE with an L1 sparsity penalty (Chapter 2).

    ``decoder_norm="unit"`` keeps decoder rows at unit norm and penalises ``l1_coeff * sum_i f_i``;
    ``"weighted"`` leaves the decoder free and penalises ``l1_coeff * sum_i f_i ||W_dec,i||``.
    Both remove the scale degeneracy (shrink f, grow W_dec) that a plain L1 penalty has.
    """

    family: ClassVar[str] = "l1"

    d_in: int = 64  # width of the activations being decomposed (toy-data default)
    d_sae: int = 512  # number of latents; 8x expansion is enough for the toy data
    l1_coeff: float = 0.1  # lambda; on unit-scale data shrinks each active code by about lambda/2
    decoder_norm: str = "weighted"  # Anthropic April 2024 recipe: no projection step needed

    def __post_init__(self) -> None:
        _check_sizes(self.d_in, self.d_sae)
        check_nonnegative("l1_coeff", self.l1_coeff)
        if self.decoder_norm not in DECODER_NORMS:
            raise ValueError(
                f"decoder_norm must be one of {DECODER_NORMS}, got {self.decoder_norm!r}"
            )


@dataclass
class TopKConfig:
    """TopK SAE with the AuxK dead-latent loss (Gao et al. 2024; Chapter 4)."""

    family: ClassVar[str] = "topk"

    d_in: int = 64  # width of the activations being decomposed (toy-data default)
    d_sae: int = 512  # number of latents; 8x expansion is enough for the toy data
    k: int = 32  # active latents per input; sparsity is exact, no penalty needed
    k_aux: int = 256  # dead latents used by AuxK (OpenAI's value); capped at the number dead
    aux_coeff: float = 1 / 32  # AuxK weight alpha from Gao et al. 2024

    def __post_init__(self) -> None:
        _check_sizes(self.d_in, self.d_sae)
        check_int_in_range("k", self.k, 1, self.d_sae)
        check_int_in_range("k_aux", self.k_aux, 1)
        check_nonnegative("aux_coeff", self.aux_coeff)


@dataclass
class JumpReLUConfig:
    """JumpReLU SAE with an L0 penalty and rectangle-kernel pseudo-gradients (Chapter 4)."""

    family: ClassVar[str] = "jumprelu"

    d_in: int = 64  # width of the activations being decomposed (toy-data default)
    d_sae: int = 512  # number of latents; 8x expansion is enough for the toy data
    l0_coeff: float = 1e-3  # lambda on the L0 count; about 1e-3 trades ~10 latents for 1% FVU
    bandwidth: float = 0.001  # kernel width eps (Rajamanoharan et al. 2024, E||x||^2 = 1)
    threshold_init: float = 0.001  # initial theta for every latent (same paper)

    def __post_init__(self) -> None:
        _check_sizes(self.d_in, self.d_sae)
        check_nonnegative("l0_coeff", self.l0_coeff)
        check_positive("bandwidth", self.bandwidth)
        check_positive("threshold_init", self.threshold_init)


@dataclass
class BatchTopKConfig:
    """BatchTopK SAE: top k * batch over the whole batch, a running threshold at inference,
    AuxK for dead latents (Bussmann et al. 2024, arXiv:2412.06410; Chapter 4)."""

    family: ClassVar[str] = "batchtopk"

    d_in: int = 64  # width of the activations being decomposed (toy-data default)
    d_sae: int = 512  # number of latents; 8x expansion is enough for the toy data
    k: int = 32  # average active latents per input; the batch keeps k * batch in all
    k_aux: int = 256  # dead latents used by AuxK (as for TopK); capped at the number dead
    aux_coeff: float = 1 / 32  # AuxK weight alpha, as for TopK (Gao et al. 2024)
    threshold_decay: float = 0.99  # EMA decay of the inference threshold; ~100-batch memory

    def __post_init__(self) -> None:
        _check_batchtopk_fields(self)


@dataclass
class GatedConfig:
    """Gated SAE: gate path with a norm-weighted L1 penalty and an auxiliary reconstruction,
    magnitude path without a penalty (Rajamanoharan et al. 2024, arXiv:2404.16014; Chapter 4)."""

    family: ClassVar[str] = "gated"

    d_in: int = 64  # width of the activations being decomposed (toy-data default)
    d_sae: int = 512  # number of latents; 8x expansion is enough for the toy data
    l1_coeff: float = 0.1  # lambda on sum_i ReLU(pi_gate_i) ||W_dec,i||; only the gate shrinks

    def __post_init__(self) -> None:
        _check_sizes(self.d_in, self.d_sae)
        check_nonnegative("l1_coeff", self.l1_coeff)


MATRYOSHKA_ACTIVATIONS = ("batchtopk", "topk")


def default_prefix_sizes(d_sae: int, k: int) -> tuple[int, ...]:
    """Nested prefix sizes d_sae/8, d_sae/4, d_sae/2, d_sae, keeping those >= k (Chapter 7)."""
    check_int_in_range("d_sae", d_sae, 1)
    check_int_in_range("k", k, 1, d_sae)
    sizes = sorted({d_sae // 8, d_sae // 4, d_sae // 2, d_sae})
    return tuple(m for m in sizes if m >= k)


@dataclass
class MatryoshkaConfig:
    """Matryoshka SAE: one dictionary whose nested prefixes W_dec[:m_1] ⊂ ... ⊂ W_dec[:m_n]
    must each reconstruct x on their own; loss = mean over prefixes of the prefix's
    reconstruction error, plus AuxK (Bussmann et al. 2025, arXiv:2503.17547; Chapter 7)."""

    family: ClassVar[str] = "matryoshka"

    d_in: int = 64  # width of the activations being decomposed (toy-data default)
    d_sae: int = 512  # number of latents; 8x expansion is enough for the toy data
    k: int = 32  # average active latents per input (BatchTopK) or exactly k (TopK)
    prefix_sizes: tuple = None  # m_1 < ... < m_n = d_sae; None: d_sae/8, /4, /2, 1 (those >= k)
    activation: str = "batchtopk"  # the paper's choice; "topk" keeps k per row instead
    k_aux: int = 256  # dead latents used by AuxK (as for TopK); capped at the number dead
    aux_coeff: float = 1 / 32  # AuxK weight alpha, as for TopK (Gao et al. 2024)
    threshold_decay: float = 0.99  # EMA decay of the BatchTopK inference threshold

    def __post_init__(self) -> None:
        _check_batchtopk_fields(self)
        if self.activation not in MATRYOSHKA_ACTIVATIONS:
            raise ValueError(f"activation must be one of {MATRYOSHKA_ACTIVATIONS}, "
                             f"got {self.activation!r}")
        if self.prefix_sizes is None:
            self.prefix_sizes = default_prefix_sizes(self.d_sae, self.k)
        self.prefix_sizes = _check_prefix_sizes(self.prefix_sizes, self.d_sae, self.k)

    def groups(self) -> list[tuple[int, int]]:
        """(start, stop) of each prefix's new latents: (0, m_1), (m_1, m_2), ..., (m_{n-1}, m_n)."""
        starts = (0,) + self.prefix_sizes[:-1]
        return list(zip(starts, self.prefix_sizes))


def _check_prefix_sizes(sizes, d_sae: int, k: int) -> tuple[int, ...]:
    """``sizes`` as a tuple of ints, or ValueError: empty, not increasing, not ending at d_sae,
    or a prefix below k (it could not hold k active latents)."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) == 0:
        raise ValueError(f"prefix_sizes must be a non-empty sequence of ints, got {sizes!r}")
    sizes = tuple(sizes)
    for m in sizes:
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)):
            raise ValueError(f"prefix_sizes must hold ints, got {m!r} in {sizes!r}")
    sizes = tuple(int(m) for m in sizes)
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"prefix_sizes must be strictly increasing, got {sizes}")
    if sizes[-1] != d_sae:
        raise ValueError(f"prefix_sizes must end at d_sae={d_sae}, got {sizes}")
    if sizes[0] < k:
        raise ValueError(f"prefix_sizes must all be >= k={k} (a prefix must be able to hold the "
                         f"k active latents), got {sizes}")
    return sizes


SAEConfig = (L1Config | TopKConfig | JumpReLUConfig | BatchTopKConfig | GatedConfig
             | MatryoshkaConfig)
"""Any of the family configs (for type hints)."""
