"""Turn the chapters' MyST Markdown into plain Markdown that Jupyter and Colab display.

The book (Jupyter Book, Sphinx) understands MyST: roles such as {term}`FVU` or {cite:p}`key`, and
directives such as a ```` ```{admonition} ```` fence with a ``:class: dropdown`` option. A plain
notebook front end shows those as raw text. :class:`MystToMarkdown` rewrites them:

* ``{term}`text <entry>``` becomes a link to the entry's anchor on the book's glossary page
  (Sphinx's anchor is ``term-`` followed by the entry with every run of other characters than
  ``[A-Za-z0-9._]`` replaced by one hyphen, case kept);
* ``{cite:t}`key``` becomes "Elhage et al. (2022)", ``{cite:p}`a,b``` "(Elhage et al., 2022;
  Welch, 1974)", author and year read from ``book/references.bib``, each linked to the book's
  References page (the same text sphinxcontrib-bibtex's author-year style prints);
* ``{doc}`text <path>``` becomes a link to that page of the book;
* an admonition becomes a ``<details>`` block, collapsed when it is a dropdown. A "Pause and
  think" box shows its question and hides each paragraph that starts with *Hint:* or *Answer:*
  in a collapsed block of its own;
* MyST target lines ``(label)=`` and ``%`` comment lines are dropped.

Anything else in MyST syntax (an unknown role or directive) raises :class:`MystError` naming it,
so a new chapter cannot silently leave raw syntax behind. Used by ``saelab/exercises/learner.py``
(the learner notebooks, see the book's introduction).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["MystError", "MystToMarkdown", "glossary_anchor", "read_glossary", "read_citations",
           "RAW_MYST"]

#: Patterns of MyST syntax that must not survive in plain Markdown (used by the tests too).
RAW_MYST = {
    "role": re.compile(r"\{[a-z][a-z:-]*\}`"),
    "directive fence": re.compile(r"^\s*(`{3,}|:{3,})\s*\{[a-z-]+\}", re.M),
    "directive option": re.compile(r"^\s*:(class|name|open|label):", re.M),
    "target": re.compile(r"^\(\S+\)=\s*$", re.M),
}

_ROLE = re.compile(r"\{([a-z][a-z:-]*)\}`([^`]+)`")
_EXPLICIT = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.S)
_FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|:{3,})\s*\{([a-z-]+)\}\s*(.*)$")
_OPTION = re.compile(r"^\s*:([a-z-]+):\s*(.*)$")
_REVEAL = re.compile(r"^\*{1,2}(Hint|Answer|Answers|Solution)[:.]?\*{1,2}:?\s*", re.I)
_ADMONITIONS = {"admonition", "note", "tip", "hint", "important", "warning", "caution",
                "attention", "danger", "error", "seealso", "dropdown"}


class MystError(ValueError):
    """MyST syntax the converter does not know (or a term, citation or page that does not exist)."""


def glossary_anchor(term: str) -> str:
    """The HTML id Sphinx gives a glossary entry: ``glossary_anchor("CE loss recovered")`` is
    ``"term-CE-loss-recovered"``."""
    if not isinstance(term, str) or not term.strip():
        raise ValueError(f"term={term!r}: expected a non-empty glossary entry (str)")
    text = unicodedata.normalize("NFKD", f"term-{term}").encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-zA-Z0-9._]+", "-", " ".join(text.split()))
    return re.sub(r"^[-0-9._]+|[-._]+$", "", text)


def read_glossary(path: Path) -> dict[str, str]:
    """Map each glossary entry, lower-cased, to its spelling in ``book/glossary.md``."""
    text = _existing(path, "book/glossary.md").read_text(encoding="utf-8")
    block = re.search(r"^```\{glossary\}\s*$(.*?)^```\s*$", text, re.M | re.S)
    if block is None:
        raise MystError(f"{path}: no ```{{glossary}} block found")
    terms = {}
    for line in block.group(1).splitlines():
        if line and not line[0].isspace() and not line.startswith(":"):
            terms[line.strip().lower()] = line.strip()
    return terms


def _normalise(path: str) -> str:
    """``notebooks/../book/x`` -> ``book/x`` (a path inside the repository)."""
    parts: list[str] = []
    for part in PurePosixPath(path).parts:
        if part == "..":
            if not parts:
                raise MystError(f"{path!r} points outside the repository")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _existing(path, what: str) -> Path:
    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        raise ValueError(f"path={path!r}: expected the path of an existing file ({what})")
    return Path(path)


def _author_text(persons: list) -> str:
    last = ["".join(p.last_names).replace("{", "").replace("}", "") for p in persons]
    if len(last) == 1:
        return last[0]
    if len(last) == 2:
        return f"{last[0]} and {last[1]}"
    return f"{last[0]} et al."


def read_citations(path: Path) -> dict[str, tuple[str, str]]:
    """Map each BibTeX key of ``book/references.bib`` to ``(authors, year)``, as the book prints them."""
    from pybtex.database import parse_file  # installed with sphinxcontrib-bibtex

    data = parse_file(str(_existing(path, "book/references.bib")))
    return {key: (_author_text(entry.persons.get("author", [])), entry.fields.get("year", "n.d."))
            for key, entry in data.entries.items()}


@dataclass
class MystToMarkdown:
    """Converter for one book: its base URL, glossary and bibliography.

    ``page`` (the notebook's path in the repository, e.g. ``notebooks/01_superposition.ipynb``)
    resolves relative ``{doc}`` targets.
    """

    base_url: str
    glossary: dict[str, str]
    citations: dict[str, tuple[str, str]]
    raw_url: str = ""  # where the repository's files are served (images of {figure} directives)

    def __post_init__(self):
        for name in ("base_url", "raw_url"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a URL (str), got {getattr(self, name)!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url={self.base_url!r}: expected an http(s) URL")
        for name, what in (("glossary", "read_glossary"), ("citations", "read_citations")):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a dict (from {what}), got "
                                f"{type(getattr(self, name)).__name__}")

    def url(self, doc: str) -> str:
        return f"{self.base_url.rstrip('/')}/{doc}.html"

    # -- roles ---------------------------------------------------------------------------------
    def _term(self, content: str) -> str:
        match = _EXPLICIT.match(content)
        text, entry = (match.group(1), match.group(2)) if match else (content, content)
        key = " ".join(entry.split()).lower()
        if key not in self.glossary:
            raise MystError(f"{{term}}`{content}`: no glossary entry {entry!r} in book/glossary.md")
        return f"[{text}]({self.url('book/glossary')}#{glossary_anchor(self.glossary[key])})"

    def _cite(self, content: str, textual: bool) -> str:
        parts = []
        for key in (k.strip() for k in content.split(",")):
            if key not in self.citations:
                raise MystError(f"citation key {key!r} is not in book/references.bib")
            authors, year = self.citations[key]
            label = f"{authors} ({year})" if textual else f"{authors}, {year}"
            parts.append(f"[{label}]({self.url('book/references')})")
        return ", ".join(parts) if textual else "(" + "; ".join(parts) + ")"

    def _doc(self, content: str, page: str) -> str:
        match = _EXPLICIT.match(content)
        text, target = (match.group(1), match.group(2)) if match else (content, content)
        return f"[{text}]({self.url(_normalise((PurePosixPath(page).parent / target).as_posix()))})"

    def roles(self, text: str, page: str) -> str:
        def replace(match: re.Match) -> str:
            role, content = match.group(1), match.group(2)
            if role == "term":
                return self._term(content)
            if role in ("cite:t", "cite:ts"):
                return self._cite(content, textual=True)
            if role in ("cite:p", "cite:ps", "cite"):
                return self._cite(content, textual=False)
            if role == "doc":
                return self._doc(content, page)
            if role in ("ref", "numref"):  # a label inside the book: keep the words, drop the link
                explicit = _EXPLICIT.match(content)
                return explicit.group(1) if explicit else content
            if role == "eq":
                return f"({content})"
            if role == "math":
                return f"${content}$"
            raise MystError(f"unsupported MyST role {{{role}}}`{content}` (extend myst_markdown.py)")

        return _ROLE.sub(replace, text)

    # -- directives ----------------------------------------------------------------------------
    def _admonition(self, name: str, title: str, options: dict, body: list[str]) -> list[str]:
        title = title.strip() or name.capitalize()
        collapsed = name == "dropdown" or "dropdown" in options.get("class", "").split()
        paragraphs = re.split(r"\n\s*\n", "\n".join(body).strip())
        question = [p for p in paragraphs if not _REVEAL.match(p)]
        reveals = [p for p in paragraphs if _REVEAL.match(p)]
        if collapsed and reveals and question:
            # A question to think about: show it, hide each hint or answer on its own.
            out = [f"**{title}.** " + "\n\n".join(question), ""]
            for part in reveals:
                label = _REVEAL.match(part).group(1).capitalize()
                text = _REVEAL.sub("", part, count=1)
                out += [f"<details><summary>{label}</summary>", "", text[:1].upper() + text[1:],
                        "", "</details>", ""]
            return out[:-1]
        opening = "<details>" if collapsed else "<details open>"
        return [opening, f"<summary><b>{title}</b></summary>", "", "\n\n".join(paragraphs), "",
                "</details>"]

    def directives(self, text: str, page: str = "") -> str:
        lines = text.splitlines()
        out: list[str] = []
        i = 0
        while i < len(lines):
            match = _FENCE_OPEN.match(lines[i])
            if match is None:
                out.append(lines[i])
                i += 1
                continue
            _, fence, name, argument = match.groups()
            closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            j, options = i + 1, {}
            while j < len(lines) and _OPTION.match(lines[j]):
                key, value = _OPTION.match(lines[j]).groups()
                options[key] = value
                j += 1
            body_start = j
            while j < len(lines) and not closing.match(lines[j]):
                j += 1
            if j == len(lines):
                raise MystError(f"```{{{name}}} fence on line {i + 1} is never closed")
            body = self.directives("\n".join(lines[body_start:j]), page).splitlines()
            if name in _ADMONITIONS:
                out.extend(self._admonition(name, argument, options, body))
            elif name == "math":
                out.extend(["$$", *body, "$$"])
            elif name in ("code-block", "code", "sourcecode"):
                out.extend([f"```{argument.strip()}", *body, "```"])
            elif name in ("figure", "image"):
                caption = " ".join(" ".join(body).split()) or options.get("alt", "figure")
                target = (PurePosixPath(page).parent / argument.strip()).as_posix()
                out.append(f"![{caption}]({self.raw_url}/{_normalise(target)})")
            elif name in ("margin", "sidebar", "epigraph", "pull-quote"):
                out.extend("> " + line if line else ">" for line in body)
            else:
                raise MystError(f"unsupported MyST directive {{{name}}} (extend myst_markdown.py)")
            i = j + 1
        return "\n".join(out)

    def convert(self, text: str, page: str) -> str:
        """Plain Markdown for one MyST Markdown cell of the notebook at ``page``."""
        if not isinstance(text, str) or not isinstance(page, str):
            raise TypeError(f"text and page must be str, got {type(text).__name__} and "
                            f"{type(page).__name__}")
        kept = [line for line in text.splitlines()
                if not RAW_MYST["target"].match(line) and not re.match(r"^%(?!%)", line)]
        result = self.roles(self.directives("\n".join(kept), page), page)
        for what, pattern in RAW_MYST.items():
            found = pattern.search(result)
            if found:
                raise MystError(f"{page}: raw MyST {what} left after conversion: {found.group(0)!r}")
        return result
