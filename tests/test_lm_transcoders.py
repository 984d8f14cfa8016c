"""Transcoders on saelab-tiny (Chapter 8): pair harvesting, splice identity, attribution graph,
and one point of saelab/results/ch08_transcoders.json re-run."""
import numpy as np
import pytest
import torch

from saelab import results
from saelab.checkpoint import load_sae
from saelab.lm import ActivationBuffer, load_model, shipped_texts, token_windows
from saelab.lm.attribution import _Replacement, ablate_nodes, attribution_graph, target_token_id
from saelab.lm.harvesting import run_to_hook
from saelab.lm.mlp_replacement import fit_mlp_replacement
from saelab.lm.pairs import (harvest_pairs, iter_activation_pairs, mlp_hook_names,
                             transcoder_ce_losses)
from saelab.lm.tiny import SHIPPED_DIR


@pytest.fixture(scope="module")
def model():
    return load_model("saelab-tiny")


@pytest.fixture(scope="module")
def transcoders():
    folder = SHIPPED_DIR.parent / "transcoders"
    return [load_sae(folder / f"layer{i}.safetensors", expect="transcoder") for i in range(4)]


def test_pairs_match_single_hooks_and_the_mlp(model):
    toks = token_windows(model, shipped_texts("heldout"), 32, max_windows=4)
    x, y = harvest_pairs(model, toks, *mlp_hook_names(1), progress=False)
    assert x.shape == y.shape == (4 * 31, 128)
    assert torch.allclose(x, run_to_hook(model, toks, mlp_hook_names(1)[0])[:, 1:].reshape(-1, 128))
    ln2 = model.blocks[1].ln2
    with torch.no_grad():  # each pair is (MLP input, MLP output) of the same token
        assert torch.allclose(model.blocks[1].mlp(x * ln2.w + ln2.b), y, atol=1e-5)
    rows = ActivationBuffer(iter_activation_pairs(model, toks, *mlp_hook_names(1),
                                                  progress=False), capacity=64, batch_size=16)
    batch = next(iter(rows))
    with torch.no_grad():  # shuffled, still aligned
        assert torch.allclose(model.blocks[1].mlp(batch[:, :128] * ln2.w + ln2.b),
                              batch[:, 128:], atol=1e-5)


class _TrueMLP(torch.nn.Module):
    """A stand-in whose prediction is the real MLP: splicing it must change nothing."""

    def __init__(self, model, layer):
        super().__init__()
        self.block, self.W_enc = model.blocks[layer], torch.zeros(1)
        self.cfg = type("C", (), dict(d_in=128, d_out=128))()

    def predict(self, x):
        return self.block.mlp(x * self.block.ln2.w + self.block.ln2.b)


def test_splice_identity_with_the_true_mlp(model):
    toks = token_windows(model, shipped_texts("heldout"), 32, max_windows=4)
    losses = transcoder_ce_losses(model, _TrueMLP(model, 2), toks, 2)
    assert abs(losses.spliced - losses.clean) < 1e-5
    assert losses.zero_ablated > losses.clean


def test_transcoder_bad_input(model, transcoders):
    toks = token_windows(model, shipped_texts("heldout"), 32, max_windows=2)
    with pytest.raises(ValueError, match="hook_name"):
        harvest_pairs(model, toks, "blocks.9.ln2.hook_normalized", "blocks.1.hook_mlp_out")
    with pytest.raises(ValueError, match="layer"):
        transcoder_ce_losses(model, transcoders[0], toks, 7)
    small = load_sae(SHIPPED_DIR.parent / "transcoders" / "layer0.safetensors")
    small.cfg.d_out = 64
    with pytest.raises(ValueError, match="d_out = 64"):
        transcoder_ce_losses(model, small, toks, 0)


def test_attribution_graph_is_exact_at_the_prompt_and_causally_sensible(model, transcoders):
    prompt = "The default value is"
    rep = _Replacement(model, transcoders, model.to_tokens(prompt)[0])
    _, _, logits = rep.run(total=False)
    assert torch.allclose(logits, model(prompt)[0], atol=1e-4)  # error nodes make it exact
    g = attribution_graph(model, transcoders, prompt, " not", n_targets=5)
    layers = np.array([n.layer for n in g.nodes])
    assert not g.edges[layers[:, None] >= layers[None, :]].any()  # edges only go upwards
    top = np.argsort(-np.abs(g.total_logit))[:10]
    rng = np.random.default_rng(0)
    random = [abs(ablate_nodes(model, transcoders, g, rng.choice(len(g.nodes), 10, replace=False)))
              for _ in range(5)]
    # measured: top -3.3, random mean 0.11
    assert ablate_nodes(model, transcoders, g, top) < -1.0
    assert np.mean(random) < 0.5


def test_attribution_bad_input(model, transcoders):
    with pytest.raises(ValueError, match="target"):
        target_token_id(model, 10**6)
    with pytest.raises(ValueError, match="target"):
        target_token_id(model, " definitely not one token")
    with pytest.raises(ValueError, match="prompt"):
        attribution_graph(model, transcoders, "word " * 200, 5)
    with pytest.raises(ValueError, match="transcoders"):
        attribution_graph(model, transcoders[:2], "The", 5)


def test_stored_results_reproduce_one_point(model):
    stored = results.load("ch08_transcoders")
    s = stored["settings"]
    train = token_windows(model, shipped_texts("train"), s["seq_len"],
                          max_windows=s["train_windows"])
    held = token_windows(model, shipped_texts("heldout"), s["seq_len"],
                         max_windows=s["eval_windows"])
    _, scores = fit_mlp_replacement(model, 0, "transcoder", train, held, **s["fit"])
    row = next(r for r in stored["rows"] if r["layer"] == 0 and r["kind"] == "transcoder")
    assert abs(scores["fvu"] - row["fvu"]) < 0.03
    assert abs(scores["ce_recovered"] - row["ce_recovered"]) < 0.03
