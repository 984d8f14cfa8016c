"""Bad inputs for every public callable of saelab, used by tests/test_fuzz_public_api.py.

HOW TO ADD CASES (for a new public function or class):
  1. Find its key: "<obj.__module__>.<obj.__qualname__>", e.g. "saelab.metrics.fvu" (the test
     prints the keys it misses).
  2. Add an entry to CASES: key -> a function returning a list of `bad(arg, fn, *args, **kw)`.
     `bad` means: calling fn(*args, **kw) must raise ValueError or TypeError (or a saelab error
     class in ERRORS of the test) whose message contains `arg`, the argument's name.
     Use the shared builders below (X, NAN_X, sae(), model(), ...) and tiny shapes.
  3. Only if the callable takes no input a user could get wrong, add it to EXEMPT with a reason.
  Cases for saelab.lm live in tests/fuzz_cases_lm.py; cases for Chapter 7, interop and course
  tooling in tests/fuzz_cases_more.py; Chapters 8-9 in tests/fuzz_cases_circuits.py; the sparse
  TopK path and saelab.train helpers in tests/fuzz_cases_training.py (same format).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import numpy as np
import torch


class Case(NamedTuple):
    arg: str  # the name the error message must contain
    call: Callable[[], object]


def bad(arg: str, fn, *args, **kwargs) -> Case:
    return Case(arg, lambda: fn(*args, **kwargs))


# ----- shared builders (tiny shapes) ----------------------------------------------------------
X = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)  # (batch, d_in)
NAN_X = X.copy()
NAN_X[1, 2] = np.nan
TX, TNAN = torch.from_numpy(X), torch.from_numpy(NAN_X)


@functools.cache
def cfgs():
    from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                                   TopKConfig)
    return {"l1": L1Config(d_in=6, d_sae=12), "topk": TopKConfig(d_in=6, d_sae=12, k=3),
            "jumprelu": JumpReLUConfig(d_in=6, d_sae=12),
            "batchtopk": BatchTopKConfig(d_in=6, d_sae=12, k=3), "gated": GatedConfig(d_in=6, d_sae=12)}


def tsae(family="topk"):
    from saelab import torch_sae
    return torch_sae.make_sae(cfgs()[family])


def nsae(family="l1"):
    from saelab import numpy_sae
    return numpy_sae.make_sae(cfgs()[family], rng=0)


@functools.cache
def model():
    from saelab import lm
    return lm.load_model(lm.SHIPPED_MODEL)


@functools.cache
def lm_sae():
    from saelab import torch_sae
    from saelab.sae_config import TopKConfig
    return torch_sae.TopKSAE(TopKConfig(d_in=model().cfg.d_model, d_sae=32, k=4))


HOOK = "blocks.1.hook_resid_pre"


def toks():
    return torch.randint(1, 100, (2, 8), generator=torch.Generator().manual_seed(0))


@functools.cache
def hdata():
    from saelab.hierarchy import make_hierarchical_data
    return make_hierarchical_data(64, d_in=8, seed=0)


def codes(n=64, d=12):
    return np.abs(np.random.default_rng(1).standard_normal((n, d)))


def _module(name):
    import importlib
    return importlib.import_module(name)


def fn(path):
    mod, _, name = path.rpartition(".")
    return getattr(_module(mod), name)


def family_cases(key):
    cls = fn(key)
    fam = {"L1SAE": "l1", "TopKSAE": "topk", "JumpReLUSAE": "jumprelu",
           "BatchTopKSAE": "batchtopk", "GatedSAE": "gated", "BaseSAE": "l1"}[cls.__name__]
    twin = "numpy" if ".numpy_sae." in key else "torch"
    out = [bad("cfg", cls, None)]
    if cls.__name__ != "BaseSAE":
        other = "topk" if fam != "topk" else "l1"
        out.append(bad("cfg", cls, cfgs()[other]))
    if twin == "numpy":
        s = lambda: cls(cfgs()[fam], rng=0)  # noqa: E731
        out += [bad("x", lambda: s()(NAN_X)), bad("x", lambda: s()(X[:0])),
                bad("f", lambda: s().decode(np.ones((2, 5)))),
                bad("dtype", cls, cfgs()[fam], dtype=np.int32)]
    else:
        s = lambda: cls(cfgs()[fam])  # noqa: E731
        out += [bad("x", lambda: s()(TNAN)), bad("x", lambda: s()(X)),
                bad("f", lambda: s().decode(torch.ones(2, 5))),
                bad("dtype", cls, cfgs()[fam], dtype=torch.int32)]
    return out


def _cases() -> dict[str, Callable[[], list[Case]]]:
    from saelab import (absorption, checkpoint, colab, dead_latents, evaluation, feature_sampling,
                        geometric_median, geometry, gradcheck, hierarchy, lasso, metrics,
                        numpy_sae, problems, schedules, shrinkage, sweeps, synthetic, toy,
                        toy_plots, torch_sae, widgets)
    from saelab import sae_config as sc
    from saelab.train import TrainConfig

    ex = lambda ch, name: lambda: [bad("function", fn(f"saelab.exercises.{ch}.{name}"), None)]  # noqa: E731
    c = {}
    # -- exercise checkers: a non-function answer
    for ch, names in {"ch01": ["toy_forward", "toy_loss", "feature_dimensionality",
                               "interference_estimate"],
                      "ch02": ["l1_sae_backward", "project_decoder_grad", "topk_relu"],
                      "ch03": ["nonneg_soft_threshold", "ista_step", "ista_encoder"],
                      "ch04": ["topk_backward", "jumprelu_threshold_grad", "batch_topk_relu"],
                      "ch05": ["fvu_streaming", "dead_fraction_in_window", "mmcs"],
                      "ch06": ["fvu_on_batch", "make_splice_hook", "make_steering_hook"]}.items():
        for name in names:
            c[f"saelab.exercises.{ch}.{name}"] = ex(ch, name)
    # -- SAE families (constructors, forward, decode, dtype), both twins
    for twin in ("numpy_sae", "torch_sae"):
        for mod, cls in (("base", "BaseSAE"), ("l1", "L1SAE"), ("topk", "TopKSAE"),
                         ("jumprelu", "JumpReLUSAE"), ("batchtopk", "BatchTopKSAE"),
                         ("gated", "GatedSAE")):
            key = f"saelab.{twin}.{mod}.{cls}"
            c[key] = functools.partial(family_cases, key)
    T = torch.ones(2, 12)
    c.update({
        "saelab.absorption.feature_absorption": lambda: [
            bad("f", absorption.feature_absorption, None, np.eye(12, 8), hdata()),
            bad("data", absorption.feature_absorption, codes(64), np.eye(12, 8), None)],
        "saelab.checkpoint.save_sae": lambda: [bad("sae", checkpoint.save_sae, None, "x.safetensors")],
        "saelab.checkpoint.load_sae": lambda: [bad("path", checkpoint.load_sae, None)],
        "saelab.checkpoint.read_config": lambda: [bad("path", checkpoint.read_config, 3.5)],
        "saelab.colab.apply": lambda: [bad("path", colab.apply, None)],
        "saelab.dead_latents.DeadLatentTracker": lambda: [
            bad("d_sae", dead_latents.DeadLatentTracker, 0, 10),
            bad("f", lambda: dead_latents.DeadLatentTracker(12, 10).update(torch.ones(2, 5)))],
        "saelab.dead_latents.resample_dead_latents": lambda: [
            bad("dead_mask", dead_latents.resample_dead_latents, tsae(), torch.optim.Adam(tsae().parameters()),
                torch.ones(12), TX)],
        "saelab.evaluation.evaluate": lambda: [
            bad("activations", evaluation.evaluate, tsae(), None),
            bad("true_features", evaluation.evaluate, tsae(), TX, true_features=np.full((3, 6), np.nan))],
        "saelab.feature_sampling.make_generator": lambda: [bad("seed", feature_sampling.make_generator, "x")],
        "saelab.feature_sampling.sample_toy_features": lambda: [
            bad("n_batch", feature_sampling.sample_toy_features, 0, 0.5, 4)],
        "saelab.feature_sampling.sample_sparse_codes": lambda: [
            bad("p", feature_sampling.sample_sparse_codes, 4, 3, 1.5)],
        "saelab.feature_sampling.probability_tensor": lambda: [
            bad("prob", feature_sampling.probability_tensor, "prob", None, 2, 3)],
        "saelab.geometric_median.geometric_median": lambda: [
            bad("points", geometric_median.geometric_median, None),
            bad("points", geometric_median.geometric_median, TNAN)],
        "saelab.geometry.feature_dimensionality": lambda: [bad("W", geometry.feature_dimensionality, NAN_X)],
        "saelab.geometry.random_unit_vectors": lambda: [bad("d", geometry.random_unit_vectors, 3, 0)],
        "saelab.geometry.coherence": lambda: [bad("F", geometry.coherence, None)],
        "saelab.geometry.interference_formula": lambda: [bad("p", geometry.interference_formula, X, 2.0)],
        "saelab.geometry.simulate_interference": lambda: [bad("F", geometry.simulate_interference, None, 0.1)],
        "saelab.geometry.greedy_packing": lambda: [bad("eps", geometry.greedy_packing, 3, -0.1)],
        "saelab.geometry.greedy_packing_count": lambda: [bad("d", geometry.greedy_packing_count, 0, 0.1)],
        "saelab.geometry.welch_bound": lambda: [bad("m", geometry.welch_bound, 0, 3)],
        "saelab.geometry.welch_max_vectors": lambda: [bad("eps", geometry.welch_max_vectors, 3, 2.0)],
        "saelab.gradcheck.central_differences": lambda: [
            bad("objective", gradcheck.central_differences, None, {"w": np.zeros(2)}),
            bad("objective", gradcheck.central_differences, lambda: float("nan"), {"w": np.zeros(2)})],
        "saelab.gradcheck.relative_error": lambda: [bad("a", gradcheck.relative_error, NAN_X, X)],
        "saelab.hierarchy.make_hierarchical_data": lambda: [bad("n_samples", hierarchy.make_hierarchical_data, 0)],
        "saelab.hierarchy.family_latents": lambda: [bad("f", hierarchy.family_latents, None, hdata())],
        "saelab.hierarchy.feature_splitting": lambda: [
            bad("f_narrow", hierarchy.feature_splitting, None, codes(64), hdata())],
        "saelab.hierarchy.firing_by_condition": lambda: [
            bad("parent", hierarchy.firing_by_condition, codes(64), hdata(), 99)],
        "saelab.lasso.soft_threshold": lambda: [bad("t", lasso.soft_threshold, X, -1.0)],
        "saelab.lasso.nonneg_soft_threshold": lambda: [bad("v", lasso.nonneg_soft_threshold, None, 0.1)],
        "saelab.lasso.lasso_objective": lambda: [bad("lam", lasso.lasso_objective, X, np.ones((12, 6)), codes(8), -1.0)],
        "saelab.lasso.lasso_gradient": lambda: [bad("z", lasso.lasso_gradient, X, np.ones((12, 6)), codes(8, 5))],
        "saelab.lasso.lipschitz_constant": lambda: [bad("D", lasso.lipschitz_constant, NAN_X)],
        "saelab.lasso.ista_step": lambda: [bad("x", lasso.ista_step, NAN_X, np.ones((12, 6)), codes(8), 0.1)],
        "saelab.lasso.ista": lambda: [bad("D", lasso.ista, X, None, 0.1)],
        "saelab.lasso.fista": lambda: [bad("lam", lasso.fista, X, np.ones((12, 6)), float("nan"))],
        "saelab.lasso.orthonormal_lasso": lambda: [bad("D", lasso.orthonormal_lasso, X, np.ones((12, 6)), 0.1)],
        "saelab.lasso.ista_encoder_weights": lambda: [bad("D", lasso.ista_encoder_weights, None, 0.1)],
        "saelab.metrics.FVUAccumulator": lambda: [bad("x", lambda: metrics.FVUAccumulator().update(NAN_X, X))],
        "saelab.metrics.fvu": lambda: [bad("x", metrics.fvu, NAN_X, X), bad("x_hat", metrics.fvu, X, X[:, :3])],
        "saelab.metrics.explained_variance": lambda: [bad("x", metrics.explained_variance, None, X)],
        "saelab.metrics.fvu_wrong_uncentered": lambda: [bad("x_hat", metrics.fvu_wrong_uncentered, X, None)],
        "saelab.metrics.fvu_wrong_mean_of_squares": lambda: [bad("x", metrics.fvu_wrong_mean_of_squares, NAN_X, X)],
        "saelab.metrics.fvu_wrong_per_token_ratio": lambda: [bad("x", metrics.fvu_wrong_per_token_ratio, X[:0], X[:0])],
        "saelab.metrics.l0": lambda: [bad("f", metrics.l0, None)],
        "saelab.metrics.firing_density": lambda: [bad("f", metrics.firing_density, np.ones(3))],
        "saelab.metrics.dead_fraction": lambda: [bad("f", metrics.dead_fraction, NAN_X)],
        "saelab.metrics.dense_fraction": lambda: [bad("threshold", metrics.dense_fraction, X, -1.0)],
        "saelab.metrics.relative_reconstruction_bias": lambda: [bad("x_hat", metrics.relative_reconstruction_bias, X, NAN_X)],
        "saelab.metrics.mmcs": lambda: [bad("b", metrics.mmcs, X, X[:, :3]), bad("a", metrics.mmcs, NAN_X, X)],
        "saelab.metrics.ce_loss_recovered": lambda: [bad("ce_zero", metrics.ce_loss_recovered, 1.0, 2.0, float("nan"))],
        "saelab.metrics.delta_ce_loss": lambda: [bad("ce_sae", metrics.delta_ce_loss, 1.0, None)],
        "saelab.numpy_sae.adam.Adam": lambda: [bad("lr", numpy_sae.Adam, {"w": np.zeros(2)}, lr=1e39),
                                              bad("params", numpy_sae.Adam, None)],
        "saelab.numpy_sae.batchtopk.batch_topk_relu": lambda: [bad("k", numpy_sae.batch_topk_relu, X, 0)],
        "saelab.numpy_sae.make_sae": lambda: [bad("cfg", numpy_sae.make_sae, None),
                                             bad("dtype", numpy_sae.make_sae, cfgs()["l1"], dtype=np.int64)],
        "saelab.numpy_sae.from_torch": lambda: [bad("t_sae", numpy_sae.from_torch, None)],
        "saelab.numpy_sae.training.train_numpy_sae": lambda: [
            bad("x", numpy_sae.train_numpy_sae, nsae(), NAN_X, progress=False),
            bad("sae", numpy_sae.train_numpy_sae, None, X, progress=False)],
        "saelab.numpy_sae.base.recon_loss": lambda: [bad("x_hat", numpy_sae.recon_loss, X, X[:, :3])],
        "saelab.numpy_sae.topk.topk_relu": lambda: [bad("k", numpy_sae.topk_relu, X, 0)],
        "saelab.numpy_sae.topk.auxk_loss": lambda: [bad("e_hat", numpy_sae.auxk_loss, X, X[:, :3])],
        "saelab.numpy_sae.jumprelu.rectangle": lambda: [bad("u", numpy_sae.rectangle, None)],
        "saelab.sae_config.L1Config": lambda: [bad("l1_coeff", sc.L1Config, l1_coeff=-1.0),
                                               bad("decoder_norm", sc.L1Config, decoder_norm="unti")],
        "saelab.sae_config.TopKConfig": lambda: [bad("k", sc.TopKConfig, d_sae=8, k=9)],
        "saelab.sae_config.JumpReLUConfig": lambda: [bad("bandwidth", sc.JumpReLUConfig, bandwidth=0.0)],
        "saelab.sae_config.BatchTopKConfig": lambda: [bad("threshold_decay", sc.BatchTopKConfig, threshold_decay=1.0)],
        "saelab.sae_config.GatedConfig": lambda: [bad("d_in", sc.GatedConfig, d_in=None)],
        "saelab.problems.overcomplete_factor": lambda: [bad("m", problems.overcomplete_factor, 0, 3)],
        "saelab.problems.active_fraction": lambda: [bad("l0", problems.active_fraction, -1.0, 3)],
        "saelab.problems.sae_parameter_count": lambda: [bad("d", problems.sae_parameter_count, 3, None)],
        "saelab.problems.sparse_decode_speedup": lambda: [bad("l0", problems.sparse_decode_speedup, 10, 0.0)],
        "saelab.problems.l1_shrunk_code": lambda: [bad("lam", problems.l1_shrunk_code, 1.0, -1.0)],
        "saelab.problems.l1_optimal_loss": lambda: [bad("a", problems.l1_optimal_loss, float("nan"), 0.1)],
        "saelab.problems.topk_forward_backward": lambda: [bad("k", problems.topk_forward_backward, np.ones(6), 0, np.ones(6))],
        "saelab.problems.welch_capacity": lambda: [bad("eps", problems.welch_capacity, 3, 0.0)],
        "saelab.problems.welch_critical_eps": lambda: [bad("d", problems.welch_critical_eps, 0)],
        "saelab.problems.random_coherence_estimate": lambda: [bad("m", problems.random_coherence_estimate, 1, 3)],
        "saelab.problems.log10_supports": lambda: [bad("l0", problems.log10_supports, 10, 11)],
        "saelab.schedules.lr_at": lambda: [bad("step", schedules.lr_at, -1, 10, 0.1)],
        "saelab.schedules.sparsity_factor_at": lambda: [bad("warmup_frac", schedules.sparsity_factor_at, 1, 10, 2.0)],
        "saelab.shrinkage.l1_optimal_code": lambda: [bad("l1_coeff", shrinkage.l1_optimal_code, X, -1.0)],
        "saelab.shrinkage.jumprelu_optimal_code": lambda: [bad("a", shrinkage.jumprelu_optimal_code, NAN_X, 0.1)],
        "saelab.shrinkage.matched_magnitudes": lambda: [
            bad("codes", shrinkage.matched_magnitudes, None, codes(8), np.ones((12, 6)), np.ones((12, 6)))],
        "saelab.shrinkage.fit_shrinkage": lambda: [bad("coded", shrinkage.fit_shrinkage, np.ones(4), np.ones(3))],
        "saelab.sweeps.train_sweep": lambda: [
            bad("configs", sweeps.train_sweep, [], TX, TX, TrainConfig(n_steps=1), progress=False)],
        "saelab.sweeps.knob_value": lambda: [bad("cfg", sweeps.knob_value, None)],
        "saelab.synthetic.random_dictionary": lambda: [bad("n_features", synthetic.random_dictionary, 0, 4)],
        "saelab.synthetic.make_sparse_data": lambda: [bad("n_active", synthetic.make_sparse_data, 8, n_active=-1.0)],
        "saelab.torch_sae.batchtopk.batch_topk_relu": lambda: [bad("k", torch_sae.batch_topk_relu, T, 13)],
        "saelab.torch_sae.make_sae": lambda: [bad("dtype", torch_sae.make_sae, cfgs()["l1"], dtype=torch.int64),
                                             bad("cfg", torch_sae.make_sae, "topk")],
        "saelab.torch_sae.from_numpy": lambda: [bad("np_sae", torch_sae.from_numpy, None)],
        "saelab.torch_sae.base.recon_loss": lambda: [bad("x_hat", torch_sae.recon_loss, TX, TX[:, :3])],
        "saelab.torch_sae.topk.topk_relu": lambda: [bad("k", torch_sae.topk_relu, T, 0),
                                                   bad("pre_acts", torch_sae.topk_relu, X, 3)],
        "saelab.torch_sae.topk.auxk_loss": lambda: [bad("e", torch_sae.auxk_loss, None, TX)],
        "saelab.toy.ToyConfig": lambda: [bad("n_features", toy.ToyConfig, n_features=0)],
        "saelab.toy.ToyModel": lambda: [bad("config", toy.ToyModel, None)],
        "saelab.toy.toy_forward": lambda: [bad("W", toy.toy_forward, None, np.zeros(6), X)],
        "saelab.toy.toy_loss": lambda: [bad("importance", toy.toy_loss, X, X, -np.ones(6))],
        "saelab.toy.geometric_importance": lambda: [bad("decay", toy.geometric_importance, 3, -0.5)],
        "saelab.toy.sparsity_sweep": lambda: [bad("max_sparsity", toy.sparsity_sweep, 3, 1.0)],
        "saelab.toy.train_toy": lambda: [
            bad("model", toy.train_toy, None, 0.1, torch.ones(5)),
            bad("importance", toy.train_toy, toy.ToyModel(toy.ToyConfig(), seed=0), 0.1, None)],
        "saelab.toy_plots.plot_features_2d": lambda: [bad("ax", toy_plots.plot_features_2d, None, np.ones((2, 3)))],
        "saelab.toy_plots.plot_gram": lambda: [bad("W", toy_plots.plot_gram, _ax(), None)],
        "saelab.train.TrainConfig": lambda: [bad("batch_size", TrainConfig, batch_size=0)],
        "saelab.train.train_sae": lambda: [
            bad("sae", fn("saelab.train.train_sae"), None, TX),
            bad("stop", fn("saelab.train.train_sae"), tsae(), TX, progress=False, stop=True)],
        "saelab.widgets.fig_to_png": lambda: [bad("fig", widgets.fig_to_png, None)],
        "saelab.widgets.figure_slider": lambda: [bad("values", widgets.figure_slider, [b"x"], [1, 2])],
        "saelab.widgets.figure_grid": lambda: [bad("row_values", widgets.figure_grid, [[b"x"]], [1, 2], [1])],
        # -- exercise tools (checking, grading, student notebooks)
        "saelab.exercises.checking.passed": lambda: [bad("name", fn("saelab.exercises.checking.passed"), None)],
        "saelab.exercises.checking.to_numpy": lambda: [bad("value", fn("saelab.exercises.checking.to_numpy"), None)],
        "saelab.exercises.checking.call_student": lambda: [
            bad("function", fn("saelab.exercises.checking.call_student"), "ex", None)],
        "saelab.exercises.checking.expect_close": lambda: [
            bad("rtol", fn("saelab.exercises.checking.expect_close"), "ex", X, X, rtol=-1.0)],
        "saelab.exercises.grading.read_notebook": lambda: [
            bad("path", fn("saelab.exercises.grading.read_notebook"), None)],
        "saelab.exercises.grading.grade_notebook": lambda: [
            bad("path", fn("saelab.exercises.grading.grade_notebook"), None),
            bad("timeout", fn("saelab.exercises.grading.grade_notebook"), "x.ipynb", timeout=0)],
        "saelab.exercises.student.has_solution": lambda: [
            bad("cell", fn("saelab.exercises.student.has_solution"), None)],
        "saelab.exercises.student.make_student_notebook": lambda: [
            bad("nb", fn("saelab.exercises.student.make_student_notebook"), {"cells": 3})],
        "saelab.exercises.student.make_student_files": lambda: [
            bad("paths", fn("saelab.exercises.student.make_student_files"), None, "/tmp/out")],
    })
    from fuzz_cases_lm import lm_cases  # the saelab.lm table, in its own file for length

    c.update(lm_cases())
    from fuzz_cases_more import more_cases  # Chapter 7, interop, course tooling

    c.update(more_cases())
    from fuzz_cases_circuits import circuits_cases  # Chapters 8 and 9

    c.update(circuits_cases())
    from fuzz_cases_training import training_cases  # sparse TopK path, saelab.train helpers

    c.update(training_cases())
    return c


def _ax():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    plt.close(fig)
    return ax


# Public callables with no bad-input cases, and why. Exception classes and NamedTuple result
# records are exempt by rule in the test (they are raised or returned, never given user input).
EXEMPT = {
    "saelab.colab.pip_command": "takes no arguments",
    "saelab.colab.colab_setup": "its source is pasted verbatim as every chapter's first cell "
                                "(colab.CELL_SOURCE); checks there would change all six chapters",
    "saelab.problems.sae_welch_coherence": "takes no arguments",
    "saelab.results.available": "takes no arguments",
    "saelab.train.memory.can_keep_memory": "takes no arguments",
    "saelab.exercises.ch09.sparse_probe_data": "takes no arguments",
    "saelab.train.TrainHistory": "a record filled in by train_sae; its fields are lists",
    "saelab.evaluation.EvalReport": "a report that evaluate() returns; never built from user input",
    "saelab.torch_sae.jumprelu.JumpReLUFunction": "autograd Function; called through JumpReLUSAE, which validates",
    "saelab.torch_sae.jumprelu.StepFunction": "autograd Function; called through JumpReLUSAE, which validates",
    "saelab.torch_sae.sparse.KeptPreActs": "autograd Function; called through sparse_codes, which validates",
}

CASES = _cases
