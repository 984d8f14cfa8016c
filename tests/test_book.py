"""Build the book with Sphinx warnings as errors, and check what a reader will see in it.

The build renders the outputs committed in the notebooks (it does not execute them), so this
test is about the book itself: every page in the table of contents is there, plots are embedded,
maths is present, and the widget state is embedded so the sliders work without a kernel.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _toc_files() -> list[str]:
    return re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text())


@pytest.fixture(scope="session")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    build = subprocess.run(
        [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
         "build", str(ROOT), "--path-output", str(out), "--warningiserror", "--keep-going"],
        capture_output=True, text=True, timeout=1200,
    )
    log = (build.stdout + build.stderr)[-6000:]
    assert build.returncode == 0, f"book build failed (warnings are errors):\n{log}"
    return out / "_build" / "html"


def test_every_toc_page_is_built(html):
    assert (html / "index.html").is_file()
    for name in ["book/intro"] + _toc_files():
        assert (html / f"{name}.html").is_file(), f"{name} is in _toc.yml but was not built"


@pytest.mark.parametrize("page", [f for f in _toc_files() if f.startswith("notebooks/")])
def test_chapter_pages_show_plots_maths_and_widgets(html, page):
    text = (html / f"{page}.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', text)
    assert images, f"{page}: no plots rendered"
    for src in images:
        if not src.startswith("data:"):
            assert (html / Path(page).parent / src).resolve().is_file(), f"{page}: missing {src}"
    assert "\\(" in text or "\\[" in text or "math notranslate" in text, f"{page}: no maths"
    nb = (ROOT / f"{page}.ipynb").read_text()
    if "application/vnd.jupyter.widget-view+json" in nb:
        assert "application/vnd.jupyter.widget-state+json" in text, f"{page}: widget state not embedded"
        assert "application/vnd.jupyter.widget-view+json" in text, f"{page}: widget views not rendered"
    assert "Traceback" not in text, f"{page}: a cell output holds an error"
