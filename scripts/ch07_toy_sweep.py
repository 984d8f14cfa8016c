"""Regenerate saelab/results/ch07_toy.json: Chapter 7's seed spread and prefix-size sweep.

On Chapter 5's hierarchy toy (4 parents x 3 children, orthonormal in 32 dimensions, parent
probability 0.1, child probability 0.75 given the parent, coefficients exactly 1), train L1,
TopK, BatchTopK and Matryoshka SAEs of width 16 at about the same L0 (k = 1; L1 coefficient 0.05)
for the same number of tokens, on SEEDS seeds, and score each with
``saelab.hierarchy_bench.hierarchy_scores``. Then sweep the Matryoshka SAE's first prefix size
(the widget of Chapter 7) on seed 0. Everything the chapter needs to rebuild one point live is
stored under "settings". One thread, CPU; about 4 minutes on a laptop.

    PYTHONPATH=. python scripts/ch07_toy_sweep.py
"""
from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import torch

from saelab.checkpoint import CONFIG_CLASSES
from saelab.hierarchy import make_hierarchical_data
from saelab.hierarchy_bench import prefix_fvus, take_rows, train_and_score
from saelab.train import TrainConfig

OUT = pathlib.Path(__file__).resolve().parents[1] / "saelab" / "results" / "ch07_toy.json"
SEEDS = 5
SETTINGS = {
    "data": dict(n_samples=14_000, d_in=32, n_parents=4, n_children=3, p_parent=0.1,
                 p_child=0.75, orthogonal=True, seed=0),
    "n_train": 10_000,  # rows 0..n_train-1 train, the rest are held out
    "train": dict(n_steps=1500, batch_size=256, lr=3e-3),
    "families": {
        "L1": ("l1", dict(d_in=32, d_sae=16, l1_coeff=0.05, decoder_norm="unit")),
        "TopK": ("topk", dict(d_in=32, d_sae=16, k=1, k_aux=8)),
        "BatchTopK": ("batchtopk", dict(d_in=32, d_sae=16, k=1, k_aux=8)),
        "Matryoshka": ("matryoshka", dict(d_in=32, d_sae=16, k=1, k_aux=8,
                                          prefix_sizes=[4, 16])),
    },
    "first_prefixes": [1, 2, 3, 4, 6, 8, 12],
}


def latent_labels(sae, data) -> list[str]:
    """For each latent: the true direction its decoder row is closest to, e.g. "P0" or "C5"."""
    W = sae.W_dec.detach()
    W = W / W.norm(dim=1, keepdim=True)
    truth = torch.cat([data.parent_dictionary, data.child_dictionary])  # [16, d_in]
    names = [f"P{p}" for p in range(data.parent_dictionary.shape[0])]
    names += [f"C{c}" for c in range(data.child_dictionary.shape[0])]
    cos = W @ truth.T  # [d_sae, 16]
    return [f"{names[j]} ({cos[i, j]:.2f})" for i, j in enumerate(cos.argmax(1).tolist())]


def main() -> None:
    torch.set_num_threads(1)
    start = time.time()
    data = make_hierarchical_data(**SETTINGS["data"])
    n = SETTINGS["n_train"]
    train, test = take_rows(data, slice(0, n)), take_rows(data, slice(n, None))
    train_cfg = TrainConfig(**SETTINGS["train"])
    runs = {}
    for name, (family, kwargs) in SETTINGS["families"].items():
        cfg = CONFIG_CLASSES[family](**kwargs)
        runs[name] = []
        for seed in range(SEEDS):
            _, scores = train_and_score(cfg, train, test, train_cfg, seed=seed)
            runs[name].append(scores._asdict())
            print(f"{name:10s} seed {seed}: " + "  ".join(f"{k} {v:.3f}"
                                                        for k, v in scores._asdict().items()))
    sweep = []
    family, kwargs = SETTINGS["families"]["Matryoshka"]
    for m in SETTINGS["first_prefixes"]:
        cfg = CONFIG_CLASSES[family](**{**kwargs, "prefix_sizes": [m, kwargs["d_sae"]]})
        sae, scores = train_and_score(cfg, train, test, train_cfg, seed=0)
        fvus = prefix_fvus(sae, test.x, range(1, kwargs["d_sae"] + 1))
        freq = (sae.encode(test.x) > 0).float().mean(0).tolist()  # eval mode already
        sweep.append({"first_prefix": m, **scores._asdict(), "fvu_by_prefix": fvus.tolist(),
                      "labels": latent_labels(sae, test), "firing": freq})
        print(f"first prefix {m:2d}: absorption {scores.absorption:.3f} "
              f"full {scores.full_absorption:.3f} fvu {scores.fvu:.4f}")
    OUT.write_text(json.dumps({"script": "scripts/ch07_toy_sweep.py", "seeds": SEEDS,
                               "settings": SETTINGS, "runs": runs, "sweep": sweep,
                               "torch": torch.__version__, "numpy": np.__version__,
                               "seconds": round(time.time() - start)}, indent=1))
    print(f"wrote {OUT} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
