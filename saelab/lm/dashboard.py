"""Feature dashboards and steering panels as widgets that work in the static book.

A dashboard panel for latent i shows what :mod:`saelab.lm.features` measures (the layout of
Bricken et al. 2023): firing density, the top-activating contexts with every token shaded by the
latent's activation, the histogram of its non-zero activations, and the tokens its decoder row
promotes and suppresses through the unembedding. A steering panel shows greedy continuations of a
prompt with ``alpha * W_dec[i]`` added at the hook, next to the same with a random direction of
equal norm (:mod:`saelab.lm.steering`), with the next-token distribution and the probability it
puts on the latent's promoted tokens.

Panels are HTML computed once in Python; :func:`saelab.widgets.figure_slider` and
:func:`saelab.widgets.figure_grid` flip between them in the browser, so the widgets keep working
in the rendered book without a kernel. Taught in Chapter 6.
"""
from __future__ import annotations

import base64
import html
from typing import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from saelab._checks import check_instance, check_int_in_range, check_positive, check_sae
from saelab.lm.features import (Context, activation_histogram, latent_activations,
                                latent_density, logit_effect, top_contexts)
from saelab.lm.harvesting import _special_ids, keep_mask
from saelab.lm.steering import generate_steered, random_direction, steered_logits
from saelab.widgets import fig_to_png, figure_grid, figure_slider

__all__ = ["show_token", "context_html", "latent_panel", "feature_dashboard", "steering_panel",
           "steering_widget"]

_SHADE = "rgba(255, 120, 0, {:.2f})"  # orange, opacity = activation / max activation


def show_token(s: str) -> str:
    """A token's text made visible in HTML: newlines as the return sign, tabs as an arrow."""
    check_instance("s", s, str, "a str")
    return html.escape(s).replace("\n", "\u21b5").replace("\t", "\u21e5")


def context_html(ctx: Context, scale: float) -> str:
    """One context as a line of tokens, each shaded by ``act / scale``; the peak is underlined.

    Each token carries its activation (``data-act``, and ``title`` for a hover tooltip) and is
    focusable, so that a tap on a touch screen shows the value too (see :data:`PANEL_CSS`). The
    line wraps rather than being cut at the panel's edge.
    """
    check_instance("ctx", ctx, Context, "a Context (from top_contexts)")
    scale = check_positive("scale", scale)
    spans = []
    for j, (s, a) in enumerate(zip(ctx.strings, ctx.acts)):
        style = f"background:{_SHADE.format(min(max(a / scale, 0.0), 1.0))}"
        if j == ctx.peak:
            style += ";text-decoration:underline;font-weight:bold"
        spans.append(f'<span class="saelab-tok" tabindex="0" data-act="{a:.2f}" style="{style}" '
                     f'title="{a:.2f}">{show_token(s)}</span>')
    return (f'<div style="font-family:monospace;white-space:pre-wrap;overflow-wrap:anywhere;'
            f'line-height:1.8"><span style="color:#595959">{ctx.activation:6.2f} </span>'
            f'{"".join(spans)}</div>')


# The panels are HTML widgets, shown in Jupyter, on Colab and in the book, in light and dark
# themes: each is a light card with its own text colours, and its tokens show their activation
# on hover and on focus (a tap on a touch screen focuses a token).
PANEL_CSS = (
    "<style>"
    ".saelab-dash{background:#fff;color:#1a1a1a;padding:6px 8px;border-radius:4px;"
    "max-width:100%;box-sizing:border-box}"
    ".saelab-dash code{color:inherit;background:#eee}"
    ".saelab-dash .saelab-tok{position:relative;cursor:pointer}"
    ".saelab-dash .saelab-tok:hover::after,.saelab-dash .saelab-tok:focus::after{"
    "content:attr(data-act);position:absolute;left:0;top:100%;z-index:3;background:#1a1a1a;"
    "color:#fff;font-size:11px;line-height:1.3;padding:0 3px;border-radius:2px;"
    "white-space:nowrap;font-weight:normal}"
    "</style>"
)


def _card(body: str) -> str:
    return f'{PANEL_CSS}<div class="saelab-dash">{body}</div>'


def _histogram_png(acts: torch.Tensor, latent: int) -> str:
    hist = activation_histogram(acts)
    fig, ax = plt.subplots(figsize=(3.6, 2.2))
    ax.stairs(hist.counts, hist.edges, fill=True, color="tab:orange")
    ax.set(xlabel="activation (non-zero)", ylabel="tokens", title=f"latent {latent}")
    return base64.b64encode(fig_to_png(fig, dpi=100)).decode("ascii")


def _token_list(strings, values) -> str:
    return "<br>".join(f"<code>{show_token(s)}</code> {v:+.2f}" for s, v in zip(strings, values))


