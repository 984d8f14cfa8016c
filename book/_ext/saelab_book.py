"""Sphinx extension for the saelab book (loaded through ``sphinx.local_extensions`` in _config.yml).

It does a few small things that configuration alone cannot:

* **Worked solutions collapsed by default.** Code cells tagged ``exercise`` hold the solution of an
  exercise (between ``### BEGIN SOLUTION`` and ``### END SOLUTION``). In the HTML book their source
  is folded behind a "Show the worked solution" toggle, using MyST-NB's own hide-input machinery,
  so the notebooks need no extra tags. The Colab setup cell (tag ``colab-setup``, see
  ``saelab/colab.py``) is folded the same way.
* **Round brackets in citations.** ``bibtex_reference_style: author_year_round`` is
  sphinxcontrib-bibtex's author-year style with round brackets: {cite:t} gives
  "Elhage et al. (2022)", {cite:p} gives "(Elhage et al., 2022; Welch, 1974)".
* **An author-year references page.** ``bibtex_default_style: saelab_author_year`` labels the
  entries "[Elhage et al., 2022]" (as the text cites them) and sorts them by author and year,
  instead of numbering them.
* **A clean browser console.** The theme's colour mode defaults to "auto" (otherwise
  pydata-sphinx-theme logs "Got invalid theme mode" on every page), and scripts that were
  registered twice (sphinx-thebe adds its inline configuration twice under Jupyter Book, which
  throws "Identifier 'THEBE_JS_URL' has already been declared") are listed once per page.
* **Widget labels with MathJax 3.** The widgets HTML manager calls MathJax 2's
  ``MathJax.Hub.Queue`` to typeset widget labels; ``static/saelab-widgets-mathjax.js``, loaded
  right after MathJax, maps it onto MathJax 3 (without it every labelled widget throws).
* **Widget fonts from the book.** On pages with widgets, require.js is configured (before it
  loads) so that the widget manager finds its Font Awesome files in ``_static/html-manager/``.
* **Every screen.** ``static/saelab-sidebar-toggles.js`` makes the menu and page-contents buttons
  work at every width (pydata-sphinx-theme 0.17 binds its handler to a hidden duplicate button,
  pydata-sphinx-theme issue #2451); ``static/saelab-book.css`` lets wide display maths scroll
  with a visible cue (``static/saelab-wide-maths.js`` marks wide inline maths likewise), fits
  sliders and widget images to the column, and wraps long inline code;
  ``static/saelab-search-snippets.js`` keeps page chrome and TeX delimiters out of search results.
* **Offline assets present.** The pages load MathJax, require.js and the widgets HTML manager from
  ``_static/`` (``mathjax_path`` and ``nb_ipywidgets_js``). If those files were not installed, the
  build stops with a message saying how to install them, instead of producing pages that silently
  lack maths and widgets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ConfigError

from pybtex.plugin import register_plugin as register_pybtex_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle as AuthorYearTitleSorting
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

# cell tag -> (prompt when folded, prompt when open)
FOLDED_CELLS = {
    "exercise": ("Show the worked solution", "Hide the worked solution"),
    "colab-setup": ("Show the Colab setup cell", "Hide the Colab setup cell"),
}


class FoldTaggedCells(SphinxPostTransform):
    """Mark tagged code cells ``hide_mode = "input"`` before MyST-NB's HideInputCells (199) runs."""

    default_priority = 198
    formats = ("html",)

    def run(self, **kwargs) -> None:
        for node in self.document.findall(nodes.container):
            if node.get("nb_element") != "cell_code" or node.get("hide_mode"):
                continue
            tags = node.get("cell_metadata", {}).get("tags", [])
            for tag, (show, hide) in FOLDED_CELLS.items():
                if tag in tags:
                    node["hide_mode"] = "input"
                    node["prompt_show"] = show
                    node["prompt_hide"] = hide
                    break


def _local_assets(config) -> list[str]:
    """The script paths, relative to ``_static/``, that the pages load from the book itself."""
    paths = [config.mathjax_path] + list(getattr(config, "nb_ipywidgets_js", {}) or {})
    return [p for p in paths if p and "://" not in p]


