"""Isolation for grading: limits, scratch folders, and a pristine copy of the course's package.

Every submission runs in child processes of the grader, never in the grader itself:

* each child gets a wall-time limit (the parent kills its whole process group), a memory limit
  and a file-size limit (``resource.setrlimit``, soft and hard, so student code cannot raise
  them; on Linux ``RLIMIT_AS`` bounds memory, macOS does not enforce it and Windows has no
  ``resource`` module: there only the time limits apply), and a scratch working directory;
* the checker code is imported from a read-only copy of the installed ``saelab`` package made
  when grading starts (``PackageGuard``). The guard records a SHA-256 of every file of the
  installed package; after each submission it re-hashes the installed package and the copy, and
  grading stops with an error naming the changed files if either differs, so a submission that
  wrote into the course's files cannot affect the next one unnoticed.

Read-only permissions do not stop code running as the same user (it can chmod), so the hashes
are the real guard; running the grader as a user who cannot write the virtual environment (or
in a container) is what keeps NumPy and the other installed packages safe as well.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._checks import check_positive

__all__ = ["Limits", "PackageGuard"]

MESSAGE_CHARS = 400  # longest reason kept in a report


def truncate(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]} ... [{len(text) - limit} more characters cut]"


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission (seconds, bytes)."""

    cell_seconds: float = 120.0  # CPU seconds for one cell of the student's notebook, or one check
    notebook_seconds: float = 900.0  # wall seconds for running the whole student notebook
    memory_bytes: int = 4 * 2**30  # address space of each child process
    file_bytes: int = 64 * 2**20  # largest file a child may write (its output log included)

    def __post_init__(self):
        for name in ("cell_seconds", "notebook_seconds", "memory_bytes", "file_bytes"):
            check_positive(name, getattr(self, name))

    @property
    def cell_wall_seconds(self) -> float:
        """Wall-clock limit of a cell or check: a slow machine gets slack, a sleeping cell does not."""
        return max(3 * self.cell_seconds, self.cell_seconds + 60)


def start_timers(cpu_seconds: float, wall_seconds: float) -> None:
    """Arm SIGPROF after ``cpu_seconds`` of CPU time and SIGALRM after ``wall_seconds``; 0 disarms."""
    if hasattr(signal, "setitimer"):  # POSIX; on Windows only the parent's limits apply
        signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
        signal.setitimer(signal.ITIMER_REAL, wall_seconds)


def on_timeout(handler) -> None:
    """Call ``handler`` (a signal handler) when either timer of :func:`start_timers` fires."""
    if hasattr(signal, "setitimer"):
        signal.signal(signal.SIGPROF, handler)
        signal.signal(signal.SIGALRM, handler)


def apply_limits(memory_bytes: int, file_bytes: int) -> list[str]:
    """Set this process's memory and file-size limits; return the ones the OS refused."""
    try:
        import resource
    except ImportError:  # Windows
        return ["memory", "file size"]
    refused = []
    for which, value, label in (
        (getattr(resource, "RLIMIT_AS", None), memory_bytes, "memory"),
        (resource.RLIMIT_FSIZE, file_bytes, "file size"),
        (resource.RLIMIT_CORE, 0, "core dumps"),
    ):
        if which is None:
            refused.append(label)
            continue
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            refused.append(label)
    if hasattr(signal, "SIGXFSZ"):  # a write past the limit raises OSError instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return refused


