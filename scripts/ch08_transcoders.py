"""Regenerate saelab/results/ch08_transcoders.json and the shipped transcoders of Chapter 8.

For every layer of saelab-tiny, train a transcoder, a skip transcoder and a TopK SAE on
``hook_mlp_out`` at equal L0 (``saelab.lm.mlp_replacement``), and store the held-out FVU of the MLP
output and the CE loss recovered on splice. The plain transcoders are saved as safetensors under
saelab/lm/shipped/transcoders/ (the chapter's attribution graph uses them). Everything needed to
rebuild one point is stored under "settings". CPU, about 5 CPU-minutes.

    PYTHONPATH=. python scripts/ch08_transcoders.py
"""
from __future__ import annotations

import json
import pathlib
import time

import torch

from saelab.checkpoint import save_sae
from saelab.lm import load_model, shipped_texts, token_windows
from saelab.lm.mlp_replacement import KINDS, fit_mlp_replacement

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "saelab" / "results" / "ch08_transcoders.json"
SHIP = ROOT / "saelab" / "lm" / "shipped" / "transcoders"
SETTINGS = {
    "model": "saelab-tiny", "seq_len": 128, "train_windows": 120, "eval_windows": 16,
    "fit": dict(d_sae=512, k=16, n_steps=300, batch_size=256, lr=2e-3, seed=0),
}


def windows(model, settings):
    train = token_windows(model, shipped_texts("train"), settings["seq_len"],
                          max_windows=settings["train_windows"])
    held = token_windows(model, shipped_texts("heldout"), settings["seq_len"],
                         max_windows=settings["eval_windows"])
    return train, held


def main() -> None:
    torch.set_num_threads(1)
    model = load_model(SETTINGS["model"])
    train, held = windows(model, SETTINGS)
    SHIP.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.time()
    for layer in range(model.cfg.n_layers):
        for kind in KINDS:
            module, scores = fit_mlp_replacement(model, layer, kind, train, held,
                                                 **SETTINGS["fit"])
            rows.append(dict(layer=layer, kind=kind, **scores))
            print(rows[-1], f"{time.time() - t0:.0f}s", flush=True)
            if kind == "transcoder":
                save_sae(module, SHIP / f"layer{layer}.safetensors")
    OUT.write_text(json.dumps({"script": "scripts/ch08_transcoders.py", "settings": SETTINGS,
                               "rows": rows, "seconds": round(time.time() - t0)}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
