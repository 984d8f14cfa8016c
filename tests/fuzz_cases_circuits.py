"""Bad inputs for the public callables of Chapters 8 and 9: transcoders, activation pairs,
attribution graphs, MLP replacements, scaling laws, probes, concepts and concept steering
(see tests/fuzz_cases.py for how to add; same format)."""
from __future__ import annotations

import functools

import numpy as np
import torch

from fuzz_cases import HOOK, NAN_X, TNAN, TX, X, bad, fn, model, toks

Y = np.array([0, 1] * 4)  # labels for the 8 rows of X
ALL_POS = np.ones(8, dtype=int)
NAN_Y = Y.astype(float)
NAN_Y[0] = np.nan


@functools.cache
def tc_cfg(d_in=128, d_out=128):
    from saelab.torch_sae.transcoder import TranscoderConfig
    return TranscoderConfig(d_in=d_in, d_sae=16, d_out=d_out, k=2, k_aux=4)


def tc(d_in=128, d_out=128):
    from saelab.torch_sae.transcoder import Transcoder
    torch.manual_seed(0)
    return Transcoder(tc_cfg(d_in, d_out))


@functools.cache
def tcs():
    return [tc() for _ in range(model().cfg.n_layers)]


@functools.cache
def graph():
    from saelab.lm.attribution import attribution_graph
    return attribution_graph(model(), tcs(), "x = 1", 16, n_targets=3)


