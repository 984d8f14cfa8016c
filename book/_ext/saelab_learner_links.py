"""Sphinx extension: chapter pages open the learner notebooks on Colab (loaded from _config.yml).

A chapter page is the solved version of its chapter. Its learner version, generated into
``learner/`` by ``python -m saelab.exercises.learner`` (exercises empty, plain Markdown, no
outputs), is what a learner should open. Two changes, on pages ``notebooks/NAME`` whose
``learner/NAME.ipynb`` exists:

* the launch (rocket) menu's Colab entry, which sphinx-book-theme builds from ``launch_buttons``
  and the page's path, opens ``learner/NAME.ipynb`` instead, and a second entry, "Colab
  (solved)", opens the chapter notebook itself;
* a line under the page title links to both notebooks on Colab, so the choice is visible
  without opening the menu.

The Colab addresses come from ``saelab.colab.colab_url``, the same function the learner
notebooks' banners use.
"""
from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx

CHAPTER_DIR, LEARNER_DIR = "notebooks", "learner"
NOTE_CLASS = "saelab-learner-links"


def _learner_path(app: Sphinx, pagename: str) -> str | None:
    """``learner/NAME.ipynb`` for a chapter page that has a learner notebook, else None."""
    folder, _, name = pagename.partition("/")
    if folder != CHAPTER_DIR or not name:
        return None
    path = f"{LEARNER_DIR}/{name}.ipynb"
    return path if (Path(app.srcdir) / path).is_file() else None


def retarget_colab_button(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Point the theme's Colab launch entry at the learner notebook; add one for the solved one."""
    learner = _learner_path(app, pagename)
    if learner is None:
        return
    from saelab.colab import colab_url

    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        buttons = group.get("buttons", [])
        for i, button in enumerate(buttons):
            if button.get("text") == "Colab":
                solved = dict(button, text="Colab (solved)",
                              tooltip="Open the solved notebook, with all outputs, on Colab",
                              url=colab_url(f"{pagename}.ipynb"))
                button.update(text="Colab (exercises)", url=colab_url(learner),
                              tooltip="Open the learner notebook (exercises to solve) on Colab")
                buttons.insert(i + 1, solved)
                return


def add_links_under_title(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Under a chapter's title: "Open on Colab: learner notebook (exercises) · solved notebook"."""
    learner = _learner_path(app, docname)
    if learner is None:
        return
    from saelab.colab import colab_url

    section = next(iter(doctree.findall(nodes.section)), None)
    title = section.next_node(nodes.title) if section is not None else None
    if title is None:
        return
    note = nodes.paragraph(classes=[NOTE_CLASS])
    note += nodes.emphasis(text="Open on Colab: ")
    note += nodes.reference(text="the learner notebook", refuri=colab_url(learner))
    note += nodes.Text(" (exercises to solve, no outputs) · ")
    note += nodes.reference(text="the solved notebook", refuri=colab_url(f"{docname}.ipynb"))
    note += nodes.Text(" (this page).")
    section.insert(section.index(title) + 1, note)


def setup(app: Sphinx) -> dict:
    # sphinx-book-theme adds the launch buttons at priority 501: run after it.
    app.connect("html-page-context", retarget_colab_button, priority=502)
    app.connect("doctree-resolved", add_links_under_title)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "0.1"}
