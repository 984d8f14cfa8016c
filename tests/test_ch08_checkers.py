"""Chapter 8 exercise checkers: the right answer passes, each common mistake gets its own hint.

The "student" functions are written independently of the checkers' mistake generators.
"""
import numpy as np
import pytest

from saelab.exercises import ch08
from saelab.exercises.checking import ExerciseFailed


def make_loss(mistake=None):
    def transcoder_loss(x, y, W_enc, b_enc, W_dec, b_dec, k):
        pre = x @ W_enc + b_enc
        f = np.zeros_like(pre)
        for b in range(len(pre)):
            order = np.argsort(np.abs(pre[b]) if mistake == "abs" else pre[b])[::-1]
            keep = order if mistake == "all" else order[:k]
            f[b, keep] = pre[b, keep] if mistake == "no_relu" else np.maximum(pre[b, keep], 0)
        y_hat = f @ W_dec + (0 if mistake == "no_bias" else b_dec)
        err = (y - y_hat) ** 2
        return err.mean() if mistake == "mean_d" else err.sum(axis=1).mean()

    return transcoder_loss


def test_loss_reference_passes(capsys):
    ch08.transcoder_loss(make_loss())
    assert capsys.readouterr().out == "passed: transcoder_loss\n"


@pytest.mark.parametrize("mistake, hint", [
    ("all", "kept every latent"), ("no_relu", "left out the ReLU"), ("abs", "largest |pre"),
    ("no_bias", "left out b_dec"), ("mean_d", "over d_out too"),
])
def test_loss_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch08.transcoder_loss(make_loss(mistake))


def make_edge(mistake=None):
    def edge_weight(a_s, d_s, w_enc_t, sigma_q, alpha, sigma1_p, W_OV, same_position):
        def ln(v, sigma):
            v = v if mistake == "no_centre" else v - np.mean(v)
            return v if mistake == "no_scale" else v / sigma
        moved = np.zeros_like(d_s) if mistake == "no_head" else alpha * ln(d_s, sigma1_p) @ W_OV
        direct = d_s if same_position and mistake != "no_resid" else np.zeros_like(d_s)
        weight = float(ln(direct + moved, sigma_q) @ w_enc_t)
        return weight if mistake == "no_act" else a_s * weight

    return edge_weight


def test_edge_reference_passes(capsys):
    ch08.edge_weight(make_edge())
    assert capsys.readouterr().out == "passed: edge_weight\n"


@pytest.mark.parametrize("mistake, hint", [
    ("no_centre", "centring"), ("no_scale", "frozen LayerNorm scale"),
    ("no_head", "attention path"), ("no_resid", "residual path"), ("no_act", "multiply by a_s"),
])
def test_edge_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch08.edge_weight(make_edge(mistake))


def make_summary(mistake=None):
    def ablation_summary(predicted, measured, top_change, random_changes):
        pc, mc = predicted - predicted.mean(), measured - measured.mean()
        if mistake == "abs_corr":
            pa, ma = np.abs(predicted), np.abs(measured)
            pc, mc = pa - pa.mean(), ma - ma.mean()
        corr = 1.0 if mistake == "diag" else (pc @ mc) / np.sqrt((pc @ pc) * (mc @ mc))
        if mistake == "signed":
            control = abs(sum(random_changes) / len(random_changes))
        elif mistake == "max":
            control = max(abs(r) for r in random_changes)
        else:
            control = sum(abs(r) for r in random_changes) / len(random_changes)
        return corr, abs(top_change) / control

    return ablation_summary


def test_summary_reference_passes(capsys):
    ch08.ablation_summary(make_summary())
    assert capsys.readouterr().out == "passed: ablation_summary\n"


@pytest.mark.parametrize("mistake, hint", [
    ("signed", "with their signs"), ("diag", "off-diagonal"), ("abs_corr", "absolute values"),
    ("max", "largest random change"),
])
def test_summary_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch08.ablation_summary(make_summary(mistake))
