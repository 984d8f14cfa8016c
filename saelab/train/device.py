"""Accelerator options of :func:`saelab.train.train_sae`: bf16 autocast, TF32, ``torch.compile``.

On CUDA (Colab), ``precision="bf16"`` runs the forward pass under ``torch.autocast`` in bfloat16
while the parameters, their gradients and Adam's state stay float32 ("master weights"): the
dense products run at bf16 speed, the update keeps float32 accuracy. ``tf32=True`` lets float32
matmuls use TensorFloat-32 on Ampere and later GPUs. ``compile=True`` wraps the forward pass in
``torch.compile``. Each option falls back to plain float32 eager execution, with a warning, on a
device that lacks it (CPU, MPS, an old GPU), so a notebook written for Colab runs on a laptop.
Chapter 4 (speed box); tests marked ``gpu`` in tests/test_train_device.py.
"""
from __future__ import annotations

import contextlib
import warnings

import torch

from saelab._checks import check_instance

__all__ = ["PRECISIONS", "use_bf16", "autocast", "set_tf32", "maybe_compile"]

PRECISIONS = ("float32", "bf16")


def _check_flag(name: str, value) -> None:
    if not isinstance(value, bool):  # cheap: autocast() runs on every training step
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_device(device) -> None:
    check_instance("device", device, torch.device, "a torch.device (e.g. torch.device('cuda'))")


def _bf16_ok(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def use_bf16(precision: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether to autocast to bf16: asked for and available (else a warning, and False)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    _check_device(device)
    check_instance("dtype", dtype, torch.dtype, "a torch dtype (the parameters' dtype)")
    if precision != "bf16":
        return False
    if not _bf16_ok(device):
        warnings.warn(f"precision='bf16' needs a CUDA device with bfloat16; training on "
                      f"{device} in {dtype} instead")
        return False
    if dtype != torch.float32:
        raise ValueError(f"precision='bf16' needs float32 master weights, got {dtype} parameters")
    return True


def autocast(bf16: bool):
    """The context of one forward pass: bf16 autocast on CUDA, or nothing."""
    _check_flag("bf16", bf16)
    return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def set_tf32(tf32: bool, device: torch.device) -> bool:
    """Allow (or forbid) TF32 matmuls when training on CUDA; return the old setting."""
    _check_flag("tf32", tf32)
    _check_device(device)
    old = torch.backends.cuda.matmul.allow_tf32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    return old


def maybe_compile(forward, compile: bool, device: torch.device):
    """``torch.compile(forward)`` on CUDA when asked; elsewhere ``forward`` and a warning."""
    if not callable(forward):
        raise TypeError(f"forward must be a callable, got {type(forward).__name__}")
    _check_flag("compile", compile)
    _check_device(device)
    if not compile:
        return forward
    if device.type != "cuda":
        warnings.warn(f"compile=True is used on CUDA only; running eagerly on {device}")
        return forward
    return torch.compile(forward, dynamic=False)
