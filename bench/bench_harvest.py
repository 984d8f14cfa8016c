"""Benchmark activation harvesting on the shipped language model, against a plain forward pass.

On one fixed token tensor (``--windows`` windows of ``--seq-len`` tokens, BOS first) this prints
the median throughput, in tokens per second, of

    forward   model(tokens), all layers and the unembedding, batch by batch
    harvest   saelab.lm.harvest to the default hook (the forward pass stops at the hook)
    buffer    saelab.lm.iter_activations through an ActivationBuffer, every batch drawn

each also as a ratio against the plain forward pass (above 1: faster than it). Then the buffer's
memory: its peak rows times width times bytes per number, against the configured capacity; the
buffer promises to hold at most ``capacity`` rows plus one incoming harvested batch.

    python bench/bench_harvest.py                      # one torch thread, the shipped model
    python bench/bench_harvest.py --threads 2 --repeats 7

The model is saelab-tiny when its files are there, otherwise a GPT-2-shaped model of the same
size with random weights (the speed does not depend on the weights). Not a test: nothing here
asserts a speed; on a shared 2-core machine compare the ratios, not the absolute numbers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from saelab import lm  # noqa: E402


def load(name: str):
    """The shipped model, or a random one of its shape when its files are missing."""
    try:
        return lm.load_model(name), name
    except lm.ModelUnavailableError:
        from transformer_lens import HookedTransformer

        cfg = lm.gpt2_like_config(n_layers=4, d_model=128, n_heads=4, n_ctx=128, d_vocab=4096)
        return HookedTransformer(cfg).eval(), "random model of saelab-tiny's shape (not shipped)"


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, thread pool, kernel choice
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(args) -> None:
    torch.set_num_threads(args.threads)
    model, label = load(args.model)
    hook = lm.default_hook_name(model)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, model.cfg.d_vocab, (args.windows, args.seq_len), generator=g)
    tokens[:, 0] = model.tokenizer.bos_token_id if model.tokenizer is not None else 0
    n_tokens = tokens.numel()
    kw = dict(batch_size=args.batch_size, progress=False)

    @torch.no_grad()
    def forward():
        for s in range(0, len(tokens), args.batch_size):
            model(tokens[s:s + args.batch_size])

    def harvest():
        lm.harvest(model, tokens, hook, **kw)

    peak = {}

    def buffered():
        buf = lm.ActivationBuffer(lm.iter_activations(model, tokens, hook, **kw),
                                  capacity=args.capacity, batch_size=args.sae_batch)
        rows = sum(b.shape[0] for b in buf)
        peak.update(rows=buf.peak_rows, total=rows)

    times = {name: median_time(fn, args.repeats)
             for name, fn in [("forward", forward), ("harvest", harvest), ("buffer", buffered)]}

    cfg = model.cfg
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {cfg.device}")
    print(f"model: {label}; {cfg.n_layers} layers, d_model {cfg.d_model}, d_vocab {cfg.d_vocab}")
    print(f"tokens: {args.windows} windows x {args.seq_len} = {n_tokens} per pass, "
          f"batches of {args.batch_size} windows; hook {hook}; median of {args.repeats}")
    print(f"  {'what':<10}{'seconds':>10}{'tokens/s':>12}{'vs forward':>12}")
    for name, t in times.items():
        print(f"  {name:<10}{t:>10.3f}{n_tokens / t:>12,.0f}{times['forward'] / t:>12.2f}")

    width = lm.hook_width(model, hook)
    nbytes = torch.finfo(cfg.dtype).bits // 8
    batch_rows = args.batch_size * (args.seq_len - 1)  # one harvested batch, BOS dropped
    mb = width * nbytes / 2**20  # per row
    print(f"\nActivationBuffer(capacity={args.capacity}, batch_size={args.sae_batch}): "
          f"{peak['total']} rows of {width} x {nbytes} bytes drawn")
    print(f"  capacity            {args.capacity:>8} rows {args.capacity * mb:8.2f} MB")
    print(f"  capacity + 1 batch  {args.capacity + batch_rows:>8} rows "
          f"{(args.capacity + batch_rows) * mb:8.2f} MB   (the bound)")
    print(f"  peak                {peak['rows']:>8} rows {peak['rows'] * mb:8.2f} MB   "
          f"peak / capacity = {peak['rows'] / args.capacity:.2f}, "
          f"within the bound: {peak['rows'] <= args.capacity + batch_rows}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=lm.SHIPPED_MODEL, help="name or folder for load_model")
    parser.add_argument("--windows", type=int, default=256)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--capacity", type=int, default=16384, help="buffer rows")
    parser.add_argument("--sae-batch", type=int, default=4096, help="rows per buffer batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
