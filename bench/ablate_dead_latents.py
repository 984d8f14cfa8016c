"""Ablation: why saelab's TopK SAE kept more dead latents than SAELens's (issue 19, item 3).

On the synthetic setting of ``bench/bench_end_to_end.py`` it trains saelab's TopK SAE with
``train_sae``, changing one setting at a time towards SAELens 6.54's, and prints the held-out FVU,
the fraction of latents that never fire on held-out data and MMCS for each row:

- ``aux_norm``: what the AuxK loss is divided by: ``"residual"`` (the batch variance of the
  residual e, saelab before issue 19), ``"none"`` (nothing: a sum of squares on the main loss's
  scale, as SAELens and now saelab) or ``"input"`` (the batch variance of x, on FVU's scale:
  sparsify, whose main loss is an FVU);
- ``k_aux``, ``aux_scale``: SAELens uses k_aux = d_in / 2 and multiplies the loss by
  min(n_dead / k_aux, 1);
- ``aux_relu``: ReLU on the AuxK codes instead of the signed pre-activations;
- ``aux_b_dec``: whether the AuxK loss sends a gradient into ``b_dec`` (through the dead
  latents' pre-activations ``(x - b_dec) @ W_enc + b_enc``), as it does in every library;
- ``b_dec_init``, ``lr``, ``lr_decay_frac`` (0: constant, as SAELens), ``encoder_init_scale``
  (0.1: the encoder columns at SAELens's decoder init norm; saelab's decoder rows are projected
  back to unit norm after the first step in any case).

The dead window is 50,000 tokens for every row; SAELens counts it in steps, the same thing at a
fixed batch size. The variants are a subclass defined here, not options of the library.

    python bench/ablate_dead_latents.py --tokens 500000 --saelens     # lr 1e-2: dead latents appear
"""
from __future__ import annotations

import argparse

import torch

from bench_end_to_end import (D_IN, batches, make_setting, run_saelab, run_saelens, score)
from saelab.torch_sae import topk as topk_mod
from saelab.torch_sae.base import recon_loss
from saelab.torch_sae.sparse import (SparseOutput, _decode_sparse, _dense_pre_acts,
                                     _sparse_codes, _topk_selection)


def variant_forward(aux_norm="none", aux_scale=False, aux_relu=False, aux_b_dec=True):
    """A ``_forward_sparse`` for TopKSAE with the given AuxK variant."""

    def forward(self, x, dead_mask):
        params = (self.W_enc, self.b_enc, self.b_dec)
        pre = _dense_pre_acts(x, *params)
        codes = _sparse_codes(x, *params, *self.select(pre))
        x_hat = _decode_sparse(codes, self.W_dec) + self.b_dec
        recon = recon_loss(x, x_hat)
        aux = x.new_zeros(())
        if dead_mask is not None and bool(dead_mask.any()):
            dead = dead_mask.nonzero().squeeze(1)
            k_aux = min(self.cfg.k_aux, int(dead.numel()))
            rows, local, pre_kept = _topk_selection(pre.index_select(1, dead), k_aux)
            b_dec = self.b_dec if aux_b_dec else self.b_dec.detach()
            aux_codes = _sparse_codes(x, self.W_enc, self.b_enc, b_dec, rows, dead[local],
                                      pre_kept, relu=aux_relu)
            e = (x - x_hat).detach()
            num = (e - _decode_sparse(aux_codes, self.W_dec)).pow(2).sum(-1).mean()
            ref = {"residual": e, "input": x}.get(aux_norm)
            den = 1.0 if ref is None else (ref - ref.mean(0)).pow(2).sum(-1).mean()
            aux = num / den
            if aux_scale:
                aux = aux * min(dead.numel() / self.cfg.k_aux, 1.0)
        loss = recon + self.aux_coeff * aux
        return SparseOutput(x_hat, codes, loss, recon, x.new_zeros(()), aux)
    return forward