def latent_panel(model, sae, tokens: torch.Tensor, acts: torch.Tensor, keep: torch.Tensor,
                 latent: int, n_contexts: int = 8, n_logits: int = 6) -> str:
    """HTML dashboard of one latent from its activations ``acts`` [n_windows, seq_len]."""
    contexts = top_contexts(model, tokens, acts, k=n_contexts)
    scale = max((c.activation for c in contexts), default=1.0)
    effect = logit_effect(model, sae, latent, k=n_logits)
    body = "".join(context_html(c, scale) for c in contexts) or "<i>never fires on this text</i>"
    # The histogram and the two token lists sit side by side and wrap onto new rows on a narrow
    # screen; the histogram shrinks to the panel's width.
    return _card(
        f"<div><b>latent {latent}</b> &middot; fires on "
        f"{100 * latent_density(acts, keep):.3f}% of tokens</div>"
        f'<div style="display:flex;flex-wrap:wrap;gap:8px 24px;align-items:flex-start">'
        f'<img style="max-width:100%;height:auto" '
        f'src="data:image/png;base64,{_histogram_png(acts, latent)}"/>'
        f"<div><b>promoted</b><br>{_token_list(effect.promoted_strings, effect.promoted_values)}</div>"
        f"<div><b>suppressed</b><br>"
        f"{_token_list(effect.suppressed_strings, effect.suppressed_values)}</div></div>"
        f"<div><b>top contexts</b> (peak underlined; tap or hover a token for its activation)"
        f"</div>{body}")


def feature_dashboard(model, sae, tokens: torch.Tensor, hook_name: str, latents: Sequence[int],
                      n_contexts: int = 8, n_logits: int = 6) -> widgets.VBox:
    """A slider over ``latents`` showing each one's dashboard (computed now, one forward pass)."""
    if len(latents) == 0:
        raise ValueError("latents must name at least one latent, got []")
    acts = latent_activations(model, sae, tokens, hook_name, latents)  # [w, t, n_latents]
    bos, pad = _special_ids(model, "auto", "auto")
    keep = keep_mask(tokens, bos, pad)
    panels = [widgets.HTML(latent_panel(model, sae, tokens, acts[..., j], keep, int(i),
                                        n_contexts, n_logits))
              for j, i in enumerate(latents)]
    return figure_slider(panels, [int(i) for i in latents], description="latent")


def _next_token_html(model, logits: torch.Tensor, promoted: list[int], k: int = 5) -> str:
    probs = logits.float().softmax(-1)  # [d_vocab]
    top = probs.topk(k)
    items = ", ".join(f"<code>{show_token(model.tokenizer.decode([int(i)]))}</code> {p:.2f}"
                      for p, i in zip(top.values.tolist(), top.indices.tolist()))
    return f"{items} &middot; on the latent's promoted tokens: {probs[promoted].sum():.3f}"


def steering_panel(model, prompt: str, hook_name: str, direction: torch.Tensor, alpha: float,
                   promoted: Sequence[int] = (), max_new_tokens: int = 24, seed: int = 0) -> str:
    """HTML: ``prompt`` steered by ``direction`` and by its random control (equal norm).

    For each: the five likeliest next tokens with their probabilities, the total probability of
    the ``promoted`` token ids (the latent's logit-effect tokens), and the greedy continuation.
    """
    check_instance("prompt", prompt, str, "a str")
    control = random_direction(direction, seed)
    tokens = model.to_tokens(prompt)  # [1, pos]
    promoted = [int(i) for i in promoted]
    rows = []
    for label, d in (("latent direction", direction), ("random control", control)):
        logits = steered_logits(model, tokens, hook_name, d, alpha)[0, -1]  # [d_vocab]
        text = generate_steered(model, prompt, hook_name, d, alpha, max_new_tokens=max_new_tokens)
        new = text[len(prompt):] if text.startswith(prompt) else text
        rows.append(f"<div><b>{label}</b>: next token {_next_token_html(model, logits, promoted)}"
                    f'<div style="font-family:monospace;white-space:pre-wrap">'
                    f'{html.escape(prompt)}<span style="background:#fde3c8">{show_token(new)}'
                    f"</span></div></div>")
    return _card("".join(rows))


def steering_widget(model, sae, prompt: str, hook_name: str, latents: Sequence[int],
                    alphas: Sequence[float], unit: float = 1.0, max_new_tokens: int = 24,
                    seed: int = 0) -> widgets.VBox:
    """Sliders over latents and strengths; each panel is :func:`steering_panel`.

    ``prompt`` is a string, so the model needs a tokenizer. The promoted tokens of each panel are
    the latent's ten logit-effect tokens (``logit_effect``).

    The direction added is ``alpha * unit * W_dec[i] / ||W_dec[i]||``: choose ``unit`` as a
    typical residual-stream norm so that ``alpha`` reads as a fraction of it.
    """
    if len(latents) == 0 or len(alphas) == 0:
        raise ValueError(f"need at least one latent and one alpha, got {list(latents)} and "
                         f"{list(alphas)}")
    check_sae("sae", sae)
    latents = [check_int_in_range("latents", i, 0, sae.cfg.d_sae - 1) for i in latents]
    rows = []
    for i in latents:
        row = sae.W_dec[int(i)].detach()
        direction = unit * row / row.norm()
        promoted = logit_effect(model, sae, int(i), k=10).promoted_ids
        rows.append([widgets.HTML(steering_panel(model, prompt, hook_name, direction, a, promoted,
                                                 max_new_tokens, seed)) for a in alphas])
    return figure_grid(rows, [int(i) for i in latents], list(alphas), row_label="latent",
                       col_label="alpha")
