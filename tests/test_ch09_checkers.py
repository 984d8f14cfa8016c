"""Chapter 9 exercise checkers: the right answer passes, each common mistake gets its own hint.

The "student" functions are written independently of the checkers (np.polyfit, plain means, a
hand-written gradient-descent logistic regression and a pairwise AUROC).
"""
import numpy as np
import pytest

from saelab.exercises import ch09
from saelab.exercises.checking import ExerciseFailed


def make_power_law(mistake=None):
    def fit_power_law(n, loss):
        if mistake == "linear":
            slope, intercept = np.polyfit(n, loss, 1)
            return intercept, -slope
        slope, intercept = np.polyfit(np.log(n), np.log(loss), 1)
        a, b = np.exp(intercept), -slope
        return {None: (a, b), "sign": (a, slope), "log_a": (intercept, b), "swap": (b, a)}[mistake]

    return fit_power_law


def test_power_law_reference_passes(capsys):
    ch09.fit_power_law(make_power_law())
    assert capsys.readouterr().out == "passed: fit_power_law\n"


@pytest.mark.parametrize("mistake, hint", [
    ("sign", "wrong sign"), ("log_a", "log\\(a\\)"), ("linear", "straight line to loss"),
    ("swap", "swapped a and b"),
])
def test_power_law_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch09.fit_power_law(make_power_law(mistake))


def make_dim(mistake=None):
    def diff_in_means_probe(x, y):
        pos = x[y].mean(axis=0)
        neg = x.mean(axis=0) if mistake == "all" else x[~y].mean(axis=0)
        w = {None: pos - neg, "pos": pos, "reversed": neg - pos, "all": pos - neg,
             "unit": (pos - neg) / np.linalg.norm(pos - neg)}[mistake]
        return w

    return diff_in_means_probe


def test_dim_reference_passes(capsys):
    ch09.diff_in_means_probe(make_dim())
    assert capsys.readouterr().out == "passed: diff_in_means_probe\n"


@pytest.mark.parametrize("mistake, hint", [
    ("pos", "mean\\(x\\[y\\]\\) only"), ("reversed", "sign is reversed"),
    ("all", "mean of all rows"), ("unit", "normalized"),
])
def test_dim_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch09.diff_in_means_probe(make_dim(mistake))


def _gd_logistic(x, y, steps=3000, lr=0.5):
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= lr * z.T @ (p - y) / len(y)
        b -= lr * np.mean(p - y)
    return lambda q: ((q - mu) / sd) @ w + b


def _pair_auroc(s, y):
    pos, neg = s[y], s[~y]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def make_sparse(mistake=None):
    def sparse_probe(codes_train, y_train, codes_test, y_test, k):
        src_x, src_y = (codes_test, y_test) if mistake == "test_select" else (codes_train, y_train)
        gap = src_x[src_y].mean(0) - src_x[~src_y].mean(0)
        order = {"signed": np.argsort(-gap), "smallest": np.argsort(np.abs(gap))}.get(
            mistake, np.argsort(-np.abs(gap)))
        idx = order[:k]
        score = _gd_logistic(codes_train[:, idx], y_train.astype(float))
        if mistake == "train_auc":
            return idx, _pair_auroc(score(codes_train[:, idx]), y_train)
        auc = _pair_auroc(score(codes_test[:, idx]), y_test)
        return idx, 1 - auc if mistake == "flipped" else auc

    return sparse_probe


def test_sparse_reference_passes(capsys):
    ch09.sparse_probe(make_sparse())
    assert capsys.readouterr().out == "passed: sparse_probe\n"


@pytest.mark.parametrize("mistake, hint", [
    ("signed", "largest signed"), ("test_select", "on the test rows"),
    ("smallest", "k smallest"), ("train_auc", "AUROC on the training rows"),
    ("flipped", "1 - AUROC"),
])
def test_sparse_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch09.sparse_probe(make_sparse(mistake))


def test_sparse_data_separates_the_mistakes():
    """The exercise data must make each wrong selection differ from the right one."""
    from saelab.probes import select_latents

    x_tr, y_tr, x_te, y_te, k = ch09.sparse_probe_data()
    right = set(select_latents(x_tr, y_tr, k).tolist())
    assert right == {0, 1, 5}
    assert set(select_latents(x_te, y_te, k).tolist()) != right