def train_variant(data, batch, lr, aux=None, sae_kw=None, train_kw=None):
    """run_saelab with TopKSAE._forward_sparse replaced for the duration of the run."""
    original = topk_mod.TopKSAE._forward_sparse
    if aux is not None:
        topk_mod.TopKSAE._forward_sparse = variant_forward(**aux)
    try:
        return run_saelab(data, lr, batch, sae_kw, train_kw)
    finally:
        topk_mod.TopKSAE._forward_sparse = original


def grid(lr):
    """(label, aux variant, TopKConfig overrides, TrainConfig overrides, lr) per row."""
    old = dict(aux_norm="residual", aux_relu=False)
    return [
        ("saelab before (AuxK / Var(e), signed codes)", old, {}, {}, lr),
        ("  AuxK codes ReLU'd", dict(old, aux_relu=True), {}, {}, lr),
        ("  AuxK unnormalised (SAELens; saelab now)", dict(aux_norm="none"), {}, {}, lr),
        ("  AuxK / Var(x) (OpenAI, sparsify)", dict(aux_norm="input"), {}, {}, lr),
        ("  k_aux = d_in/2, scale n_dead/k_aux", dict(old, aux_scale=True),
         dict(k_aux=D_IN // 2), {}, lr),
        ("  b_dec = 0", old, {}, dict(b_dec_init="zeros"), lr),
        ("  constant lr", old, {}, dict(lr_decay_frac=0.0), lr),
        ("  encoder init norm 0.1", old, dict(encoder_init_scale=0.1), {}, lr),
        ("  lr 1e-3 (saelab's default)", old, {}, {}, 1e-3),
        ("  no gradient clipping", old, {}, dict(grad_clip=None), lr),
        ("unnormalised + k_aux d_in/2 + scale (all of SAELens's AuxK)",
         dict(aux_norm="none", aux_scale=True), dict(k_aux=D_IN // 2), {}, lr),
        ("  AuxK / Var(e) without its gradient into b_dec", dict(old, aux_b_dec=False), {}, {},
         lr),
        ("unnormalised + encoder init norm 0.1", dict(aux_norm="none"),
         dict(encoder_init_scale=0.1), {}, lr),
        ("unnormalised without its gradient into b_dec", dict(aux_norm="none", aux_b_dec=False),
         {}, {}, lr),
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=500_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--n-active", type=float, default=5.0)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--rows", type=int, nargs="*", help="grid rows to run (default all)")
    p.add_argument("--saelens", action="store_true", help="also train SAELens's reference")
    p.add_argument("--cache", default="/tmp/saelab_bench_cache")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    train, heldout, dictionary = make_setting(args.tokens, args.seed, args.n_active, 32_768,
                                              args.cache)
    data = batches(train, args.batch)
    print(f"{args.tokens:,} tokens, batch {args.batch}, lr {args.lr}, seed {args.seed}")
    print("| variant | held-out FVU | dead | MMCS | seconds |\n|---|---|---|---|---|")
    rows = grid(args.lr)
    for i, (label, aux, sae_kw, train_kw, lr) in enumerate(rows):
        if args.rows and i not in args.rows:
            continue
        torch.manual_seed(args.seed)
        seconds, enc_dec, W_dec, _ = train_variant(data, args.batch, lr, aux, sae_kw, train_kw)
        r = score(enc_dec, W_dec, heldout, dictionary)
        print(f"| {i}: {label} | {r['fvu']:.4f} | {r['dead']:.1%} | {r['mmcs']:.3f} | "
              f"{seconds:.0f} |", flush=True)
    if args.saelens:
        torch.manual_seed(args.seed)
        seconds, enc_dec, W_dec, _ = run_saelens(data, args.lr, args.batch)
        r = score(enc_dec, W_dec, heldout, dictionary)
        print(f"| SAELens 6.54 | {r['fvu']:.4f} | {r['dead']:.1%} | {r['mmcs']:.3f} | "
              f"{seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
