"""Rebuild saelab-tiny, the small language model Chapter 6 runs on offline.

    python scripts/train_tiny_model.py                      # into saelab/lm/shipped/saelab-tiny
    python scripts/train_tiny_model.py --out /tmp/tiny --epochs 1

Everything comes from the running Python installation (its documentation text), so the script
needs no network. It takes about 8 minutes on a 2-core laptop CPU; see saelab/lm/tiny.py. With
the same Python (its docstrings are the corpus) and torch, and one thread, it reproduces the
shipped files byte for byte.
"""
import argparse
import json

import torch

from saelab.lm.tiny import SHIPPED_DIR, TinyConfig, train_tiny


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", default=str(SHIPPED_DIR), help="output folder")
    parser.add_argument("--epochs", type=float, default=TinyConfig.epochs)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 reproduces the shipped files byte for byte)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    log = train_tiny(args.out, TinyConfig(epochs=args.epochs))
    summary = {k: log[k] for k in ("n_params", "train_tokens", "heldout_tokens", "steps",
                                   "heldout_loss", "baselines", "minutes")}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