def circuits_cases() -> dict:
    from saelab import probes
    from saelab.lm import (attribution, concept_steering, concepts, graph_plot, mlp_replacement,
                           pairs, scaling_laws)
    from saelab.torch_sae import transcoder as T

    ex = lambda ch, name: lambda: [bad("function", fn(f"saelab.exercises.{ch}.{name}"), None)]  # noqa: E731
    long_prompt = torch.ones(model().cfg.n_ctx + 5, dtype=torch.long)
    V = model().cfg.d_vocab
    lab = np.zeros((2, 8), dtype=bool)
    ONES = torch.ones(model().cfg.d_model)

    def shift(tokens, hook, direction, norm=1.0, markers=(1,)):
        return concept_steering.steering_shift(model(), tokens, hook, direction, norm, markers)
    return {
        # -- exercise checkers (Chapters 8 and 9)
        **{f"saelab.exercises.ch08.{n}": ex("ch08", n)
           for n in ("ablation_summary", "edge_weight", "transcoder_loss")},
        **{f"saelab.exercises.ch09.{n}": ex("ch09", n)
           for n in ("diff_in_means_probe", "fit_power_law", "sparse_probe")},
        # -- transcoders
        "saelab.torch_sae.transcoder.TranscoderConfig": lambda: [
            bad("d_in", T.TranscoderConfig, d_in=0), bad("d_out", T.TranscoderConfig, d_out=-1),
            bad("k", T.TranscoderConfig, d_sae=8, k=9),
            bad("aux_coeff", T.TranscoderConfig, aux_coeff=float("nan")),
            bad("d_sae", T.TranscoderConfig, d_sae=None)],
        "saelab.torch_sae.transcoder.Transcoder": lambda: [
            bad("cfg", T.Transcoder, None),
            bad("cfg", T.Transcoder, fn("saelab.sae_config.TopKConfig")(d_in=6, d_sae=12, k=3)),
            bad("dtype", T.Transcoder, tc_cfg(6, 6), dtype=torch.int32),
            bad("x", lambda: tc(6, 6)(TNAN)), bad("x", lambda: tc(6, 6)(TX[:, :4])),
            bad("x", lambda: tc(6, 6)(X))],
        "saelab.torch_sae.transcoder.pair_rows": lambda: [
            bad("x", T.pair_rows, None, TX), bad("y", T.pair_rows, TX, TX[:4]),
            bad("x", T.pair_rows, TNAN, TX), bad("y", T.pair_rows, TX, X)],
        "saelab.torch_sae.transcoder.split_pair": lambda: [
            bad("rows", T.split_pair, None, 3), bad("d_in", T.split_pair, TX, 6),
            bad("d_in", T.split_pair, TX, 0), bad("rows", T.split_pair, TX[0], 3)],
        # -- activation pairs around an MLP
        "saelab.lm.pairs.mlp_hook_names": lambda: [
            bad("layer", pairs.mlp_hook_names, -1), bad("layer", pairs.mlp_hook_names, "0")],
        "saelab.lm.pairs.run_to_hooks": lambda: [
            bad("hook_name", pairs.run_to_hooks, model(), toks(), ["blocks.9.nope"]),
            bad("tokens", pairs.run_to_hooks, model(), toks().float(), [HOOK]),
            bad("tokens", pairs.run_to_hooks, model(), toks() + V, [HOOK]),
            bad("hook_names", pairs.run_to_hooks, model(), toks(), [])],
        "saelab.lm.pairs.iter_activation_pairs": lambda: [
            bad("in_hook", lambda: next(pairs.iter_activation_pairs(model(), ["x = 1"], "nope", HOOK))),
            bad("batch_size", lambda: next(pairs.iter_activation_pairs(
                model(), ["x = 1"], HOOK, HOOK, batch_size=0))),
            bad("corpus", lambda: next(pairs.iter_activation_pairs(model(), None, HOOK, HOOK)))],
        "saelab.lm.pairs.harvest_pairs": lambda: [
            bad("out_hook", pairs.harvest_pairs, model(), ["x = 1"], HOOK, "nope", progress=False),
            bad("corpus", pairs.harvest_pairs, model(), None, HOOK, HOOK, progress=False),
            bad("seq_len", pairs.harvest_pairs, model(), ["x = 1"], HOOK, HOOK, seq_len=0,
                progress=False)],
        "saelab.lm.pairs.check_transcoder_widths": lambda: [
            bad("transcoder", pairs.check_transcoder_widths, model(), None, 0),
            bad("layer", pairs.check_transcoder_widths, model(), tc(), 9),
            bad("transcoder", pairs.check_transcoder_widths, model(), tc(6, 128), 0)],
        "saelab.lm.pairs.transcoder_splice_hooks": lambda: [
            bad("transcoder", pairs.transcoder_splice_hooks, None, 0),
            bad("layer", pairs.transcoder_splice_hooks, tc(), -1),
            bad("keep", pairs.transcoder_splice_hooks, tc(), 0, keep=torch.ones(5, dtype=torch.bool))],
        "saelab.lm.pairs.transcoder_ce_losses": lambda: [
            bad("transcoder", pairs.transcoder_ce_losses, model(), None, toks(), 0),
            bad("tokens", pairs.transcoder_ce_losses, model(), tc(), toks().float(), 0),
            bad("tokens", pairs.transcoder_ce_losses, model(), tc(), toks()[0], 0),
            bad("tokens", pairs.transcoder_ce_losses, model(), tc(), toks() + V, 0),
            bad("batch_size", pairs.transcoder_ce_losses, model(), tc(), toks(), 0, batch_size=0)],
        # -- attribution graphs
        "saelab.lm.attribution.target_token_id": lambda: [
            bad("target", attribution.target_token_id, model(), V),
            bad("target", attribution.target_token_id, model(), -1),
            bad("target", attribution.target_token_id, model(), "a very long phrase"),
            bad("target", attribution.target_token_id, model(), None)],
        "saelab.lm.attribution.attribution_graph": lambda: [
            bad("transcoders", attribution.attribution_graph, model(), tcs()[:2], "x = 1", 16),
            bad("transcoders", attribution.attribution_graph, model(), None, "x = 1", 16),
            bad("prompt", attribution.attribution_graph, model(), tcs(), long_prompt, 16),
            bad("prompt", attribution.attribution_graph, model(), tcs(), None, 16),
            bad("target", attribution.attribution_graph, model(), tcs(), "x = 1", V + 1),
            bad("n_targets", attribution.attribution_graph, model(), tcs(), "x = 1", 16, n_targets=0)],
        "saelab.lm.attribution.ablate_nodes": lambda: [
            bad("graph", attribution.ablate_nodes, model(), tcs(), None, [0]),
            bad("which", attribution.ablate_nodes, model(), tcs(), graph(), [10_000]),
            bad("which", attribution.ablate_nodes, model(), tcs(), graph(), None),
            bad("transcoders", attribution.ablate_nodes, model(), tcs()[:1], graph(), [0])],
        "saelab.lm.attribution.ablation_check": lambda: [
            bad("graph", attribution.ablation_check, model(), tcs(), None),
            bad("n_top", attribution.ablation_check, model(), tcs(), graph(), n_top=0),
            bad("n_random", attribution.ablation_check, model(), tcs(), graph(), n_top=1, n_random=0)],
        "saelab.lm.graph_plot.top_edges": lambda: [
            bad("graph", graph_plot.top_edges, None), bad("n_nodes", graph_plot.top_edges, graph(), 0),
            bad("n_edges", graph_plot.top_edges, graph(), 3, -1)],
        "saelab.lm.graph_plot.plot_attribution_graph": lambda: [
            bad("graph", graph_plot.plot_attribution_graph, None, ["a"]),
            bad("token_strings", graph_plot.plot_attribution_graph, graph(), ["a"]),
            bad("token_strings", graph_plot.plot_attribution_graph, graph(), None)],
        # -- MLP replacements
        "saelab.lm.mlp_replacement.fvu_of": lambda: [
            bad("y", mlp_replacement.fvu_of, None, TX), bad("y_hat", mlp_replacement.fvu_of, TX, TX[:3]),
            bad("y", mlp_replacement.fvu_of, TNAN, TX), bad("y", mlp_replacement.fvu_of, TX[:0], TX[:0])],
        "saelab.lm.mlp_replacement.fit_mlp_replacement": lambda: [
            bad("kind", mlp_replacement.fit_mlp_replacement, model(), 0, "mlp", toks(), toks()),
            bad("layer", mlp_replacement.fit_mlp_replacement, model(), 9, "transcoder", toks(), toks()),
            bad("train_windows", mlp_replacement.fit_mlp_replacement, model(), 0, "transcoder",
                None, toks()),
            bad("eval_windows", mlp_replacement.fit_mlp_replacement, model(), 0, "transcoder",
                toks(), toks().float()),
            bad("k", mlp_replacement.fit_mlp_replacement, model(), 0, "transcoder", toks(), toks(),
                d_sae=8, k=9)],
        # -- scaling laws
        "saelab.lm.scaling_laws.fit_power_law": lambda: [
            bad("x", scaling_laws.fit_power_law, None, [1.0, 2.0]),
            bad("x", scaling_laws.fit_power_law, [1.0, 2.0, 4.0], [1.0, 2.0]),
            bad("y", scaling_laws.fit_power_law, [1.0, 2.0, 4.0], [1.0, np.nan, 0.5]),
            bad("y", scaling_laws.fit_power_law, [1.0, 2.0, 4.0], [1.0, -1.0, 0.5]),
            bad("x", scaling_laws.fit_power_law, [2.0, 2.0, 2.0], [1.0, 0.9, 0.8])],
        "saelab.lm.scaling_laws.train_point": lambda: [
            bad("train_acts", scaling_laws.train_point, None, TX, 12, 3, 8),
            bad("eval_acts", scaling_laws.train_point, TX, TX[:, :4], 12, 3, 8),
            bad("train_acts", scaling_laws.train_point, TNAN, TX, 12, 3, 8, batch_size=4),
            bad("k", scaling_laws.train_point, TX, TX, 12, 13, 8),
            bad("n_tokens", scaling_laws.train_point, TX, TX, 12, 3, 99, batch_size=4),
            bad("return_sae", scaling_laws.train_point, TX, TX, 12, 3, 8, batch_size=4,
                return_sae="yes")],
        "saelab.lm.scaling_laws.split_share": lambda: [
            bad("W_dec_narrow", scaling_laws.split_share, None, X),
            bad("W_dec_narrow", scaling_laws.split_share, X[0], X),
            bad("W_dec_wide", scaling_laws.split_share, X, NAN_X),
            bad("W_dec_wide", scaling_laws.split_share, X, X[:, :3]),
            bad("threshold", scaling_laws.split_share, X, X, 1.0),
            bad("threshold", scaling_laws.split_share, X, X, np.nan),
            bad("live_narrow", scaling_laws.split_share, X, X, live_narrow=np.zeros(8, bool)),
            bad("min_children", scaling_laws.split_share, X, X, min_children=0)],
        "saelab.lm.scaling_laws.sweep_activations": lambda: [
            bad("n_train", scaling_laws.sweep_activations, model(), 0),
            bad("seq_len", scaling_laws.sweep_activations, model(), 8, seq_len=model().cfg.n_ctx + 1),
            bad("model", scaling_laws.sweep_activations, None, 8)],
        # -- probes
        "saelab.probes.auroc": lambda: [
            bad("scores", probes.auroc, None, Y), bad("y", probes.auroc, X[:, 0], ALL_POS),
            bad("scores", probes.auroc, NAN_X[:, 2], Y), bad("y", probes.auroc, X[:, 0], Y[:5])],
        "saelab.probes.diff_in_means": lambda: [
            bad("x", probes.diff_in_means, None, Y), bad("y", probes.diff_in_means, X, ALL_POS),
            bad("x", probes.diff_in_means, NAN_X, Y), bad("y", probes.diff_in_means, X, Y[:3])],
        "saelab.probes.fit_logistic": lambda: [
            bad("x", probes.fit_logistic, None, Y), bad("y", probes.fit_logistic, X, 1 - ALL_POS),
            bad("x", probes.fit_logistic, NAN_X, Y), bad("y", probes.fit_logistic, X, NAN_Y),
            bad("l2", probes.fit_logistic, X, Y, l2=-1.0),
            bad("max_iter", probes.fit_logistic, X, Y, max_iter=0)],
        "saelab.probes.fit_sparse_probe": lambda: [
            bad("codes", probes.fit_sparse_probe, None, Y, 2),
            bad("k", probes.fit_sparse_probe, np.abs(X), Y, 7),
            bad("k", probes.fit_sparse_probe, np.abs(X), Y, 0),
            bad("y", probes.fit_sparse_probe, np.abs(X), ALL_POS, 2)],
        "saelab.probes.latent_aurocs": lambda: [
            bad("codes", probes.latent_aurocs, None, Y), bad("codes", probes.latent_aurocs, NAN_X, Y),
            bad("y", probes.latent_aurocs, X, ALL_POS), bad("codes", probes.latent_aurocs, X[0], Y)],
        "saelab.probes.select_latents": lambda: [
            bad("k", probes.select_latents, X, Y, 0), bad("k", probes.select_latents, X, Y, 7),
            bad("codes", probes.select_latents, None, Y, 2),
            bad("y", probes.select_latents, X, ALL_POS, 2)],
        # -- concepts and concept steering
        "saelab.lm.concepts.check_labels": lambda: [
            bad("y_train", concepts.check_labels, "y_train", ALL_POS),
            bad("y_train", concepts.check_labels, "y_train", []),
            bad("y_train", concepts.check_labels, "y_train", [0, 2, 1]),
            bad("y_train", concepts.check_labels, "y_train", None)],
        "saelab.lm.concepts.label_pieces": lambda: [
            bad("concept", concepts.label_pieces, ["a"], "colour"),
            bad("pieces", concepts.label_pieces, None, "keyword"),
            bad("pieces", concepts.label_pieces, [1, 2], "keyword")],
        "saelab.lm.concepts.label_windows": lambda: [
            bad("concept", concepts.label_windows, model(), toks(), "colour"),
            bad("tokens", concepts.label_windows, model(), toks()[0], "keyword"),
            bad("tokens", concepts.label_windows, model(), toks() + V, "keyword"),
            bad("tokens", concepts.label_windows, model(), None, "keyword")],
        "saelab.lm.concept_steering.marker_tokens": lambda: [
            bad("min_rate", concept_steering.marker_tokens, toks(), lab, lab, min_rate=1.5),
            bad("min_count", concept_steering.marker_tokens, toks(), lab, lab, min_count=0),
            bad("labels", concept_steering.marker_tokens, toks(), lab[:1], lab),
            bad("labels", concept_steering.marker_tokens, toks(), lab, ~lab),
            bad("tokens", concept_steering.marker_tokens, None, lab, lab)],
        "saelab.lm.concept_steering.marker_log_mass": lambda: [
            bad("logits", concept_steering.marker_log_mass, None, [1]),
            bad("markers", concept_steering.marker_log_mass, torch.zeros(2, 8, V), []),
            bad("markers", concept_steering.marker_log_mass, torch.zeros(2, 8, V), [V]),
            bad("logits", concept_steering.marker_log_mass, torch.full((2, 8, V), float("nan")), [1])],
        "saelab.lm.concept_steering.steering_shift": lambda: [
            bad("hook_name", shift, toks(), "nope", ONES), bad("direction", shift, toks(), HOOK, ONES[:5]),
            bad("direction", shift, toks(), HOOK, 0 * ONES), bad("norm", shift, toks(), HOOK, ONES, -1.0),
            bad("markers", shift, toks(), HOOK, ONES, markers=[V]),
            bad("tokens", shift, toks().float(), HOOK, ONES)],
    }
