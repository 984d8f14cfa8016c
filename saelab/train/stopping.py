"""Stopping training cleanly at a step boundary: on a signal (the SIGTERM a scheduler sends
before it preempts a job, Ctrl-C in a terminal) or when code asks.

    with stop_on_signals() as stop:                          # SIGTERM and SIGINT
        train_sae(sae, data, cfg, checkpoint_dir="ckpt", checkpoint_every=1000, stop=stop)
    if stop.is_set():                                        # ended early, at a step boundary
        ...                                                  # ckpt/ holds that step: resume_from

``train_sae(..., stop=S)`` takes any object with ``is_set()`` (a :class:`StopRequest`, a
``threading.Event``). It asks after every step; under torch.distributed it asks at each history
row (every ``log_every`` steps), where the ranks agree by an all-reduce, so every rank stops after
the same step. It then writes a checkpoint of that step (with ``checkpoint_dir``), logs the
partial window and returns, so a resume continues exactly where it stopped. A signal arriving in
the middle of a step therefore never leaves half-updated weights or Adam state behind, as an
exception raised from the handler could.

A second signal while a stop is pending is not caught again: the handler that was there before
runs (Ctrl-C twice raises KeyboardInterrupt; a second SIGTERM ends the process).
Chapter 4 and book/training_at_scale.md ("Resuming and the command line").
"""
from __future__ import annotations

import contextlib
import signal
import threading
import warnings

import torch
import torch.distributed as dist

__all__ = ["StopRequest", "stop_on_signals"]


class StopRequest:
    """A request to stop training after the current step; ``set()`` it, or let a signal do it."""

    def __init__(self) -> None:
        self._set = False
        self.signum: int | None = None  # the signal that set it, if one did

    def set(self, signum: int | None = None) -> None:
        """Ask training to stop after the current step (``signum``: the signal, if any)."""
        if signum is not None and not isinstance(signum, int):
            raise ValueError(f"signum must be a signal number or None, got {signum!r}")
        self._set, self.signum = True, signum

    def is_set(self) -> bool:
        return self._set

    def reason(self) -> str:
        """'SIGTERM', 'SIGINT', ... or 'a request' when code set it."""
        return "a request" if self.signum is None else signal.Signals(self.signum).name


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGINT)):
    """Within the block, the first of ``signals`` sets the yielded :class:`StopRequest` instead
    of ending the process; the old handlers are back when the block ends. Main thread only (the
    only thread Python lets set signal handlers)."""
    valid = set(signal.valid_signals())
    if (isinstance(signals, (int, str)) or not all(isinstance(s, int) for s in signals)
            or not set(signals) <= valid):
        raise ValueError(f"signals must be a sequence of signal numbers (signal.SIGTERM, ...), "
                         f"got {signals!r}")
    if threading.current_thread() is not threading.main_thread():
        raise ValueError("stop_on_signals must be entered in the main thread (Python only lets "
                         "the main thread set signal handlers); in another thread, pass a "
                         "StopRequest or threading.Event as stop= and set it yourself")
    stop, previous = StopRequest(), {}

    def handler(signum, frame):
        if stop.is_set():  # the second signal: what would have happened without us
            signal.signal(signum, previous[signum])
            signal.raise_signal(signum)
            return
        stop.set(signum)

    try:
        for s in signals:
            previous[s] = signal.signal(s, handler)
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def stop_agreed(stop, done: int, log_every: int, world_size: int, device) -> bool:
    """Whether training stops after step ``done``: this process's request, or, under
    torch.distributed, any rank's, asked at history rows only (one all-reduce there)."""
    if world_size == 1:
        return bool(stop.is_set())
    if done % log_every:
        return False
    flag = torch.tensor(int(bool(stop.is_set())), device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag)


def check_stop(stop) -> None:
    """``train_sae``'s check of its ``stop`` argument."""
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise ValueError(f"stop must have an is_set() method (saelab.train.stop_on_signals, "
                         f"threading.Event), got {type(stop).__name__}")


def stop_early(stop, ckpt, done: int, tokens: int, lr: float, loop, n_steps: int) -> None:
    """Write the checkpoint of step ``done`` (every rank takes part) and say so (rank 0)."""
    path = ckpt.save_unless_saved(done, tokens, lr, loop)
    if ckpt.rank == 0:
        reason = stop.reason() if hasattr(stop, "reason") else "a request"
        where = (f"; checkpoint {path} (resume_from)" if path is not None
                 else "; no checkpoint_dir, so no checkpoint was written")
        warnings.warn(f"training stopped on {reason} after {done} of {n_steps} steps{where}")
