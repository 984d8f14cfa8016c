"""SAEs on a real language model (Chapter 6), on TransformerLens (``transformer-lens<4``).

- ``models``: ``load_model`` (GPT-2 when it can be had, a clear message offline), hook names.
- ``tiny``: saelab-tiny, the small model the course ships (trained on Python's documentation:
  ``corpus``, with its own byte-level BPE ``tokenizer``); ``shipped_texts`` reads its corpus.
- ``harvest``: text -> token windows -> activations at a hook, BOS and padding dropped;
  ``disk_cache``: safetensors shards; ``buffer``: the shuffling ``ActivationBuffer``.
- ``splice``: CE loss clean / SAE spliced in / zero-ablated; CE loss recovered and delta loss.
- ``features``: top-activating contexts, density, histogram, logit effect ``W_dec[i] @ W_U``.
- ``steering``: generation with ``alpha * W_dec[i]`` added at the hook, and its random control.
- ``pairs``, ``attribution`` (Chapter 8): (MLP input, MLP output) pairs for transcoders, splicing
  a transcoder in, attribution graphs and their ablation check (``graph_plot`` draws them).
"""
from __future__ import annotations

from saelab.lm.buffer import ActivationBuffer
from saelab.lm.features import (Context, Histogram, LogitEffect, activation_histogram,
                                latent_activations, latent_density, logit_effect,
                                token_strings, top_contexts)
from saelab.lm.harvesting import (harvest, iter_activations, keep_mask, read_text_files,
                               token_windows)
from saelab.lm.hooks import check_hook_name, default_hook_name, hook_width, run_to_hook
from saelab.lm.models import (SHIPPED_MODEL, ModelUnavailableError, gpt2_like_config,
                              hub_reachable, load_model, save_model)
from saelab.lm.splice import (CELosses, ce_loss_recovered, ce_losses, check_sae_width,
                              delta_ce_loss, reconstruct, splice_hook)
from saelab.lm.tiny import shipped_texts
from saelab.lm.pairs import (harvest_pairs, iter_activation_pairs, mlp_hook_names,
                             transcoder_ce_losses)
from saelab.lm.attribution import AttributionGraph, ablate_nodes, ablation_check, attribution_graph
from saelab.lm.steering import (generate_steered, random_direction, steered_logits,
                                steering_hook)

__all__ = [
    "ActivationBuffer", "CELosses", "Context", "Histogram", "LogitEffect", "ModelUnavailableError",
    "SHIPPED_MODEL", "activation_histogram", "ce_loss_recovered", "ce_losses", "check_hook_name",
    "check_sae_width", "default_hook_name", "delta_ce_loss", "generate_steered", "gpt2_like_config", "harvest",
    "hook_width",
    "hub_reachable", "iter_activations", "keep_mask", "latent_activations", "latent_density",
    "load_model", "logit_effect", "random_direction", "read_text_files", "reconstruct",
    "run_to_hook", "save_model", "shipped_texts", "splice_hook", "steered_logits", "steering_hook",
    "token_strings", "token_windows", "top_contexts",
    # Chapter 8: transcoders and attribution graphs
    "harvest_pairs", "iter_activation_pairs", "mlp_hook_names", "transcoder_ce_losses",
    "AttributionGraph", "ablate_nodes", "ablation_check", "attribution_graph",
]
