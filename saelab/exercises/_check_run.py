"""Grading, process B: run the course's checks on the student's functions in a fresh interpreter.

Runs as a child of the grader (``python -I``, limits as for process A) with the read-only,
hash-verified copy of saelab first on ``sys.path``. In this order it

1. runs the course's ``setup`` cells (they import the checker, e.g. ``ch01 as check``),
2. verifies that every ``saelab`` module came from that copy and that its file's SHA-256 is the
   one the grader recorded, and takes a fingerprint of the modules a cheat would patch (saelab,
   NumPy, torch, builtins: every attribute, every function's code, saelab's classes),
3. for each exercise, loads the student's functions (cloudpickle) and runs the course's check
   cell; an exercise passes when the check returns without raising. After loading and after each
   check the fingerprint is compared again: a change scores that exercise 0 and this process
   exits, so the grader restarts a fresh one for the next exercise.

Results go to the grader as JSON lines prefixed with a random token it sent on stdin; anything
else the student's code writes is ignored. The job (one JSON line on stdin) holds: token,
package_root, hashes, setup, exercises [{name, check, needs}], start, exports {name: status},
exports_dir, cell_seconds, cell_wall_seconds, memory_bytes, file_bytes.
"""
from __future__ import annotations

import io
import json
import os
import sys
import types

_WATCHED = ("saelab", "numpy", "torch", "builtins", "math", "cloudpickle")
# Rebound by the library itself: importing torch._dynamo (which transformer-lens does on first
# use) wraps torch.manual_seed.
_REBOUND = {("torch", "manual_seed")}


class CheckTimeout(BaseException):
    """Raised in a check that ran past its time limit."""


def fingerprint() -> dict:
    """Identity of every attribute of the watched modules, of functions' code and of saelab classes."""
    marks = {}
    for modname, module in list(sys.modules.items()):
        if module is None or modname.split(".")[0] not in _WATCHED:
            continue
        if modname.startswith("torch.") and modname not in ("torch.nn.functional", "torch.linalg"):
            continue  # torch has ~1000 submodules; the ones checks use are enough
        for attr, value in list(vars(module).items()):
            key = (modname, attr)
            if key in _REBOUND:
                continue
            marks[key] = id(value)
            if isinstance(value, types.FunctionType):
                marks[key + ("code",)] = (id(value.__code__), id(value.__defaults__),
                                          id(value.__kwdefaults__))
            elif isinstance(value, type) and getattr(value, "__module__", "").startswith("saelab"):
                marks[key + ("dict",)] = tuple(sorted((k, id(v)) for k, v in vars(value).items()))
    torch = sys.modules.get("torch")
    if torch is not None:
        marks[("torch.Tensor",)] = tuple(sorted((k, id(v)) for k, v in vars(torch.Tensor).items()))
    return marks


def changed(expected: dict) -> bool:
    """True if an attribute fingerprinted in ``expected`` is now different or gone.

    Attributes and modules that appear later are allowed: checks import lazily (``numpy.random``
    on first use), and only what existed before the student's code was loaded is guarded.
    """
    now = fingerprint()
    return any(now.get(key) != value for key, value in expected.items())


def course_code(value) -> str | None:
    """The qualified name of ``value`` if it is saelab's own code (a reference solution), else None.

    Learner notebooks may replace an unfinished exercise with the reference solution so that later
    cells run (``yours_or_reference``); the grader must not score that as the student's answer.
    """
    for obj in (value, getattr(value, "func", None), getattr(value, "__func__", None)):
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and module.split(".")[0] == "saelab":
            return f"{module}.{getattr(obj, '__qualname__', type(obj).__name__)}"
    return None


