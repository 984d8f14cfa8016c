"""Benchmark one SAE training step, NumPy twin vs torch twin, against the matmuls it must do.

For each family and size this prints the median time of a full training step (forward, loss,
backward, Adam update, decoder-norm projection) in NumPy and in torch, and the time of the five
dense matrix products a step cannot avoid, timed alone in the same run on the same machine:

    forward:   x @ W_enc (B,d)x(d,F)      f @ W_dec (B,F)x(F,d)
    backward:  f.T @ g   (F,B)x(B,d)      g @ W_dec.T (B,d)x(d,F)      x.T @ g_pre (d,B)x(B,F)

The ratio ``step / matmuls`` says how much of a step is overhead beyond those products (1.0 would
be perfect). Ratios are what to compare: absolute times on a shared 2-core machine are noisy.

    python bench/bench_sae_step.py                 # small and large sizes, CPU (+ GPU if present)
    python bench/bench_sae_step.py --sizes large --repeats 5

Not a test: nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from saelab import numpy_sae, torch_sae
from saelab.sae_config import JumpReLUConfig, L1Config, TopKConfig

SIZES = {"small": (256, 4096, 256), "large": (768, 16384, 1024)}  # (d_in, d_sae, batch)


def make_config(family: str, d_in: int, d_sae: int):
    if family == "l1":
        return L1Config(d_in=d_in, d_sae=d_sae, l1_coeff=1e-3)
    if family == "topk":
        return TopKConfig(d_in=d_in, d_sae=d_sae, k=32, k_aux=d_in // 2)
    return JumpReLUConfig(d_in=d_in, d_sae=d_sae, l0_coeff=1e-3)


def median_time(fn, repeats: int, sync=lambda: None) -> float:
    fn()  # warm-up (allocations, thread pools, kernel selection)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dead_mask_for(d_sae: int, rng: np.random.Generator) -> np.ndarray:
    """A realistic mask: 5% of latents dead, so TopK's AuxK path runs."""
    return rng.random(d_sae) < 0.05


def numpy_step_fn(cfg, x: np.ndarray, dead: np.ndarray):
    sae = numpy_sae.make_sae(cfg, rng=0, dtype=np.float32)
    opt = numpy_sae.Adam(sae.parameters(), lr=1e-4)

    def step():
        out = sae.forward(x, dead_mask=dead)
        grads = sae.backward(x, out, dead_mask=dead)
        if sae.unit_norm_decoder:
            sae.remove_parallel_grad(grads)
        opt.step(grads)
        sae.apply_constraints()

    return step


def torch_step_fn(cfg, x: torch.Tensor, dead: torch.Tensor):
    sae = torch_sae.make_sae(cfg, device=x.device, dtype=x.dtype)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        out = sae(x, dead_mask=dead)
        out.loss.backward()
        if sae.unit_norm_decoder:
            sae.remove_parallel_grad()
        opt.step()
        sae.apply_constraints()

    return step


def matmul_fn(lib, d_in: int, d_sae: int, batch: int, device=None):
    """The five dense products of one step, with operands of the right shapes."""
    if lib == "numpy":
        rng = np.random.default_rng(0)
        rand = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    else:
        rand = lambda *s: torch.randn(*s, device=device)  # noqa: E731
    x, g = rand(batch, d_in), rand(batch, d_in)
    f, g_pre = rand(batch, d_sae), rand(batch, d_sae)
    W_enc, W_dec = rand(d_in, d_sae), rand(d_sae, d_in)

    def products():
        x @ W_enc
        f @ W_dec
        f.T @ g
        g @ W_dec.T
        x.T @ g_pre

    return products


def run(sizes: list[str], repeats: int, families: list[str]) -> None:
    """Time every step; torch first, then NumPy, each library in a block of its own.

    NumPy's OpenBLAS threads keep spinning for a while after a product, and would steal the
    cores from torch's threads (and the reverse) if the two libraries were interleaved.
    """
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, numpy {np.__version__}, torch threads {torch.get_num_threads()}")
    for size in sizes:
        d_in, d_sae, batch = SIZES[size]
        gflop = 5 * 2 * batch * d_in * d_sae / 1e9
        rng = np.random.default_rng(0)
        x_np = (rng.standard_normal((batch, d_in)) / np.sqrt(d_in)).astype(np.float32)
        dead_np = dead_mask_for(d_sae, rng)
        step, mm = {}, {}  # (family, device) -> seconds; device -> seconds
        for device in devices:
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            mm[device] = median_time(matmul_fn("torch", d_in, d_sae, batch, device), repeats, sync)
            x = torch.from_numpy(x_np).to(device)
            dead = torch.from_numpy(dead_np).to(device)
            for family in families:
                cfg = make_config(family, d_in, d_sae)
                step[family, device] = median_time(torch_step_fn(cfg, x, dead), repeats, sync)
        mm["numpy"] = median_time(matmul_fn("numpy", d_in, d_sae, batch), repeats)
        for family in families:
            cfg = make_config(family, d_in, d_sae)
            step[family, "numpy"] = median_time(numpy_step_fn(cfg, x_np, dead_np), repeats)

        print(f"\n{size}: d_in={d_in}, d_sae={d_sae}, batch={batch}; "
              f"the five products are {gflop:.1f} GFLOP per step")
        for lib in ["numpy"] + devices:
            print(f"  matmuls alone on {lib:<6} {mm[lib] * 1e3:8.1f} ms  ({gflop / mm[lib]:.0f} GFLOP/s)")
        print(f"  {'family':<10}{'lib':<7}{'step ms':>10}{'step/matmuls':>14}{'numpy/this':>12}")
        for family in families:
            for lib in ["numpy"] + devices:
                t = step[family, lib]
                print(f"  {family:<10}{lib:<7}{t * 1e3:>10.1f}{t / mm[lib]:>14.2f}"
                      f"{step[family, 'numpy'] / t:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,large", help="comma list of: " + ",".join(SIZES))
    parser.add_argument("--families", default="l1,topk,jumprelu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    run(args.sizes.split(","), args.repeats, args.families.split(","))


if __name__ == "__main__":
    main()
