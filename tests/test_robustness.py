"""Regression tests for issue 12: each formerly silent bad input now gets a clear error; the
NumPy and toy training guards; checkpoint values; strict model folders; lazy text streaming."""
import os
import tracemalloc
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from saelab import lm, numpy_sae, torch_sae  # noqa: E402
from saelab.checkpoint import load_sae, save_sae  # noqa: E402
from saelab.geometry import feature_dimensionality  # noqa: E402
from saelab.gradcheck import relative_error  # noqa: E402
from saelab.sae_config import JumpReLUConfig, L1Config, TopKConfig  # noqa: E402
from saelab.toy import ToyConfig, ToyModel, toy_loss, train_toy  # noqa: E402
from saelab.train import TrainingDivergedError  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
ALL_CFGS = [L1Config(d_in=6, d_sae=12), TopKConfig(d_in=6, d_sae=12, k=3),
            JumpReLUConfig(d_in=6, d_sae=12)]


# ----- formerly silent: each now raises, naming the argument -----------------------------------
def test_relative_error_rejects_nan_gradient_and_says_where():
    g = np.ones((2, 3))
    g[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"a has 1 NaN .*\(1, 2\)"):
        relative_error(g, np.ones((2, 3)))  # used to return 0.0: a NaN backward "passed"
    with pytest.raises(ValueError, match="b has 1 NaN"):
        relative_error(np.ones(2), np.array([1.0, np.inf]))


@pytest.mark.parametrize("k", [0, -1, 13])
def test_numpy_topk_relu_rejects_k_out_of_range(k):
    with pytest.raises(ValueError, match=r"k must be in 1\.\.12"):
        numpy_sae.topk_relu(np.ones((2, 12)), k)  # k = 0, -1 used to return a plain ReLU
    with pytest.raises(ValueError, match=r"k must be in 1\.\.12"):
        torch_sae.topk_relu(torch.ones(2, 12), k)


def test_topk_sae_with_k_set_to_zero_after_construction():
    sae = numpy_sae.TopKSAE(TopKConfig(d_in=6, d_sae=12, k=3), rng=0)
    sae.cfg.k = 0
    with pytest.raises(ValueError, match=r"k must be in 1\.\.12, got 0"):
        sae(np.ones((2, 6), dtype=np.float32))


@pytest.mark.parametrize("cfg", ALL_CFGS, ids=lambda c: c.family)
def test_empty_batch_is_rejected_by_both_twins(cfg):
    with pytest.raises(ValueError, match=r"x must not be empty, got shape \(0, 6\)"):
        numpy_sae.make_sae(cfg, rng=0)(np.zeros((0, 6), dtype=np.float32))
    with pytest.raises(ValueError, match=r"x must not be empty, got shape \(0, 6\)"):
        torch_sae.make_sae(cfg)(torch.zeros(0, 6))


def test_integer_and_half_dtypes_are_rejected():
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype, got int64"):
        numpy_sae.make_sae(ALL_CFGS[0], dtype=np.int64)  # used to truncate weights to integers
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype, got torch.int64"):
        torch_sae.make_sae(ALL_CFGS[0], dtype=torch.int64)
    with pytest.raises(TypeError, match="dtype torch.float16 is not supported on the CPU"):
        torch_sae.make_sae(ALL_CFGS[0], dtype=torch.float16)


def test_nan_rejected_by_load_parameters_adam_and_decode():
    sae = numpy_sae.L1SAE(ALL_CFGS[0], rng=0)
    params = {k: v.copy() for k, v in sae.parameters().items()}
    params["b_enc"][3] = np.nan
    before = sae.W_enc.copy()
    with pytest.raises(ValueError, match=r"params\['b_enc'\] contains 1 NaN"):
        sae.load_parameters(params)
    np.testing.assert_array_equal(sae.W_enc, before)  # nothing copied
    opt = numpy_sae.Adam(sae.parameters())
    grads = {k: np.zeros_like(v) for k, v in sae.parameters().items()}
    grads["W_dec"][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"grads\['W_dec'\] contains 1 NaN or infinite"):
        opt.step(grads)
    np.testing.assert_array_equal(sae.W_enc, before)
    t = torch_sae.L1SAE(ALL_CFGS[0])
    with pytest.raises(ValueError, match="f contains 1 NaN"):
        t.decode(torch.tensor([[float("nan")] + [0.0] * 11]))
    with pytest.raises(ValueError, match=r"f must have shape \(any, 12\), got \(1, 5\)"):
        t.decode(torch.zeros(1, 5))


