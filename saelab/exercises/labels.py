"""Exercise labels: difficulty (1 to 3), expected minutes and the kind of data, per exercise.

This table is the one place the labels are stored. ``python -m saelab.exercises.labels
notebooks/`` writes each one into its chapter as a short Markdown cell (tagged ``exercise-label``)
right above the exercise's code cell, so the book and the learner notebooks show it;
``tests/test_exercise_labels.py`` fails when an exercise has no label or a chapter's label cell
is out of date. Difficulty, after ARENA's exercises: 1 = one formula into code, 2 = a few steps
or one subtle point, 3 = a derivation or several interacting pieces. Minutes are our estimate
for a learner who has read the section above. Introduced with the learner notebooks (Chapter 1).
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Label", "LABELS", "LABEL_TAG", "label_markdown", "apply"]

LABEL_TAG = "exercise-label"
_DATA = {"numpy": "NumPy arrays", "torch": "torch tensors"}


@dataclass(frozen=True)
class Label:
    difficulty: int  # 1 (easy) to 3 (hard)
    minutes: int  # expected time for a learner who has read the section
    data: str  # "numpy" or "torch": what the function receives and returns

    def __post_init__(self):
        if self.difficulty not in (1, 2, 3):
            raise ValueError(f"difficulty={self.difficulty!r}: expected 1, 2 or 3")
        if not isinstance(self.minutes, int) or not 1 <= self.minutes <= 120:
            raise ValueError(f"minutes={self.minutes!r}: expected an int from 1 to 120")
        if self.data not in _DATA:
            raise ValueError(f"data={self.data!r}: expected one of {sorted(_DATA)}")


# chapter notebook stem -> exercise function name -> label
LABELS: dict[str, dict[str, Label]] = {
    "01_superposition": {
        "toy_forward": Label(1, 5, "numpy"),
        "toy_loss": Label(1, 5, "numpy"),
        "feature_dimensionality": Label(2, 15, "numpy"),
        "interference_estimate": Label(2, 15, "numpy"),
    },
    "02_sae_from_scratch": {
        "l1_sae_backward": Label(3, 40, "numpy"),
        "project_decoder_grad": Label(1, 10, "numpy"),
        "topk_relu": Label(2, 10, "numpy"),
    },
    "03_lasso": {
        "nonneg_soft_threshold": Label(1, 3, "numpy"),
        "ista_step": Label(2, 10, "numpy"),
        "ista_encoder": Label(2, 10, "numpy"),
    },
    "04_shrinkage": {
        "topk_backward": Label(2, 15, "numpy"),
        "batch_topk_relu": Label(2, 10, "numpy"),
        "jumprelu_threshold_grad": Label(3, 20, "numpy"),
    },
    "05_evaluation": {
        "fvu_streaming": Label(3, 25, "numpy"),
        "dead_fraction_in_window": Label(2, 15, "numpy"),
        "mmcs": Label(1, 10, "numpy"),
    },
    "06_gpt2_sae": {
        "fvu_on_batch": Label(1, 5, "torch"),
        "make_splice_hook": Label(2, 10, "torch"),
        "make_steering_hook": Label(1, 5, "torch"),
    },
    "07_matryoshka": {
        "nested_recon_loss": Label(1, 10, "numpy"),
        "nested_loss_grad_W_dec": Label(3, 25, "numpy"),
        "full_absorption_rate": Label(2, 15, "numpy"),
    },
    "08_circuits": {
        "transcoder_loss": Label(1, 10, "numpy"),
        "edge_weight": Label(3, 25, "numpy"),
        "ablation_summary": Label(1, 10, "numpy"),
    },
    "09_limits": {
        "fit_power_law": Label(1, 10, "numpy"),
        "diff_in_means_probe": Label(1, 5, "numpy"),
        "sparse_probe": Label(3, 25, "numpy"),
    },
}


def label_markdown(name: str, label: Label) -> str:
    """The text of an exercise's label cell."""
    if not isinstance(name, str) or not name.isidentifier() or not isinstance(label, Label):
        raise TypeError(f"name={name!r}, label={label!r}: expected a function name and a Label")
    stars = "★" * label.difficulty + "☆" * (3 - label.difficulty)
    return (f"**Exercise `{name}`** · difficulty {stars} ({label.difficulty} of 3) · "
            f"about {label.minutes} minutes · works on {_DATA[label.data]}")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def exercise_name(cell) -> str:
    """The function an exercise cell defines (exactly one top-level ``def``)."""
    names = [n.name for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef)]
    if len(names) != 1:
        raise ValueError(f"an exercise cell must define exactly one function, found {names}")
    return names[0]


def apply(path) -> str:
    """Insert or update the label cell above every exercise of one chapter; return what happened."""
    import nbformat

    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        raise ValueError(f"path={path!r}: expected an existing chapter notebook")
    path = Path(path)
    table = LABELS.get(path.stem)
    if table is None:
        raise KeyError(f"{path}: no labels for chapter {path.stem!r}; add them to LABELS in "
                       "saelab/exercises/labels.py")
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    cells = []
    for cell in nb.cells:
        if LABEL_TAG in _tags(cell):
            continue  # rewritten below, above its exercise
        if "exercise" in _tags(cell):
            name = exercise_name(cell)
            if name not in table:
                raise KeyError(f"{path}: exercise {name!r} has no label in saelab/exercises/labels.py")
            old = next((c for c in nb.cells
                        if LABEL_TAG in _tags(c) and c.get("id") == f"label-{name}"), None)
            label = old or nbformat.v4.new_markdown_cell(metadata={"tags": [LABEL_TAG]})
            label.id, label.source = f"label-{name}", label_markdown(name, table[name])
            cells.append(label)
        cells.append(cell)
    nb.cells = cells
    if nbformat.writes(nb) == before:
        return "unchanged"
    nbformat.write(nb, path)
    return "updated"


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m saelab.exercises.labels NOTEBOOK.ipynb|FOLDER [...]", file=sys.stderr)
        return 2
    for arg in map(Path, args):
        for path in sorted(arg.glob("[0-9][0-9]_*.ipynb")) if arg.is_dir() else [arg]:
            print(f"{path}: {apply(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
