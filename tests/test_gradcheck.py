"""saelab.gradcheck on functions whose gradients are known in closed form."""
import numpy as np
import pytest

from saelab.gradcheck import central_differences, relative_error


def test_matches_closed_form_gradient_of_a_quadratic():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 3))
    params = {"w": rng.standard_normal(3), "M": rng.standard_normal((2, 2))}
    objective = lambda: float(np.sum((A @ params["w"]) ** 2) + np.sum(np.sin(params["M"])))  # noqa: E731
    grads = central_differences(objective, params)
    assert relative_error(grads["w"], 2 * A.T @ A @ params["w"]) < 1e-9
    assert relative_error(grads["M"], np.cos(params["M"])) < 1e-9


def test_parameters_are_restored_exactly():
    params = {"w": np.array([0.1, -0.2, 0.3])}
    before = params["w"].copy()
    central_differences(lambda: float(np.sum(params["w"] ** 3)), params)
    assert np.array_equal(params["w"], before)


def test_detects_a_wrong_gradient():
    params = {"w": np.array([1.0, 2.0])}
    grads = central_differences(lambda: float(np.sum(params["w"] ** 2)), params)
    assert relative_error(grads["w"], params["w"]) > 0.3  # the gradient is 2w, not w


def test_bad_input():
    with pytest.raises(ValueError, match="eps must be positive"):
        central_differences(lambda: 0.0, {"w": np.zeros(2)}, eps=0)
    with pytest.raises(ValueError, match="floating-point"):
        central_differences(lambda: 0.0, {"w": np.zeros(2, dtype=int)})
    with pytest.raises(ValueError, match="same shape"):
        relative_error(np.zeros(2), np.zeros(3))
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0
