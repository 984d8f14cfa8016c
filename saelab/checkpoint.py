"""Saving and loading torch SAEs as safetensors files (never pickle).

A file holds the parameter tensors (``W_enc``, ``b_enc``, ``W_dec``, ``b_dec`` and, for JumpReLU,
``threshold``) and, in the safetensors header's string metadata,

    saelab_family   "l1" | "topk" | "jumprelu"
    saelab_config   the family config dataclass's fields as JSON
    saelab_version  the saelab version that wrote the file

safetensors stores raw tensors and a JSON header, so loading a file cannot run code, unlike
``torch.save``/pickle; that makes checkpoints safe to download and share. Loading checks the
family and the sizes against what the caller expects and says what the file holds when they
differ. Taught in Chapter 6 (saving the GPT-2 SAE); used wherever a chapter ships a trained SAE.
"""
from __future__ import annotations

import dataclasses
import json
import os

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

import saelab
from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                                MatryoshkaConfig, TopKConfig)
from saelab.torch_sae import SAE_CLASSES, make_sae
from saelab.torch_sae.transcoder import TranscoderConfig

__all__ = ["save_sae", "load_sae", "read_config"]

CONFIG_CLASSES = {cls.family: cls for cls in (L1Config, TopKConfig, JumpReLUConfig, BatchTopKConfig,
                                              GatedConfig, MatryoshkaConfig)}
CONFIG_CLASSES["transcoder"] = TranscoderConfig  # Chapter 8
_KEYS = ("saelab_family", "saelab_config", "saelab_version")


def save_sae(sae, path: str | os.PathLike) -> None:
    """Write ``sae``'s parameters and config to a safetensors file at ``path``.

    Introduced in Chapter 6.

    Parameters
    ----------
    sae : saelab.torch_sae.BaseSAE
        Any torch SAE (its tensors are copied to the CPU for writing).
    path : str or PathLike
        Destination, conventionally ending in ``.safetensors``; overwritten if it exists.
    """
    cfg = getattr(sae, "cfg", None)
    if not isinstance(sae, torch.nn.Module) or getattr(cfg, "family", None) not in CONFIG_CLASSES:
        raise ValueError(f"sae must be a saelab torch SAE, got {type(sae).__name__}")
    tensors = {name: t.detach().cpu().contiguous() for name, t in sae.state_dict().items()}
    metadata = {
        "saelab_family": cfg.family,
        "saelab_config": json.dumps(dataclasses.asdict(cfg), sort_keys=True),
        "saelab_version": saelab.__version__,
    }
    save_file(tensors, os.fspath(path), metadata=metadata)


def _describe(family: str, cfg) -> str:
    return f"a {family} SAE with d_in={cfg.d_in}, d_sae={cfg.d_sae}"


