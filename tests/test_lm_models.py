"""saelab.lm.models: loading (offline messages, local folders), hook names, bad input (Chapter 6).

No test touches the network: the offline paths are forced with HF_HUB_OFFLINE=1 or a stubbed
hub check, and every model is built from a small GPT-2-shaped config.
"""
import os
import time

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformer_lens import HookedTransformer  # noqa: E402

from saelab import lm  # noqa: E402
from saelab.lm import models  # noqa: E402
from saelab.sae_config import TopKConfig  # noqa: E402
from saelab.torch_sae import TopKSAE  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def model():
    return HookedTransformer(lm.gpt2_like_config(d_model=32, n_ctx=32, d_vocab=100)).eval()


def test_gpt2_offline_fails_fast_with_fallback(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_cached", lambda repo: False)  # as on a machine with no cache
    t0 = time.perf_counter()
    with pytest.raises(lm.ModelUnavailableError, match="HF_HUB_OFFLINE") as err:
        lm.load_model("gpt2")
    assert time.perf_counter() - t0 < 5
    assert "saelab-tiny" in str(err.value) and "save_model" in str(err.value)


def test_gpt2_unreachable_hub_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_cached", lambda repo: False)
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    with pytest.raises(lm.ModelUnavailableError, match="cannot be reached.*saelab-tiny"):
        lm.load_model("gpt2")


def test_shipped_model_missing_files_and_unknown_name(monkeypatch, tmp_path):
    shipped = lm.load_model("saelab-tiny")  # its files are part of the package
    assert shipped.tokenizer is not None and shipped.cfg.model_name == "saelab-tiny"
    from saelab.lm import models

    monkeypatch.setattr(models, "SHIPPED_DIR", tmp_path)  # as in a checkout without the files
    with pytest.raises(lm.ModelUnavailableError, match="missing from .*train_tiny_model.py"):
        lm.load_model("saelab-tiny")
    with pytest.raises(ValueError, match="close names: .*gpt2"):
        lm.load_model("gtp2")


def test_save_and_load_local_folder(model, tmp_path):
    lm.save_model(model, tmp_path / "m")
    back = lm.load_model(tmp_path / "m")
    toks = torch.randint(0, 100, (2, 16))
    torch.testing.assert_close(back(toks), model(toks))
    with pytest.raises(ValueError, match="lacks"):
        lm.load_model(str(tmp_path))


def test_unknown_hook_lists_close_names(model):
    with pytest.raises(ValueError, match=r"close valid names: \['blocks.1.hook_resid_pre'"):
        lm.check_hook_name(model, "blocks.1.hook_resid_pr")
    with pytest.raises(ValueError, match="not one vector per token"):
        lm.check_hook_name(model, "blocks.0.attn.hook_pattern")
    with pytest.raises(ValueError, match="hook_name 'blocks.6.hook_resid_pre'"):
        lm.harvest(model, torch.zeros(2, 8, dtype=torch.long))  # the GPT-2 default, 2 layers here


def test_hook_width(model):
    assert lm.hook_width(model, "blocks.1.hook_resid_pre") == 32
    assert lm.hook_width(model, "blocks.0.mlp.hook_post") == 128
    assert lm.hook_width(model, "blocks.0.attn.hook_z") == 32  # 4 heads x 8, flattened


def test_bad_input(model):
    hook = "blocks.0.hook_resid_pre"
    with pytest.raises(ValueError, match="seq_len must not exceed .* n_ctx = 32, got 40"):
        lm.harvest(model, torch.zeros(2, 40, dtype=torch.long), hook)
    with pytest.raises(ValueError, match="non-empty LongTensor"):
        lm.harvest(model, torch.zeros(0, 8, dtype=torch.long), hook)
    with pytest.raises(ValueError, match="no tokenizer"):
        lm.harvest(model, ["some text"], hook, seq_len=8)
    with pytest.raises(ValueError, match="ids must lie in 0..99"):
        lm.harvest(model, torch.full((2, 8), 100), hook)
    sae = TopKSAE(TopKConfig(d_in=48, d_sae=64, k=4))
    with pytest.raises(ValueError, match="d_in = 48 but hook .* has width 32"):
        lm.ce_losses(model, sae, torch.zeros(2, 8, dtype=torch.long), hook)
    with pytest.raises(ValueError, match="d_in = 48 but hook"):
        lm.latent_activations(model, sae, torch.zeros(2, 8, dtype=torch.long), hook, [0])