def test_feature_dimensionality_and_toy_loss_reject_bad_values():
    with pytest.raises(ValueError, match="W contains 1 NaN"):
        feature_dimensionality(np.array([[np.nan, 1.0], [0.0, 1.0]]))  # used to give zeros
    x = torch.rand(4, 3)
    with pytest.raises(ValueError, match="importance must have non-negative entries"):
        toy_loss(x, x * 0, torch.tensor([1.0, -1.0, 1.0]))  # used to give a negative loss


@pytest.fixture(scope="module")
def tiny_model():
    return lm.load_model(lm.SHIPPED_MODEL)


def test_token_windows_max_windows_zero_and_bad_tokens(tiny_model):
    with pytest.raises(ValueError, match="max_windows must be at least 1, got 0"):
        lm.token_windows(tiny_model, ["some text here"] * 20, 8, max_windows=0)
    with pytest.raises(TypeError, match=r"tokens must hold integer token ids .*float32"):
        lm.run_to_hook(tiny_model, torch.zeros(1, 4), "blocks.0.hook_resid_pre")
    with pytest.raises(ValueError, match=r"hook_name 'blocks.0.hook_resid_pr' .*close"):
        lm.run_to_hook(tiny_model, torch.zeros(1, 4, dtype=torch.long), "blocks.0.hook_resid_pr")
    with pytest.raises(TypeError, match="model must be a TransformerLens HookedTransformer"):
        lm.run_to_hook(None, torch.zeros(1, 4, dtype=torch.long), "blocks.0.hook_resid_pre")


# ----- training guards -------------------------------------------------------------------------
def test_numpy_training_guard_restores_last_good_weights():
    x = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)
    sae = numpy_sae.L1SAE(ALL_CFGS[0], rng=0)
    with pytest.raises(TrainingDivergedError, match="FVU") as info:
        numpy_sae.train_numpy_sae(sae, x, steps=50, lr=1e3, progress=False)
    assert info.value.step <= 3  # measured: step 2
    assert all(np.isfinite(p).all() for p in sae.parameters().values())
    with pytest.raises(ValueError, match="lr must be at most"):
        numpy_sae.train_numpy_sae(sae, x, steps=5, lr=1e39, progress=False)
    log = numpy_sae.train_numpy_sae(numpy_sae.L1SAE(ALL_CFGS[0], rng=0), x, steps=40,
                                    progress=False)
    assert log["step"][-1] == 39 and log["recon"][-1] < log["recon"][0]


def test_numpy_training_interrupt_returns_partial_log(monkeypatch):
    x = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)
    sae = numpy_sae.TopKSAE(ALL_CFGS[1], rng=0)
    real_step, calls = numpy_sae.Adam.step, []

    def step(self, grads):
        calls.append(1)
        if len(calls) == 25:
            raise KeyboardInterrupt
        real_step(self, grads)

    monkeypatch.setattr(numpy_sae.Adam, "step", step)
    with pytest.warns(UserWarning, match="interrupted at step 25 of 100"):
        log = numpy_sae.train_numpy_sae(sae, x, steps=100, progress=False)
    assert log["step"] == [0, 10, 20]
    np.testing.assert_allclose(np.linalg.norm(sae.W_dec, axis=1), 1.0, rtol=1e-5)


def test_train_toy_guard_and_interrupt(monkeypatch):
    cfg = ToyConfig(n_instances=2)
    model = ToyModel(cfg, seed=0)
    with pytest.raises(TrainingDivergedError, match="toy training diverged") as info:
        train_toy(model, 0.1, cfg.importance(), steps=300, lr=1e6, progress=False)
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())
    assert info.value.history.shape[1] == 2
    real, calls = torch.optim.Adam.step, []

    def step(self, *a, **k):
        calls.append(1)
        if len(calls) == 30:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with pytest.warns(UserWarning, match="interrupted at step 30 of 100"):
        hist = train_toy(ToyModel(cfg, seed=0), 0.1, cfg.importance(), steps=100, progress=False)
    assert hist.shape == (29, 2)


# ----- checkpoints and model folders -----------------------------------------------------------
def _saved(tmp_path, cfg, edit):
    sae = torch_sae.make_sae(cfg)
    with torch.no_grad():
        edit(sae)
    path = tmp_path / f"{cfg.family}.safetensors"
    save_sae(sae, path)
    return path


@pytest.mark.parametrize("edit, pattern", [
    (lambda s: s.W_enc.__setitem__((0, 0), float("nan")), "tensor 'W_enc' holds 1 NaN"),
    (lambda s: s.W_dec.mul_(1e6), "decoder rows at unit norm"),
], ids=["nan", "row-norm"])
def test_checkpoint_rejects_bad_values_naming_the_file(tmp_path, edit, pattern):
    path = _saved(tmp_path, TopKConfig(d_in=6, d_sae=12, k=3), edit)
    with pytest.raises(ValueError, match=f"{path.name}.*{pattern}"):
        load_sae(path)