def read_config(path: str | os.PathLike):
    """Read the config stored in a file written by :func:`save_sae`, without the tensors.

    Returns the family's config dataclass (``L1Config``, ``TopKConfig`` or ``JumpReLUConfig``).
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not a
    saelab safetensors checkpoint. Introduced in Chapter 6.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no SAE checkpoint at path={path!r}")
    try:
        with safe_open(path, framework="pt") as fh:
            metadata = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"path={path!r} is not a readable safetensors file ({err}); "
                         "it may be truncated or corrupt") from err
    missing = [k for k in _KEYS if k not in metadata]
    if missing:
        raise ValueError(f"path={path!r} is a safetensors file but not a saelab SAE checkpoint "
                         f"(metadata lacks {missing}); write it with saelab.checkpoint.save_sae")
    family = metadata["saelab_family"]
    if family not in CONFIG_CLASSES:
        raise ValueError(f"path={path!r} holds an SAE of unknown family {family!r} "
                         f"(known: {sorted(CONFIG_CLASSES)})")
    try:
        fields = json.loads(metadata["saelab_config"])
        return CONFIG_CLASSES[family](**fields)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ValueError(f"path={path!r} has an unreadable or invalid {family} config "
                         f"{metadata['saelab_config']!r} ({err})") from err


def _expected(expect):
    """(family, config or None) that ``expect`` asks for."""
    if isinstance(expect, torch.nn.Module) and hasattr(expect, "cfg"):
        expect = expect.cfg  # an SAE instance: compare with its config
    if isinstance(expect, str):
        if expect not in CONFIG_CLASSES:
            raise ValueError(f"expect must be one of {sorted(CONFIG_CLASSES)}, got {expect!r}")
        return expect, None
    if isinstance(expect, type):
        # an exact match first: BatchTopKSAE subclasses TopKSAE but is its own family
        for match in (lambda c, k: c is k, issubclass):
            for family in CONFIG_CLASSES:
                if any(match(expect, k) for k in (CONFIG_CLASSES[family], SAE_CLASSES[family])):
                    return family, None
    elif getattr(expect, "family", None) in CONFIG_CLASSES and hasattr(expect, "d_sae"):
        return expect.family, expect
    raise ValueError(f"expect must be a family name, an SAE or config class, or a config, "
                     f"got {expect!r}")


NORM_TOLERANCE = {2: 1e-2, 4: 1e-4, 8: 1e-4}  # |row norm - 1| allowed, by bytes per element


def _check_values(path: str, sae, tensors: dict) -> None:
    """Reject integer, non-finite and invariant-breaking tensors, naming the file and tensor."""
    for name, t in tensors.items():
        if not t.is_floating_point():
            raise ValueError(f"path={path!r}: tensor {name!r} has dtype {t.dtype}; an SAE "
                             f"checkpoint holds floating-point tensors only")
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ValueError(f"path={path!r}: tensor {name!r} holds {bad} NaN or infinite "
                             f"value(s); the checkpoint is corrupt or was saved after training "
                             f"diverged")
    cfg = sae.cfg
    W_dec = tensors.get("W_dec")
    if W_dec is not None and W_dec.ndim == 2 and sae.unit_norm_decoder:
        norms = W_dec.double().norm(dim=1)
        tol = NORM_TOLERANCE.get(W_dec.element_size(), 1e-4)
        worst = float((norms - 1).abs().max()) if norms.numel() else 0.0
        if worst > tol:
            raise ValueError(f"path={path!r}: the {cfg.family} family keeps decoder rows at unit "
                             f"norm, but a row of W_dec has norm off by {worst:.3g} (tolerance "
                             f"{tol:g})")
    threshold = tensors.get("threshold")
    if cfg.family == "jumprelu" and threshold is not None and bool((threshold < 0).any()):
        raise ValueError(f"path={path!r}: JumpReLU threshold must be non-negative, got minimum "
                         f"{float(threshold.min()):g}")


def load_sae(path: str | os.PathLike, expect=None, device=None, dtype=None):
    """Load an SAE written by :func:`save_sae`. Introduced in Chapter 6.

    Parameters
    ----------
    path : str or PathLike
        The safetensors file.
    expect : str, class, config or SAE, optional
        What the caller needs: a family name (``"topk"``), an SAE or config class (``TopKSAE``,
        ``TopKConfig``), or a config or SAE instance, whose family, ``d_in`` and ``d_sae``
        must match (its other fields, e.g. coefficients, are training settings and are not
        compared; the loaded SAE uses the file's config). A mismatch raises ``ValueError``
        saying what the file holds.
    device, dtype : optional
        Where and in what precision to put the SAE (default: CPU, the file's dtype).

    Returns
    -------
    saelab.torch_sae.BaseSAE
        With ``.cfg`` the config read from the file.
    """
    cfg = read_config(path)
    path = os.fspath(path)
    if expect is not None:
        family, want = _expected(expect)
        bad_family = family != cfg.family
        bad_shape = want is not None and (want.d_in, want.d_sae) != (cfg.d_in, cfg.d_sae)
        if bad_family or bad_shape:
            wanted = family if want is None else _describe(family, want)
            raise ValueError(f"path={path!r}: file holds {_describe(cfg.family, cfg)}; "
                             f"expected {wanted}")
    tensors = {}
    try:
        with safe_open(path, framework="pt") as fh:
            for name in fh.keys():
                tensors[name] = fh.get_tensor(name)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"path={path!r}: could not read the tensors ({err})") from err
    file_dtype = tensors["W_dec"].dtype if "W_dec" in tensors else None
    if file_dtype is not None and not file_dtype.is_floating_point:
        file_dtype = None  # _check_values names the integer tensor below
    sae = make_sae(cfg, device=device, dtype=dtype if dtype is not None else file_dtype)
    _check_values(path, sae, tensors)
    expected_shapes = {name: tuple(t.shape) for name, t in sae.state_dict().items()}
    found_shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if found_shapes != expected_shapes:
        raise ValueError(f"path={path!r}: tensors {found_shapes} do not match "
                         f"{_describe(cfg.family, cfg)}, which needs {expected_shapes}")
    sae.load_state_dict(tensors)
    sae.eval()
    return sae
