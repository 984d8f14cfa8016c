"""Published SAEs: release names and repo paths, offline failure, and (online) GPT-2 small."""
import importlib.util
import os
import time

import pytest
import torch

from saelab import lm
from saelab.interop import (SAEUnavailableError, export_saelens, load_pretrained,
                            pretrained_releases, resolve_pretrained)
from saelab.sae_config import L1Config
from saelab.torch_sae import make_sae

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sae_lens") is None,
                                reason="release names come from the sae-lens registry (test extra)")

JB, JB_REPO = "gpt2-small-res-jb", "jbloom/GPT2-Small-SAEs-Reformatted"
SITE = "blocks.6.hook_resid_pre"


def test_release_name_resolves_to_repo_folder_and_registry_info():
    source = resolve_pretrained(JB, SITE)
    assert (source.kind, source.repo_id, source.folder, source.release) == (
        "release", JB_REPO, SITE, JB)
    assert source.info["config_overrides"]["model_from_pretrained_kwargs"] == {
        "center_writing_weights": True}
    assert source.info["expected_l0"] > 0 and "release name" in source.note
    assert JB in pretrained_releases("gpt2-small")


def test_repo_path_is_accepted_and_said_to_be_a_release():
    source = resolve_pretrained(JB_REPO, SITE)
    assert (source.kind, source.release, source.folder) == ("repo", JB, SITE)
    assert "Hugging Face repo path" in source.note and repr(JB) in source.note


def test_a_release_folder_given_as_sae_id_is_mapped_to_its_id():
    source = resolve_pretrained("gpt2-small-resid-post-v5-32k", "v5_32k_layer_6.pt")
    assert source.folder == "v5_32k_layer_6.pt" and "'blocks.6.hook_resid_post'" in source.note


def test_an_unregistered_repo_path_is_taken_as_is():
    source = resolve_pretrained("someone/my-saes", "layer_3/")
    assert (source.kind, source.repo_id, source.folder, source.release) == (
        "repo", "someone/my-saes", "layer_3", None)


@pytest.mark.parametrize("release,sae_id,match", [
    ("gpt2-small-res-jbb", SITE, r"neither an SAELens release.*'gpt2-small-res-jb'"),
    (JB, "blocks.6.hook_resid_post", r"sae_id 'blocks.6.hook_resid_post' is not in release.*"
                                     r"'blocks.6.hook_resid_pre'"),
    ("", SITE, "release must be a non-empty string"),
    (JB, None, "sae_id must be a non-empty string"),
])
def test_unknown_names_list_close_ones(release, sae_id, match):
    with pytest.raises(ValueError, match=match):
        resolve_pretrained(release, sae_id)


def test_a_release_in_another_format_is_refused_before_any_download():
    with pytest.raises(ValueError, match=r"published in another format.*connor_rob_hook_z.*"
                                         r"import_saelens"):
        load_pretrained("gpt2-small-hook-z-kk", "blocks.6.hook_z")


def test_offline_fails_fast_with_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(SAEUnavailableError, match=r"HF_HUB_OFFLINE is set.*import_saelens"):
        load_pretrained("saelab-tests/not-cached", "some_folder")
    assert time.perf_counter() - start < 5.0  # measured 0.01 s


def test_cached_files_load_offline_with_metadata(monkeypatch, tmp_path):
    """The whole load path, with the Hugging Face cache replaced by a local folder."""
    import huggingface_hub

    torch.manual_seed(0)
    sae = make_sae(L1Config(d_in=8, d_sae=24))
    export_saelens(sae, tmp_path / "layer_3", model_name="gpt2", hook_name=SITE,
                   firing_density=torch.full((24,), 0.01))
    missing = object()  # what the cache answers for a file it knows is absent

    def from_cache(repo_id, filename, **kw):
        path = tmp_path / filename
        return str(path) if path.is_file() else missing

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", from_cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_pretrained("someone/my-saes", "layer_3")
    x = torch.randn(16, 8)
    assert torch.equal(loaded.sae.encode(x), sae.encode(x))
    assert loaded.metadata["hook_name"] == SITE and loaded.metadata["repo_id"] == "someone/my-saes"
    assert torch.allclose(loaded.log_sparsity, torch.full((24,), -2.0))
    assert loaded.source.startswith("Hugging Face repo 'someone/my-saes', folder 'layer_3'")


online = pytest.mark.skipif(
    os.environ.get("HF_HUB_OFFLINE", "") == "1" or not lm.hub_reachable(),
    reason="needs the Hugging Face hub to download a published GPT-2 small SAE (offline here)")


@pytest.mark.online
@online
def test_gpt2_small_residual_sae_matches_sae_lens():
    import sae_lens

    loaded = load_pretrained(JB, SITE)
    assert loaded.sae.cfg.family == "l1" and (loaded.sae.cfg.d_in, loaded.sae.cfg.d_sae) == (
        768, 24576)
    assert loaded.metadata["hook_name"] == SITE and loaded.log_sparsity.shape == (24576,)
    theirs = sae_lens.SAE.from_pretrained(JB, SITE)
    x = 30 * torch.randn(64, 768)  # residual norms at layer 6 are in the tens
    with torch.no_grad():
        f = theirs.encode(x)
        assert torch.allclose(loaded.sae.encode(x), f, atol=1e-4, rtol=1e-4)
        assert torch.allclose(loaded.sae.decode(f), theirs.decode(f), atol=1e-4, rtol=1e-4)


@pytest.mark.online
@pytest.mark.slow
@online
def test_gpt2_small_residual_sae_evaluates_like_its_published_figures():
    from saelab.evaluation import evaluate

    model = lm.load_model("gpt2")
    loaded = load_pretrained(JB, SITE)
    tokens = lm.token_windows(model, ["The cat sat on the mat and looked at the door. " * 30],
                              128, max_windows=8)
    report = evaluate(loaded.sae, lm.harvest(model, tokens, SITE, progress=False))
    # not measured here (no network); the registry lists L0 51 and 90% variance explained
    assert 5 < report.l0 < 300 and report.fvu < 0.5
