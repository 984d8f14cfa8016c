"""The text the shipped model learns from: Python's own documentation, available offline everywhere.

Two sources, both inside every CPython installation and both under the PSF License
(https://docs.python.org/3/license.html), so the text may be redistributed with the model:

- ``pydoc_data.topics``: the language-reference and library topics that ``help("if")`` prints
  (about 80 topics, 0.5 MB);
- the docstrings of the standard library's modules, classes and functions, read from the source
  files with ``ast`` (nothing is imported), tests and GUI packages left out (about 1.5 MB).

Documents are deduplicated and kept in a fixed order, then split into train and held-out sets by a
hash of their text, so the split does not depend on the order or on the Python version beyond the
texts themselves. Used by ``saelab.lm.tiny`` (Chapter 6).
"""
from __future__ import annotations

import ast
import hashlib
import sysconfig
from pathlib import Path
from typing import NamedTuple

from saelab._checks import check_instance, check_probability

__all__ = ["CorpusSplit", "python_docs_corpus", "split_documents"]

# Parts of the standard library that are tests, demos or vendored copies, not documentation.
_SKIP_PARTS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3", "tkinter",
               "turtledemo", "ensurepip", "__pycache__", "__phello__"}
MIN_DOC_CHARS = 40  # shorter docstrings ("Return self.") teach the model little


class CorpusSplit(NamedTuple):
    """Documents of a corpus split in two; ``heldout`` never trains the model."""

    train: list[str]
    heldout: list[str]


def _stdlib_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p in _SKIP_PARTS or p.startswith(("test_", "config-")) for p in parts):
            continue
        files.append(path)
    return files


def _docstrings(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # a file for another Python version
        return []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docs = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds))
    return [d for d in docs if d]


def python_docs_corpus(stdlib_root=None) -> list[str]:
    """Documents of Python's documentation: the pydoc topics, then the stdlib docstrings.

    Parameters
    ----------
    stdlib_root : path, optional
        Folder of the standard library (default: the running Python's).

    Returns
    -------
    list of str
        Deduplicated documents of at least ``MIN_DOC_CHARS`` characters, in a fixed order.
    """
    from pydoc_data.topics import topics

    root = Path(stdlib_root or sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise ValueError(f"stdlib_root {str(root)!r} is not a folder")
    docs = [topics[name] for name in sorted(topics)]
    for path in _stdlib_files(root):
        docs.extend(_docstrings(path.read_text(encoding="utf-8", errors="replace")))
    seen, unique = set(), []
    for doc in docs:
        doc = doc.strip()
        if len(doc) >= MIN_DOC_CHARS and doc not in seen:
            seen.add(doc)
            unique.append(doc)
    return unique


def split_documents(docs: list[str], heldout_fraction: float = 0.05) -> CorpusSplit:
    """Split ``docs`` by a hash of each document's text: the same text always lands on the same side."""
    check_probability("heldout_fraction", heldout_fraction)
    check_instance("docs", docs, (list, tuple), "a list of str")
    if not all(isinstance(d, str) for d in docs):
        raise TypeError("docs must be a list of str, got an item of another type")
    train, heldout = [], []
    for doc in docs:
        h = int.from_bytes(hashlib.sha256(doc.encode("utf-8")).digest()[:8], "big") / 2**64
        (heldout if h < heldout_fraction else train).append(doc)
    if docs and (not train or (heldout_fraction > 0 and not heldout)):
        raise ValueError(f"heldout_fraction {heldout_fraction} leaves one side empty for "
                         f"{len(docs)} documents")
    return CorpusSplit(train, heldout)
