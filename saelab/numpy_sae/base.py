"""Shared base of the NumPy SAEs: parameters, encode, decode, reconstruction loss, decoder norms,
and the parts of the hand-derived backward pass that every family shares.

    pre_acts = (x - b_dec) @ W_enc + b_enc           (batch, d_sae)
    f        = activation(pre_acts)                   (batch, d_sae), family-specific
    x_hat    = f @ W_dec + b_dec                      (batch, d_in)
    loss     = mean_b ||x_b - x_hat_b||^2 + sparsity_loss + aux_coeff * aux_loss

Backward, by the chain rule (B = batch size):

    dL/dx_hat  = (2 / B) (x_hat - x)                  (batch, d_in)
    dL/dW_dec  = f^T dL/dx_hat                        (d_sae, d_in)
    dL/db_dec  = sum_b dL/dx_hat - W_enc dL/dpre      (through x_hat, and through x - b_dec)
    dL/df      = dL/dx_hat W_dec^T  + family sparsity term
    dL/dpre    = family activation backward of dL/df  + family aux term
    dL/dW_enc  = (x - b_dec)^T dL/dpre                (d_in, d_sae)
    dL/db_enc  = sum_b dL/dpre                        (d_sae,)

The architecture is the one of Bricken et al. (2023), "Towards Monosemanticity". Rows of W_dec are
the dictionary atoms. Families with unit-norm decoder rows (as in Gao et al. 2024) remove the
gradient component parallel to each row before the optimizer step (``remove_parallel_grad``) and
renormalise the rows after it (``normalize_decoder``).

This file reads line by line against ``saelab/torch_sae/base.py``. Taught in Chapter 2.
"""
from __future__ import annotations

import numpy as np

from saelab._checks import check_array, check_float_dtype, check_shape
from saelab.sae_output import SAEOutput

WEIGHTED_INIT_NORM = 0.1  # decoder row norm at init for the "weighted" L1 SAE (Anthropic, April 2024)


