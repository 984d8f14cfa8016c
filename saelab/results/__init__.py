"""Small precomputed results that chapters load instead of recomputing them (too slow on a CPU).

Each ``<name>.json`` here is written by a script under ``scripts/`` named in its ``"script"``
field, which also records the settings it ran with; a test re-runs one point of each file and
compares. :func:`load` reads one by name. Introduced in Chapter 7 (``ch07_toy``: the seed spread
and the prefix-size sweep of the Matryoshka chapter, from ``scripts/ch07_toy_sweep.py``).
Chapter 8: ``ch08_transcoders`` (per-layer FVU and CE loss recovered of transcoders, skip
transcoders and SAEs on saelab-tiny's MLPs, from ``scripts/ch08_transcoders.py``).
Chapter 9 adds ``ch09_scaling`` (TopK SAEs over widths, k and token budgets on saelab-tiny, from
``scripts/ch09_scaling_sweep.py``) and ``ch09_splitting`` (split share and dead fraction of TopK
SAEs from 256 to 4,096 latents, from ``scripts/ch09_split_sweep.py``).
"""
from __future__ import annotations

import json
from importlib import resources

__all__ = ["load", "available"]


def available() -> list[str]:
    """Names of the stored result files (without ``.json``)."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir()
                  if p.name.endswith(".json"))


def load(name: str) -> dict:
    """The stored results ``name`` (e.g. ``"ch07_toy"``) as a dict. Chapter 7."""
    names = available()
    if name not in names:
        raise ValueError(f"name must be one of {names}, got {name!r}")
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text())
