"""Benchmark: end-to-end TopK training in saelab, SAELens and sparsify on the same tokens (issue 19).

The synthetic setting of issue 19: ``saelab.synthetic.make_sparse_data`` with 1,024 true features
in d_in 256 (``n_active`` expected active features per token, uniform magnitudes), a TopK SAE with
d_sae 2,048 and k 16, batches of 1,024 tokens. Every library gets the same training batches in the
same order and is scored on the same held-out set:

- wall time of training (data generation excluded; one torch thread);
- held-out FVU, ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` (:func:`saelab.metrics.fvu`);
- dead: the fraction of latents that never fire on the held-out set;
- MMCS of the true features against the learned decoder rows (:func:`saelab.metrics.mmcs`,
  ``b_to_a``: is every true feature found?);
- time ratio against SAELens.

Settings made equal in every library (printed with the results): tokens, batch size, d_sae, k,
the AuxK coefficient (1/32), the dead window (50,000 tokens; SAELens counts it in steps) and the
learning rate (``--lr``, 3e-3 by default) unless ``--own-lr`` keeps each library's default.
Everything else is each library's own default:

- saelab: ``train_sae`` with ``TrainConfig`` defaults (b_dec at the geometric median, lr decayed
  to 0 over the last 20%, gradient clipping at 1) and ``TopKConfig`` defaults for AuxK;
- SAELens 6.54: ``TopKTrainingSAE`` (decoder rows of norm 0.1 at init, not projected;
  ``rescale_acts_by_decoder_norm=True``; AuxK with k_aux = d_in / 2) trained by its ``SAETrainer``
  (constant lr, Adam (0.9, 0.999), clipping at 1, b_dec at zero);
- sparsify 1.3.3: ``SparseCoder`` in a loop that follows its ``Trainer`` for the ``fvu`` loss with
  Adam (b_dec at the first batch's mean, unit-norm decoder, linear warm-up over 1,000 steps then
  linear decay to 0). Its own default optimizer (signum with schedule-free) needs a package
  that is not installed, and its default AuxK weight is 0: both set here.

    python bench/bench_end_to_end.py                       # 2M tokens, all libraries, lr 3e-3
    python bench/bench_end_to_end.py --own-lr --libraries saelab saelens
Results and their discussion: book/training_at_scale.md, "Dead latents".

A library that is not installed is skipped with a message. Not a test: nothing here asserts.
Training data is cached under ``--cache`` (generating 2M tokens takes a minute).
"""
from __future__ import annotations

import argparse
import math
import os
import time

import torch

from saelab.metrics import fvu, mmcs
from saelab.synthetic import make_sparse_data, random_dictionary

D_IN, N_FEATURES, D_SAE, K = 256, 1024, 2048, 16
AUX_COEFF = 1 / 32
DEAD_WINDOW_TOKENS = 50_000
CHUNK = 16_384  # rows generated per call (the dense codes of a chunk are 128 MB in float64)


def make_setting(tokens: int, seed: int, n_active: float, n_heldout: int, cache: str | None,
                 magnitude: str = "uniform", noise_std: float = 0.0):
    """(train [tokens, d_in], heldout [n_heldout, d_in], dictionary [n_features, d_in])."""
    path = None
    kw = dict(n_active=n_active, magnitude=magnitude, noise_std=noise_std)
    if cache:
        os.makedirs(cache, exist_ok=True)
        tag = "" if (magnitude, noise_std) == ("uniform", 0.0) else f"_{magnitude}_{noise_std}"
        path = os.path.join(cache, f"synthetic_{tokens}_{seed}_{n_active}_{n_heldout}{tag}.pt")
        if os.path.exists(path):
            return torch.load(path)
    dictionary = random_dictionary(N_FEATURES, D_IN, seed=10_000 + seed)
    parts = []
    for i in range(math.ceil(tokens / CHUNK)):
        n = min(CHUNK, tokens - i * CHUNK)
        parts.append(make_sparse_data(n, dictionary=dictionary, seed=seed * 100_003 + i + 1,
                                      **kw).x)
    heldout = make_sparse_data(n_heldout, dictionary=dictionary, seed=seed * 100_003 + 100_000,
                               **kw).x
    setting = (torch.cat(parts), heldout, dictionary)
    if path:
        torch.save(setting, path)
    return setting