def describe(exc: BaseException, limit: int = 400) -> str:
    """The reason an exercise failed, as the student should read it."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException:  # a hostile __str__
        text = "(the error message could not be shown)"
    if len(text) > limit:
        text = f"{text[:limit]} ... [{len(text) - limit} more characters cut]"
    if name == "NotImplementedError":
        return "not attempted yet (the stub raises NotImplementedError)"
    if name == "ExerciseFailed":
        return text
    return f"{name}: {text}"


def main() -> None:
    job = json.loads(sys.stdin.readline())
    token = job["token"]
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else written to stdout goes to the log, not to the grader

    def send(**message):
        channel.write("\n" + token + json.dumps(message) + "\n")
        channel.flush()

    from .isolation import apply_limits, on_timeout, start_timers

    apply_limits(job["memory_bytes"], job["file_bytes"])
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no shared history database between graders
    shell = InteractiveShell.instance(config=config, colors="nocolor")
    shell.enable_gui = lambda gui=None: None  # `%matplotlib inline` works without a GUI loop
    for source in job["setup"]:
        result = shell.run_cell(source, store_history=False)
        error = result.error_before_exec or result.error_in_exec
        if error is not None:
            send(fatal=f"the course's setup cell failed ({type(error).__name__}: {error}); "
                       "is saelab installed?")
            os._exit(2)

    import hashlib

    root = os.path.realpath(job["package_root"])
    for modname, module in list(sys.modules.items()):
        if modname.split(".")[0] != "saelab" or module is None:
            continue
        origin = os.path.realpath(getattr(module, "__file__", None) or "")
        rel = os.path.relpath(origin, root).replace(os.sep, "/") if origin else ""
        with open(origin, "rb") if os.path.isfile(origin) else io.BytesIO() as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        if job["hashes"].get(rel) != digest:
            send(fatal=f"saelab module {modname} did not come from the grader's verified copy ({origin})")
            os._exit(2)

    import cloudpickle

    import numpy.linalg
    import numpy.random  # imported lazily by many checks: load them before the fingerprint

    namespace = dict(shell.user_ns)
    expected = fingerprint()
    send(ready=True)

    def on_alarm(signum, frame):
        raise CheckTimeout()

    on_timeout(on_alarm)
    for index in range(job["start"], len(job["exercises"])):
        exercise = job["exercises"][index]
        send(start=index)
        missing = [n for n in exercise["needs"] if job["exports"].get(n) != "ok"]
        if missing:
            name = missing[0]
            status = job["exports"].get(name, "missing")
            reason = (f"your notebook does not define `{name}`" if status == "missing"
                      else f"`{name}` {status}")
            send(result=index, passed=False, message=reason)
            continue
        scope = dict(namespace)
        passed, message, at_load = False, "", False
        sink = open(os.devnull, "w")
        sys.stdout = sys.stderr = sink  # what the check prints is not a score
        try:
            start_timers(job["cell_seconds"], job["cell_wall_seconds"])
            for name in exercise["needs"]:
                with open(os.path.join(job["exports_dir"], name + ".pkl"), "rb") as fh:
                    scope[name] = cloudpickle.loads(fh.read())
            borrowed = [(n, course_code(scope[n])) for n in exercise["needs"]]
            borrowed = [(n, where) for n, where in borrowed if where]
            if changed(expected):
                at_load = True
            elif borrowed:
                name, where = borrowed[0]
                message = (f"`{name}` is the course's reference solution ({where}), not your "
                           "function: a cell replaced yours (a fallback cell does this when yours "
                           "does not pass the check yet); run its check cell in your notebook to see why")
            else:
                exec(compile(exercise["check"], f"<check {exercise['name']}>", "exec"), scope)
                passed = True
        except CheckTimeout:
            message = f"your function ran longer than {job['cell_seconds']:g} s and was stopped"
        except BaseException as exc:
            message = describe(exc)
        finally:
            start_timers(0, 0)
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            sink.close()
        tampered = changed(expected)
        if tampered:
            passed = False
            message = ("loading your functions changed the grader's modules; this exercise scores 0"
                       if at_load else
                       "your code changed the grader's modules during the check; it scores 0")
        send(result=index, passed=passed, message=message)
        if tampered:
            os._exit(3)  # the grader starts a fresh process for the next exercise
    os._exit(0)
