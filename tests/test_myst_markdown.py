"""MyST to plain Markdown (saelab/exercises/myst_markdown.py), on small made-up cells."""
from pathlib import Path

import pytest

from saelab.exercises.myst_markdown import (MystError, MystToMarkdown, glossary_anchor,
                                            read_citations, read_glossary)

ROOT = Path(__file__).resolve().parents[1]
BASE = "https://example.org/book"


@pytest.fixture
def conv():
    return MystToMarkdown(BASE, {"fvu": "FVU", "dead latent": "Dead latent",
                                 "ce loss recovered": "CE loss recovered"},
                          {"a2022": ("Elhage et al.", "2022"), "b1974": ("Welch", "1974"),
                           "c2024": ("Wright and Sharkey", "2024")})


def test_glossary_anchor_follows_sphinx():
    assert glossary_anchor("CE loss recovered") == "term-CE-loss-recovered"
    assert glossary_anchor("L0") == "term-L0"
    sphinx_nodes = pytest.importorskip("sphinx.util.nodes")
    for term in read_glossary(ROOT / "book" / "glossary.md").values():
        assert glossary_anchor(term) == sphinx_nodes._make_id(f"term-{term}"), term


def test_roles_become_links(conv):
    md = conv.convert("The {term}`FVU` of {term}`dead latents <dead latent>`.", "notebooks/x.ipynb")
    assert md == (f"The [FVU]({BASE}/book/glossary.html#term-FVU) of "
                  f"[dead latents]({BASE}/book/glossary.html#term-Dead-latent).")
    ref = f"{BASE}/book/references.html"
    assert conv.convert("{cite:t}`a2022`", "notebooks/x.ipynb") == f"[Elhage et al. (2022)]({ref})"
    assert conv.convert("{cite:p}`a2022,b1974`", "n/x.ipynb") == (
        f"([Elhage et al., 2022]({ref}); [Welch, 1974]({ref}))")
    assert conv.convert("{doc}`Glossary <../book/glossary>`", "notebooks/x.ipynb") == (
        f"[Glossary]({BASE}/book/glossary.html)")


def test_pause_and_think_shows_the_question_and_folds_the_answer(conv):
    src = ("Text.\n\n```{admonition} Pause and think\n:class: dropdown\nWhy $x$?\n\n"
           "*Answer:* because {term}`FVU`.\n```")
    md = conv.convert(src, "notebooks/x.ipynb")
    assert md.startswith("Text.\n\n**Pause and think.** Why $x$?")
    assert "<details><summary>Answer</summary>\n\nBecause [FVU](" in md
    assert md.rstrip().endswith("</details>") and ":class:" not in md and "```" not in md


def test_admonition_without_answer_is_one_collapsed_block(conv):
    md = conv.convert("```{admonition} Pause and think\n:class: dropdown\nWhy?\n```", "n/x.ipynb")
    assert md == "<details>\n<summary><b>Pause and think</b></summary>\n\nWhy?\n\n</details>"
    note = conv.convert("```{note}\nSee this.\n```", "n/x.ipynb")
    assert note.startswith("<details open>\n<summary><b>Note</b></summary>")


@pytest.mark.parametrize("src, match", [
    ("{term}`nothing`", "no glossary entry 'nothing'"),
    ("{cite:p}`zzz`", "'zzz' is not in book/references.bib"),
    ("{abbr}`X (y)`", "unsupported MyST role"),
    ("```{tab-set}\n```", "unsupported MyST directive"),
    ("```{note}\nnever closed", "never closed"),
])
def test_unknown_syntax_is_an_error(conv, src, match):
    with pytest.raises(MystError, match=match):
        conv.convert(src, "notebooks/x.ipynb")


def test_bibliography_author_year_text():
    cites = read_citations(ROOT / "book" / "references.bib")
    assert cites["elhage2022toy"] == ("Elhage et al.", "2022")
    assert cites["wright2024addressing"] == ("Wright and Sharkey", "2024")


@pytest.mark.parametrize("bad", [None, "", 3])
def test_bad_input(bad, conv):
    with pytest.raises((ValueError, TypeError)):
        glossary_anchor(bad)
    if bad != "":  # an empty Markdown cell is valid
        with pytest.raises(TypeError, match="text and page must be str"):
            conv.convert(bad, "notebooks/x.ipynb")
    with pytest.raises(ValueError, match="path="):
        read_glossary(ROOT / "no_such_file.md")


def test_other_roles_and_directives(conv):
    conv.raw_url = "https://raw.example.org/main"
    page = "notebooks/x.ipynb"
    assert conv.convert("see {ref}`the section <sec-a>` and {eq}`eq-1`, {math}`a+b`", page) == (
        "see the section and (eq-1), $a+b$")
    assert conv.convert("```{figure} ../book/img.png\nA caption.\n```", page) == (
        "![A caption.](https://raw.example.org/main/book/img.png)")
    assert conv.convert("```{code-block} python\nx = 1\n```", page) == "```python\nx = 1\n```"
    assert conv.convert("```{margin}\nAside.\n```", page) == "> Aside."