def batches(train: torch.Tensor, batch: int):
    """The training rows in order, ``batch`` at a time (the tail dropped)."""
    return [train[i:i + batch] for i in range(0, train.shape[0] - batch + 1, batch)]


def score(encode_decode, W_dec: torch.Tensor, heldout: torch.Tensor, dictionary: torch.Tensor):
    """Held-out FVU, never-firing fraction and MMCS of a trained SAE."""
    fired = torch.zeros(W_dec.shape[0], dtype=torch.bool)
    x_hats = []
    with torch.no_grad():
        for x in heldout.split(4096):
            active, x_hat = encode_decode(x)  # [batch, d_sae] bool, [batch, d_in]
            fired |= active.any(dim=0)
            x_hats.append(x_hat)
    x_hat = torch.cat(x_hats)
    return dict(fvu=fvu(heldout.numpy(), x_hat.numpy()), dead=1 - fired.float().mean().item(),
                mmcs=mmcs(W_dec.detach().numpy(), dictionary.numpy()).b_to_a)


# ----- saelab ---------------------------------------------------------------------------------
def run_saelab(data, lr, batch, sae_kw=None, train_kw=None):
    from saelab.sae_config import TopKConfig
    from saelab.torch_sae import make_sae
    from saelab.train import TrainConfig, train_sae
    sae_kw = dict(sae_kw or {})
    init_scale = sae_kw.pop("encoder_init_scale", None)
    cfg = TopKConfig(d_in=D_IN, d_sae=D_SAE, k=K, aux_coeff=AUX_COEFF, **sae_kw)
    sae = make_sae(cfg)
    if init_scale is not None:  # ablation only: encoder columns at this norm at init
        with torch.no_grad():
            sae.W_enc.mul_(init_scale)
    tcfg = TrainConfig(n_steps=len(data), batch_size=batch, dead_window_tokens=DEAD_WINDOW_TOKENS,
                       **({} if lr is None else dict(lr=lr)), **(train_kw or {}))
    start = time.perf_counter()
    train_sae(sae, data, tcfg, progress=False)
    seconds = time.perf_counter() - start
    sae.eval()

    def encode_decode(x):
        f = sae.encode(x)
        return f != 0, sae.decode(f)
    settings = f"{cfg}; {tcfg}"
    return seconds, encode_decode, sae.W_dec, settings


# ----- SAELens --------------------------------------------------------------------------------
def run_saelens(data, lr, batch, sae_kw=None):
    import sae_lens as sl
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer
    cfg = sl.TopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, aux_loss_coefficient=AUX_COEFF,
                                   **(sae_kw or {}))
    sae = sl.TopKTrainingSAE(cfg)
    tcfg = SAETrainerConfig(total_training_samples=len(data) * batch,
                            train_batch_size_samples=batch,
                            dead_feature_window=DEAD_WINDOW_TOKENS // batch,
                            lr=3e-4 if lr is None else lr,  # SAETrainerConfig's default
                            lr_end=(3e-4 if lr is None else lr) / 10)  # as its runner sets it
    start = time.perf_counter()
    SAETrainer(tcfg, sae, iter(data)).fit()
    seconds = time.perf_counter() - start
    sae.eval()

    def encode_decode(x):
        f = sae.encode(x)
        return f != 0, sae.decode(f)
    W_dec = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)
    settings = (f"TopKTrainingSAEConfig(k={K}, aux_loss_coefficient={AUX_COEFF}, "
                f"decoder_init_norm={cfg.decoder_init_norm}, "
                f"rescale_acts_by_decoder_norm={cfg.rescale_acts_by_decoder_norm}); "
                f"SAETrainerConfig(lr={tcfg.lr}, scheduler={tcfg.lr_scheduler_name}, "
                f"betas=({tcfg.adam_beta1}, {tcfg.adam_beta2}), "
                f"dead_feature_window={tcfg.dead_feature_window} steps)")
    return seconds, encode_decode, W_dec, settings


