"""Benchmark: saelab's training step and ``train_sae`` beside SAELens, sparsify and
dictionary_learning (issue 19).

In one process, one torch thread, float32 on the CPU, every contender runs once per round, in
turn, for ``--rounds`` rounds (interleaved, so a busy machine slows all of them alike); the table
gives the median and minimum time of a step over the rounds and the ratio of each median to
saelab's ``train_sae``. The roofline divides the ``train_sae`` step by its unavoidable work: the
dense encoder product ``x @ W_enc``, the top-k selection and one (fused) Adam pass, timed
with freed memory kept (no page faults: the work itself, not the allocator).

    pip install -e ".[bench]"                    # sae-lens and eai-sparsify
    python bench/bench_train_step.py             # d_in 768, d_sae 16384, batch 1024, k 32
    python bench/bench_train_step.py --size small --rounds 5 --families topk l1 jumprelu

What a step is, for each contender (a random 5% of latents marked dead, so AuxK runs):
- saelab step: ``sae._forward_sparse`` (TopK) or ``sae._forward``, backward, parallel-gradient
  removal, clipping, fused Adam, constraints, firing bookkeeping: the body of ``train_sae``;
- saelab dense: the same on the dense path of Chapter 4 (TopK only);
- saelab steps run inside ``keep_freed_memory`` as ``train_sae`` does on a CPU (its second call
  is timed); "step, 0 dead, no keep" is the bare step with glibc's default allocator settings,
  which fault every large temporary in again each step (saelab.train.memory);
- saelab train_sae: the whole loop, timed between successive batch requests of its data
  iterator (``log_every=4``: a guard check, snapshot and history row every 4 steps, 12x more
  often than the default, so this is an upper bound). In its first steps no latent is dead
  yet, so compare it with "saelab step, 0 dead" (the bare step without AuxK);
- SAELens: ``SAETrainer._train_step``'s body (training_forward_pass, firing bookkeeping,
  backward, clipping, Adam), default TopK/Standard/JumpReLU training configs;
- sparsify: ``SparseCoder`` forward with ``dead_mask``, ``fvu + auxk_loss / 32``, backward,
  parallel-gradient removal, Adam (its Trainer's default is signum; Adam here for equal work),
  decoder renormalisation;
- dictionary_learning 0.1.0: ``TopKTrainer`` / ``StandardTrainer`` / ``JumpReluTrainer``
  ``.update(step, x)`` (forward, backward, its decoder-gradient projection and clipping where it
  has them, Adam, its scheduler, its firing counts); not in the bench extra, as it pulls nnsight:
  ``pip install dictionary-learning==0.1.0`` beside the extra.
Skipped with a message when a library is absent. Not a test: nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from saelab.sae_config import JumpReLUConfig, L1Config, TopKConfig
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, _make_adam, train_sae, use_sparse_path
from saelab.dead_latents import DeadLatentTracker
from saelab.train.firing import step_firing
from saelab.train.memory import keep_freed_memory

SIZES = {"small": (256, 4096, 256), "large": (768, 16384, 1024)}  # (d_in, d_sae, batch)
K = 32


def saelab_step(family, d_in, d_sae, x, dead, sparse=True):
    cfg = {"topk": TopKConfig(d_in=d_in, d_sae=d_sae, k=K, k_aux=d_in // 2),
           "l1": L1Config(d_in=d_in, d_sae=d_sae, l1_coeff=1e-3),
           "jumprelu": JumpReLUConfig(d_in=d_in, d_sae=d_sae, l0_coeff=1e-3)}[family]
    sae = make_sae(cfg)
    opt = _make_adam(sae.parameters(), TrainConfig(lr=1e-4))
    use_sparse = sparse and use_sparse_path(sae)
    forward = sae._forward_sparse if use_sparse else sae._forward
    tracker = DeadLatentTracker(d_sae, 10**9)

    def step():
        out = forward(x, dead)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if sae.unit_norm_decoder:
            sae.remove_parallel_grad()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        sae.apply_constraints()
        tracker.update_fired(step_firing(out, use_sparse, d_sae)[0], x.shape[0])
    return step


def saelab_train(family, d_in, d_sae, x, dead, steps=9):
    """Mean seconds per step of train_sae, between successive batch requests (steps 1..)."""
    cfg = {"topk": TopKConfig(d_in=d_in, d_sae=d_sae, k=K, k_aux=d_in // 2),
           "l1": L1Config(d_in=d_in, d_sae=d_sae, l1_coeff=1e-3),
           "jumprelu": JumpReLUConfig(d_in=d_in, d_sae=d_sae, l0_coeff=1e-3)}[family]

    def run():
        stamps = []

        def batches():
            for _ in range(steps):
                stamps.append(time.perf_counter())
                yield x
        train_sae(make_sae(cfg), batches(), TrainConfig(n_steps=steps, lr=1e-4, log_every=4,
                                                        b_dec_init="zeros"), progress=False)
        gaps = [b - a for a, b in zip(stamps[1:], stamps[2:])]
        run.steady.append(statistics.median(gaps))  # steps without a check or history row
        return sum(gaps) / len(gaps)
    run.steady = []
    return run


def saelens_step(family, d_in, d_sae, x, dead):
    import sae_lens as sl
    from sae_lens.saes.sae import TrainStepInput
    if family == "topk":
        sae = sl.TopKTrainingSAE(sl.TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=K,
                                                          aux_loss_coefficient=1 / 32))
    elif family == "l1":
        sae = sl.StandardTrainingSAE(sl.StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae))
    else:
        sae = sl.JumpReLUTrainingSAE(sl.JumpReLUTrainingSAEConfig(d_in=d_in, d_sae=d_sae))
    sae.train()
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)
    since_fired = torch.zeros(d_sae)
    coeffs = {"l1": 1e-3, "jumprelu": 1e-3}.get(family)
    coefficients = {} if coeffs is None else {next(iter(sae.get_coefficients())): coeffs}

    def step():
        out = sae.training_forward_pass(TrainStepInput(x, coefficients, dead, 0, False))
        with torch.no_grad():
            fired = out.feature_acts.bool().float().sum(-2).bool()
            since_fired.add_(1)
            since_fired[fired] = 0
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    return step


def sparsify_step(family, d_in, d_sae, x, dead):
    from sparsify import SparseCoder, SparseCoderConfig
    sae = SparseCoder(d_in, SparseCoderConfig(num_latents=d_sae, k=K))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

    def step():
        out = sae(x, dead_mask=dead)
        (out.fvu + out.auxk_loss / 32).backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        sae.set_decoder_norm_to_unit_norm()
    return step


def dictionary_learning_step(family, d_in, d_sae, x, dead):
    """dictionary_learning 0.1.0: its trainer's ``update`` (the step of its training loop)."""
    from dictionary_learning.trainers.jumprelu import JumpReluTrainer
    from dictionary_learning.trainers.standard import StandardTrainer
    from dictionary_learning.trainers.top_k import TopKTrainer

    common = dict(steps=10**6, activation_dim=d_in, dict_size=d_sae, layer=0, lm_name="bench",
                  lr=1e-4, device="cpu")
    if family == "topk":
        trainer = TopKTrainer(k=K, **common)
    elif family == "l1":
        trainer = StandardTrainer(l1_penalty=1e-3, **common)
    else:
        trainer = JumpReluTrainer(sparsity_penalty=1e-3, **common)
    counter = [1]  # from step 1: step 0 fits b_dec to the geometric median of the batch

    def step():
        if family == "topk":  # mark the others' dead latents silent, so its AuxK runs (its
            # step resets those that fire in this batch before AuxK: a few fewer dead)
            trainer.num_tokens_since_fired[dead] = trainer.dead_feature_threshold
        trainer.update(counter[0], x)
        counter[0] += 1
    return step


