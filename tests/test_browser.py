"""The built book in a real browser, offline: headless Chromium, every chapter page.

The book (built once per session, see conftest.py) is served on loopback by ``http.server``;
``tests/browser_check.mjs`` drives Debian's Chromium through playwright-core (npm, installed by
``bash scripts/install.sh book``) with every non-loopback host unresolvable and every
non-loopback request aborted, and reports per page. This test asserts, for the introduction and
every chapter in _toc.yml (and the other pages of the book):

* no console errors, no uncaught exceptions, no failed local request, and no request at all that
  tries to leave the machine (MathJax, require.js and the widget manager are served locally);
* MathJax 3 typeset every equation (each ``.math`` element holds an ``mjx-container``, none is a
  MathJax error, no raw ``$$`` is left in the text) with its fonts loaded from the book;
* every image loaded (``naturalWidth > 0``);
* every embedded widget view rendered into widget DOM;
* every chapter has an "open in Colab" launch button for its own notebook;
* on Chapter 1's sparsity / importance grid (a kernel-free widget), moving the slider with the
  keyboard changes the figure shown.

Screenshots: ``artifacts/screenshots/`` (per page: the full page and the first screen
(``-top.png``); and the widget before and after the slider moved). Where no Chromium is installed the test is skipped, except in CI (``CI=true``),
where it fails: ``bash scripts/test.sh`` installs Chromium with apt-get.
"""
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import ROOT, toc_files

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
SLIDER_PAGE = "notebooks/01_superposition"
PAGES = ["book/intro"] + [f for f in toc_files() if f != "book/intro"]
CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]


def _chromium() -> str | None:
    for name in (os.environ.get("SAELAB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _missing(what: str):
    message = f"{what}; `bash scripts/test.sh` installs it (scripts/install.sh book,test,browser)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {message}")
    pytest.skip(message)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served_book(book_html):
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def report(served_book):
    chromium = _chromium()
    if chromium is None:
        _missing("no Chromium found (chromium, chromium-browser, google-chrome or $SAELAB_CHROMIUM)")
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "playwright-core").is_dir():
        _missing("node or the npm package playwright-core is missing")
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    config = {"base": served_book, "pages": PAGES, "executable": chromium,
              "outDir": str(SCREENSHOTS), "sliderPage": SLIDER_PAGE}
    run = subprocess.run([node, str(ROOT / "tests" / "browser_check.mjs"), json.dumps(config)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"browser driver failed:\n{run.stderr[-4000:]}"
    return json.loads(run.stdout)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_offline_without_errors(report, page):
    r = report[page]
    assert not r["pageErrors"], f"{page}: uncaught errors: {r['pageErrors']}"
    assert not r["consoleErrors"], f"{page}: console errors: {r['consoleErrors']}"
    assert not r["external"], f"{page}: requests that tried to leave the machine: {r['external']}"
    assert not r["failedLocal"], f"{page}: local requests that failed: {r['failedLocal']}"
    assert r["screenshot"] and Path(r["screenshot"]).is_file()


@pytest.mark.parametrize("page", PAGES)
def test_maths_typeset_and_images_loaded(report, page):
    r = report[page]
    m = r["math"]
    assert not m["untypeset"], f"{page}: equations MathJax did not typeset: {m['untypeset'][:5]}"
    assert not m["merrors"], f"{page}: MathJax errors: {m['merrors'][:5]}"
    assert not m["rawDollar"], f"{page}: raw $$ left in the text"
    if m["elements"]:
        assert m["containers"] >= m["elements"]
        assert m["mathjaxVersion"] and m["mathjaxVersion"].startswith("3."), m["mathjaxVersion"]
        assert m["fontsLoaded"], f"{page}: MathJax loaded no font from the book"
    assert not r["images"]["broken"], f"{page}: images that did not load: {r['images']['broken']}"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_has_maths_plots_and_rendered_widgets(report, page):
    r = report[page]
    assert r["math"]["containers"] > 0, f"{page}: no typeset maths"
    assert r["images"]["total"] > 0, f"{page}: no images"
    w = r["widgets"]
    assert w["rendered"] == w["views"], f"{page}: {w['views'] - w['rendered']} of {w['views']} widgets not rendered"
    if w["views"]:
        assert w["manager"], f"{page}: the widget manager was not loaded from the book"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_has_an_open_in_colab_launch_button(report, page):
    want = f"https://colab.research.google.com/github/saelab/saelab/blob/main/{page}.ipynb"
    assert want in report[page]["colab"], f"{page}: no Colab launch link; found {report[page]['colab']}"


def test_slider_changes_the_figure_without_a_kernel(report):
    r = report[SLIDER_PAGE]
    assert r["widgets"]["views"] >= 1 and r["widgets"]["sliders"] >= 2, r["widgets"]
    s = r["slider"]
    assert s is not None, "the slider was not exercised"
    assert len(s["before"]) == 1, f"one figure must be visible before moving the slider, got {len(s['before'])}"
    assert len(s["after"]) == 1, f"one figure must be visible after moving the slider, got {len(s['after'])}"
    assert s["after"] != s["before"], "moving the slider did not change the figure"
    assert s["labelsAfter"] != s["labelsBefore"], f"the slider's readout did not move: {s}"
    assert (SCREENSHOTS / "widget-before.png").is_file() and (SCREENSHOTS / "widget-after.png").is_file()
