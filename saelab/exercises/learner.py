"""Make learner notebooks: the chapters as a self-learner opens them on Colab or in Jupyter.

A chapter notebook (``notebooks/NN_name.ipynb``) is the solved version, written in MyST for the
book. Its learner version (``learner/NN_name.ipynb``) is generated from it by::

    python -m saelab.exercises.learner notebooks/ -o learner/

and differs in four ways:

* exercise regions are stubbed exactly as ``make-student`` does (``student.py``) and every output
  is cleared, so the learner runs the notebook; re-executing a chapter never changes it;
* Markdown is plain Markdown (``myst_markdown.py``): glossary terms and citations are links into
  the published book, pause-and-think boxes are ``<details>`` blocks with the answer hidden;
* the first cells are the title with a banner (generated from what, where the solved version
  is) and the Colab setup cell (``saelab/colab.py``);
* when a later code cell calls an exercise's function, a cell right after the exercise's check
  replaces the learner's function by the reference solution if it is not written or does not
  pass (``checking.yours_or_reference``), so the chapter runs top to bottom either way. The
  banner says which exercises this applies to.

The output depends only on the chapter's sources (cell ids, metadata and outputs of the source
are not copied except the ids), so generation is deterministic, and
``tests/test_learner_notebooks.py`` regenerates the notebooks and compares them with the
committed copies. Described in the book's introduction.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

from saelab import colab
from saelab.exercises.myst_markdown import MystError, MystToMarkdown, read_citations, read_glossary
from saelab.exercises.student import MarkerError, find_notebooks, make_student_notebook

__all__ = ["LEARNER_DIR", "make_learner_notebook", "make_learner_files", "converter_for", "main"]

LEARNER_DIR = "learner"  # where the learner notebooks are committed, relative to the repository
_CHECK_CALL = re.compile(r"^\s*(\w+)\.(\w+)\((\w+)\)\s*$")
_KERNEL = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
           "language_info": {"name": "python"}}


def converter_for(root: Path) -> MystToMarkdown:
    """The MyST converter for the book at ``root`` (its glossary and bibliography)."""
    if not isinstance(root, (str, Path)) or not (Path(root) / "book").is_dir():
        raise ValueError(f"root={root!r}: expected the repository root (a folder holding book/)")
    root = Path(root)
    owner_name = colab.REPOSITORY.rstrip("/").split("github.com/")[-1]
    return MystToMarkdown(colab.BOOK_URL, read_glossary(root / "book" / "glossary.md"),
                          read_citations(root / "book" / "references.bib"),
                          raw_url=f"https://raw.githubusercontent.com/{owner_name}/{colab.BRANCH}")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _defined(cell) -> list[str]:
    tree = ast.parse(cell.source)
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]


def _used(cell) -> set[str]:
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:  # IPython magics: fall back to a word search
        return set(re.findall(r"\b\w+\b", cell.source))
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _fallback_cells(cells: list, page: str) -> dict[int, tuple[str, str]]:
    """For each check cell whose exercise function a later ordinary cell uses: (module, name)."""
    found = {}
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or "check" not in _tags(cell):
            continue
        match = _CHECK_CALL.match(cell.source)
        if match is None:
            raise MarkerError(f"{page}: check cell {index} is not one call `check.name(function)`")
        module, _, function = match.groups()
        later = [c for c in cells[index + 1:] if c.cell_type == "code"
                 and not {"exercise", "check"} & set(_tags(c))]
        if any(function in _used(c) for c in later):
            found[index] = (module, function)
    return found


def _banner(page: str, fallbacks: list[str]) -> str:
    name = Path(page).stem
    solved_page = f"{colab.BOOK_URL}/notebooks/{name}.html"
    if fallbacks:
        names = ", ".join(f"`{f}`" for f in fallbacks)
        later = (f"Later cells call {names}: right after each of these exercises a cell keeps your "
                 "function if it passes its check and otherwise swaps in the reference solution, "
                 "so the chapter runs on either way.")
    else:
        later = "No later cell uses your answers, so the chapter runs on whether or not you solve them."
    return (
        f"> **Learner notebook.** Generated from `{page}` by "
        f"`python -m saelab.exercises.learner`; do not edit it by hand. The exercise cells are "
        "empty: write your code where it says `# YOUR CODE HERE` and run the check cell below it, "
        "which raises `NotImplementedError` until you do. " + later + "\n>\n"
        f"> Solved version with all outputs: [the chapter in the book]({solved_page}) · "
        f"[the solved notebook on Colab]({colab.colab_url(page)}).")


def make_learner_notebook(nb: nbformat.NotebookNode, page: str,
                          converter: MystToMarkdown) -> nbformat.NotebookNode:
    """The learner version of the chapter ``nb`` stored at ``page`` (e.g. ``notebooks/01_x.ipynb``)."""
    if not isinstance(nb, nbformat.NotebookNode) or "cells" not in nb:
        raise TypeError(f"nb must be a notebook read with nbformat, got {type(nb).__name__}")
    if not isinstance(page, str) or not page.endswith(".ipynb") or page.startswith("/"):
        raise ValueError(f"page={page!r}: expected the notebook's path relative to the repository "
                         "root, such as 'notebooks/01_superposition.ipynb'")
    if not isinstance(converter, MystToMarkdown):
        raise TypeError(f"converter must be a MystToMarkdown, got {type(converter).__name__}")
    student = make_student_notebook(nb)
    cells = student.cells
    fallbacks = _fallback_cells(cells, page)
    setup = [c for c in cells if c.cell_type == "code" and colab.CELL_TAG in _tags(c)]
    if len(setup) != 1 or setup[0].source != colab.CELL_SOURCE:
        raise MystError(f"{page}: expected one code cell tagged {colab.CELL_TAG!r} holding the "
                        "Colab cell; run `python -m saelab.colab` on the notebook")
    out = []
    for index, cell in enumerate(cells):
        if colab.CELL_TAG in _tags(cell):
            continue  # the Colab sentence goes, the Colab code cell is placed after the title
        meta = {"tags": _tags(cell)} if _tags(cell) else {}
        if cell.cell_type == "markdown":
            try:
                source = converter.convert(cell.source, page)
            except MystError as exc:
                raise MystError(f"{page}, cell {index}: {exc}") from None
            new = nbformat.v4.new_markdown_cell(source, metadata=meta)
        elif cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(cell.source, metadata=meta)
        else:
            new = nbformat.v4.new_raw_cell(cell.source, metadata=meta)
        new.id = cell.get("id") or f"cell-{index}"
        out.append(new)
        if index in fallbacks:
            module, function = fallbacks[index]
            code = nbformat.v4.new_code_cell(
                "# Later cells call this function: keep yours if it passes the check, else use the\n"
                "# reference solution, so that the rest of the chapter runs either way.\n"
                "from saelab.exercises.checking import yours_or_reference\n"
                f"{function} = yours_or_reference({module}, \"{function}\", {function})",
                metadata={"tags": ["fallback"]})
            code.id = f"fallback-{function}"[:64]
            out.append(code)
    if not out or out[0].cell_type != "markdown":
        raise MystError(f"{page}: the first cell must be the title (a Markdown cell)")
    banner = nbformat.v4.new_markdown_cell(_banner(page, [f for _, f in fallbacks.values()]))
    banner.id = "learner-banner"
    colab_cell = nbformat.v4.new_code_cell(colab.CELL_SOURCE, metadata={"tags": [colab.CELL_TAG]})
    colab_cell.id = "colab-setup"
    learner = nbformat.v4.new_notebook(metadata=dict(_KERNEL))
    learner.cells = [out[0], banner, colab_cell] + out[1:]
    learner.nbformat, learner.nbformat_minor = 4, 5
    nbformat.validate(learner)
    return learner


def make_learner_files(paths, out_dir, root=".") -> list[Path]:
    """Write the learner version of each notebook (or each notebook in a folder) to ``out_dir``.

    ``root`` is the repository root: notebook paths are given relative to it in the banner and
    links, and the glossary and bibliography are read from its ``book/`` folder.
    """
    notebooks = find_notebooks(paths)  # checks paths before anything is written
    root = Path(root).resolve()
    converter = converter_for(root)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        try:
            page = path.resolve().relative_to(root).as_posix()
        except ValueError:
            raise ValueError(f"{path}: the notebook must lie inside root={str(root)!r}") from None
        learner = make_learner_notebook(nbformat.read(path, as_version=4), page, converter)
        target = out_dir / path.name
        target.write_text(nbformat.writes(learner) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m saelab.exercises.learner",
        description="Write learner notebooks (exercises empty, plain Markdown, no outputs).")
    parser.add_argument("paths", nargs="+", type=Path, help="chapter notebooks, or folders of them")
    parser.add_argument("-o", "--out", type=Path, default=Path(LEARNER_DIR), help="output folder")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    if argv is not None and (isinstance(argv, (str, bytes))
                             or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str (or None for sys.argv), got {argv!r}")
    args = parser.parse_args(argv)
    try:
        written = make_learner_files(args.paths, args.out, args.root)
    except (FileNotFoundError, MarkerError, MystError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
