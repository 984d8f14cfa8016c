"""Drawing an attribution graph with matplotlib (Chapter 8).

Nodes are placed by token position (x) and layer (y), the target logit on top; only the
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

    if len(token_strings) != len(graph.tokens):
        raise ValueError(f"token_strings must have one string per prompt token "
                         f"({len(graph.tokens)}), got {len(token_strings)}")
    kept, edges = top_edges(graph, n_nodes, n_edges)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 5))
    n_layers = max(n.layer for n in graph.nodes) + 1
    pos_of, slot = {}, {}
    for s in kept:
        n = graph.nodes[s]
        j = slot.setdefault((n.layer, n.pos), 0)
        slot[(n.layer, n.pos)] += 1
        pos_of[s] = (n.pos + 0.22 * j - 0.3, n.layer)
    pos_of[-1] = (len(graph.tokens) - 1, n_layers)
    scale = max(abs(w) for _, _, w in edges) if edges else 1.0
    for s, t, w in edges:
        (x0, y0), (x1, y1) = pos_of[s], pos_of[t]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", color="tab:blue" if w > 0 else "tab:red",
                                    lw=0.5 + 4 * abs(w) / scale, alpha=0.7))
    for s in kept:
        n, (x, y) = graph.nodes[s], pos_of[s]
        ax.scatter([x], [y], s=300, color="white", edgecolor="black", zorder=3)
        ax.annotate(str(n.latent), (x, y), ha="center", va="center", fontsize=7, zorder=4)
    ax.scatter([pos_of[-1][0]], [n_layers], s=500, marker="s", color="gold", zorder=3)
    ax.annotate("logit", pos_of[-1], ha="center", va="center", fontsize=8, zorder=4)
    ax.set_xticks(range(len(token_strings)), [repr(t) for t in token_strings], fontsize=8)
    ax.set_yticks(range(n_layers + 1), [f"layer {i}" for i in range(n_layers)] + ["output"])
    ax.set_xlim(-0.8, len(token_strings) - 0.2)
    ax.set_ylim(-0.6, n_layers + 0.6)
    ax.set_title("Attribution graph: transcoder latents -> target logit "
                 "(blue excites, red inhibits)")
    return ax
