"""The Colab cell: detection with fakes, the exact pip command, and no drift between chapters.

Every chapter's first code cell must be ``saelab.colab.CELL_SOURCE`` (generated from
``saelab.colab.colab_setup``); ``python -m saelab.colab notebooks/NN_*.ipynb`` writes it.
"""
import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import toc_files
from saelab import colab

IN_BOOK = set(toc_files())  # chapters published in the book: each must start with the Colab cell
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED_COMMAND = [sys.executable, "-m", "pip", "install", "--quiet",
                    "saelab @ git+https://github.com/saelab/saelab"]


class Recorder:
    """A fake ``run`` that records the commands it is given."""

    def __init__(self):
        self.calls = []

    def __call__(self, command):
        self.calls.append(command)


@pytest.mark.parametrize("environ, modules", [
    ({}, {"google.colab": object()}),
    ({"COLAB_RELEASE_TAG": "release-colab_20260101-060000_RC00"}, {}),
    ({"COLAB_GPU": "1"}, {}),
    ({"COLAB_GPU": ""}, {"google.colab": object()}),
])
def test_on_colab_installs_saelab_with_the_exact_command(environ, modules):
    run = Recorder()
    assert colab.colab_setup(environ, modules, run) is True
    assert run.calls == [EXPECTED_COMMAND]


@pytest.mark.parametrize("environ, modules", [
    ({}, {}),
    ({"HOME": "/root", "JUPYTER_PLATFORM_DIRS": "1"}, {"google": object(), "ipykernel": object()}),
    ({"KAGGLE_KERNEL_RUN_TYPE": "Interactive", "COLAB": "no"}, {"google.cloud": object()}),
])
def test_elsewhere_does_nothing(environ, modules):
    run = Recorder()
    assert colab.colab_setup(environ, modules, run) is False
    assert run.calls == []


def test_command_keeps_colabs_torch_and_installs_from_the_repository():
    command = colab.pip_command()
    assert command == EXPECTED_COMMAND
    words = " ".join(command).lower()
    assert "torch" not in words, "the Colab install must not name torch (it would replace Colab's build)"
    for flag in ("--upgrade", "-U", "--force-reinstall", "--no-deps", "--ignore-installed"):
        assert flag not in command, f"{flag} would replace or skip Colab's packages"
    assert command[-1].endswith("git+" + colab.REPOSITORY)


def test_cell_text_is_generated_from_the_function():
    tree = ast.parse(colab.CELL_SOURCE)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert [f.name for f in functions] == ["colab_setup"]
    assert ast.get_source_segment(colab.CELL_SOURCE, functions[0]) in colab.CELL_SOURCE
    import inspect
    assert inspect.getsource(colab.colab_setup).rstrip() in colab.CELL_SOURCE
    assert colab.CELL_SOURCE.rstrip().endswith(
        "IN_COLAB = colab_setup(os.environ, sys.modules, subprocess.check_call)")


def test_cell_does_nothing_here_when_executed(monkeypatch):
    """Run the cell's text as a notebook would, off Colab: no subprocess, IN_COLAB is False."""
    for name in ("COLAB_RELEASE_TAG", "COLAB_GPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError(f"the cell ran a command off Colab: {args}")

    monkeypatch.setattr(subprocess, "check_call", forbidden)
    namespace = {}
    exec(compile(colab.CELL_SOURCE, "<colab cell>", "exec"), namespace)
    assert namespace["IN_COLAB"] is False


def test_cell_installs_when_executed_on_a_fake_colab(monkeypatch):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "fake")
    run = Recorder()
    monkeypatch.setattr(subprocess, "check_call", run)
    namespace = {}
    exec(compile(colab.CELL_SOURCE, "<colab cell>", "exec"), namespace)
    assert namespace["IN_COLAB"] is True
    assert run.calls == [EXPECTED_COMMAND]


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_code_cell_of_every_chapter_is_the_canonical_colab_cell(path):
    if f"notebooks/{path.stem}" not in IN_BOOK:
        pytest.skip(f"{path.name} is not in _toc.yml yet (a chapter in progress); apply the cell "
                    f"with `python -m saelab.colab notebooks/{path.name}` before adding it")
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    assert code[0].source == colab.CELL_SOURCE, (
        f"{path.name}: the first code cell is not the canonical Colab cell; run "
        f"`python -m saelab.colab notebooks/{path.name}` and re-execute the notebook")
    assert colab.CELL_TAG in code[0].metadata.get("tags", [])
    assert not code[0].get("outputs"), f"{path.name}: the Colab cell printed something off Colab"


def test_apply_inserts_then_is_idempotent(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter 9\n\ngoals"),
                nbformat.v4.new_markdown_cell("We import things."),
                nbformat.v4.new_code_cell("import numpy as np", metadata={"tags": ["setup"]})]
    path = tmp_path / "09_x.ipynb"
    nbformat.write(nb, path)
    assert colab.apply(path) == "inserted"
    assert colab.apply(path) == "unchanged"
    cells = nbformat.read(path, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "markdown", "code", "markdown", "code"]
    assert cells[1].source == colab.INTRO_SOURCE and cells[2].source == colab.CELL_SOURCE
    assert cells[4].source == "import numpy as np"

    cells[2].source = "# an old version of the cell"
    stale = nbformat.read(path, as_version=4)
    stale.cells[2].source = "# an old version"
    stale.cells[2].execution_count = 1
    nbformat.write(stale, path)
    assert colab.apply(path) == "updated"
    fixed = nbformat.read(path, as_version=4).cells
    assert fixed[2].source == colab.CELL_SOURCE and fixed[2].execution_count == 1
