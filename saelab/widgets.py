"""Sliders over precomputed figures that keep working without a kernel.

Every figure is rendered once, in Python, to a small PNG and wrapped in an ``ipywidgets.Image``.
The images sit in ``ipywidgets.Stack`` containers (only the selected child is shown), and each
slider's ``index`` is tied to a stack's ``selected_index`` with ``ipywidgets.jslink``. A jslink
runs in the browser, not in the kernel, so once the notebook is saved with its widget state the
sliders still move in the static HTML book (and on a page with no Python behind it).

* :func:`figure_slider`: one slider over a list of figures.
* :func:`figure_grid`: two sliders over a grid of figures: an outer stack indexed by the row
  slider, whose children are inner stacks, each indexed by the column slider.

Introduced in Chapter 1; every chapter's widgets use it.
"""
from __future__ import annotations

import io
from typing import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt

from saelab._checks import check_int_in_range

__all__ = ["fig_to_png", "figure_slider", "figure_grid"]


# Widget images: 100 dpi is sharp on a laptop and still small enough for the many panels a
# slider holds; the browser scales each image down to the column on a phone (max-width 100%).
WIDGET_DPI = 100


def fig_to_png(fig, dpi: int = WIDGET_DPI) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it. Introduced in Chapter 1."""
    if not hasattr(fig, "savefig"):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    check_int_in_range("dpi", dpi, 1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _linked_box(children, links) -> widgets.VBox:
    """A plain ``VBox`` of sliders and stacks that also holds, as ``box.links``, its jslinks.

    ``links`` is a tuple of ``ipywidgets.Link`` objects (source: a slider's ``index``, target: a
    stack's ``selected_index``); holding them on the box keeps them alive with it and lets tests
    inspect them. A plain VBox (not a subclass) keeps the widget's text repr ``VBox(...)``.
    """
    box = widgets.VBox(children=children)
    box.links = tuple(links)
    return box


def _as_panel(item, dpi: int) -> widgets.Widget:
    if isinstance(item, widgets.Widget):  # a ready panel, e.g. widgets.HTML (Chapter 6 dashboards)
        return item
    png = item if isinstance(item, (bytes, bytearray)) else fig_to_png(item, dpi)
    # At most the column's width, keeping the aspect ratio (the book's CSS does the same).
    return widgets.Image(value=bytes(png), format="png",
                         layout=widgets.Layout(max_width="100%", height="auto"))


def _slider(values: Sequence, description: str) -> widgets.SelectionSlider:
    if len(values) == 0:
        raise ValueError(f"values for {description!r} must not be empty, got {list(values)}")
    labels = [str(v) for v in values]
    if len(set(labels)) != len(labels):
        raise ValueError(f"slider labels for {description!r} must be distinct, got {labels}")
    options = [(label, i) for i, label in enumerate(labels)]
    return widgets.SelectionSlider(
        options=options, value=0, description=description, continuous_update=True,
        # 420 px where there is room, the column's width on a phone (the readout stays visible)
        style={"description_width": "initial"},
        layout=widgets.Layout(width="420px", max_width="100%"),
    )


def figure_slider(figures_or_pngs: Sequence, values: Sequence, description: str = "value",
                  dpi: int = WIDGET_DPI) -> widgets.VBox:
    """One slider that flips through precomputed figures, client-side.

    Parameters
    ----------
    figures_or_pngs : sequence of matplotlib figures, PNG bytes or ipywidgets
        One per slider position; figures are rendered with :func:`fig_to_png` and closed;
        widgets (such as ``widgets.HTML`` panels) are shown as they are.
    values : sequence
        Slider labels, one per figure (shown with ``str``).
    description : str
        Slider label.

    Returns
    -------
    ipywidgets.VBox
        ``VBox([slider, stack])``; ``links`` holds the one jslink. Introduced in Chapter 1.
    """
    if len(figures_or_pngs) != len(values):
        raise ValueError(
            f"need one figure per value: got {len(figures_or_pngs)} figures and {len(values)} values"
        )
    slider = _slider(values, description)
    stack = widgets.Stack([_as_panel(f, dpi) for f in figures_or_pngs], selected_index=0)
    link = widgets.jslink((slider, "index"), (stack, "selected_index"))
    return _linked_box([slider, stack], [link])


def figure_grid(pngs: Sequence[Sequence], row_values: Sequence, col_values: Sequence,
                row_label: str = "row", col_label: str = "column",
                dpi: int = WIDGET_DPI) -> widgets.VBox:
    """Two sliders over a grid of precomputed figures, client-side.

    Parameters
    ----------
    pngs : nested sequence, ``pngs[i][j]`` for row i and column j
        Matplotlib figures, PNG bytes or ipywidgets, ``len(row_values)`` rows of
        ``len(col_values)`` each.
    row_values, col_values : sequence
        Labels of the two sliders.
    row_label, col_label : str
        Descriptions of the two sliders.

    Returns
    -------
    ipywidgets.VBox
        ``VBox([row_slider, col_slider, outer_stack])``; the outer stack's children are one inner
        stack per row. ``links`` holds the row link first, then one column link per row.
        Introduced in Chapter 1.
    """
    if len(pngs) != len(row_values):
        raise ValueError(f"row_values must have one value per row of figures: got "
                         f"{len(pngs)} rows and {len(row_values)} row values")
    for i, row in enumerate(pngs):
        if len(row) != len(col_values):
            raise ValueError(f"row {i} must hold {len(col_values)} figures, got {len(row)}")
    row_slider = _slider(row_values, row_label)
    col_slider = _slider(col_values, col_label)
    inner = [widgets.Stack([_as_panel(f, dpi) for f in row], selected_index=0) for row in pngs]
    outer = widgets.Stack(inner, selected_index=0)
    links = [widgets.jslink((row_slider, "index"), (outer, "selected_index"))]
    links += [widgets.jslink((col_slider, "index"), (stack, "selected_index")) for stack in inner]
    return _linked_box([row_slider, col_slider, outer], links)