def check_offline_assets(app: Sphinx, config) -> None:
    static_dirs = [Path(app.confdir, d) for d in config.html_static_path]
    missing = [p for p in _local_assets(config)
               if not any((d / p).is_file() for d in static_dirs)]
    if missing:
        raise ConfigError(
            "the book's offline assets are not installed (missing: " + ", ".join(missing) + " under "
            + ", ".join(map(str, config.html_static_path)) + "). Run `bash scripts/install.sh book` "
            "(it installs MathJax, require.js and the widgets HTML manager from the npm registry).")


@dataclass
class AuthorYearRound(AuthorYearReferenceStyle):
    """Author-year citations with round brackets and "; " between references."""

    bracket_parenthetical: BracketStyle = field(
        default_factory=lambda: BracketStyle(left="(", right=")", sep="; "))
    bracket_textual: BracketStyle = field(
        default_factory=lambda: BracketStyle(left="(", right=")", sep="; "))


register_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_round", AuthorYearRound)


def author_year_label(entry) -> str:
    """ "Welch, 1974", "Olshausen and Field, 1996", "Elhage et al., 2022": the text's citations."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    last = ["".join(part.render_as("text") for part in p.rich_last_names) for p in people]
    if len(last) == 0:
        names = entry.fields.get("title", entry.key)
    elif len(last) == 1:
        names = last[0]
    elif len(last) == 2:
        names = f"{last[0]} and {last[1]}"
    else:
        names = f"{last[0]} et al."
    return f"{names}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    """Author-year labels; equal ones (same first author, et al., year) get "a", "b", ..."""

    def format_labels(self, sorted_entries):
        labels = [author_year_label(e) for e in sorted_entries]
        seen: dict[str, int] = {}
        for label in labels:
            if labels.count(label) > 1:
                seen[label] = seen.get(label, 0) + 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            else:
                yield label


class AuthorYearBibliography(PlainStyle):
    """pybtex's plain style, labelled and sorted by author and year (the references page)."""

    default_label_style = AuthorYearLabels
    default_sorting_style = AuthorYearTitleSorting


register_pybtex_plugin("pybtex.style.formatting", "saelab_author_year", AuthorYearBibliography)


def default_colour_mode(app: Sphinx, config) -> None:
    config.html_context.setdefault("default_mode", "auto")


def dedupe_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Keep the first of identical script entries (same file or inline body, same attributes)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", None) or "", tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


STATIC = Path(__file__).parent / "static"


def add_static(app: Sphinx, config) -> None:
    config.html_static_path.append(str(STATIC))


# require.js reads a global `require` object defined before it loads as its configuration. The
# widget manager's AMD modules take their public path (where their Font Awesome files are) from
# their module address, which by default is relative to the page: map it to _static/html-manager/.
REQUIRE_CONFIG = (
    "var require = {paths: {'@jupyter-widgets/html-manager/dist': new URL('_static/html-manager', "
    "new URL(document.documentElement.dataset.content_root || './', document.baseURI)).href}};"
)


def configure_require(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """On pages that load the widget manager, configure require.js before it loads."""
    from myst_nb.sphinx_ import NbMetadataCollector

    if app.builder.format == "html" and NbMetadataCollector.get_js_files(app.env, pagename):
        app.add_js_file(None, body=REQUIRE_CONFIG, priority=450)


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", configure_require, priority=100)
    app.connect("config-inited", add_static)
    # Deferred scripts run in document order: MathJax (priority 500), then this shim.
    app.add_js_file("saelab-widgets-mathjax.js", priority=510, defer="defer")
    app.add_js_file("saelab-sidebar-toggles.js")
    app.add_js_file("saelab-wide-maths.js", priority=520, defer="defer")
    # Deferred: runs after the search page's searchtools.js (a plain script) has defined Search.
    app.add_js_file("saelab-search-snippets.js", defer="defer")
    app.add_css_file("saelab-book.css")
    app.connect("config-inited", check_offline_assets, priority=900)
    app.connect("config-inited", default_colour_mode)
    # Early: html-page-context is emitted with emit_firstresult, so a handler that returns a
    # template name stops later ones; duplicates are all registered before any page is written.
    app.connect("html-page-context", dedupe_scripts, priority=100)
    app.add_post_transform(FoldTaggedCells)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "0.1"}
