"""Tests for saelab.widgets: kernel-free sliders over precomputed figures (Chapter 1)."""
import ipywidgets as widgets
from ipywidgets.widgets.widget_link import Link
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from saelab.widgets import fig_to_png, figure_grid, figure_slider  # noqa: E402


def _png(label):
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title(str(label))
    return fig_to_png(fig, dpi=30)


def test_fig_to_png_returns_png_and_closes():
    fig, _ = plt.subplots(figsize=(1, 1))
    n_before = len(plt.get_fignums())
    png = fig_to_png(fig, dpi=30)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(plt.get_fignums()) == n_before - 1


def _link_ends(link):
    (src, src_attr), (dst, dst_attr) = link.source, link.target
    return src, src_attr, dst, dst_attr


def test_figure_slider_links_slider_index_to_stack():
    pngs = [_png(i) for i in range(3)]
    box = figure_slider(pngs, [0.1, 0.2, 0.3], description="sparsity")
    assert isinstance(box, widgets.VBox)
    slider, stack = box.children
    assert isinstance(slider, widgets.SelectionSlider) and isinstance(stack, widgets.Stack)
    assert [lbl for lbl, _ in slider.options] == ["0.1", "0.2", "0.3"]
    assert len(stack.children) == 3 and all(isinstance(c, widgets.Image) for c in stack.children)
    assert [c.value for c in stack.children] == pngs
    assert len(box.links) == 1
    link = box.links[0]
    assert isinstance(link, Link)
    assert _link_ends(link) == (slider, "index", stack, "selected_index")


def test_figure_slider_accepts_figures():
    figs = [plt.subplots(figsize=(1, 1))[0] for _ in range(2)]
    box = figure_slider(figs, ["a", "b"])
    assert all(c.value[:4] == b"\x89PNG" for c in box.children[1].children)
    assert not any(plt.fignum_exists(f.number) for f in figs)


def test_figure_grid_structure_and_links():
    rows, cols = [0.0, 0.5], [0.8, 0.9, 1.0]
    pngs = [[_png((i, j)) for j in range(3)] for i in range(2)]
    box = figure_grid(pngs, rows, cols, row_label="sparsity", col_label="decay")
    row_slider, col_slider, outer = box.children
    assert row_slider.description == "sparsity" and col_slider.description == "decay"
    assert isinstance(outer, widgets.Stack) and len(outer.children) == 2
    n_images = 0
    for i, inner in enumerate(outer.children):
        assert isinstance(inner, widgets.Stack) and len(inner.children) == 3
        assert [c.value for c in inner.children] == pngs[i]
        n_images += len(inner.children)
    assert n_images == 6
    assert len(box.links) == 1 + 2
    assert _link_ends(box.links[0]) == (row_slider, "index", outer, "selected_index")
    for link, inner in zip(box.links[1:], outer.children):
        assert _link_ends(link) == (col_slider, "index", inner, "selected_index")


def test_bad_input():
    with pytest.raises(ValueError, match="need one figure per value: got 1 figures and 2 values"):
        figure_slider([_png(0)], [1, 2])
    with pytest.raises(ValueError, match="row 0 must hold 2 figures, got 1"):
        figure_grid([[_png(0)]], [1], [1, 2])
    with pytest.raises(ValueError, match="must be distinct"):
        figure_slider([_png(0), _png(1)], [1, 1])


def test_widgets_fit_a_phone_column_and_images_are_sharp():
    import struct

    box = figure_grid([[_png(0), _png(1)]], [0.1], ["a", "b"])
    row_slider, col_slider, outer = box.children
    for s in (row_slider, col_slider):  # 420 px where there is room, never wider than the column
        assert s.layout.width == "420px" and s.layout.max_width == "100%"
    image = outer.children[0].children[0]
    assert image.layout.max_width == "100%" and image.layout.height == "auto"
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    width = struct.unpack(">I", fig_to_png(fig)[16:20])[0]  # the PNG header's width field
    assert 360 <= width <= 420, width  # 4 in at the default 100 dpi (bbox "tight"): 372 px measured
