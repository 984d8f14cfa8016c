"""Chapter 2 exercise checkers: the right answer passes, each common mistake gets its own hint.

The "student" functions here are written the way a student would write them (loops of plain
NumPy), independently of the checker's own mistake generator, so a hint is only reported when the
checker really recognises the mistake.
"""
import numpy as np
import pytest

from saelab.exercises import ch02
from saelab.exercises.checking import ExerciseFailed
from saelab.numpy_sae import topk_relu as library_topk_relu


# ----------------------------------------------------------------------------------------------
# Exercise 1: L1 SAE backward
# ----------------------------------------------------------------------------------------------

def make_student_backward(mistake=None):
    """A student's L1 SAE backward (weighted decoder-norm penalty), optionally with one mistake."""

    def l1_sae_backward(x, params, l1_coeff):
        W_enc, b_enc, W_dec, b_dec = (params[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec"))
        B = 1 if mistake == "sum_over_batch" else x.shape[0]
        xc = x - b_dec
        pre = xc @ W_enc + b_enc
        f = np.maximum(pre, 0)
        x_hat = f @ W_dec + b_dec
        norms = np.sqrt((W_dec**2).sum(axis=1))
        d_xhat = 2 * (x_hat - x) / B
        if mistake == "sign":
            d_xhat = -d_xhat
        if mistake == "no_factor_two":
            d_xhat = d_xhat / 2
        dW_dec = f.T @ d_xhat
        if mistake not in ("unit_formula", "no_norm_term"):
            dW_dec = dW_dec + l1_coeff / B * f.sum(axis=0)[:, None] * W_dec / norms[:, None]
        d_f = d_xhat @ W_dec.T
        if mistake in ("unit_formula", "l1_not_scaled"):
            d_f = d_f + l1_coeff / B
        else:
            d_f = d_f + l1_coeff / B * norms
        d_pre = d_f if mistake == "no_relu_mask" else d_f * (pre > 0)
        dW_enc = (x if mistake == "x_not_centred" else xc).T @ d_pre
        db_enc = d_pre.sum(axis=0)
        db_dec = d_xhat.sum(axis=0)
        if mistake == "b_dec_encoder_sign":
            db_dec = db_dec + W_enc @ d_pre.sum(axis=0)
        elif mistake != "no_b_dec_encoder_path":
            db_dec = db_dec - W_enc @ d_pre.sum(axis=0)
        return {"W_enc": dW_enc, "b_enc": db_enc, "W_dec": dW_dec, "b_dec": db_dec}

    return l1_sae_backward


def test_l1_backward_reference_passes(capsys):
    ch02.l1_sae_backward(make_student_backward())
    assert capsys.readouterr().out == "passed: l1_sae_backward\n"


def test_l1_backward_library_passes(capsys):
    """The library's own backward, wrapped as a student function, passes too."""
    from saelab.numpy_sae import L1SAE
    from saelab.sae_config import L1Config

    def via_library(x, params, l1_coeff):
        d_in, d_sae = params["W_enc"].shape
        sae = L1SAE(L1Config(d_in=d_in, d_sae=d_sae, l1_coeff=l1_coeff), dtype=np.float64)
        sae.load_parameters(params)
        return sae.backward(x, sae(x))

    ch02.l1_sae_backward(via_library)
    assert "passed: l1_sae_backward" in capsys.readouterr().out


def test_l1_mistake_generator_matches_library():
    """The checker's gradient function, with no mistake switched on, is the library's backward."""
    x, params = ch02._l1_inputs()
    want = ch02._reference_l1_grads(x, params, ch02.L1_COEFF)
    got = ch02._l1_grads(x, params, ch02.L1_COEFF)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-14)


def test_l1_mistakes_are_distinguishable():
    """No two known mistakes (nor a mistake and the right answer) give the same gradients."""
    x, params = ch02._l1_inputs()
    answers = [ch02._reference_l1_grads(x, params, ch02.L1_COEFF)]
    answers += [ch02._l1_grads(x, params, ch02.L1_COEFF, **s) for _, s in ch02._L1_MISTAKES]
    for i in range(len(answers)):
        for j in range(i + 1, len(answers)):
            assert not ch02._grads_close(answers[i], answers[j]), (i, j)


@pytest.mark.parametrize("mistake, hint", [
    ("sum_over_batch", "B times too large"),
    ("sign", "wrong sign: dL/dx_hat"),
    ("no_factor_two", "keep the factor 2"),
    ("no_relu_mask", "mask 1[pre_acts > 0]"),
    ("no_b_dec_encoder_path", "b_dec also enters the encoder"),
    ("b_dec_encoder_sign", "encoder path of b_dec has the wrong sign"),
    ("x_not_centred", "the encoder sees x - b_dec"),
    ("unit_formula", "as if every decoder row had norm 1"),
    ("no_norm_term", "dL/dW_dec is missing the sparsity term"),
    ("l1_not_scaled", "not scaled by the decoder norms"),
])
def test_l1_backward_mistakes_get_their_hint(mistake, hint):
    with pytest.raises(ExerciseFailed, match="l1_sae_backward") as info:
        ch02.l1_sae_backward(make_student_backward(mistake))
    assert hint in str(info.value)


def test_l1_backward_two_mistakes_names_the_first_wrong_gradient():
    """Two mistakes at once match no whole variant; the first wrong gradient is diagnosed."""
    base = make_student_backward("no_relu_mask")

    def two_mistakes(x, params, l1_coeff):
        grads = base(x, params, l1_coeff)
        grads["W_dec"] = grads["W_dec"] + 1.0  # and something unrecognisable in W_dec
        return grads

    with pytest.raises(ExerciseFailed, match=r"dL/dW_dec is wrong \(largest absolute error"):
        ch02.l1_sae_backward(two_mistakes)


def test_l1_backward_per_gradient_diagnosis():
    """Right W_dec, b_dec and b_enc but W_enc from x instead of x - b_dec: per-key hint."""
    good, bad = make_student_backward(), make_student_backward("x_not_centred")

    def mixed(x, params, l1_coeff):
        grads = good(x, params, l1_coeff)
        grads["W_enc"] = bad(x, params, l1_coeff)["W_enc"]
        return grads

    with pytest.raises(ExerciseFailed, match="the encoder sees x - b_dec"):
        ch02.l1_sae_backward(mixed)


def test_l1_backward_wrong_return_types():
    with pytest.raises(ExerciseFailed, match="returned None"):
        ch02.l1_sae_backward(lambda x, p, lam: None)
    with pytest.raises(ExerciseFailed, match="return a dict"):
        ch02.l1_sae_backward(lambda x, p, lam: [p["W_enc"]])
    with pytest.raises(ExerciseFailed, match=r"no gradient for \['b_dec'\]"):
        ch02.l1_sae_backward(lambda x, p, lam: {k: v for k, v in p.items() if k != "b_dec"})


def test_l1_backward_transposed_gradient_reports_shapes():
    def transposed(x, params, l1_coeff):
        grads = make_student_backward()(x, params, l1_coeff)
        grads["W_enc"] = grads["W_enc"].T
        return grads

    with pytest.raises(ExerciseFailed, match=r"dL/dW_enc has shape \(10, 6\), expected \(6, 10\)"):
        ch02.l1_sae_backward(transposed)


# ----------------------------------------------------------------------------------------------
# Exercise 2: unit-norm projection of the decoder gradient
# ----------------------------------------------------------------------------------------------

def make_student_projection(mistake=None):
    def project_decoder_grad(W_dec, grad):
        axis = 0 if mistake == "columns" else 1
        dots = (grad * W_dec).sum(axis=axis, keepdims=True)
        sq = (W_dec**2).sum(axis=axis, keepdims=True)
        if mistake == "no_norm":
            coef = dots
        elif mistake == "norm_not_squared":
            coef = dots / np.sqrt(sq)
        else:
            coef = dots / sq
        parallel = coef * W_dec
        if mistake == "parallel":
            return parallel
        if mistake == "plus":
            return grad + parallel
        return grad - parallel

    return project_decoder_grad


def test_projection_reference_passes(capsys):
    ch02.project_decoder_grad(make_student_projection())
    assert capsys.readouterr().out == "passed: project_decoder_grad\n"


def test_projection_in_place_student_passes(capsys):
    def in_place(W_dec, grad):
        grad -= ((grad * W_dec).sum(1) / (W_dec**2).sum(1))[:, None] * W_dec
        return grad

    ch02.project_decoder_grad(in_place)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, hint", [
    ("columns", "along the columns"),
    ("no_norm", "are not unit norm"),
    ("norm_not_squared", "not by the norm"),
    ("parallel", "returned the parallel component"),
    ("plus", "do not add it"),
])
def test_projection_mistakes_get_their_hint(mistake, hint):
    with pytest.raises(ExerciseFailed, match="project_decoder_grad") as info:
        ch02.project_decoder_grad(make_student_projection(mistake))
    assert hint in str(info.value)


