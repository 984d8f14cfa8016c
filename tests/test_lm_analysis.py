"""saelab.lm splice evaluation, feature analysis and steering on a tiny GPT-2-shaped model (Ch. 6)."""
import os

import numpy as np
import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformer_lens import HookedTransformer  # noqa: E402

from saelab import lm  # noqa: E402
from saelab.sae_config import L1Config, TopKConfig  # noqa: E402
from saelab.torch_sae import L1SAE, TopKSAE  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

BOS, PAD, D, PLANTED = 0, 1, 64, 7


@pytest.fixture(scope="module")
def model():
    return HookedTransformer(lm.gpt2_like_config(d_model=D, n_ctx=32, d_vocab=200)).eval()


@pytest.fixture(scope="module")
def trained():
    """The tiny model after 60 Adam steps on counting sequences (next = previous + 1), so that
    zero-ablating its residual stream costs loss (an untrained model predicts uniformly).
    Module-scoped fixtures run before the function-scoped ``one_thread``: set one thread here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = HookedTransformer(lm.gpt2_like_config(d_model=D, n_ctx=32, d_vocab=200))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for step in range(60):
        loss = m(counting(16, seed=step + 2), return_type="loss")
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    return m.eval()


def counting(n, seed):
    start = torch.randint(8, 170, (n, 1), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.full((n, 1), BOS), start + torch.arange(23)], dim=1)  # [n, 24]


@pytest.fixture(scope="module")
def count_tokens():
    toks = counting(12, seed=1)
    toks[1, 20:] = PAD
    return toks


@pytest.fixture(scope="module")
def tokens():
    toks = torch.randint(8, 200, (12, 24), generator=torch.Generator().manual_seed(0))
    toks[:, 0] = BOS
    toks[1, 20:] = PAD
    return toks


class Identity(nn.Module):
    def forward(self, x):
        return x


def identity_sae(d):
    """A real L1 SAE that reconstructs exactly: relu(x) - relu(-x) = x, with 2d latents."""
    sae = L1SAE(L1Config(d_in=d, d_sae=2 * d))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


@pytest.mark.parametrize("make", [lambda: Identity(), lambda: identity_sae(D)])
def test_perfect_reconstruction_gives_clean_ce(trained, count_tokens, make):
    tokens = count_tokens
    losses = lm.ce_losses(trained, make(), tokens, "blocks.1.hook_resid_pre", batch_size=5,
                          bos_token_id=BOS, pad_token_id=PAD)
    assert losses.spliced == pytest.approx(losses.clean, abs=1e-5)
    assert losses.zero_ablated > losses.clean
    assert lm.ce_loss_recovered(losses) == pytest.approx(1.0, abs=1e-4)
    assert lm.delta_ce_loss(losses) == pytest.approx(0.0, abs=1e-5)


def test_zero_ablation_matches_a_hand_written_hook(trained, count_tokens):
    tokens = count_tokens
    model = trained
    hook = "blocks.1.hook_resid_pre"
    sae = TopKSAE(TopKConfig(d_in=D, d_sae=128, k=4))
    losses = lm.ce_losses(model, sae, tokens, hook, bos_token_id=BOS, pad_token_id=PAD)

    def fresh(act, hook):
        keep = (tokens != PAD) & (tokens != BOS)
        return torch.where(keep[..., None], torch.zeros_like(act), act)

    logits = model.run_with_hooks(tokens, fwd_hooks=[(hook, fresh)])
    per_tok = model.loss_fn(logits, tokens, per_token=True).detach()
    w = (tokens[:, 1:] != PAD).float()
    assert losses.zero_ablated == pytest.approx(float((per_tok * w).sum() / w.sum()), rel=1e-5)
    assert losses.clean < losses.spliced  # a random SAE loses information
    assert lm.ce_loss_recovered(losses) < 1


def planted_sae(model):
    """Latent 0 reads the embedding direction of token PLANTED and fires only where it occurs."""
    sae = L1SAE(L1Config(d_in=D, d_sae=16))
    e = model.W_E[PLANTED].detach()
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.W_enc[:, 0] = e / e.norm()
        sae.b_enc.fill_(-1.0)  # the other latents never fire
        sae.b_enc[0] = -0.5 * e.norm()
        sae.b_dec.zero_()
    return sae


def test_top_contexts_find_planted_feature(model, tokens):
    toks = tokens.clone()
    where = [(2, 5), (4, 17), (7, 9), (9, 3), (11, 22)]
    for w, t in where:
        toks[w, t] = PLANTED
    acts = lm.latent_activations(model, planted_sae(model), toks, "blocks.0.hook_resid_pre",
                                 [0, 1], bos_token_id=BOS, pad_token_id=PAD)
    assert acts.shape == (12, 24, 2)
    assert torch.equal(acts[..., 0] > 0, toks == PLANTED) and not acts[..., 1].any()
    contexts = lm.top_contexts(model, toks, acts[..., 0], k=10, left=3, right=1)
    assert sorted((c.window, c.position) for c in contexts) == where  # only 5 positions fire
    c = contexts[0]
    assert c.tokens[c.peak] == PLANTED and c.strings[c.peak] == f"<{PLANTED}>"
    assert c.acts[c.peak] == pytest.approx(c.activation)
    keep = lm.keep_mask(toks, BOS, PAD)
    assert lm.latent_density(acts[..., 0], keep) == pytest.approx(5 / int(keep.sum()))
    hist = lm.activation_histogram(acts[..., 0], bins=4)
    assert hist.counts.sum() == 5 and len(hist.edges) == 5


def test_logit_effect_is_decoder_row_times_unembedding(model):
    sae = TopKSAE(TopKConfig(d_in=D, d_sae=32, k=4))
    eff = lm.logit_effect(model, sae, 3, k=5)
    ref = (sae.W_dec[3] @ model.W_U).detach()
    assert eff.promoted_ids == ref.topk(5).indices.tolist()
    assert eff.suppressed_ids == (-ref).topk(5).indices.tolist()
    assert eff.promoted_values[0] == pytest.approx(float(ref.max()), rel=1e-5)
    assert eff.suppressed_strings[0] == f"<{int(ref.argmin())}>"


def test_steering_moves_logits_toward_promoted_tokens(model, tokens):
    """Mean rise of the top promoted token's next-token logit: latents vs equal-norm random."""
    torch.manual_seed(0)
    sae = TopKSAE(TopKConfig(d_in=D, d_sae=32, k=4))
    hook, prompt = "blocks.1.hook_resid_pre", tokens[:, :16]
    base = model(prompt)[:, -1].detach()  # [b, vocab]
    rise, control = [], []
    for i in range(32):
        d = sae.W_dec[i].detach()
        top = lm.logit_effect(model, sae, i, k=1).promoted_ids[0]
        steered = lm.steered_logits(model, prompt, hook, d, 4.0)[:, -1]
        rand = lm.steered_logits(model, prompt, hook, lm.random_direction(d, seed=i), 4.0)[:, -1]
        rise.append(float((steered - base)[:, top].mean()))
        control.append(float((rand - base)[:, top].mean()))
    # measured: latents +0.79 on average, 31 of 32 positive; random +0.12 on average (|.| 0.40)
    assert np.mean(np.array(rise) > 0) > 0.9 and np.mean(rise) > 0.6
    assert np.mean(rise) > 4 * abs(np.mean(control))
    assert np.mean(rise) > 1.5 * np.mean(np.abs(control))


def test_generate_steered(model, tokens):
    d = TopKSAE(TopKConfig(d_in=D, d_sae=32, k=4)).W_dec[0].detach()
    prompt, hook = tokens[:2, :8], "blocks.1.hook_resid_pre"
    plain = model.generate(prompt, max_new_tokens=6, do_sample=False, verbose=False,
                           stop_at_eos=False)
    assert torch.equal(lm.generate_steered(model, prompt, hook, d, 0.0, max_new_tokens=6), plain)
    a = lm.generate_steered(model, prompt, hook, d, 8.0, max_new_tokens=6, do_sample=True, seed=3)
    b = lm.generate_steered(model, prompt, hook, d, 8.0, max_new_tokens=6, do_sample=True, seed=3)
    assert torch.equal(a, b) and a.shape == (2, 14)
    r = lm.random_direction(d, seed=1)
    assert float(r.norm()) == pytest.approx(float(d.norm()), rel=1e-5)
    with pytest.raises(ValueError, match=r"direction must have shape \(64,\)"):
        lm.generate_steered(model, prompt, hook, d[:10], 1.0)
    assert not model.hook_dict[hook].fwd_hooks  # the steering hook is gone afterwards
