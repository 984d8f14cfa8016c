"""split_share (Chapter 9's decoder-geometry proxy for feature splitting) on hand-built decoders,
on two tiny trained SAEs, and the stored splitting sweep's structure."""
import numpy as np
import pytest
import torch

from saelab import results
from saelab.lm.scaling_laws import split_share, train_point


def _unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


E = np.eye(4)
PARENT = _unit([1.0, 1.0, 0.0, 0.0])


def test_two_close_children_count_one_child_does_not():
    narrow = np.stack([PARENT, E[2]])
    # the parent's two children lean towards e0 and e1: cos(parent, child) = 0.949
    kids = [_unit([1.0, 0.5, 0.0, 0.0]), _unit([0.5, 1.0, 0.0, 0.0])]
    wide = np.stack(kids + [E[2], E[3]])  # e2 has only one child in the wide SAE
    assert split_share(narrow, wide) == pytest.approx(0.5)
    assert split_share(narrow[:1], wide) == 1.0
    assert split_share(narrow[1:], wide) == 0.0
    # one child is not a split: drop the second child
    assert split_share(narrow[:1], np.stack([kids[0], E[2], E[3]])) == 0.0
    # a stricter threshold than the children's cosine (0.949) no longer counts them
    assert split_share(narrow[:1], wide, threshold=0.96) == 0.0
    # min_children=1: both narrow latents persist (the parent has two children, e2 one)
    assert split_share(narrow, wide, min_children=1) == 1.0
    assert split_share(narrow, E[3:4], min_children=1) == 0.0


def test_orthogonal_rows_and_norms_and_sign():
    assert split_share(E[:2], E[2:]) == 0.0
    wide = np.stack([3.0 * E[0], 0.2 * E[0], E[1]])  # norms are ignored
    assert split_share(E[:1], wide) == 1.0
    assert split_share(E[:1], -wide) == 0.0  # opposite directions are not children


def test_live_masks():
    wide = np.stack([E[0], _unit([1.0, 0.1, 0, 0]), E[1]])
    assert split_share(E[:2], wide) == 0.5
    assert split_share(E[:2], wide, live_narrow=np.array([True, False])) == 1.0
    assert split_share(E[:2], wide, live_wide=np.array([True, False, True])) == 0.0


@pytest.mark.parametrize("kwargs, name", [
    (dict(W_dec_narrow=np.ones(4)), "W_dec_narrow"),
    (dict(W_dec_wide=np.ones((3, 5))), "W_dec_narrow and W_dec_wide"),
    (dict(W_dec_wide=np.full((3, 4), np.nan)), "W_dec_wide"),
    (dict(W_dec_wide=np.zeros((3, 4))), "W_dec_wide"),
    (dict(threshold=0.0), "threshold"), (dict(threshold=1.0), "threshold"),
    (dict(threshold=float("nan")), "threshold"),
    (dict(live_narrow=np.array([False, False])), "live_narrow"),
    (dict(live_wide=np.array([1.0, 0.0, 1.0])), "live_wide"),
])
def test_bad_input_names_the_argument(kwargs, name):  # (None is a TypeError, tested below)
    args = dict(W_dec_narrow=E[:2], W_dec_wide=E[:3], threshold=0.7) | kwargs
    with pytest.raises(ValueError, match=name):
        split_share(args.pop("W_dec_narrow"), args.pop("W_dec_wide"), **args)


def test_missing_or_integer_decoders_are_type_errors():
    with pytest.raises(TypeError, match="W_dec_narrow"):
        split_share(None, E)
    with pytest.raises(TypeError, match="W_dec_wide"):
        split_share(E, np.eye(4, dtype=int))


def test_on_two_tiny_trained_saes():
    torch.manual_seed(0)
    x = torch.randn(2048, 16)
    pa, sae_a, live_a = train_point(x, x[:512], 32, 4, 2048, batch_size=256, seed=0,
                                    return_sae=True)
    pb, sae_b, live_b = train_point(x, x[:512], 64, 4, 2048, batch_size=256, seed=1,
                                    return_sae=True)
    assert live_a.shape == (32,) and live_a.dtype == bool
    assert np.mean(~live_a) == pytest.approx(pa["dead_fraction"], abs=1e-5)
    W_a, W_b = sae_a.W_dec.detach().numpy(), sae_b.W_dec.detach().numpy()
    share = split_share(W_a, W_b, live_narrow=live_a, live_wide=live_b)
    assert 0.0 <= share <= 1.0
    # a wide SAE made of every narrow row twice (one slightly perturbed) splits every latent
    twins = np.concatenate([W_a, W_a + 0.01 * np.random.default_rng(0).normal(size=W_a.shape)])
    assert split_share(W_a, twins) == 1.0
    # against itself at a near-1 threshold each row finds only itself: one child, no split
    assert split_share(W_a, W_a, threshold=0.999) == 0.0


def test_stored_splitting_sweep_is_complete_and_sane():
    stored = results.load("ch09_splitting")
    s = stored["settings"]
    assert stored["script"] == "scripts/ch09_split_sweep.py"
    sweep = results.load("ch09_scaling")["settings"]
    assert all(s[key] == sweep[key] for key in ("model", "seq_len", "batch_size", "lr", "seed"))
    assert s["k"] == 32 and 0 < s["threshold"] < 1
    assert [p["d_sae"] for p in stored["widths"]] == s["widths"]
    assert [(p["narrow"], p["wide"]) for p in stored["pairs"]] == list(zip(s["widths"],
                                                                          s["widths"][1:]))
    for p in stored["widths"]:
        assert 0 <= p["dead_fraction"] < 1 and 0 < p["fvu"] < 1
    for p in stored["pairs"]:
        assert 0 <= p["split_share"] <= p["matched_share"] <= 1  # a split latent is matched


@pytest.mark.slow
def test_first_stored_pair_reproduces(one_thread):
    """Re-run the 256 -> 512 pair of the stored sweep (about 10 s on one thread)."""
    from saelab import lm
    from saelab.lm.scaling_laws import sweep_activations

    stored = results.load("ch09_splitting")
    s = stored["settings"]
    model = lm.load_model(lm.SHIPPED_MODEL, device="cpu")
    train, heldout, scale = sweep_activations(model, s["tokens"], s["seq_len"])
    assert scale == pytest.approx(stored["scale"], rel=1e-4)
    got = []
    for want in stored["widths"][:2]:
        point, sae, live = train_point(train, heldout, want["d_sae"], s["k"], s["tokens"],
                                       batch_size=s["batch_size"], lr=s["lr"], seed=s["seed"],
                                       return_sae=True)
        assert point["fvu"] == pytest.approx(want["fvu"], abs=0.005)
        assert point["dead_fraction"] == pytest.approx(want["dead_fraction"], abs=0.02)
        got.append((sae.W_dec.detach().numpy(), live))
    share = split_share(got[0][0], got[1][0], s["threshold"], live_narrow=got[0][1],
                        live_wide=got[1][1])
    assert share == pytest.approx(stored["pairs"][0]["split_share"], abs=0.02)  # stored: 0.0