def test_checkpoint_rejects_negative_threshold_and_integer_tensors(tmp_path):
    path = _saved(tmp_path, ALL_CFGS[2], lambda s: s.threshold.fill_(-0.5))
    with pytest.raises(ValueError, match=f"{path.name}.*threshold must be non-negative"):
        load_sae(path)
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    good = _saved(tmp_path, ALL_CFGS[0], lambda s: None)
    with safe_open(str(good), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(good))
    tensors["b_dec"] = tensors["b_dec"].long()
    save_file(tensors, str(good), metadata=meta)
    with pytest.raises(ValueError, match=f"{good.name}.*'b_dec' has dtype torch.int64"):
        load_sae(good)


def test_model_folder_with_a_missing_tensor_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from transformer_lens import HookedTransformer

    model = HookedTransformer(lm.gpt2_like_config())
    lm.save_model(model, tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    del state["blocks.0.attn.W_Q"], state["unembed.W_U"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing tensors \['blocks.0.attn.W_Q', 'unembed.W_U'\]"):
        lm.load_model(tmp_path)


# ----- streaming -------------------------------------------------------------------------------
def test_first_batch_memory_is_constant_in_corpus_size(tiny_model):
    """3 million tokens of generated text: memory to the first batch stays small.

    Tokenising the whole corpus into Python lists first (the old behaviour) costs about 40 bytes
    per token, 120 MB here; lazily it is one document plus one batch (measured: 0.08 MB).
    """
    doc = " ".join(["def f(x):", "return x + 1", "# a comment"] * 40)  # ~ 1,000 tokens
    n_docs = 3000  # ~ 3 million tokens, generated on the fly so the corpus itself costs nothing
    corpus = (doc for _ in range(n_docs))
    tracemalloc.start()
    try:
        rows = lm.iter_activations(tiny_model, corpus, lm.default_hook_name(tiny_model),
                                   seq_len=64, batch_size=8, progress=False)
        first = next(rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"peak traced memory to the first batch: {peak / 1e6:.2f} MB")
    assert first.shape[0] > 0
    assert peak < 4e6, f"peak {peak / 1e6:.1f} MB before the first batch"  # measured 0.08 MB


def test_harvest_preallocates_and_matches_streaming(tiny_model):
    texts = ["def add(a, b):\n    return a + b\n"] * 30
    hook = lm.default_hook_name(tiny_model)
    acts = lm.harvest(tiny_model, texts, hook, seq_len=32, progress=False)
    streamed = torch.cat(list(lm.iter_activations(tiny_model, texts, hook, seq_len=32,
                                                  progress=False)))
    torch.testing.assert_close(acts, streamed)


def test_no_warnings_from_guards_on_normal_training():
    x = np.random.default_rng(1).standard_normal((200, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        numpy_sae.train_numpy_sae(numpy_sae.JumpReLUSAE(ALL_CFGS[2], rng=0), x, steps=20,
                                  progress=False)


def test_checkpoint_config_with_k_above_d_sae_names_the_file(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = _saved(tmp_path, TopKConfig(d_in=6, d_sae=12, k=3), lambda s: None)
    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata())
    meta["saelab_config"] = json.dumps({**json.loads(meta["saelab_config"]), "k": 99})
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(ValueError, match=f"{path.name}.*invalid topk config.*k must be in 1..12"):
        load_sae(path)


def test_load_model_refuses_pickled_hub_models():
    with pytest.raises(ValueError, match="refused: TransformerLens would load it through pickle"):
        lm.load_model("NeelNanda/SoLU_1L_v9_old")


def test_saelab_lm_modules_import_without_a_circle():
    """No module of saelab.lm imports (even lazily, inside a function) one that imports it back."""
    import ast
    from pathlib import Path

    folder = Path(lm.__file__).parent
    deps = {}
    for f in folder.glob("*.py"):
        tree = ast.parse(f.read_text())
        deps[f.stem] = {n.module.rsplit(".", 1)[-1] for n in ast.walk(tree)
                        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("saelab.lm.")}
    deps.pop("__init__")

    def reaches(start, goal, seen=()):
        return any(d == goal or (d not in seen and reaches(d, goal, (*seen, d)))
                   for d in deps.get(start, ()))

    circles = sorted(m for m in deps if reaches(m, m))
    assert not circles, f"import circle through {circles}"
