"""Fixtures shared by the book tests: one book build per test session.

tests/test_book.py (the HTML on disk) and tests/test_browser.py (the pages in headless Chromium)
both use ``book_html``, so the book is built once, with Sphinx warnings as errors, into a
temporary folder (the reader's _build/ is left alone).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """nbval's kernels start over Unix-domain sockets too (tests/kernel_helpers.py)."""
    if config.pluginmanager.hasplugin("nbval"):
        import nbval.kernel

        from kernel_helpers import SUITE_KERNEL_MANAGER

        nbval.kernel.KernelManager = SUITE_KERNEL_MANAGER


def toc_files() -> list[str]:
    """The documents listed in _toc.yml (``file:`` entries), in order."""
    return re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text())


@pytest.fixture(scope="session")
def book_html(tmp_path_factory) -> Path:
    """Build the book once (warnings are errors) and return its ``_build/html`` folder.

    Under pytest-xdist (``-n 2 --dist loadfile``) tests/test_book.py and tests/test_browser.py can
    land on different workers: the first to arrive builds into the run's shared temporary folder,
    holding a file lock, and the other reuses that build.
    """
    from filelock import FileLock  # a dependency of torch

    worker = tmp_path_factory.getbasetemp()
    shared = worker.parent if os.environ.get("PYTEST_XDIST_WORKER") else worker
    out = shared / "book"
    html = out / "_build" / "html"
    with FileLock(str(shared / "book.lock")):
        if not (out / "built.ok").exists():
            build = subprocess.run(
                [sys.executable, "-c",
                 "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
                 "build", str(ROOT), "--path-output", str(out), "--warningiserror", "--keep-going"],
                capture_output=True, text=True, timeout=1200,
            )
            log = (build.stdout + build.stderr)[-6000:]
            assert build.returncode == 0, (
                "book build failed (warnings are errors; the offline assets come from "
                f"`bash scripts/install.sh book`):\n{log}")
            (out / "built.ok").write_text("ok")
    return html


@pytest.fixture
def one_thread():
    """Run a test on one torch thread, then restore the old count.

    The toy-sized matrices of the training tests gain nothing from a second thread, and one thread
    is immune to the oversubscription of a busy machine (where two threads can be many times
    slower). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