# ----- sparsify -------------------------------------------------------------------------------
def run_sparsify(data, lr, batch, warmup_steps=1000):
    from sparsify import SparseCoder, SparseCoderConfig
    torch.manual_seed(0)
    sae = SparseCoder(D_IN, SparseCoderConfig(num_latents=D_SAE, k=K))
    lr = 2e-4 / (D_SAE / 2 ** 14) ** 0.5 if lr is None else lr  # its Trainer's Adam default
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    n_steps = len(data)
    warm = min(warmup_steps, n_steps)

    def factor(step):  # transformers' get_linear_schedule_with_warmup, as its Trainer uses
        if step < warm:
            return step / max(1, warm)
        return max(0.0, (n_steps - step) / max(1, n_steps - warm))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    since_fired = torch.zeros(D_SAE, dtype=torch.long)
    start = time.perf_counter()
    with torch.no_grad():
        sae.b_dec.copy_(data[0].mean(0))
    for x in data:
        dead = since_fired > DEAD_WINDOW_TOKENS
        out = sae(x, dead_mask=dead)
        (out.fvu + AUX_COEFF * out.auxk_loss).backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        sched.step()
        sae.set_decoder_norm_to_unit_norm()
        since_fired += x.shape[0]
        since_fired[out.latent_indices.flatten()] = 0
    seconds = time.perf_counter() - start

    def encode_decode(x):
        acts, idx, _ = sae.encode(x)
        active = torch.zeros(x.shape[0], D_SAE, dtype=torch.bool)
        active.scatter_(1, idx, acts > 0)
        return active, sae.decode(acts, idx)
    settings = (f"SparseCoderConfig(k={K}, num_latents={D_SAE}); Adam lr={lr:.3g}, "
                f"warm-up {warm} steps then linear decay, auxk_alpha={AUX_COEFF}, "
                f"dead_feature_threshold={DEAD_WINDOW_TOKENS} tokens")
    return seconds, encode_decode, sae.W_dec, settings


RUNNERS = {"saelab": run_saelab, "saelens": run_saelens, "sparsify": run_sparsify}
MODULES = {"saelab": "saelab", "saelens": "sae_lens", "sparsify": "sparsify"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=2_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--libraries", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--n-active", type=float, default=5.0)
    p.add_argument("--magnitude", default="uniform", choices=("uniform", "one", "exponential"))
    p.add_argument("--noise", type=float, default=0.0, help="noise_std of make_sparse_data")
    p.add_argument("--heldout", type=int, default=32_768)
    p.add_argument("--lr", type=float, default=3e-3, help="the same lr for every library")
    p.add_argument("--own-lr", action="store_true", help="each library's default lr instead")
    p.add_argument("--cache", default="/tmp/saelab_bench_cache")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"setting: d_in {D_IN}, {N_FEATURES} true features, n_active {args.n_active} "
          f"({args.magnitude} magnitudes, noise {args.noise}), d_sae "
          f"{D_SAE}, k {K}, batch {args.batch}, {args.tokens:,} tokens, held-out "
          f"{args.heldout:,}, AuxK coefficient {AUX_COEFF:.5g}, dead window "
          f"{DEAD_WINDOW_TOKENS:,} tokens, seed {args.seed}, 1 torch thread")
    train, heldout, dictionary = make_setting(args.tokens, args.seed, args.n_active,
                                              args.heldout, args.cache, args.magnitude, args.noise)
    data = batches(train, args.batch)
    lr = None if args.own_lr else args.lr
    rows = {}
    for name in args.libraries:
        try:
            __import__(MODULES[name])
        except ImportError:
            print(f"{name}: skipped ({MODULES[name]} is not installed; pip install -e '.[bench]')")
            continue
        torch.manual_seed(args.seed)
        seconds, encode_decode, W_dec, settings = RUNNERS[name](data, lr, args.batch)
        rows[name] = dict(seconds=seconds, **score(encode_decode, W_dec, heldout, dictionary))
        print(f"{name} settings: {settings}", flush=True)
    ref = rows.get("saelens", {}).get("seconds")
    print("\n| library | seconds | held-out FVU | dead (never fire on held-out) | MMCS | "
          "time / SAELens |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        ratio = f"{r['seconds'] / ref:.2f}" if ref else "n/a"
        print(f"| {name} | {r['seconds']:.1f} | {r['fvu']:.4f} | {r['dead']:.1%} | "
              f"{r['mmcs']:.3f} | {ratio} |")
    return rows


if __name__ == "__main__":
    main()