def test_projection_mistakes_are_distinguishable():
    W, g = ch02._projection_inputs()
    answers = [ch02._reference_projection(W, g)] + list(ch02._projection_mistakes(W, g).values())
    for i in range(len(answers)):
        for j in range(i + 1, len(answers)):
            assert not np.allclose(answers[i], answers[j]), (i, j)


def test_projection_result_is_orthogonal_to_rows():
    W, g = ch02._projection_inputs()
    out = ch02._reference_projection(W, g)
    np.testing.assert_allclose((out * W).sum(axis=1), 0.0, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Exercise 3: TopK forward
# ----------------------------------------------------------------------------------------------

def make_student_topk(mistake=None):
    def topk_relu(pre_acts, k):
        if mistake == "batch_axis":
            idx = np.argsort(pre_acts, axis=0)[-k:, :]
            out = np.zeros_like(pre_acts)
            np.put_along_axis(out, idx, np.take_along_axis(pre_acts, idx, axis=0), axis=0)
            return np.maximum(out, 0)
        key = np.abs(pre_acts) if mistake in ("abs", "abs_no_relu") else pre_acts
        order = np.argsort(key, axis=1)
        kk = {"k_minus_1": k - 1, "k_plus_1": k + 1}.get(mistake, k)
        idx = order[:, :kk] if mistake == "smallest" else order[:, -kk:]
        if mistake == "values_only":
            return np.maximum(np.take_along_axis(pre_acts, idx, axis=1), 0)
        if mistake == "no_topk":
            return np.maximum(pre_acts, 0)
        out = np.zeros_like(pre_acts)
        np.put_along_axis(out, idx, np.take_along_axis(pre_acts, idx, axis=1), axis=1)
        return out if mistake in ("no_relu", "abs_no_relu") else np.maximum(out, 0)

    return topk_relu


def test_topk_reference_passes(capsys):
    ch02.topk_relu(make_student_topk())
    assert capsys.readouterr().out == "passed: topk_relu\n"


def test_topk_relu_before_topk_is_also_right(capsys):
    """ReLU first, then the top k along the last axis, gives the same f: it must pass."""
    def relu_first(pre_acts, k):
        return library_topk_relu(np.maximum(pre_acts, 0), k)

    ch02.topk_relu(relu_first)
    assert "passed: topk_relu" in capsys.readouterr().out


def test_topk_inputs_exercise_the_relu():
    pre, k = ch02._topk_inputs()
    assert ((pre > 0).sum(axis=1) < k).any(), "some row must have fewer than k positive entries"


def test_topk_mistakes_are_distinguishable():
    pre, k = ch02._topk_inputs()
    answers = [library_topk_relu(pre, k)] + list(ch02._topk_mistakes(pre, k).values())
    for i in range(len(answers)):
        for j in range(i + 1, len(answers)):
            assert not np.allclose(answers[i], answers[j]), (i, j)


@pytest.mark.parametrize("mistake, hint", [
    ("smallest", "k SMALLEST"),
    ("abs", "ranked by absolute value: a large negative"),
    ("abs_no_relu", "ranked by absolute value and skipped the ReLU"),
    ("no_relu", "the ReLU is missing"),
    ("batch_axis", "along the batch axis"),
    ("k_minus_1", "k - 1 entries"),
    ("k_plus_1", "k + 1 entries"),
    ("values_only", "you returned the k kept values"),
    ("no_topk", "did not zero the entries outside the top k"),
])
def test_topk_mistakes_get_their_hint(mistake, hint):
    with pytest.raises(ExerciseFailed, match="topk_relu") as info:
        ch02.topk_relu(make_student_topk(mistake))
    assert hint in str(info.value)


# ----------------------------------------------------------------------------------------------
# All exercises: unattempted and crashing functions
# ----------------------------------------------------------------------------------------------

def _not_implemented(*args):
    raise NotImplementedError("exercise: replace this line with your code")


def _crash(*args):
    return np.ones((2, 3)) @ np.ones((4, 5))


@pytest.mark.parametrize("checker", [ch02.l1_sae_backward, ch02.project_decoder_grad,
                                     ch02.topk_relu])
def test_not_implemented_propagates(checker):
    with pytest.raises(NotImplementedError):
        checker(_not_implemented)


@pytest.mark.parametrize("checker", [ch02.l1_sae_backward, ch02.project_decoder_grad,
                                     ch02.topk_relu])
def test_crash_becomes_a_hint(checker):
    with pytest.raises(ExerciseFailed, match="raised ValueError"):
        checker(_crash)
