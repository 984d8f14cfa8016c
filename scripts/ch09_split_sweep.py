"""Regenerate saelab/results/ch09_splitting.json: feature splitting against width (Chapter 9).

TopK SAEs at k = 32 and widths 256 to 4,096 on the same saelab-tiny activations and settings as
the scaling sweep (``saelab/results/ch09_scaling.json``'s settings block: token budget, batch,
learning rate, seed). For each pair of consecutive widths (256 -> 512, ...) it stores
``split_share``: the share of the narrow SAE's live latents with at least two live latents of the
wider SAE at decoder cosine >= THRESHOLD (a decoder-geometry proxy for feature splitting,
Bricken et al. 2023), next to the matched share (``min_children=1``): the share with at least one such wide latent
(a latent that carries over without splitting), and each width's dead fraction on the held-out
text. One seed; one pass over the sweep's token budget (300 steps), as in the sweep. One thread,
CPU; under a minute here, a few minutes on a busy 2-core machine.

    PYTHONPATH=. python scripts/ch09_split_sweep.py
"""
from __future__ import annotations

import json
import pathlib
import platform
import time

import numpy as np
import torch

from saelab import lm
from saelab.lm.scaling_laws import split_share, sweep_activations, train_point
from saelab.results import load

OUT = pathlib.Path(__file__).resolve().parents[1] / "saelab" / "results" / "ch09_splitting.json"
SWEEP = load("ch09_scaling")["settings"]
SETTINGS = {
    "model": SWEEP["model"], "seq_len": SWEEP["seq_len"], "batch_size": SWEEP["batch_size"],
    "lr": SWEEP["lr"], "seed": SWEEP["seed"], "tokens": SWEEP["tokens"], "k": 32,
    "widths": [256, 512, 1024, 2048, 4096], "threshold": 0.7,
}


def main() -> None:
    torch.set_num_threads(1)
    start = time.time()
    model = lm.load_model(lm.SHIPPED_MODEL, device="cpu")
    train, heldout, scale = sweep_activations(model, SETTINGS["tokens"], SETTINGS["seq_len"])
    common = dict(batch_size=SETTINGS["batch_size"], lr=SETTINGS["lr"], seed=SETTINGS["seed"],
                  return_sae=True)
    points, decoders = [], []
    for d_sae in SETTINGS["widths"]:
        point, sae, live = train_point(train, heldout, d_sae, SETTINGS["k"], SETTINGS["tokens"],
                                       **common)
        points.append({"d_sae": d_sae, "dead_fraction": point["dead_fraction"],
                       "fvu": point["fvu"], "seconds": point["seconds"]})
        decoders.append((sae.W_dec.detach().numpy(), live))
        print(points[-1], flush=True)
    pairs = []
    for (w_a, (W_a, live_a)), (w_b, (W_b, live_b)) in zip(
            zip(SETTINGS["widths"], decoders), zip(SETTINGS["widths"][1:], decoders[1:])):
        share = split_share(W_a, W_b, SETTINGS["threshold"], live_narrow=live_a,
                            live_wide=live_b)
        matched = split_share(W_a, W_b, SETTINGS["threshold"], live_narrow=live_a,
                              live_wide=live_b, min_children=1)
        pairs.append({"narrow": w_a, "wide": w_b, "split_share": round(share, 5),
                      "matched_share": round(matched, 5)})
        print(pairs[-1], flush=True)
    out = {"script": "scripts/ch09_split_sweep.py", "settings": SETTINGS,
           "scale": round(scale, 6), "n_heldout": int(heldout.shape[0]), "widths": points,
           "pairs": pairs, "total_seconds": round(time.time() - start),
           "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread"}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