def child_env(scratch: Path) -> dict[str, str]:
    """Environment of a grading child: one thread per library, no display, IPython's profile in
    ``scratch`` (not the teacher's startup files); ``python -I`` drops PYTHON* and the user site."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JPY_"))}
    env.update(
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE=env.get("HF_HUB_OFFLINE", "1"),
        IPYTHONDIR=str(Path(scratch) / "ipython"),
        SAELAB_GRADING="1",
    )
    return env


def bootstrap_command(package_parent: Path, module: str, *args: str) -> list[str]:
    """``python -I -B`` that imports ``module`` from the saelab copy under ``package_parent`` first.

    ``-B``: no bytecode is written into the copies; bytecode planted in the read-only copy is an
    extra file there, which :meth:`PackageGuard.verify` reports.
    """
    code = (
        f"import sys; sys.path.insert(0, {str(package_parent)!r}); "
        f"import {module} as m; m.main()"
    )
    return [sys.executable, "-I", "-B", "-c", code, *args]


def spawn(cmd, *, cwd, env, stdin=None, stdout=None, stderr=None) -> subprocess.Popen:
    """Start a child in its own session (process group) so that it can be killed with its children."""
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
        start_new_session=(os.name == "posix"),
    )


def kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started, then reap it."""
    if proc.poll() is None or os.name == "posix":
        try:
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def tail(path: Path, n_bytes: int = 4000) -> str:
    """The last ``n_bytes`` of a (possibly huge) log file, decoded leniently."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return ("[... earlier output cut]\n" if size > n_bytes else "") + text


def hash_tree(root: Path, bytecode: bool = False) -> dict[str, str]:
    """SHA-256 of every file under ``root``, keyed by relative path; bytecode caches only if asked."""
    hashes = {}
    for path in sorted(Path(root).rglob("*")):
        cached = "__pycache__" in path.parts or path.suffix == ".pyc"
        if (cached and not bytecode) or not path.is_file():
            continue
        hashes[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


class PackageTampered(RuntimeError):
    """The installed course package (or the grader's copy of it) changed during grading."""


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():  # never follow a link a submission may have planted
            continue
        try:
            mode = path.stat().st_mode
            path.chmod((mode & ~0o222) | (stat.S_IWUSR if writable else 0) | stat.S_IRUSR
                       | (stat.S_IXUSR if path.is_dir() else 0))
        except OSError:
            pass


class PackageGuard:
    """A read-only copy of the installed ``saelab`` package, and the hashes to verify both.

    ``root``: the folder that holds the copy (put it first on ``sys.path``). ``verify()`` raises
    PackageTampered if the installed package or the copy differs from the hashes taken at start.
    """

    def __init__(self, installed: Path | None = None):
        if installed is None:
            import saelab

            installed = Path(saelab.__file__).resolve().parent
        if not isinstance(installed, (str, os.PathLike)) or not Path(installed).is_dir():
            raise ValueError(f"installed must be the folder of the saelab package, got {installed!r}")
        self.installed = Path(installed)
        self.hashes = hash_tree(self.installed)
        self._tmp = Path(tempfile.mkdtemp(prefix="saelab-grader-"))
        self.root = self._tmp / "pristine"
        shutil.copytree(self.installed, self.root / "saelab",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _set_writable(self.root, False)
        self.verify()

    def scratch(self, prefix: str) -> Path:
        """A fresh, writable folder for one child process."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self._tmp))

    def package_copy(self, dest: Path) -> Path:
        """A writable copy of the pristine package under ``dest`` (for the student's own process)."""
        shutil.copytree(self.root / "saelab", dest / "saelab")
        _set_writable(dest, True)
        return dest

    def verify(self) -> None:
        for label, root, bytecode in (("installed saelab package", self.installed, False),
                                      ("grader's read-only copy", self.root / "saelab", True)):
            now = hash_tree(root, bytecode)
            changed = sorted(set(now) ^ set(self.hashes)
                             | {p for p in now if now[p] != self.hashes.get(p)})
            if changed:
                raise PackageTampered(
                    f"the {label} at {root} changed during grading ({', '.join(changed[:5])}); "
                    "a submission wrote into the course's files. Grading stopped: restore the "
                    "package (git checkout / reinstall) and grade again."
                )

    def close(self) -> None:
        if self._tmp.exists():
            _set_writable(self._tmp, True)
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
