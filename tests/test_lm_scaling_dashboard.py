"""saelab.lm.scaling (activation scale and folding it into the SAE) and saelab.lm.dashboard (HTML
feature dashboards and steering panels as kernel-free widgets), Chapter 6.

The dashboards run on a 2-layer GPT-2-shaped model with a byte-level BPE tokenizer trained on a
few pydoc topics, and a random TopK SAE: what is checked is the plumbing (escaping, shading,
densities, one panel per latent, the random control), not what the latents mean.
"""
import copy
import html
import math
import os
import re

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pydoc_data.topics import topics  # noqa: E402
from transformer_lens import HookedTransformer  # noqa: E402

from saelab import lm  # noqa: E402
from saelab import torch_sae as ts  # noqa: E402
from saelab.lm import dashboard  # noqa: E402
from saelab.lm.features import Context  # noqa: E402
from saelab.lm.scaling import activation_scale, fold_input_scale  # noqa: E402
from saelab.lm.tokenizer import train_tokenizer  # noqa: E402
from saelab.sae_config import TopKConfig  # noqa: E402
from sae_cases import family_configs  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

# ----- activation scale ---------------------------------------------------------------------------


def residual_like(n=2000, d=48, seed=0):
    """Activations with a large offset and uneven scales, like a residual stream (norm ~ 60)."""
    g = torch.Generator().manual_seed(seed)
    return 5 * torch.randn(n, d, generator=g) * torch.linspace(0.2, 3, d) + 7


def test_activation_scale_makes_mean_squared_norm_d_in():
    x = residual_like()
    s = activation_scale(x)
    assert (s * x).double().pow(2).sum(dim=1).mean().item() == pytest.approx(48, rel=1e-6)
    assert s == pytest.approx(math.sqrt(48 / x.double().pow(2).sum(1).mean().item()), rel=1e-12)
    assert activation_scale(3 * x) == pytest.approx(s / 3, rel=1e-6)  # s x is scale-free
    assert activation_scale(x.double()) == pytest.approx(s, rel=1e-6)


@pytest.mark.parametrize("acts, match", [
    (torch.zeros(10, 4), "all zero"),
    (torch.tensor([[1.0, float("nan")], [1.0, 2.0]]), "acts"),
    (torch.tensor([[1.0, float("inf")], [1.0, 2.0]]), "acts"),
    (torch.ones(8), r"shape \(n > 0, d_in\), got \(8,\)"),
    (torch.ones(0, 4), r"got \(0, 4\)"),
    (torch.ones(2, 3, 4), r"got \(2, 3, 4\)"),
])
def test_activation_scale_bad_input(acts, match):
    with pytest.raises(ValueError, match=match):
        activation_scale(acts)


# ----- folding the scale into every SAE family ----------------------------------------------------

D_IN, D_SAE = 12, 40
FAMILIES = family_configs(D_IN, D_SAE, threshold_init=0.3)


