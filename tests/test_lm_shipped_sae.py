"""Chapter 6 end to end on the shipped model, and the same pipeline on GPT-2 small when online.

The offline test runs the chapter's recipe at a smaller budget: harvest the middle residual
stream of saelab-tiny through the shuffling buffer, train a TopK SAE on scaled activations, fold
the scale back, and measure FVU, L0 and CE loss recovered on the held-out text.
"""
import os

import pytest
import torch

from saelab import lm
from saelab.evaluation import evaluate
from saelab.lm.scaling import activation_scale, fold_input_scale
from saelab.sae_config import TopKConfig
from saelab.torch_sae import TopKSAE
from saelab.train import TrainConfig, train_sae

pytestmark = pytest.mark.usefixtures("one_thread")


def _train_topk(model, texts, hook, steps, batch_size, k, expansion=16, seed=0):
    sample = lm.harvest(model, texts, hook, seq_len=model.cfg.n_ctx, max_tokens=10_000,
                        progress=False)
    scale = activation_scale(sample)
    stream = lm.iter_activations(model, texts, hook, seq_len=model.cfg.n_ctx, batch_size=32,
                                 progress=False)
    buffer = lm.ActivationBuffer(stream, capacity=16 * batch_size, batch_size=batch_size)
    torch.manual_seed(seed)
    sae = TopKSAE(TopKConfig(d_in=model.cfg.d_model, d_sae=expansion * model.cfg.d_model, k=k))
    sae = sae.to(model.cfg.device)
    train_sae(sae, (scale * b for b in buffer),
              TrainConfig(n_steps=steps, batch_size=batch_size, lr=1e-3, log_every=50),
              progress=False)
    return fold_input_scale(sae, scale), buffer


@pytest.mark.slow
def test_topk_sae_on_the_shipped_model_recovers_the_loss():
    model = lm.load_model(lm.SHIPPED_MODEL)
    hook = lm.default_hook_name(model)
    sae, buffer = _train_topk(model, lm.shipped_texts("train"), hook, steps=300, batch_size=512,
                              k=16)
    assert buffer.peak_rows <= buffer.capacity + 32 * model.cfg.n_ctx  # one forward batch over
    tokens = lm.token_windows(model, lm.shipped_texts("heldout"), model.cfg.n_ctx, max_windows=64)
    report = evaluate(sae, lm.harvest(model, tokens, hook, progress=False),
                      ce_fn=lambda s: lm.ce_losses(model, s, tokens, hook))
    # measured (300 steps x 512 tokens, 64 held-out windows): FVU 0.194, CE recovered 0.941,
    # delta loss 0.18 nats; the chapter's longer run (400 x 1024) reaches 0.154 and 0.959
    assert report.l0 == pytest.approx(16.0)
    assert report.fvu < 0.22
    assert report.ce_loss_recovered > 0.92
    assert report.ce_clean < report.ce_sae < report.ce_zero


online = pytest.mark.skipif(
    os.environ.get("HF_HUB_OFFLINE", "") == "1" or not lm.hub_reachable(),
    reason="needs the Hugging Face hub to download GPT-2 small (offline here)")


@pytest.mark.online
@online
def test_gpt2_small_loads_and_harvests_its_residual_stream():
    model = lm.load_model("gpt2")
    hook = lm.default_hook_name(model)
    assert hook == "blocks.6.hook_resid_pre" and lm.hook_width(model, hook) == 768
    acts = lm.harvest(model, ["The cat sat on the mat. " * 40], hook, seq_len=64,
                      progress=False)
    assert acts.shape[1] == 768 and torch.isfinite(acts).all()


@pytest.mark.online
@pytest.mark.slow
@online
def test_topk_sae_on_gpt2_small_recovers_most_of_the_loss():
    from datasets import load_dataset

    model = lm.load_model("gpt2", device="cuda" if torch.cuda.is_available() else "cpu")
    hook = lm.default_hook_name(model)
    texts = load_dataset("NeelNanda/pile-10k", split="train")
    sae, _ = _train_topk(model, texts.select(range(2_000)), hook, steps=200, batch_size=1024,
                         k=32, expansion=4)
    tokens = lm.token_windows(model, texts.select(range(9_000, 9_200)), 128, max_windows=32)
    losses = lm.ce_losses(model, sae, tokens, hook)
    # not measured here (no network); a loose bound for a small, short run
    assert lm.ce_loss_recovered(losses) > 0.7
