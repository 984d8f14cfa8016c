"""The built book opens the learner notebooks, and the learner notebooks' links land in the book.

Uses the session's one book build (``book_html`` in tests/conftest.py).
"""
import re
from pathlib import Path

import pytest

from saelab import colab
from conftest import toc_files

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [f for f in toc_files() if f.startswith("notebooks/")]


@pytest.fixture(scope="module")
def html(book_html):
    return book_html


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_page_opens_the_learner_notebook_and_links_the_solved_one(html, page):
    text = (html / f"{page}.html").read_text(encoding="utf-8")
    learner = page.replace("notebooks/", "learner/", 1) + ".ipynb"
    assert colab.colab_url(learner) in text, f"{page}: the Colab button does not open {learner}"
    assert "Colab (exercises)" in text and "Colab (solved)" in text
    assert 'class="saelab-learner-links' in text, f"{page}: no learner/solved links under the title"
    assert colab.colab_url(f"{page}.ipynb") in text


def test_learner_links_into_the_book_hit_real_anchors(html):
    """Every glossary anchor a learner notebook links to exists on the built glossary page."""
    glossary = (html / "book" / "glossary.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="([^"]+)"', glossary))
    base = re.escape(colab.BOOK_URL)
    linked = set()
    for nb in (ROOT / "learner").glob("*.ipynb"):
        text = nb.read_text(encoding="utf-8")
        linked |= set(re.findall(base + r"/book/glossary\.html#([A-Za-z0-9._-]+)", text))
        for page in re.findall(base + r"/([\w/]+)\.html", text):
            assert (html / f"{page}.html").is_file(), f"{nb.name} links to a missing page {page}"
    assert linked, "no glossary links found in the learner notebooks"
    assert not linked - ids, f"anchors missing from the glossary page: {sorted(linked - ids)}"