def roofline(d_in, d_sae, x):
    """Seconds of the unavoidable work: dense encoder product, top-k, one fused Adam pass."""
    W, b = torch.randn(d_in, d_sae) / d_in ** 0.5, torch.zeros(d_sae)
    params = [torch.zeros(d_in, d_sae), torch.zeros(d_sae), torch.zeros(d_sae, d_in),
              torch.zeros(d_in)]
    for p in params:
        p.requires_grad_(True)
        p.grad = torch.randn_like(p)
    opt = _make_adam(params, TrainConfig(lr=1e-4))
    opt.step()

    def run():
        pre = torch.addmm(b, x, W)
        pre.topk(K, dim=-1, sorted=False)
        opt.step()
    return run


def timed(step, keep=False):
    """Seconds of one call of ``step``; with ``keep``, the second of two calls made while freed
    memory is kept (saelab.train.memory, as in train_sae), so the timed one reuses its pages."""
    def run():
        with keep_freed_memory(keep):
            if keep:
                step()
            start = time.perf_counter()
            step()
            return time.perf_counter() - start
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="large")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--families", nargs="+", default=["topk"],
                        choices=["topk", "l1", "jumprelu"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d_in, d_sae, batch = SIZES[args.size]
    x = torch.randn(batch, d_in)
    dead = torch.rand(d_sae) < 0.05
    print(f"d_in {d_in}, d_sae {d_sae}, batch {batch}, k {K}; {args.rounds} interleaved rounds, "
          f"1 thread, torch {torch.__version__}")
    for family in args.families:
        runs = {"saelab train_sae": saelab_train(family, d_in, d_sae, x, dead),
                "saelab step, 0 dead": timed(saelab_step(family, d_in, d_sae, x, None), True),
                "saelab step": timed(saelab_step(family, d_in, d_sae, x, dead), True),
                "step, 0 dead, no keep": timed(saelab_step(family, d_in, d_sae, x, None))}
        if family == "topk":
            runs["saelab dense step"] = timed(saelab_step(family, d_in, d_sae, x, dead, False),
                                              True)
        for name, make in [("SAELens", saelens_step), ("sparsify", sparsify_step),
                           ("dictionary_learning", dictionary_learning_step)]:
            if name == "sparsify" and family != "topk":
                continue
            try:
                runs[name] = timed(make(family, d_in, d_sae, x, dead))
            except ImportError as err:
                extra = ("pip install dictionary-learning==0.1.0; it pulls nnsight, and a "
                         "torchvision built for another torch breaks its import: uninstall it"
                         if name == "dictionary_learning" else "pip install -e '.[bench]'")
                print(f"  {name} skipped: {err} ({extra})")
        if family == "topk":
            runs["roofline work"] = timed(roofline(d_in, d_sae, x), True)
        for run in runs.values():
            run()  # warm-up: allocations, Adam state, thread pools
        times = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                times[name].append(run())
        steady = statistics.median(runs["saelab train_sae"].steady[1:])  # after warm-up
        times["train_sae, no check"] = [steady]
        ref = statistics.median(times["saelab train_sae"])
        print(f"\n{family}: median ms, min ms, median / saelab train_sae")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:20s} {1e3 * med:9.1f} {1e3 * min(ts):9.1f} {med / ref:8.2f}")
        per_check = (ref - steady) * 4  # one guard check + snapshot + history row
        bare = statistics.median(times["saelab step, 0 dead"])
        print(f"  train_sae at the default log_every=50 (steady step + check / 50): "
              f"{1e3 * (steady + per_check / 50):.1f} ms = "
              f"{(steady + per_check / 50) / bare:.3f} x the bare step; one check "
              f"{1e3 * per_check:.1f} ms = {per_check / bare:.3f} steps")
        if family == "topk":
            work = statistics.median(times["roofline work"])
            print(f"  roofline ratio, train_sae step / unavoidable work: {ref / work:.2f}; "
                  f"bare step with AuxK / unavoidable work: "
                  f"{statistics.median(times['saelab step']) / work:.2f}")


if __name__ == "__main__":
    main()
