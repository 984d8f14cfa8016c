"""Chapter 9's library: concept labels, probes, power-law fits, the steering measure, bad input."""
import warnings

import numpy as np
import pytest
import torch

from saelab.lm.concepts import CONCEPTS, check_labels, label_pieces
from saelab.lm.scaling_laws import fit_power_law
from saelab.probes import (auroc, diff_in_means, fit_logistic, fit_sparse_probe, latent_aurocs,
                           select_latents)

PIECES = ["Example", ":\n", "  >>>", " x", " =", " max", "_", "tokens", "\n", "Done", ".",
          " The", " def", " end", "\n"]


def labels(concept):
    lab, val = label_pieces(PIECES, concept)
    return [p for p, a in zip(PIECES, lab) if a], [p for p, v in zip(PIECES, val) if not v]


def test_doctest_lines_and_unknown_first_line():
    pos, unknown = labels("doctest")
    assert pos == ["  >>>", " x", " =", " max", "_", "tokens"]
    assert unknown == ["Example", ":\n"]  # the window's first line started before the window


def test_keyword_is_token_identity():
    assert labels("keyword")[0] == [" def"]
    assert label_pieces([" if", "if", " iffy", " None"], "keyword")[0] == [True, True, False, True]


def test_identifier_marks_every_piece_of_a_snake_case_name():
    assert labels("identifier")[0] == [" max", "_", "tokens"]
    assert not any(label_pieces([" __", " x", " _"], "identifier")[0])  # no word on both sides


def test_sentence_start():
    assert labels("sentence_start")[0] == [" The"]
    lab, _ = label_pieces(["a", ".", " the", "!", " It", ":", " No"], "sentence_start")
    assert lab == [False, False, False, False, True, False, False]


def test_bad_concepts_and_labels():
    with pytest.raises(ValueError, match="concept must be one of"):
        label_pieces(PIECES, "verbs")
    with pytest.raises(TypeError, match="pieces"):
        label_pieces("abc", "keyword")
    with pytest.raises(ValueError, match="0 positive and 3 negative"):
        check_labels("y", [0, 0, 0])
    with pytest.raises(ValueError, match="3 positive and 0 negative"):
        check_labels("y", [True, True, True])
    assert set(CONCEPTS) == {"doctest", "keyword", "identifier", "sentence_start"}


def test_auroc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 4, 50).astype(float), rng.uniform(size=50) < 0.4
    d = s[y][:, None] - s[~y][None, :]
    assert auroc(s, y) == pytest.approx(((d > 0) + 0.5 * (d == 0)).mean())
    assert auroc(-s, y) == pytest.approx(1 - auroc(s, y))
    cols = np.stack([s, -s, rng.standard_normal(50)], 1)
    assert latent_aurocs(cols, y) == pytest.approx([auroc(c, y) for c in cols.T])


def test_probes_find_a_planted_direction():
    rng = np.random.default_rng(1)
    y = rng.uniform(size=2000) < 0.2
    w_true = rng.standard_normal(16)
    x = rng.standard_normal((2000, 16)) + np.outer(y, w_true)
    dm = diff_in_means(x, y)
    assert np.dot(dm, w_true) / np.linalg.norm(dm) / np.linalg.norm(w_true) > 0.95  # ~0.99
    probe = fit_logistic(x[:1000], y[:1000])
    assert auroc(probe.score(x[1000:]), y[1000:]) > 0.95  # ~0.99 (||w_true|| ~ 4)
    codes = np.abs(rng.standard_normal((2000, 30))) * 0.1
    codes[:, 7] += 2.0 * y
    assert select_latents(codes, y, 1).tolist() == [7]
    idx, sp = fit_sparse_probe(codes[:1000], y[:1000], 2)
    assert 7 in idx and auroc(sp.score(codes[1000:][:, idx]), y[1000:]) > 0.99


def test_probe_bad_input():
    x, y = np.ones((10, 3)), np.array([0, 1] * 5)
    with pytest.warns(UserWarning, match="fewer examples than dimensions"):
        fit_logistic(np.random.default_rng(0).standard_normal((6, 20)), y[:6])
    with pytest.raises(ValueError, match="has 10 rows but y has 4 labels"):
        diff_in_means(x, y[:4])
    with pytest.raises(ValueError, match="k must be in 1..3"):
        select_latents(x, y, 4)
    with pytest.raises(ValueError, match="0 positive"):
        fit_logistic(x, np.zeros(10))
    with pytest.raises(ValueError, match="finite"):
        diff_in_means(np.full((10, 3), np.nan), y)


def test_power_law_fits_recover_exponents():
    n = np.array([256, 512, 1024, 2048, 4096, 8192], dtype=float)
    fit = fit_power_law(n, 2.0 * n ** -0.4)
    assert fit.a == pytest.approx(2.0) and fit.b == pytest.approx(0.4) and fit.b_err < 1e-9
    with_c = fit_power_law(n, 2.0 * n ** -0.4 + 0.05, irreducible=True)
    assert with_c.b == pytest.approx(0.4, rel=1e-3) and with_c.c == pytest.approx(0.05, rel=1e-3)
    assert np.allclose(with_c.predict(n), 2.0 * n ** -0.4 + 0.05)
    with pytest.raises(ValueError, match="at least 4 points"):
        fit_power_law(n[:3], n[:3] ** -0.5, irreducible=True)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law(n, -n)


def test_train_point_rejects_widths_and_k_the_model_cannot_take():
    from saelab.lm.scaling_laws import train_point

    acts = torch.randn(2048, 8)
    with pytest.raises(ValueError, match="d_sae must be at least 8"):
        train_point(acts, acts, 4, 2, 1024)
    with pytest.raises(ValueError, match="k must be in 1..16"):
        train_point(acts, acts, 16, 32, 1024)
    with pytest.raises(ValueError, match="n_tokens must be in 512..2048"):
        train_point(acts, acts, 16, 4, 4096)
    out = train_point(acts, acts[:512], 16, 4, 1024, batch_size=256)
    assert 0 < out["fvu"] < 1.5 and out["d_sae"] == 16


def test_marker_tokens_and_bad_input():
    from saelab.lm.concept_steering import marker_tokens

    tokens = np.array([[1, 2, 3, 2, 3, 3]])
    lab = np.array([[0, 1, 0, 1, 1, 0]], dtype=bool)
    val = np.ones_like(lab)
    assert marker_tokens(tokens, lab, val, min_rate=0.9, min_count=2).tolist() == [2]
    with pytest.raises(ValueError, match="no token is labelled positive"):
        marker_tokens(tokens, lab, val, min_rate=0.9, min_count=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="one shape"):
            marker_tokens(tokens, lab[:, :3], val)
