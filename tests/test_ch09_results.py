"""Chapter 9 on the shipped model: the stored scaling sweep against a re-run of one of its
points, concept labels on real windows, and the steering measure."""
import numpy as np
import pytest
import torch

from saelab import lm, results
from saelab.lm.concept_steering import marker_tokens, steering_shift
from saelab.lm.concepts import CONCEPTS, label_windows

STORED = results.load("ch09_scaling")


@pytest.fixture(scope="module")
def model():
    return lm.load_model(lm.SHIPPED_MODEL, device="cpu")


def test_stored_sweep_is_complete_and_sane():
    s = STORED["settings"]
    assert STORED["script"] == "scripts/ch09_scaling_sweep.py"
    assert {(p["d_sae"], p["k"]) for p in STORED["grid"]} == {(n, k) for n in s["widths"]
                                                              for k in s["ks"]}
    assert [p["n_tokens"] for p in STORED["budget"]] == s["budgets"]
    for p in STORED["grid"] + STORED["budget"]:
        assert 0 < p["fvu"] < 1 and 0 <= p["dead_fraction"] < 1
    by = {(p["d_sae"], p["k"]): p["fvu"] for p in STORED["grid"]}
    for n in s["widths"]:  # more latents per token always reconstruct better
        fvus = [by[n, k] for k in s["ks"]]
        assert all(a > b for a, b in zip(fvus, fvus[1:]))


def test_one_stored_point_reproduces(model):
    from saelab.lm.scaling_laws import sweep_activations, train_point

    s = STORED["settings"]
    torch.set_num_threads(1)
    train, heldout, scale = sweep_activations(model, s["tokens"], s["seq_len"])
    assert scale == pytest.approx(STORED["scale"], rel=1e-4)
    want = next(p for p in STORED["grid"] if (p["d_sae"], p["k"]) == (256, 64))
    got = train_point(train, heldout, 256, 64, s["tokens"], batch_size=s["batch_size"],
                      lr=s["lr"], seed=s["seed"])
    # same data, seed and one thread: equal up to floating-point reduction order
    assert got["fvu"] == pytest.approx(want["fvu"], abs=0.005)
    assert got["dead_fraction"] == pytest.approx(want["dead_fraction"], abs=0.02)


def test_labels_on_real_windows_are_rare_but_present(model):
    tokens = lm.token_windows(model, lm.shipped_texts("heldout"), 128, max_windows=40)
    for concept in CONCEPTS:
        lab = label_windows(model, tokens, concept)
        assert lab.labels.shape == tokens.shape and not lab.labels[~lab.valid].any()
        assert 0.002 < lab.labels[lab.valid].mean() < 0.3, concept
    with pytest.raises(ValueError, match="tokens must have shape"):
        label_windows(model, tokens[0], "keyword")


def test_steering_shift_zero_for_tiny_push_and_bad_direction(model):
    hook = lm.default_hook_name(model)
    tokens = lm.token_windows(model, lm.shipped_texts("heldout"), 128, max_windows=4)
    markers = np.array([model.to_single_token(" >>>")])
    v = np.random.default_rng(0).standard_normal(model.cfg.d_model)
    assert abs(steering_shift(model, tokens, hook, v, 1e-4, markers)) < 1e-3
    assert abs(steering_shift(model, tokens, hook, v, 20.0, markers)) > 1e-3
    with pytest.raises(ValueError, match="direction must have shape"):
        steering_shift(model, tokens, hook, v[:5], 1.0, markers)
    with pytest.raises(ValueError, match="non-zero"):
        steering_shift(model, tokens, hook, 0 * v, 1.0, markers)
    with pytest.raises(ValueError, match="norm"):
        steering_shift(model, tokens, hook, v, -1.0, markers)