def recon_loss(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Reconstruction loss ``mean_b ||x_b - x_hat_b||^2`` (sum over d_in). Chapter 2.

    Parameters
    ----------
    x, x_hat : ndarray of shape (batch, d_in)
    """
    _check_pair(x, x_hat)
    return float(((x - x_hat) ** 2).sum(axis=-1).mean())


def _check_pair(x, x_hat, names=("x", "x_hat")) -> None:
    """Both arrays (or tensors), of the same shape: a cheap check on shapes only."""
    a, b = names
    for name, v in ((a, x), (b, x_hat)):
        if not hasattr(v, "shape"):
            raise TypeError(f"{name} must be an array, got {type(v).__name__}")
    if tuple(x.shape) != tuple(x_hat.shape):
        raise ValueError(f"{b} must have the shape of {a} {tuple(x.shape)}, got "
                         f"{tuple(x_hat.shape)}")


class BaseSAE:
    """Parameters and the shared forward/backward pass of every NumPy SAE (Chapter 2).

    Subclasses set ``activation``, ``sparsity_loss`` and their backward counterparts
    ``activation_backward`` and ``sparsity_backward``; TopK adds ``aux_loss``/``aux_backward``.

    Parameters
    ----------
    cfg : L1Config, TopKConfig or JumpReLUConfig
    rng : None, int or numpy.random.Generator
        Seed or generator for the decoder initialisation.
    dtype : numpy dtype
        Dtype of every parameter (float64 for gradient checks).

    Attributes
    ----------
    W_enc : ndarray of shape (d_in, d_sae)
    b_enc : ndarray of shape (d_sae,)
    W_dec : ndarray of shape (d_sae, d_in)
    b_dec : ndarray of shape (d_in,)
    """

    param_names: tuple[str, ...] = ("W_enc", "b_enc", "W_dec", "b_dec")

    def __init__(self, cfg, rng=None, dtype=np.float32) -> None:
        dtype = check_float_dtype("dtype", dtype)
        if getattr(cfg, "family", None) is None or not hasattr(cfg, "d_sae"):
            raise TypeError(f"cfg must be an SAE config (L1Config, TopKConfig, ...), got "
                            f"{type(cfg).__name__}")
        self.cfg = cfg
        try:
            rng = np.random.default_rng(rng)
        except (TypeError, ValueError) as err:
            raise TypeError(f"rng must be None, an int seed or a numpy Generator, "
                            f"got {rng!r}") from err
        d_in, d_sae = cfg.d_in, cfg.d_sae
        W_dec = rng.standard_normal((d_sae, d_in))  # (d_sae, d_in)
        W_dec = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True) * self._init_row_norm()
        self.W_enc = W_dec.T.astype(dtype)  # (d_in, d_sae), a copy
        self.b_enc = np.zeros(d_sae, dtype=dtype)  # (d_sae,)
        self.W_dec = W_dec.astype(dtype)  # (d_sae, d_in)
        self.b_dec = np.zeros(d_in, dtype=dtype)  # (d_in,)

    # ----- family hooks -------------------------------------------------------------------------
    def _init_row_norm(self) -> float:
        """Norm of each decoder row at initialisation (1 for unit-norm families)."""
        return 1.0 if self.unit_norm_decoder else WEIGHTED_INIT_NORM

    @property
    def unit_norm_decoder(self) -> bool:
        """True if this family keeps decoder rows at unit norm (training calls the projections)."""
        return True

    @property
    def aux_coeff(self) -> float:
        """Weight of ``aux_loss`` in the total loss (0 for families without one)."""
        return 0.0

    def activation(self, pre_acts: np.ndarray) -> np.ndarray:
        """Family activation: pre_acts (batch, d_sae) -> f (batch, d_sae)."""
        raise NotImplementedError

    def sparsity_loss(self, pre_acts: np.ndarray, f: np.ndarray) -> float:
        """Coefficient times the family's sparsity penalty, averaged over the batch."""
        raise NotImplementedError

    def aux_loss(self, x, x_hat, pre_acts, dead_mask) -> float:
        """Unweighted auxiliary loss; zero unless the family defines one (TopK: AuxK)."""
        return 0.0

    def sparsity_backward(self, pre_acts, f, grads) -> np.ndarray | float:
        """Gradient of ``sparsity_loss`` w.r.t. f, shape (batch, d_sae) or broadcastable.

        Gradients w.r.t. parameters (W_dec, threshold) are added into ``grads`` in place.
        """
        raise NotImplementedError

    def activation_backward(self, pre_acts, f, grad_f, grads) -> np.ndarray:
        """Gradient w.r.t. pre_acts, shape (batch, d_sae), given ``grad_f`` = dL/df.

        Gradients w.r.t. parameters of the activation (threshold) are added into ``grads``.
        """
        raise NotImplementedError

    def aux_backward(self, x, out, dead_mask, grads) -> np.ndarray | float:
        """Gradient of ``aux_coeff * aux_loss`` w.r.t. pre_acts; W_dec's part goes into ``grads``."""
        return 0.0

    # ----- shared forward -----------------------------------------------------------------------
    def pre_activation(self, x: np.ndarray) -> np.ndarray:
        """Encoder pre-activations ``(x - b_dec) @ W_enc + b_enc``: (batch, d_in) -> (batch, d_sae)."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc  # (batch, d_sae)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes f of shape (batch, d_sae) for inputs x of shape (batch, d_in)."""
        x = self._check_x(x)
        return self.activation(self.pre_activation(x))  # (batch, d_sae)

    def decode(self, f: np.ndarray) -> np.ndarray:
        """Reconstruction ``f @ W_dec + b_dec``: (batch, d_sae) -> (batch, d_in)."""
        f = check_array("f", f)
        check_shape("f", f, (None, self.cfg.d_sae))
        return self._decode(f)

    def _decode(self, f: np.ndarray) -> np.ndarray:
        return f @ self.W_dec + self.b_dec  # (batch, d_in)

    def forward(self, x: np.ndarray, dead_mask: np.ndarray | None = None) -> SAEOutput:
        """Full forward pass with all loss terms.

        Parameters
        ----------
        x : ndarray of shape (batch, d_in)
            Finite inputs.
        dead_mask : ndarray of bool, shape (d_sae,), optional
            True for latents that have not fired recently (TopK's AuxK loss; validated and
            ignored by the other families).

        Returns
        -------
        SAEOutput
            Arrays ``x_hat`` (batch, d_in), ``f`` and ``pre_acts`` (batch, d_sae); float losses.
        """
        x = self._check_x(x)
        dead_mask = self._check_dead_mask(dead_mask)
        pre_acts = self.pre_activation(x)  # (batch, d_sae)
        f = self.activation(pre_acts)  # (batch, d_sae)
        x_hat = self._decode(f)  # (batch, d_in)
        recon = recon_loss(x, x_hat)
        sparsity = self.sparsity_loss(pre_acts, f)
        aux = self.aux_loss(x, x_hat, pre_acts, dead_mask)
        loss = recon + sparsity + self.aux_coeff * aux
        return SAEOutput(x_hat, f, pre_acts, loss, recon, sparsity, aux)

    __call__ = forward

    # ----- shared backward ----------------------------------------------------------------------
    def backward(self, x: np.ndarray, out: SAEOutput, dead_mask=None) -> dict[str, np.ndarray]:
        """Hand-derived gradient of ``out.loss`` w.r.t. every parameter (no autograd).

        Parameters
        ----------
        x : ndarray of shape (batch, d_in)
            The inputs given to ``forward``.
        out : SAEOutput
            What ``forward(x, dead_mask)`` returned with the current parameters.
        dead_mask : ndarray of bool, shape (d_sae,), optional
            The same mask given to ``forward``.

        Returns
        -------
        dict of str to ndarray
            ``name -> dL/dname`` with the shape of each parameter in ``parameters()``.
        """
        x = self._check_x(x)
        dead_mask = self._check_dead_mask(dead_mask)
        grads = {name: np.zeros_like(p) for name, p in self.parameters().items()}
        grad_f = self.recon_backward(x, out, grads)  # (batch, d_sae)
        grad_f = grad_f + self.sparsity_backward(out.pre_acts, out.f, grads)
        grad_pre = self.activation_backward(out.pre_acts, out.f, grad_f, grads)  # (batch, d_sae)
        grad_pre = grad_pre + self.aux_backward(x, out, dead_mask, grads)
        grads["W_enc"] += (x - self.b_dec).T @ grad_pre  # (d_in, d_sae)
        grads["b_enc"] += grad_pre.sum(axis=0)  # (d_sae,)
        grads["b_dec"] -= self.W_enc @ grad_pre.sum(axis=0)  # (d_in,)
        return grads

    def recon_backward(self, x: np.ndarray, out: SAEOutput, grads) -> np.ndarray:
        """Gradient of ``recon_loss`` w.r.t. f, shape (batch, d_sae); its W_dec and b_dec parts
        are added into ``grads``. Matryoshka replaces it by the nested loss's (Chapter 7)."""
        grad_x_hat = (2.0 / x.shape[0]) * (out.x_hat - x)  # (batch, d_in)
        grads["W_dec"] += out.f.T @ grad_x_hat  # (d_sae, d_in)
        grads["b_dec"] += grad_x_hat.sum(axis=0)  # (d_in,)
        return grad_x_hat @ self.W_dec.T  # (batch, d_sae)

    # ----- decoder-norm handling ----------------------------------------------------------------
    def remove_parallel_grad(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Remove from ``grads["W_dec"]`` the component parallel to each decoder row (in place).

        Call between ``backward`` and the optimizer step for unit-norm families, so the step
        moves rows tangentially to the unit sphere. Returns ``grads`` for chaining.
        """
        grad = grads["W_dec"]  # (d_sae, d_in)
        W = self.W_dec  # (d_sae, d_in)
        coef = (grad * W).sum(axis=1, keepdims=True) / (W**2).sum(axis=1, keepdims=True)  # (d_sae, 1)
        grad -= coef * W
        return grads

    def normalize_decoder(self) -> None:
        """Rescale every row of ``W_dec`` to unit norm (in place); call after the optimizer step."""
        norms = np.linalg.norm(self.W_dec, axis=1, keepdims=True)  # (d_sae, 1)
        self.W_dec /= np.maximum(norms, np.finfo(self.W_dec.dtype).tiny)

    def apply_constraints(self) -> None:
        """Restore every parameter constraint after an optimizer step.

        Unit-norm families renormalise decoder rows; JumpReLU also clamps the threshold.
        """
        if self.unit_norm_decoder:
            self.normalize_decoder()

    # ----- parameters as a dict -----------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays by name (editing them edits the SAE)."""
        return {name: getattr(self, name) for name in self.param_names}

    def load_parameters(self, params: dict) -> None:
        """Copy values (arrays, or anything ``np.asarray`` takes) into the parameters in place.

        Every value must be a finite floating-point array of the parameter's shape; nothing is
        copied unless all of them are.
        """
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of name -> array, got {type(params).__name__}")
        if set(params) != set(self.param_names):
            raise ValueError(
                f"params must have exactly the keys {sorted(self.param_names)}, got {sorted(params)}"
            )
        values = {}
        for name in self.param_names:
            value = check_array(f"params[{name!r}]", params[name], nonempty=False)
            check_shape(f"params[{name!r}]", value, getattr(self, name).shape)
            values[name] = value
        for name, value in values.items():
            getattr(self, name)[...] = value

    # ----- input checks -------------------------------------------------------------------------
    def _check_x(self, x) -> np.ndarray:
        x = check_array("x", x)  # floating, finite, not empty
        check_shape("x", x, (None, self.cfg.d_in))
        return x

    def _check_dead_mask(self, dead_mask) -> np.ndarray | None:
        if dead_mask is None:
            return None
        dead_mask = check_array("dead_mask", dead_mask, floating=False)
        check_shape("dead_mask", dead_mask, (self.cfg.d_sae,))
        if dead_mask.dtype != np.bool_:
            raise ValueError(f"dead_mask must have dtype bool, got {dead_mask.dtype}")
        return dead_mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg!r})"
