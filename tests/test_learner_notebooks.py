"""Learner notebooks (learner/): in sync with the chapters, plain Markdown, no solutions, runnable.

The slow tests execute every learner notebook top to bottom with its exercises untouched: only the
exercise and check cells may fail, and only with NotImplementedError; every other cell must run.
"""
import re
from pathlib import Path

import nbformat
import pytest
from kernel_helpers import SUITE_KERNEL_MANAGER

from saelab import colab
from saelab.exercises.learner import LEARNER_DIR, make_learner_files
from saelab.exercises.myst_markdown import RAW_MYST
from saelab.exercises.student import BEGIN, END

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NAMES = [p.name for p in CHAPTERS]


def _learner(name):
    return nbformat.read(ROOT / LEARNER_DIR / name, as_version=4)


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def test_every_chapter_has_an_up_to_date_learner_notebook(tmp_path):
    written = make_learner_files([ROOT / "notebooks"], tmp_path, root=ROOT)
    committed = sorted(p.name for p in (ROOT / LEARNER_DIR).glob("*.ipynb"))
    assert committed == NAMES, "learner/ must hold exactly one notebook per chapter"
    stale = [p.name for p in written
             if p.read_bytes() != (ROOT / LEARNER_DIR / p.name).read_bytes()]
    assert not stale, (f"learner notebooks out of date: {stale}. Regenerate them with "
                       "`python -m saelab.exercises.learner notebooks/ -o learner/`")


def test_generation_is_deterministic(tmp_path):
    first = make_learner_files([CHAPTERS[0]], tmp_path / "a", root=ROOT)[0].read_bytes()
    second = make_learner_files([CHAPTERS[0]], tmp_path / "b", root=ROOT)[0].read_bytes()
    assert first == second


@pytest.mark.parametrize("name", NAMES)
def test_learner_notebook_has_no_raw_myst_no_solution_no_output(name):
    nb, source = _learner(name), nbformat.read(ROOT / "notebooks" / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == colab.CELL_SOURCE, "the first code cell must be the Colab cell"
    assert all(not c.outputs and c.execution_count is None for c in code)
    for i, cell in enumerate(nb.cells):
        assert BEGIN not in cell.source and END not in cell.source, f"cell {i} keeps a marker"
        if cell.cell_type == "markdown":
            for what, pattern in RAW_MYST.items():
                assert not pattern.search(cell.source), f"cell {i}: raw MyST {what}"
    learner_text = "\n".join(c.source for c in code)
    for cell in source.cells:
        if "exercise" not in _tags(cell):
            continue
        solution = re.search(rf"{BEGIN}\n(.*?)\n\s*{END}", cell.source, re.S).group(1)
        for line in solution.splitlines():
            if len(line.strip()) > 12:  # a line of the solution, not a bare `return x`
                assert line.strip() not in learner_text, f"solution line left: {line.strip()!r}"


@pytest.mark.parametrize("name", NAMES)
def test_learner_notebook_says_how_later_cells_handle_exercises(name):
    nb = _learner(name)
    banner = nb.cells[1].source
    assert "Learner notebook" in banner and f"notebooks/{name}" in banner
    fallbacks = [c for c in nb.cells if "fallback" in _tags(c)]
    if fallbacks:
        for cell in fallbacks:
            function = re.search(r"^(\w+) = yours_or_reference", cell.source, re.M).group(1)
            assert f"`{function}`" in banner
    else:
        assert "No later cell uses your answers" in banner


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_learner_notebook_runs_with_only_the_exercises_failing(name, tmp_path):
    """Run all cells, errors allowed; only exercise/check cells may raise, with NotImplementedError."""
    from nbclient import NotebookClient

    nb = _learner(name)
    NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                   kernel_manager_class=SUITE_KERNEL_MANAGER,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = {i: next(o for o in c.outputs if o.output_type == "error")
              for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)}
    for i, err in errors.items():
        assert {"exercise", "check"} & set(_tags(nb.cells[i])), (
            f"cell {i} (not an exercise) raised {err.ename}: {err.evalue}\n{nb.cells[i].source}")
        assert err.ename == "NotImplementedError", f"cell {i} raised {err.ename}: {err.evalue}"
    checks = [i for i, c in enumerate(nb.cells) if "check" in _tags(c)]
    assert checks and all(i in errors for i in checks), "every untouched exercise must fail its check"
