"""Grading, process A: run a student's notebook and hand over the functions the checks need.

Runs as a child of the grader (``python -I``, scratch working directory, memory and file-size
limits, its own copy of saelab). It executes the submission's code cells in an IPython shell, as
Jupyter would, each under a time limit (CPU and wall clock, ``isolation.start_timers``; a cell
that outlives it is interrupted and the next cell runs). Then it serialises, with cloudpickle,
each value the course's check cells read (``toy_forward`` for ``check.toy_forward(toy_forward)``):
a function defined in a notebook
is pickled by value together with the helpers and constants it references, wherever in the
notebook they were defined. Nothing here is trusted: process B (``_check_run``) only ever sees
these bytes, in a fresh interpreter that imported the checker first.

Job file (JSON, path in argv[1]): cells [[index, source]], exports [names], cell_seconds,
cell_wall_seconds, memory_bytes, file_bytes, status (JSON-lines progress file), exports_dir.
"""
from __future__ import annotations

import json
import os
import sys


class CellTimeout(BaseException):
    """Raised in a cell that ran past its time limit."""


def _describe(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" + (" ..." if len(text) > 300 else "")


class _CappedStream:
    """A text stream that passes on at most ``limit`` characters, then drops the rest."""

    def __init__(self, stream, limit: int):
        self._stream, self._left = stream, limit

    def write(self, text):
        if self._left > 0:
            piece = text[: self._left]
            self._left -= len(piece)
            try:
                self._stream.write(piece if self._left > 0 else piece + "\n[output cut]\n")
            except OSError:
                self._left = 0
        return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except OSError:
            pass

    def isatty(self):
        return False

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main() -> None:
    with open(sys.argv[1]) as fh:
        job = json.load(fh)
    from .isolation import apply_limits, on_timeout, start_timers

    refused = apply_limits(job["memory_bytes"], job["file_bytes"])
    status = open(job["status"], "a", buffering=1)

    def report(**event):
        try:
            status.write(json.dumps(event) + "\n")
        except (OSError, ValueError):
            pass

    if refused:
        report(event="limits", refused=refused)
    sys.stdout = _CappedStream(sys.stdout, 200_000)
    sys.stderr = _CappedStream(sys.stderr, 200_000)

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no shared history database between graders
    shell = InteractiveShell.instance(config=config, colors="nocolor")
    shell.enable_gui = lambda gui=None: None  # `%matplotlib inline` works without a GUI loop

    def on_alarm(signum, frame):
        raise CellTimeout(f"the cell ran longer than {job['cell_seconds']:g} s and was stopped")

    on_timeout(on_alarm)
    for index, source in job["cells"]:
        report(event="start", cell=index)
        error = None
        try:
            start_timers(job["cell_seconds"], job["cell_wall_seconds"])
            result = shell.run_cell(source, store_history=False)
            error = result.error_before_exec or result.error_in_exec
        except BaseException as exc:  # a timeout or an exit outside the cell's own code
            error = exc
        finally:
            start_timers(0, 0)
        report(event="done", cell=index, error=_describe(error))

    import cloudpickle

    exported = {}
    for name in job["exports"]:
        if name not in shell.user_ns:
            exported[name] = "missing"
            continue
        try:
            data = cloudpickle.dumps(shell.user_ns[name])
            with open(os.path.join(job["exports_dir"], name + ".pkl"), "wb") as fh:
                fh.write(data)
            exported[name] = "ok"
        except BaseException as exc:  # unpicklable values, or a file past the size limit
            exported[name] = f"could not be handed to the grader ({_describe(exc)})"
    report(event="exported", exports=exported)
    status.close()
    sys.stdout.flush()
    os._exit(0)  # skip atexit handlers and threads the notebook may have left running