def random_sae(cfg, seed=0):
    """A float64 torch SAE with random weights and biases, as if trained on scaled inputs."""
    torch.manual_seed(seed)  # the weights
    g = torch.Generator().manual_seed(seed)  # the biases and thresholds
    sae = ts.make_sae(cfg, dtype=torch.float64)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            if name in ("b_enc", "b_gate", "b_mag", "b_dec", "r_mag"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        if hasattr(sae, "threshold"):  # JumpReLU's per latent, BatchTopK's global one
            sae.threshold.copy_(0.2 + 0.3 * torch.rand(sae.threshold.shape, generator=g,
                                                       dtype=torch.float64))
    return sae


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("train_mode", [False, True])  # BatchTopK: threshold vs batch top-k
def test_fold_input_scale(family, train_mode):
    x = residual_like(n=64, d=D_IN).double()  # raw activations, norm ~ 30
    s = activation_scale(x)  # ~ 0.12
    sae = random_sae(FAMILIES[family]).train(train_mode)
    folded = fold_input_scale(copy.deepcopy(sae), s)
    want = sae(s * x)  # the SAE as trained: on scaled inputs, reconstructing scaled inputs
    got = folded(x)  # the folded SAE: raw in, raw out
    assert (want.f > 0).float().mean() > 0.05  # some latents fire (measured 0.125 to 0.56)
    assert (want.f == 0).float().mean() > 0.05  # and some do not
    torch.testing.assert_close(got.pre_acts, want.pre_acts, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got.f, want.f, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got.x_hat, want.x_hat / s, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(folded.W_dec.norm(dim=1), sae.W_dec.norm(dim=1) / s)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_fold_rejects_bad_scale(scale):
    sae = random_sae(FAMILIES["topk"])
    before = {k: v.clone() for k, v in sae.state_dict().items()}
    with pytest.raises(ValueError, match="scale"):
        fold_input_scale(sae, scale)
    assert all(torch.equal(before[k], v) for k, v in sae.state_dict().items())  # untouched


# ----- dashboards ---------------------------------------------------------------------------------

HOOK = "blocks.1.hook_resid_pre"
SPAN = re.compile(r'<span class="saelab-tok" tabindex="0" data-act="([^"]*)" style="([^"]*)" '
                  r'title="([^"]*)">(.*?)</span>')


def test_context_html_escapes_shades_and_underlines():
    ctx = Context(window=3, position=7, activation=4.0, tokens=[5, 6, 7, 8, 9],
                  acts=[0.0, 2.0, 4.0, -1.0, 6.0], strings=["<b>", "a\nb", "peak", "\t&", " x"],
                  peak=2)
    out = dashboard.context_html(ctx, scale=4.0)
    assert "<b>" not in out and "&lt;b&gt;" in out  # token text cannot inject markup
    assert "\n" not in out and "a\u21b5b" in out  # newlines shown as the return sign
    assert "\u21e5&amp;" in out  # tabs as an arrow, & escaped
    spans = SPAN.findall(out)
    assert [html.unescape(t) for _, _, _, t in spans] == ["<b>", "a\u21b5b", "peak", "\u21e5&", " x"]
    assert [title for _, _, title, _ in spans] == ["0.00", "2.00", "4.00", "-1.00", "6.00"]
    assert [act for act, _, _, _ in spans] == ["0.00", "2.00", "4.00", "-1.00", "6.00"]  # for a tap
    opacity = [float(re.search(r"rgba\(255, 120, 0, ([0-9.]+)\)", st).group(1))
               for _, st, _, _ in spans]
    assert opacity == [0.0, 0.5, 1.0, 0.0, 1.0]  # act / scale, clipped to [0, 1]
    underlined = [t for _, st, _, t in spans if "underline" in st]
    assert underlined == ["peak"]  # the peak only
    assert "4.00 </span>" in out  # the peak activation leads the line


DOCS = [topics[name] for name in sorted(topics)][:6]  # six pydoc topics, 33k characters


@pytest.fixture(scope="module")
def model():
    tok = train_tokenizer(DOCS, 300)
    torch.manual_seed(0)
    return HookedTransformer(lm.gpt2_like_config(d_model=32, n_ctx=32, d_vocab=len(tok)),
                             tokenizer=tok).eval()


@pytest.fixture(scope="module")
def tokens(model):
    return lm.token_windows(model, DOCS, seq_len=16, max_windows=12)  # [12, 16]


@pytest.fixture(scope="module")
def sae():
    torch.manual_seed(0)
    sae = ts.TopKSAE(TopKConfig(d_in=32, d_sae=64, k=4))
    with torch.no_grad():  # latent 9 never fires: every pre-activation is negative
        sae.W_enc[:, 9] = 0
        sae.b_enc[9] = -1.0
    return sae


def test_feature_dashboard(model, sae, tokens):
    latents = [0, 5, 9]
    box = dashboard.feature_dashboard(model, sae, tokens, HOOK, latents, n_contexts=4)
    slider, stack = box.children
    assert [label for label, _ in slider.options] == ["0", "5", "9"]
    assert len(stack.children) == 3 and len(box.links) == 1
    # densities recomputed independently from harvested activations (BOS dropped)
    f = sae.encode(lm.harvest(model, tokens, HOOK, progress=False))  # [n_kept, 64]
    for latent, panel in zip(latents, stack.children):
        text = panel.value
        assert f"<b>latent {latent}</b>" in text
        for word in ("promoted", "suppressed", "fires on", "data:image/png;base64,"):
            assert word in text
        density = (f[:, latent] > 0).double().mean().item()
        assert f"fires on {100 * density:.3f}% of tokens" in text
        n_contexts = text.count("text-decoration:underline")
        assert n_contexts == min(4, int((f[:, latent] > 0).sum()))
    assert "never fires on this text" in stack.children[2].value
    assert (f[:, 0] > 0).sum() >= 4  # latent 0 fires (measured on 45% of 180 tokens, 5 on 1%)
    with pytest.raises(ValueError, match="latents must name at least one latent"):
        dashboard.feature_dashboard(model, sae, tokens, HOOK, [])


def test_latent_panel_promoted_tokens_are_the_logit_effect(model, sae, tokens):
    acts = lm.latent_activations(model, sae, tokens, HOOK, [0])[..., 0]  # [12, 16]
    keep = lm.keep_mask(tokens, 0, 0)
    panel = dashboard.latent_panel(model, sae, tokens, acts, keep, 0, n_contexts=2, n_logits=3)
    effect = lm.logit_effect(model, sae, 0, k=3)
    promoted = panel.split("<b>promoted</b>")[1].split("</div>")[0]
    for s, v in zip(effect.promoted_strings, effect.promoted_values):
        assert f"<code>{dashboard.show_token(s)}</code> {v:+.2f}" in promoted
    assert panel.count("text-decoration:underline") == 2


ROW = re.compile(r"<div><b>(latent direction|random control)</b>: next token (.*?) &middot; on "
                 r"the latent's promoted tokens: ([0-9.]+)<div style=\"[^\"]*\">(.*?)</div></div>")


def _rows(panel: str) -> dict[str, tuple[str, float, str]]:
    """label -> (next-token list, probability on the promoted tokens, continuation HTML)."""
    return {label: (top, float(p), text) for label, top, p, text in ROW.findall(panel)}


def test_steering_widget(model, sae):
    latents, alphas = [0, 3], [0.0, 30.0]
    box = dashboard.steering_widget(model, sae, "The for", HOOK, latents, alphas,
                                    max_new_tokens=5)
    row_slider, col_slider, outer = box.children
    assert [label for label, _ in row_slider.options] == ["0", "3"]
    assert [label for label, _ in col_slider.options] == ["0.0", "30.0"]
    panels = [[p.value for p in inner.children] for inner in outer.children]
    assert [len(r) for r in panels] == [2, 2]
    for row in panels:
        for panel in row:
            assert "random control" in panel
            assert set(_rows(panel)) == {"latent direction", "random control"}
        unsteered = _rows(row[0])
        assert unsteered["latent direction"] == unsteered["random control"]  # alpha = 0
        steered = _rows(row[1])
        assert steered["latent direction"][2] != unsteered["latent direction"][2]  # alpha acts
    with pytest.raises(ValueError, match="need at least one latent and one alpha"):
        dashboard.steering_widget(model, sae, "The for", HOOK, [0], [])


def test_steering_panel_is_the_steered_generation(model, sae):
    prompt, alpha = "The for", 30.0
    direction = sae.W_dec[3].detach()
    promoted = lm.logit_effect(model, sae, 3, k=10).promoted_ids
    panel = dashboard.steering_panel(model, prompt, HOOK, direction, alpha, promoted,
                                     max_new_tokens=5)
    rows = _rows(panel)
    tokens = model.to_tokens(prompt)
    for label, d in (("latent direction", direction),
                     ("random control", lm.random_direction(direction, 0))):
        text = lm.generate_steered(model, prompt, HOOK, d, alpha, max_new_tokens=5)
        top, p_promoted, shown = rows[label]
        assert shown == (f'The for<span style="background:#fde3c8">'
                         f'{dashboard.show_token(text[len(prompt):])}</span>')
        probs = lm.steered_logits(model, tokens, HOOK, d, alpha)[0, -1].softmax(-1)
        assert p_promoted == pytest.approx(probs[promoted].sum().item(), abs=5e-4)
        best = int(probs.argmax())
        assert top.startswith(f"<code>{dashboard.show_token(model.tokenizer.decode([best]))}"
                              f"</code> {probs[best].item():.2f}")
    assert rows["latent direction"][2] != rows["random control"][2]
    # the latent's own direction puts more mass on its promoted tokens than the control does:
    # measured 0.116 against 0.042 (0.044 unsteered); 2.1 to 11 times over latents 0..7
    assert rows["latent direction"][1] > 2 * rows["random control"][1]


def test_panels_are_light_cards_that_wrap_and_show_values_on_tap(model, sae, tokens):
    acts = lm.latent_activations(model, sae, tokens, HOOK, [0])[..., 0]  # [12, 16]
    keep = lm.keep_mask(tokens, 0, 0)
    panel = dashboard.latent_panel(model, sae, tokens, acts, keep, 0, n_contexts=2, n_logits=3)
    steer = dashboard.steering_panel(model, "The for", HOOK, sae.W_dec[3].detach(), 30.0,
                                     max_new_tokens=3)
    for html_ in (panel, steer):  # own colours: readable in light and dark themes alike
        assert html_.startswith(dashboard.PANEL_CSS + '<div class="saelab-dash">')
    card = re.search(r"\.saelab-dash\{([^}]*)\}", dashboard.PANEL_CSS).group(1)
    assert "background:#fff" in card and "color:#1a1a1a" in card
    # narrow screens: the histogram row wraps, the image shrinks, context lines wrap (not cut)
    assert "flex-wrap:wrap" in panel and 'style="max-width:100%;height:auto"' in panel
    assert "overflow:hidden" not in panel and "white-space:pre;" not in panel
    # touch screens: a tap focuses a token, and a focused token shows its data-act
    n_tokens = panel.count('class="saelab-tok"')
    assert n_tokens >= 2 and panel.count('class="saelab-tok" tabindex="0" data-act="') == n_tokens
    assert re.search(r"\.saelab-tok:focus::after\{content:attr\(data-act\)", dashboard.PANEL_CSS)
