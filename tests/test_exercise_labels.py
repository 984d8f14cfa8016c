"""Exercise labels (saelab/exercises/labels.py): every exercise has one, and every chapter shows it."""
import shutil
from pathlib import Path

import nbformat
import pytest

from saelab.exercises.labels import LABEL_TAG, LABELS, Label, apply, exercise_name, label_markdown

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_label_cells_are_up_to_date(path, tmp_path):
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    assert apply(copy) == "unchanged", (
        f"{path.name}: label cells out of date; run `python -m saelab.exercises.labels notebooks/`")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_exercise_has_its_label_right_above_it(path):
    nb = nbformat.read(path, as_version=4)
    names = []
    for i, cell in enumerate(nb.cells):
        if "exercise" in cell.metadata.get("tags", []):
            name = exercise_name(cell)
            names.append(name)
            above = nb.cells[i - 1]
            assert LABEL_TAG in above.metadata.get("tags", [])
            assert above.source == label_markdown(name, LABELS[path.stem][name])
            learner = (ROOT / "learner" / path.name).read_text(encoding="utf-8")
            assert f"difficulty {'★' * LABELS[path.stem][name].difficulty}" in learner
    assert sorted(names) == sorted(LABELS[path.stem]), "LABELS lists an exercise the chapter lacks"


def test_label_text():
    assert label_markdown("f", Label(2, 15, "torch")) == (
        "**Exercise `f`** · difficulty ★★☆ (2 of 3) · about 15 minutes · works on torch tensors")


@pytest.mark.parametrize("args, match", [((0, 5, "numpy"), "difficulty=0"),
                                         ((4, 5, "numpy"), "difficulty=4"),
                                         ((1, 0, "numpy"), "minutes=0"),
                                         ((1, 5.5, "numpy"), "minutes=5.5"),
                                         ((1, 5, "jax"), "data='jax'")])
def test_bad_labels_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        Label(*args)


def test_a_chapter_without_labels_is_refused(tmp_path):
    path = tmp_path / "99_new.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    with pytest.raises(KeyError, match="99_new"):
        apply(path)
