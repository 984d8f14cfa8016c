"""Attribution graphs through transcoders on one prompt (Chapter 8).

The replacement model: every MLP output becomes ``f_l @ W_dec + b_dec + err_l``, with ``f_l`` the
transcoder latents read from that layer's MLP input and ``err_l = mlp_out_l - transcoder(x_l)``
the error node of the prompt (a constant). With the attention patterns and LayerNorm scales
frozen at their values on the prompt, everything between one layer's latents and a later
layer's pre-activations, or the output logit, is linear. For a node s (layer l, position p,
latent i, activation a_s) and a target t:

    direct edge   A[s -> t] = a_s * d pre_t / d f_s     (later latents held at their values)
    total effect  E[s]      = a_s * d logit / d f_s     (later latents f = mask * pre, i.e. linear
                                                          in their input with the active set frozen)

Ablating s in the real model (subtracting ``a_s * W_dec[i]`` from ``hook_mlp_out`` at p) should
move the logit by about ``-E[s]``; ``ablation_check`` measures that. The method follows Ameisen
et al. (2025), "Circuit Tracing" (Transformer Circuits Thread), in a minimal form: per-layer
transcoders (Dunefsky, Chlenski and Nanda 2024, arXiv:2406.11944) instead of cross-layer ones,
no pruning by indirect influence, BOS position left out (its MLP output stays clean).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from saelab._checks import check_int_in_range
from saelab.lm.pairs import check_transcoder_widths

__all__ = ["Node", "AttributionGraph", "attribution_graph", "ablate_nodes", "ablation_check",
           "target_token_id"]


class Node(NamedTuple):
    """A transcoder latent active on the prompt: block ``layer``, ``pos``, ``latent``, value."""

    layer: int
    pos: int
    latent: int
    activation: float


class AttributionGraph(NamedTuple):
    """Nodes, direct edges between them, and effects on the target logit (Chapter 8).

    ``edges[s, t]`` is the direct edge from node s to node t (zero unless layer(s) < layer(t));
    ``direct_logit[s]`` its direct edge to the logit; ``total_logit[s]`` its total linear effect;
    ``logit`` the clean target logit; ``error_logit`` the direct effect of all error nodes.
    """

    tokens: torch.Tensor  # [pos]
    target: int
    nodes: list
    edges: np.ndarray  # [n_nodes, n_nodes]
    direct_logit: np.ndarray  # [n_nodes]
    total_logit: np.ndarray  # [n_nodes]
    logit: float
    error_logit: float


def target_token_id(model, target) -> int:
    """Vocabulary id of ``target``: an int id, or a string that is exactly one token."""
    vocab = model.cfg.d_vocab
    if isinstance(target, str):
        ids = model.to_tokens(target, prepend_bos=False)[0].tolist()
        if len(ids) != 1:
            raise ValueError(f"target {target!r} must be a single token of the vocabulary, "
                             f"but it splits into {len(ids)} tokens {ids}")
        return ids[0]
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise ValueError(f"target must be a token id or a one-token string, got {target!r}")
    return check_int_in_range("target", int(target), 0, vocab - 1)


def _prompt_tokens(model, prompt) -> torch.Tensor:
    if isinstance(prompt, str):
        tokens = model.to_tokens(prompt, truncate=False)[0]  # BOS first
    elif isinstance(prompt, torch.Tensor) and prompt.ndim == 1 and prompt.dtype == torch.long:
        tokens = prompt
    else:
        raise ValueError(f"prompt must be a string or a 1-d LongTensor of token ids, got "
                         f"{type(prompt).__name__}")
    if not 2 <= tokens.shape[0] <= model.cfg.n_ctx:
        raise ValueError(f"prompt must have 2..n_ctx = {model.cfg.n_ctx} tokens (BOS included), "
                         f"got {tokens.shape[0]}")
    return tokens.to(model.cfg.device)


def _check_transcoders(model, transcoders) -> None:
    if not isinstance(transcoders, (list, tuple)) or len(transcoders) != model.cfg.n_layers:
        size = f" of {len(transcoders)}" if hasattr(transcoders, "__len__") else ""
        raise ValueError(f"transcoders must be a list of one transcoder per layer "
                         f"({model.cfg.n_layers}), got {type(transcoders).__name__}{size}")
    for layer, tc in enumerate(transcoders):
        check_transcoder_widths(model, tc, layer)


class _Replacement:
    """The frozen, linear replacement model of one prompt, run with probe tensors ``delta``."""

    def __init__(self, model, transcoders, tokens):
        self.model, self.tcs, self.tokens = model, transcoders, tokens
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens[None])
        self.cache = cache
        self.f, self.err = [], []
        for layer, tc in enumerate(transcoders):
            x = cache[f"blocks.{layer}.ln2.hook_normalized"][0].to(tc.W_enc.dtype)  # [pos, d_in]
            with torch.no_grad():
                f = tc.encode(x)  # [pos, d_sae]
                f[0] = 0  # BOS: its MLP output stays clean, no nodes there
                err = cache[f"blocks.{layer}.hook_mlp_out"][0] - tc.predict(x, f)  # [pos, d_out]
            self.f.append(f)
            self.err.append(err)

    def run(self, total: bool):
        """Probes ``delta`` (one per layer, zeros) and the pre-activations and logits they feed."""
        deltas = [torch.zeros_like(f, requires_grad=True) for f in self.f]
        pres = [None] * len(self.tcs)
        hooks = []
        for name in self.cache.keys():
            if name.endswith("hook_pattern") or name.endswith("hook_scale"):
                hooks.append((name, lambda act, hook: self.cache[hook.name]))  # frozen
        for layer, tc in enumerate(self.tcs):
            def read(act, hook, layer=layer, tc=tc):
                pres[layer] = tc.pre_activation(act[0].to(tc.W_enc.dtype))  # [pos, d_sae]

            def write(act, hook, layer=layer, tc=tc):
                f = self.f[layer]
                if total:  # later latents respond linearly to their input, active set frozen
                    f = (f > 0).to(f.dtype) * pres[layer]
                out = (f + deltas[layer]) @ tc.W_dec + tc.b_dec + self.err[layer]  # [pos, d_out]
                out = torch.cat([act[0, :1], out[1:].to(act.dtype)])  # BOS stays clean
                return out[None]

            hooks += [(f"blocks.{layer}.ln2.hook_normalized", read),
                      (f"blocks.{layer}.hook_mlp_out", write)]
        logits = self.model.run_with_hooks(self.tokens[None], fwd_hooks=hooks)[0]  # [pos, vocab]
        return deltas, pres, logits


def attribution_graph(model, transcoders, prompt, target,
                      n_targets: int = 30) -> AttributionGraph:
    """Direct edges between active transcoder latents and their effects on ``target``'s logit
    at the last position of ``prompt`` (see the module docstring). Chapter 8.

    Edges are computed into the ``n_targets`` nodes of largest |total effect| (one backward pass
    each); edges into the other nodes are left at zero.
    """
    _check_transcoders(model, transcoders)
    check_int_in_range("n_targets", n_targets, 1)
    tokens = _prompt_tokens(model, prompt)
    target = target_token_id(model, target)
    rep = _Replacement(model, transcoders, tokens)
    nodes = [Node(layer, int(p), int(i), float(rep.f[layer][p, i]))
             for layer in range(len(transcoders))
             for p, i in rep.f[layer].nonzero().tolist()]
    acts = torch.tensor([n.activation for n in nodes], dtype=torch.float64)

    def gathered(grads):  # per-node derivative from per-layer [pos, d_sae] gradients
        return torch.stack([grads[n.layer][n.pos, n.latent] for n in nodes]).double()

    deltas, _, logits_total = rep.run(total=True)
    total = gathered(torch.autograd.grad(logits_total[-1, target], deltas)) * acts
    deltas, pres, logits = rep.run(total=False)
    logit = logits[-1, target]
    direct = gathered(torch.autograd.grad(logit, deltas, retain_graph=True)) * acts
    edges = np.zeros((len(nodes), len(nodes)))
    for t in np.argsort(-total.abs().numpy())[:n_targets]:
        node = nodes[t]
        if node.layer == 0:
            continue
        grads = torch.autograd.grad(pres[node.layer][node.pos, node.latent], deltas[:node.layer],
                                    retain_graph=True)
        earlier = [s for s, n in enumerate(nodes) if n.layer < node.layer]
        g = torch.stack([grads[nodes[s].layer][nodes[s].pos, nodes[s].latent]
                         for s in earlier]).double()
        edges[earlier, t] = (g * acts[earlier]).numpy()
    # direct effect of the error nodes: the logit's gradient w.r.t. each err_l, dotted with it
    error_logit = _error_direct(rep, target)
    return AttributionGraph(tokens.cpu(), target, nodes, edges, direct.numpy(), total.numpy(),
                            float(logit.detach()), error_logit)


def _check_graph(graph) -> None:
    if not isinstance(graph, AttributionGraph):
        raise ValueError(f"graph must be an AttributionGraph from attribution_graph(), got "
                         f"{type(graph).__name__}")


def _error_direct(rep: _Replacement, target: int) -> float:
    errs = [e.clone().requires_grad_(True) for e in rep.err]
    saved, rep.err = rep.err, errs
    try:
        _, _, logits = rep.run(total=False)
        grads = torch.autograd.grad(logits[-1, target], errs)
    finally:
        rep.err = saved
    return float(sum((g[1:] * e[1:]).sum() for g, e in zip(grads, saved)))


@torch.no_grad()
def ablate_nodes(model, transcoders, graph: AttributionGraph, which,
                 replacement: bool = True) -> float:
    """Change of the target logit when the nodes ``which`` (indices into ``graph.nodes``) are
    ablated (set to zero).

    ``replacement=True``: in the replacement model, where every MLP output is its transcoder's
    prediction plus the prompt's frozen error, latents are recomputed downstream (TopK live) and
    attention and LayerNorm are live. ``replacement=False``: in the real model, subtracting
    ``a_s * W_dec[i]`` from ``hook_mlp_out`` and letting the real MLPs respond.
    """
    _check_graph(graph)
    _check_transcoders(model, transcoders)
    try:
        idx = [int(s) for s in np.atleast_1d(np.asarray(which, dtype=np.int64))]
    except (TypeError, ValueError) as err:
        raise ValueError(f"which must be node indices (ints), got {which!r}") from err
    for s in idx:
        check_int_in_range("which", s, 0, len(graph.nodes) - 1)
    off = {}
    for s in idx:
        n = graph.nodes[s]
        off.setdefault(n.layer, []).append((n.pos, n.latent, n.activation))
    hooks = []
    if replacement:
        rep = _Replacement(model, transcoders, graph.tokens.to(model.cfg.device))
        store = {}
        for layer, tc in enumerate(transcoders):
            def read(act, hook, layer=layer):
                store[layer] = act[0]

            def write(act, hook, layer=layer, tc=tc):
                x = store.pop(layer).to(tc.W_enc.dtype)
                f = tc.encode(x)  # [pos, d_sae], recomputed from this pass's input
                for p, i, _ in off.get(layer, []):
                    f[p, i] = 0
                out = tc.predict(x, f) + rep.err[layer]
                return torch.cat([act[0, :1], out[1:].to(act.dtype)])[None]

            hooks += [(f"blocks.{layer}.ln2.hook_normalized", read),
                      (f"blocks.{layer}.hook_mlp_out", write)]
    else:
        for layer, pairs in off.items():
            tc = transcoders[layer]
            d = torch.zeros(len(graph.tokens), tc.cfg.d_out)
            for p, i, a in pairs:
                d[p] += a * tc.W_dec[i].float()
            hooks.append((f"blocks.{layer}.hook_mlp_out",
                          lambda act, hook, d=d: act - d.to(act)[None]))
    toks = graph.tokens[None].to(model.cfg.device)
    logit = model.run_with_hooks(toks, fwd_hooks=hooks)[0, -1, graph.target]
    return float(logit) - graph.logit


def ablation_check(model, transcoders, graph: AttributionGraph, n_top: int = 10,
                   n_random: int = 20, seed: int = 0, replacement: bool = True) -> dict:
    """Causal test of the graph (Chapter 8).

    ``nodes``: the ``n_top`` nodes of largest |total effect| and ``n_top`` random other nodes;
    ``predicted`` (``-total_logit``) and ``measured`` logit changes when each is ablated alone,
    and their Pearson ``correlation`` (``correlation_direct``: with ``-direct_logit`` instead);
    ``top_change``: the logit change when the top nodes are ablated together (``top_predicted``:
    the graph's sum); ``random_changes``: the same for ``n_random`` draws of ``n_top`` random
    active nodes (any node may be drawn). ``replacement`` as in ``ablate_nodes``.
    """
    _check_graph(graph)
    n = len(graph.nodes)
    check_int_in_range("n_top", n_top, 1, n // 2)
    check_int_in_range("n_random", n_random, 1)
    top = np.argsort(-np.abs(graph.total_logit))[:n_top]
    rng = np.random.default_rng(seed)
    others = rng.choice(np.setdiff1d(np.arange(n), top), n_top, replace=False)
    nodes = np.concatenate([top, others])
    predicted = -graph.total_logit[nodes]
    measured = np.array([ablate_nodes(model, transcoders, graph, s, replacement) for s in nodes])
    random_changes = [ablate_nodes(model, transcoders, graph, rng.choice(n, n_top, replace=False),
                                   replacement)
                      for _ in range(n_random)]
    return dict(nodes=nodes, predicted=predicted, measured=measured,
                correlation=float(np.corrcoef(predicted, measured)[0, 1]),
                correlation_direct=float(np.corrcoef(-graph.direct_logit[nodes], measured)[0, 1]),
                top=top, top_change=ablate_nodes(model, transcoders, graph, top, replacement),
                top_predicted=float(-graph.total_logit[top].sum()),
                random_changes=np.array(random_changes))
