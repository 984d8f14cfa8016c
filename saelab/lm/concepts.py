"""Token-level concept labels computed from text alone, for probing (Chapter 9).

A window of tokens is decoded token by token; the pieces, joined, give the window's text, and
each token owns the character span of its piece. A concept labels a token 1 or 0 from that text:

- ``doctest``: the token lies on a line whose first non-blank characters are ``>>>`` or ``...``
  (an interactive-session example, common in Python's docstrings); a token that starts with
  newlines belongs to the line its last newline opens;
- ``keyword``: the token, without surrounding white space, is a Python keyword
  (``keyword.kwlist``: ``def``, ``return``, ``if``, ...), whatever the context (prose included);
- ``identifier``: the token overlaps a snake_case identifier, a run of letters, digits and
  underscores that contains an underscore between two word characters (``max_tokens``);
- ``sentence_start``: the token's first non-blank character is an upper-case letter and the
  text before it, white space skipped, ends with ``.``, ``!`` or ``?`` (or a blank line).

Line-based concepts need the start of the line: tokens on a window's first line, whose start lies
before the window, are marked unknown (``valid`` False), as is BOS. ``keyword`` needs no
context; ``identifier`` and ``sentence_start`` need only what is before the token in the window
(its first token is unknown).
"""
from __future__ import annotations

import keyword
import re
from typing import NamedTuple

import numpy as np

__all__ = ["CONCEPTS", "ConceptLabels", "label_pieces", "label_windows", "check_labels"]

CONCEPTS = ("doctest", "keyword", "identifier", "sentence_start")
_KEYWORDS = frozenset(keyword.kwlist)
_SNAKE = re.compile(r"\w*[A-Za-z0-9]_+[A-Za-z0-9]\w*")


class ConceptLabels(NamedTuple):
    """``labels`` and ``valid`` masks, each of shape [n_windows, seq_len] (bool)."""

    labels: np.ndarray
    valid: np.ndarray


def _check_concept(concept: str) -> None:
    if concept not in CONCEPTS:
        raise ValueError(f"concept must be one of {CONCEPTS}, got {concept!r}")


def label_pieces(pieces: list[str], concept: str, first_is_bos: bool = False):
    """Labels and validity (two lists of bool) for one window's token strings ``pieces``."""
    _check_concept(concept)
    if not isinstance(pieces, (list, tuple)) or not all(isinstance(p, str) for p in pieces):
        raise TypeError("pieces must be a list of str (one string per token)")
    starts = np.cumsum([0] + [len(p) for p in pieces])
    text = "".join(pieces)
    n = len(pieces)
    labels, valid = [False] * n, [True] * n
    if concept == "keyword":
        labels = [p.strip() in _KEYWORDS for p in pieces]
    elif concept == "doctest":
        first_nl = text.find("\n")
        for i in range(n):
            # a piece that opens with newlines belongs to the line that its last newline opens
            lead = len(pieces[i]) - len(pieces[i].lstrip("\n"))
            line_start = text.rfind("\n", 0, int(starts[i]) + lead)
            if first_nl == -1 or line_start == -1:
                valid[i] = False
                continue
            line_end = text.find("\n", line_start + 1)
            line = text[line_start + 1: line_end if line_end != -1 else len(text)]
            labels[i] = line.lstrip().startswith((">>>", "..."))
    elif concept == "identifier":
        spans = [m.span() for m in _SNAKE.finditer(text)]
        for i in range(n):
            a, b = int(starts[i]), int(starts[i + 1])
            labels[i] = any(s < b and a < e for s, e in spans) and pieces[i].strip() != ""
        valid[0] = False
    else:  # sentence_start
        for i in range(n):
            p = pieces[i].lstrip()
            before = text[: int(starts[i])] + pieces[i][: len(pieces[i]) - len(p)]
            prev = before.rstrip()
            ends = prev.endswith((".", "!", "?")) or before.endswith("\n\n")
            labels[i] = bool(p) and p[0].isupper() and ends and prev != ""
        valid[0] = False
    if first_is_bos and n:
        labels[0], valid[0] = False, False
    return labels, valid


def label_windows(model, tokens, concept: str) -> ConceptLabels:
    """Concept labels for windows [n_windows, seq_len] of ``model``'s tokenizer (BOS first)."""
    _check_concept(concept)
    if getattr(tokens, "ndim", None) != 2:
        raise ValueError(f"tokens must have shape (n_windows, seq_len), got "
                         f"{getattr(tokens, 'shape', type(tokens))}")
    ids = np.asarray(tokens.cpu() if hasattr(tokens, "cpu") else tokens)
    vocab = model.cfg.d_vocab
    if ids.size == 0 or ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= vocab:
        raise ValueError(f"tokens must be non-empty integer token ids in 0..{vocab - 1}, got "
                         f"dtype {ids.dtype} and shape {ids.shape}"
                         + (f", values in {ids.min()}..{ids.max()}" if ids.size else ""))
    labels, valid = [], []
    for row in tokens.tolist():
        pieces = [model.tokenizer.decode([t]) for t in row]
        lab, val = label_pieces(pieces, concept, first_is_bos=True)
        labels.append(lab)
        valid.append(val)
    return ConceptLabels(np.array(labels, dtype=bool), np.array(valid, dtype=bool))


def check_labels(name: str, y) -> np.ndarray:
    """``y`` as a bool array; a clear error if it has no positive or no negative example."""
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of labels, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0/1 (or False/True) labels")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError(f"{name} has {int(y.sum())} positive and {int((~y).sum())} negative "
                         f"examples: a concept needs both to be probed")
    return y
