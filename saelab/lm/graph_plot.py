"""Drawing an attribution graph with matplotlib (Chapter 8).

Nodes are placed by layer (y), side by side within a layer in token order, the target logit on
top, each labelled with its latent number and token; only the
``n_nodes`` nodes of largest |total effect| are drawn, with the ``n_edges`` strongest direct edges
among them and their direct edges to the logit. Blue edges excite, red ones inhibit; the width
is proportional to |edge|.
"""
from __future__ import annotations

import numpy as np

from saelab._checks import check_int_in_range

__all__ = ["top_edges", "plot_attribution_graph"]


def top_edges(graph, n_nodes: int = 12, n_edges: int = 25):
    """(kept node indices, [(source, target, weight)]) with target -1 meaning the logit."""
    from saelab.lm.attribution import AttributionGraph

    if not isinstance(graph, AttributionGraph):
        raise ValueError(f"graph must be an AttributionGraph from attribution_graph(), got "
                         f"{type(graph).__name__}")
    check_int_in_range("n_nodes", n_nodes, 1)
    check_int_in_range("n_edges", n_edges, 1)
    kept = [int(s) for s in np.argsort(-np.abs(graph.total_logit))[:n_nodes]]
    edges = [(s, t, float(graph.edges[s, t])) for s in kept for t in kept if graph.edges[s, t]]
    edges += [(s, -1, float(graph.direct_logit[s])) for s in kept]
    edges.sort(key=lambda e: -abs(e[2]))
    return kept, edges[:n_edges]


def plot_attribution_graph(graph, token_strings, n_nodes: int = 12, n_edges: int = 25, ax=None):
    """Draw ``graph`` (``saelab.lm.attribution_graph``); ``token_strings`` label the positions.

    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    top_edges(graph, n_nodes, n_edges)  # checks graph, n_nodes and n_edges
    if not isinstance(token_strings, (list, tuple)) or len(token_strings) != len(graph.tokens):
        raise ValueError(f"token_strings must have one string per prompt token "
                         f"({len(graph.tokens)}), got {token_strings!r}")
    kept, edges = top_edges(graph, n_nodes, n_edges)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 5))
    n_layers = max(n.layer for n in graph.nodes) + 1
    pos_of, width = {-1: (0.0, n_layers)}, 1
    for layer in range(n_layers):  # each layer's kept nodes side by side, by token position
        row = sorted((s for s in kept if graph.nodes[s].layer == layer),
                     key=lambda s: (graph.nodes[s].pos, graph.nodes[s].latent))
        width = max(width, len(row))
        for j, s in enumerate(row):
            pos_of[s] = (j - (len(row) - 1) / 2, layer)
    scale = max(abs(w) for _, _, w in edges) if edges else 1.0
    for s, t, w in edges:
        (x0, y0), (x1, y1) = pos_of[s], pos_of[t]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", color="tab:blue" if w > 0 else "tab:red",
                                    lw=0.5 + 4 * abs(w) / scale, alpha=0.6,
                                    shrinkA=12, shrinkB=12))
    for s in kept:
        n, (x, y) = graph.nodes[s], pos_of[s]
        ax.scatter([x], [y], s=900, color="white", edgecolor="black", zorder=3)
        ax.annotate(f"{n.latent}\n{token_strings[n.pos]!r}", (x, y), ha="center", va="center",
                    fontsize=6, zorder=4)
    target = graph.target
    ax.scatter([0.0], [n_layers], s=900, marker="s", color="gold", zorder=3)
    ax.annotate(f"logit\n#{target}", (0.0, n_layers), ha="center", va="center", fontsize=7,
                zorder=4)
    ax.set_xticks([])
    ax.set_yticks(range(n_layers + 1), [f"layer {i}" for i in range(n_layers)] + ["output"])
    ax.set_xlim(-width / 2 - 0.2, width / 2 + 0.2)
    ax.set_ylim(-0.6, n_layers + 0.6)
    ax.set_title("Attribution graph: node = transcoder latent (number, token); "
                 "blue excites, red inhibits", fontsize=10)
    return ax
