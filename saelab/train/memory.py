"""Keeping freed memory while :func:`saelab.train.train_sae` runs on a CPU (glibc, i.e. Linux).

A large training step makes several temporaries of tens of megabytes (the pre-activations
[batch, d_sae], the gradients of ``W_enc`` and ``W_dec``, the renormalised decoder). glibc's
``malloc`` serves every allocation above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and hands it back to the operating system on ``free``, so each step faults all of those
pages in again and the kernel zeroes them: at d_in 768, d_sae 16,384, batch 1,024 about 70,000
page faults per step, a quarter of a TopK step's time (bench/bench_train_step.py).

:func:`keep_freed_memory` switches that off for the duration of training: ``M_MMAP_MAX = 0``
serves large blocks from the heap, ``M_TRIM_THRESHOLD = 1 GiB`` keeps freed heap memory for
the next step. On exit it restores glibc's documented defaults (``M_MMAP_MAX = 65536``,
``M_TRIM_THRESHOLD = 128 KiB``, see ``man 3 mallopt``) and returns the free memory to the
operating system with ``malloc_trim(0)``. One difference remains after exit: setting a threshold
explicitly turns off glibc's dynamic mmap threshold for the rest of the process (harmless, and
documented in ``mallopt(3)``). Elsewhere (macOS, Windows, musl) it does nothing.

Process-wide, so :func:`train_sae` uses it only when training on the CPU
(``TrainConfig(keep_memory=None)``, the default) and only around its own loop. Chapter 4 (speed).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
import threading

__all__ = ["keep_freed_memory", "can_keep_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
_DEFAULT_MMAP_MAX, _DEFAULT_TRIM = 65536, 128 * 1024  # glibc's defaults (mallopt(3))
_KEEP_TRIM = 1 << 30
_lock = threading.Lock()
_depth = 0  # nested or concurrent users: only the outermost one restores


def _libc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def can_keep_memory() -> bool:
    """Whether :func:`keep_freed_memory` has an effect here (Linux with glibc)."""
    return _LIBC is not None


@contextlib.contextmanager
def keep_freed_memory(enabled: bool = True):
    """Context: large freed blocks stay in the process for reuse (module docstring).

    ``enabled=False`` (or a system without glibc) makes it a no-op, so callers need no branch.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    global _depth
    if not enabled or _LIBC is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _LIBC.mallopt(_M_MMAP_MAX, 0)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _KEEP_TRIM)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _LIBC.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
                _LIBC.malloc_trim(0)
