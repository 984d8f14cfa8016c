"""The built book in a real browser, offline: headless Chromium, every page, three screens.

The book (built once per session, see conftest.py) is served on loopback by ``http.server``;
``tests/browser_check.mjs`` drives Debian's Chromium through playwright-core (npm, installed by
``bash scripts/install.sh book``) with every non-loopback host unresolvable and every
non-loopback request aborted, and reports per page and width. Every page of _toc.yml is loaded at
1366 px (a laptop) and 390 px (a phone); the introduction, Chapter 1 and Chapter 6 also at 800 px
(a tablet). This test asserts, at every width loaded:

* no console errors, no uncaught exceptions, no failed local request, and no request at all that
  tries to leave the machine (MathJax, require.js and the widget manager are served locally);
* MathJax 3 typeset every equation (each ``.math`` element holds an ``mjx-container``, none is a
  MathJax error, no raw ``$$`` is left in the text) with its fonts loaded from the book;
* every image loaded (``naturalWidth > 0``) and every embedded widget view rendered;
* nothing wider than the screen: ``document.documentElement.scrollWidth <= innerWidth`` and no
  visible element of the page sticks out on the right (wide tables, code and maths scroll inside
  their own boxes);
* no clipped display maths: a display equation wider than its box (typeset scrollWidth >
  clientWidth + 1 px) must scroll (overflow-x auto or scroll) and show a cue (the scroll shadow of
  book/_ext/static/saelab-book.css); at 1366 px no display equation may be wider than its box;
* every slider's value readout inside the screen;
* in dark mode (prefers-color-scheme: dark, which the theme follows), the text of widget HTML
  (Chapter 6's dashboards) has a WCAG contrast of at least 4.5 against its background;
* navigation: at 390 and 800 px, tapping the menu button shows the chapter links and tapping the
  page-contents button shows the section links; at 1366 px the menu button hides the sidebar and
  shows it again;
* on Chapter 6 at 390 and 800 px, tapping a token of a dashboard shows its activation;
* every chapter has an "open in Colab" launch button for its own notebook;
* on Chapter 1's sparsity / importance grid (a kernel-free widget), moving the slider with the
  keyboard changes the figure shown;
* the search page finds the course's words, with snippets free of page chrome and TeX delimiters.

Screenshots: ``artifacts/screenshots/`` (per page and width: the first screen, light and dark,
``PAGE-WIDTH.png`` and ``PAGE-WIDTH-dark.png``; the full page at 1366 and 390 px,
``PAGE-WIDTH-full.png``; the chapters with widgets in full, dark, at 390 px; the dashboard after a
tap; the widget before and after the slider moved). Where no Chromium is installed the test is
skipped, except in CI (``CI=true``), where it fails: ``bash scripts/test.sh`` installs Chromium
with apt-get.
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
DASHBOARD_PAGE = "notebooks/06_gpt2_sae"
PAGES = ["book/intro"] + [f for f in toc_files() if f != "book/intro"]
CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]
NAV_PAGES = ["book/intro", SLIDER_PAGE]
WIDE, PHONE, TABLET = 1366, 390, 800
TABLET_PAGES = ["book/intro", SLIDER_PAGE, DASHBOARD_PAGE]
LOADS = [(p, w) for w in (WIDE, PHONE) for p in PAGES] + [(p, TABLET) for p in TABLET_PAGES]


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
              "outDir": str(SCREENSHOTS), "sliderPage": SLIDER_PAGE, "dashboardPage": DASHBOARD_PAGE,
              "navPages": NAV_PAGES, "widths": [WIDE, PHONE, TABLET], "fullWidths": [WIDE, PHONE],
              "pagesAt": {str(TABLET): TABLET_PAGES}, "searchQuery": "superposition"}
    run = subprocess.run([node, str(ROOT / "tests" / "browser_check.mjs"), json.dumps(config)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"browser driver failed:\n{run.stderr[-4000:]}"
    return json.loads(run.stdout)


def _id(load):
    return f"{load[0]}@{load[1]}"


@pytest.mark.parametrize("load", LOADS, ids=_id)
def test_page_loads_offline_without_errors(report, load):
    page, r = _id(load), report[_id(load)]
    assert not r["pageErrors"], f"{page}: uncaught errors: {r['pageErrors']}"
    assert not r["consoleErrors"], f"{page}: console errors: {r['consoleErrors']}"
    assert not r["external"], f"{page}: requests that tried to leave the machine: {r['external']}"
    assert not r["failedLocal"], f"{page}: local requests that failed: {r['failedLocal']}"
    assert r["screenshot"] and Path(r["screenshot"]).is_file()


@pytest.mark.parametrize("load", LOADS, ids=_id)
def test_maths_typeset_and_images_loaded(report, load):
    page, r = _id(load), report[_id(load)]
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
    r = report[f"{page}@{WIDE}"]
    assert r["math"]["containers"] > 0, f"{page}: no typeset maths"
    assert r["images"]["total"] > 0, f"{page}: no images"
    w = r["widgets"]
    assert w["rendered"] == w["views"], f"{page}: {w['views'] - w['rendered']} of {w['views']} widgets not rendered"
    if w["views"]:
        assert w["manager"], f"{page}: the widget manager was not loaded from the book"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_has_an_open_in_colab_launch_button(report, page):
    want = f"https://colab.research.google.com/github/saelab/saelab/blob/main/{page}.ipynb"
    found = report[f"{page}@{WIDE}"]["colab"]
    assert want in found, f"{page}: no Colab launch link; found {found}"


def test_slider_changes_the_figure_without_a_kernel(report):
    r = report[f"{SLIDER_PAGE}@{WIDE}"]
    assert r["widgets"]["views"] >= 1 and r["widgets"]["sliders"] >= 2, r["widgets"]
    s = r["slider"]
    assert s is not None, "the slider was not exercised"
    assert len(s["before"]) == 1, f"one figure must be visible before moving the slider, got {len(s['before'])}"
    assert len(s["after"]) == 1, f"one figure must be visible after moving the slider, got {len(s['after'])}"
    assert s["after"] != s["before"], "moving the slider did not change the figure"
    assert s["labelsAfter"] != s["labelsBefore"], f"the slider's readout did not move: {s}"
    assert (SCREENSHOTS / "widget-before.png").is_file() and (SCREENSHOTS / "widget-after.png").is_file()


@pytest.mark.parametrize("load", LOADS, ids=_id)
def test_nothing_wider_than_the_screen(report, load):
    page, r = _id(load), report[_id(load)]
    lay = r["layout"]
    assert lay["viewport"] == load[1], lay["viewport"]
    assert lay["scrollWidth"] <= lay["viewport"], (
        f"{page}: the page scrolls sideways ({lay['scrollWidth']} > {lay['viewport']} px): {lay['outside']}")
    assert not lay["outside"], f"{page}: elements sticking out of the screen: {lay['outside']}"


@pytest.mark.parametrize("load", LOADS, ids=_id)
def test_no_clipped_display_maths(report, load):
    page, lay = _id(load), report[_id(load)]["layout"]
    assert not lay["clipped"], f"{page}: display maths cut off without a scroll cue: {lay['clipped']}"
    if load[1] == WIDE:  # on a laptop every display equation fits its column
        assert lay["overflowing"] == 0, f"{page}: {lay['overflowing']} display equations overflow at {WIDE} px"


@pytest.mark.parametrize("load", LOADS, ids=_id)
def test_slider_readouts_are_on_screen(report, load):
    page, lay = _id(load), report[_id(load)]["layout"]
    for ro in lay["readouts"]:
        assert ro["width"] > 0 and 0 <= ro["left"] and ro["right"] <= load[1], f"{page}: readout off screen: {ro}"


@pytest.mark.parametrize("load", LOADS, ids=_id)
def test_widget_text_readable_in_dark_mode(report, load):
    page, c = _id(load), report[_id(load)]["contrast"]
    assert c["theme"] == "dark", f"{page}: the theme did not follow prefers-color-scheme: dark"
    assert c["nLow"] == 0, f"{page}: {c['nLow']} widget texts below contrast 4.5 in dark mode: {c['low']}"


@pytest.mark.parametrize("load", [(p, w) for p, w in LOADS if p in NAV_PAGES], ids=_id)
def test_navigation_buttons_work(report, load):
    page, nav = _id(load), report[_id(load)]["nav"]
    if load[1] >= 960:  # the menu button hides the sidebar, then shows it again
        assert nav["sidebar"] == [True, False, True], f"{page}: sidebar visible before/after clicks: {nav}"
        return
    menu, contents = nav["menu"], nav["contents"]
    assert menu["button"] and contents["button"], f"{page}: no visible menu or contents button"
    chapters = {h.rsplit("/", 1)[-1] for h in menu["links"] if "notebooks" in h or h.endswith(".html")}
    # every chapter but the page itself (its own entry links to "#")
    want = {c.rsplit("/", 1)[-1] + ".html" for c in CHAPTERS if c != load[0]}
    assert want <= chapters, f"{page}: the menu tap showed {sorted(chapters)}, missing {sorted(want - chapters)}"
    assert len(contents["links"]) >= 3, f"{page}: the contents tap showed {contents['links']}"


@pytest.mark.parametrize("width", [PHONE, TABLET])
def test_dashboard_token_value_shows_on_tap(report, width):
    tap = report[f"{DASHBOARD_PAGE}@{width}"]["tap"]
    assert tap and tap["act"] is not None, "no dashboard token with its activation (data-act) found"
    assert tap["shown"].strip('"') == tap["act"], f"the tapped token shows {tap['shown']}, not {tap['act']}"
    assert (SCREENSHOTS / f"notebooks__06_gpt2_sae-{width}-dashboard-tap.png").is_file()


def test_search_snippets_are_clean(report):
    s = report["__search__"]
    assert not s["errors"], s["errors"]
    assert s["results"] >= 3 and len(s["snippets"]) >= 3, s
    for text in s["snippets"]:
        assert ".pdf" not in text and ".ipynb" not in text, f"page chrome in a snippet: {text!r}"
        assert "Contents" not in text[:40], f"the print-only table of contents in a snippet: {text!r}"
        assert "\\(" not in text and "\\[" not in text, f"TeX delimiters in a snippet: {text!r}"
    assert any("superposition" in t.lower() for t in s["snippets"]), s["snippets"]


def test_screenshots_at_every_width(report):
    for page, width in LOADS:
        stem = page.replace("/", "__")
        for suffix in ("", "-dark"):
            assert (SCREENSHOTS / f"{stem}-{width}{suffix}.png").is_file(), f"{stem}-{width}{suffix}.png"
    for page in PAGES:
        for width in (WIDE, PHONE):
            assert (SCREENSHOTS / f"{page.replace('/', '__')}-{width}-full.png").is_file()
