"""Bad inputs for the public callables of saelab.lm (see tests/fuzz_cases.py for how to add)."""
from __future__ import annotations

import torch

from fuzz_cases import HOOK, TNAN, TX, bad, lm_sae, model, toks, tsae


def lm_cases() -> dict:
    from saelab.lm import (buffer, corpus, dashboard, disk_cache, features, harvesting, hooks,
                           models, scaling, splice, steering, tiny, tokenizer)

    return {
        "saelab.lm.buffer.ActivationBuffer": lambda: [bad("capacity", buffer.ActivationBuffer, [TX], 0, 4)],
        "saelab.lm.corpus.python_docs_corpus": lambda: [bad("stdlib_root", corpus.python_docs_corpus, "/nonexistent/dir")],
        "saelab.lm.corpus.split_documents": lambda: [bad("docs", corpus.split_documents, None)],
        "saelab.lm.dashboard.show_token": lambda: [bad("s", dashboard.show_token, None)],
        "saelab.lm.dashboard.context_html": lambda: [bad("ctx", dashboard.context_html, None, 1.0)],
        "saelab.lm.dashboard.latent_panel": lambda: [
            bad("latent", dashboard.latent_panel, model(), lm_sae(), toks(), torch.ones(2, 8),
                torch.ones(2, 8, dtype=torch.bool), 99)],
        "saelab.lm.dashboard.feature_dashboard": lambda: [
            bad("hook_name", dashboard.feature_dashboard, model(), lm_sae(), toks(), "nope", [0])],
        "saelab.lm.dashboard.steering_panel": lambda: [
            bad("direction", dashboard.steering_panel, model(), "x = 1", HOOK, None, 1.0)],
        "saelab.lm.dashboard.steering_widget": lambda: [
            bad("latents", dashboard.steering_widget, model(), lm_sae(), "x = 1", HOOK, [99], [1.0])],
        "saelab.lm.disk_cache.read_shards": lambda: [bad("meta", disk_cache.read_shards, "/tmp", None)],
        "saelab.lm.disk_cache.write_shards": lambda: [bad("meta", disk_cache.write_shards, "/tmp/x", None, [])],
        "saelab.lm.features.activation_histogram": lambda: [bad("bins", features.activation_histogram, TX, 0)],
        "saelab.lm.features.latent_activations": lambda: [
            bad("latents", features.latent_activations, model(), lm_sae(), toks(), HOOK, [99])],
        "saelab.lm.features.latent_density": lambda: [bad("keep", features.latent_density, TX, None)],
        "saelab.lm.features.logit_effect": lambda: [bad("latent", features.logit_effect, model(), lm_sae(), 99)],
        "saelab.lm.features.token_strings": lambda: [bad("ids", features.token_strings, model(), None)],
        "saelab.lm.features.top_contexts": lambda: [bad("acts", features.top_contexts, model(), toks(), torch.ones(3, 3))],
        "saelab.lm.harvesting.harvest": lambda: [bad("corpus", harvesting.harvest, model(), None, HOOK),
                                                 bad("hook_name", harvesting.harvest, model(), ["x"], "blocks.9.nope")],
        "saelab.lm.harvesting.iter_activations": lambda: [
            bad("batch_size", harvesting.iter_activations, model(), ["x"], HOOK, batch_size=0),
            bad("corpus", harvesting.iter_activations, model(), toks().float(), HOOK)],
        "saelab.lm.harvesting.keep_mask": lambda: [bad("tokens", harvesting.keep_mask, None, 0, 1)],
        "saelab.lm.harvesting.read_text_files": lambda: [bad("paths", lambda: list(harvesting.read_text_files(None)))],
        "saelab.lm.harvesting.token_windows": lambda: [
            bad("max_windows", harvesting.token_windows, model(), ["x y z"] * 9, 8, max_windows=0),
            bad("model", harvesting.token_windows, None, ["x"], 8)],
        "saelab.lm.hooks.run_to_hook": lambda: [bad("hook_name", hooks.run_to_hook, model(), toks(), "blocks.0.hook_resid_pr"),
                                                bad("tokens", hooks.run_to_hook, model(), toks().float(), HOOK)],
        "saelab.lm.hooks.check_hook_name": lambda: [bad("model", hooks.check_hook_name, None, HOOK)],
        "saelab.lm.hooks.default_hook_name": lambda: [bad("model", hooks.default_hook_name, None)],
        "saelab.lm.hooks.hook_width": lambda: [bad("hook_name", hooks.hook_width, model(), "nope")],
        "saelab.lm.models.gpt2_like_config": lambda: [bad("d_model", models.gpt2_like_config, d_model=10, n_heads=4)],
        "saelab.lm.models.load_model": lambda: [bad("name", models.load_model, None),
                                               bad("name", models.load_model, "NeelNanda/SoLU_1L_v9_old")],
        "saelab.lm.models.save_model": lambda: [bad("model", models.save_model, None, "/tmp/x")],
        "saelab.lm.models.hub_reachable": lambda: [bad("timeout", models.hub_reachable, -1.0)],
        "saelab.lm.scaling.activation_scale": lambda: [bad("acts", scaling.activation_scale, TNAN)],
        "saelab.lm.scaling.fold_input_scale": lambda: [bad("scale", scaling.fold_input_scale, tsae(), 0.0)],
        "saelab.lm.splice.reconstruct": lambda: [bad("x", splice.reconstruct, tsae(), None)],
        "saelab.lm.splice.splice_hook": lambda: [bad("sae", splice.splice_hook, None)],
        "saelab.lm.splice.ce_losses": lambda: [bad("sae", splice.ce_losses, model(), None, toks(), HOOK)],
        "saelab.lm.splice.ce_loss_recovered": lambda: [bad("losses", splice.ce_loss_recovered, None)],
        "saelab.lm.splice.delta_ce_loss": lambda: [bad("losses", splice.delta_ce_loss, (1.0,))],
        "saelab.lm.splice.check_sae_width": lambda: [bad("sae", splice.check_sae_width, model(), tsae(), HOOK)],
        "saelab.lm.steering.steering_hook": lambda: [bad("alpha", steering.steering_hook, torch.ones(4), float("nan"))],
        "saelab.lm.steering.random_direction": lambda: [bad("direction", steering.random_direction, None)],
        "saelab.lm.steering.steered_logits": lambda: [
            bad("direction", steering.steered_logits, model(), toks(), HOOK, torch.ones(3), 1.0)],
        "saelab.lm.steering.generate_steered": lambda: [
            bad("max_new_tokens", steering.generate_steered, model(), "x", HOOK, torch.ones(128), 1.0,
                max_new_tokens=0)],
        "saelab.lm.tiny.TinyConfig": lambda: [bad("n_layers", tiny.TinyConfig, n_layers=0)],
        "saelab.lm.tiny.shipped_texts": lambda: [bad("split", tiny.shipped_texts, "tran")],
        "saelab.lm.tiny.encode_documents": lambda: [bad("docs", tiny.encode_documents, model().tokenizer, None)],
        "saelab.lm.tiny.pack_windows": lambda: [bad("n_ctx", tiny.pack_windows, torch.arange(50), 1, 0)],
        "saelab.lm.tiny.ngram_baselines": lambda: [
            bad("vocab_size", tiny.ngram_baselines, toks(), toks(), 0)],
        "saelab.lm.tiny.heldout_loss": lambda: [bad("windows", tiny.heldout_loss, model(), toks().float())],
        "saelab.lm.tiny.train_tiny": lambda: [bad("docs", tiny.train_tiny, "/tmp/never", docs=[], progress=False)],
        "saelab.lm.tokenizer.train_tokenizer": lambda: [bad("vocab_size", tokenizer.train_tokenizer, ["a b"], 0)],
        "saelab.lm.tokenizer.wrap_tokenizer": lambda: [bad("tok", tokenizer.wrap_tokenizer, None)],
        "saelab.lm.tokenizer.load_tokenizer": lambda: [bad("folder", tokenizer.load_tokenizer, "/nonexistent")],
    }
