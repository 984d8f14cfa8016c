"""Build the book with Sphinx warnings as errors, and check what a reader will see in it.

The build renders the outputs committed in the notebooks (it does not execute them), so this
test is about the book itself: every page in the table of contents is there, plots are embedded,
maths is present, and the widget state is embedded so the sliders work without a kernel.
"""
import re
from pathlib import Path

import pytest

from conftest import ROOT, toc_files


@pytest.fixture(scope="module")
def html(book_html) -> Path:
    return book_html


def test_every_toc_page_is_built(html):
    assert (html / "index.html").is_file()
    for name in ["book/intro"] + toc_files():
        assert (html / f"{name}.html").is_file(), f"{name} is in _toc.yml but was not built"


@pytest.mark.parametrize("page", [f for f in toc_files() if f.startswith("notebooks/")])
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


# --- offline viewing: every script the pages load comes from the book itself ------------------

def _script_srcs(text: str) -> list[str]:
    return re.findall(r'<script[^>]*\ssrc="([^"]+)"', text)


@pytest.mark.parametrize("page", ["book/intro"] + toc_files())
def test_pages_load_no_script_from_the_internet(html, page):
    text = (html / f"{page}.html").read_text()
    remote = [s for s in _script_srcs(text) if "://" in s or s.startswith("//")]
    assert not remote, f"{page}: scripts loaded from the internet: {remote}"
    if 'class="math' in text:
        assert "_static/mathjax/tex-chtml.js" in text, f"{page}: MathJax is not served locally"


def test_offline_assets_are_in_the_book(html):
    static = html / "_static"
    for rel in ["mathjax/tex-chtml.js", "requirejs/require.js", "html-manager/embed-amd.js",
                "saelab-widgets-mathjax.js"]:
        assert (static / rel).is_file(), f"_static/{rel} missing (bash scripts/install.sh book)"
    fonts = list((static / "mathjax/output/chtml/fonts/woff-v2").glob("*.woff"))
    assert len(fonts) > 10, "MathJax's CHTML fonts are not in the book"
    assert list((static / "mathjax/input/tex/extensions").glob("*.js")), "MathJax's TeX extensions missing"
    assert list((static / "html-manager").glob("*.woff2")), "the widget manager's fonts are missing"


def test_widget_manager_bundles_the_controls_the_sliders_need(html):
    """No CDN request for @jupyter-widgets/controls: embed-amd.js defines it, with our models."""
    bundle = (html / "_static/html-manager/embed-amd.js").read_text()
    assert 'define("@jupyter-widgets/base"' in bundle
    assert 'define("@jupyter-widgets/controls"' in bundle
    for model in ("StackModel", "SelectionSliderModel", "ImageModel", "VBoxModel", "LinkModel"):
        assert model in bundle, f"{model} is not in the widget manager bundle"


# --- citations, glossary, folded solutions, Colab --------------------------------------------

def test_references_page_lists_every_bibliography_entry(html):
    keys = re.findall(r"^@\w+\{([^,]+),", (ROOT / "book/references.bib").read_text(), flags=re.M)
    assert len(keys) >= 20
    text = (html / "book/references.html").read_text()
    n_entries = len(re.findall(r'<div class="citation"|<dt class="label"|class="citation"', text))
    assert n_entries >= len(keys), f"references page shows {n_entries} of {len(keys)} entries"
    for title in ("Toy Models of Superposition", "Towards Monosemanticity", "BatchTopK",
                  "Learning Fast Approximations of Sparse Coding", "restricted isometry property"):
        assert title.lower() in text.lower(), f"{title!r} missing from the references page"


def test_references_are_labelled_author_year_like_the_text(html):
    text = (html / "book/references.html").read_text()
    labels = re.findall(r'<span class="fn-bracket">\[</span>([^<]*)<span class="fn-bracket">\]', text)
    assert len(labels) >= 20, labels[:5]
    author_year = re.compile(r"^[^\W\d][\w\s'.-]*( and [\w\s'.-]+| et al\.)?, (19|20)\d\d[a-z]?$")
    assert all(author_year.match(label) for label in labels), [l for l in labels if not author_year.match(l)]
    assert "Elhage et al., 2022" in labels and "Welch, 1974" in labels and "Olshausen and Field, 1996" in labels
    first = [re.split(r",| and | et al", label)[0].lower() for label in labels]
    assert first == sorted(first), "entries are sorted by first author"


def test_problems_page_links_citations_and_glossary_terms(html):
    text = (html / "book/problems.html").read_text()
    assert text.count("references.html#id") >= 6, "the problems page has too few citation links"
    for term in ("SAE", "Residual-stream", "LASSO", "Welch-bound", "Coherence", "Shrinkage", "AuxK"):
        assert f"glossary.html#term-{term}" in text, f"the problems page does not link {term}"


def test_chapter_one_links_glossary_terms_and_cites_papers(html):
    text = (html / "notebooks/01_superposition.html").read_text()
    for term in ("Superposition", "Polysemanticity", "Interference", "Welch-bound"):
        assert f"glossary.html#term-{term}" in text, f"Chapter 1 does not link the glossary term {term}"
    assert text.count("references.html#id") >= 5, "Chapter 1 has too few citations"
    assert "Elhage <em>et al.</em> (" in text, "textual author-year citation missing"
    glossary = (html / "book/glossary.html").read_text()
    for term in ("Dictionary-learning", "Monosemanticity", "Polysemanticity", "Overcomplete-basis", "SAE",
                 "Superposition", "L0", "FVU", "Dead-latent", "Shrinkage", "Feature", "Latent",
                 "Sparsity", "Interference", "MMCS", "AuxK", "Amortization"):
        assert f'id="term-{term}"' in glossary, f"glossary lacks {term}"


@pytest.mark.parametrize("page", [f for f in toc_files() if f.startswith("notebooks/")])
def test_worked_solutions_are_folded_and_colab_button_present(html, page):
    import nbformat

    nb = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
    n_exercises = sum("exercise" in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code")
    text = (html / f"{page}.html").read_text()
    assert text.count("Show the worked solution") == n_exercises, f"{page}: not every solution is folded"
    assert f"colab.research.google.com/github/saelab/saelab/blob/main/{page}.ipynb" in text, \
        f"{page}: no Colab launch button"
