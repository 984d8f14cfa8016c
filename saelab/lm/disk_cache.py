"""On-disk cache of harvested activations: safetensors shards plus a JSON manifest (no pickle).

    cache_dir/shard_00000.safetensors   {"activations": [n_rows_0, d]}
    cache_dir/...
    cache_dir/meta.json                 model, hook, windows' shape and SHA-256, shard count

``meta.json`` is written last, so a harvest cut short leaves no manifest and is redone. Used by
``saelab.lm.harvesting.iter_activations``; taught in Chapter 6.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import torch
from safetensors.torch import load_file, save_file

from saelab._checks import check_instance

__all__ = ["read_shards", "write_shards"]

_KEY = "activations"


def _shard(cache_dir: Path, i: int) -> Path:
    return cache_dir / f"shard_{i:05d}.safetensors"


def read_shards(cache_dir, meta: dict) -> Iterator[torch.Tensor] | None:
    """Iterator over the cached rows of ``meta``'s harvest, or None if ``cache_dir`` has none.

    Raises ValueError if ``cache_dir`` holds a complete cache of a different harvest.
    """
    check_instance("meta", meta, dict, "a dict describing the harvest")
    check_instance("cache_dir", cache_dir, (str, os.PathLike), "a folder path")
    cache_dir = Path(cache_dir)
    manifest = cache_dir / "meta.json"
    if not manifest.is_file():
        return None
    stored = json.loads(manifest.read_text())
    n_shards = stored.pop("n_shards", None)
    stored.pop("n_rows", None)
    if stored != meta:
        diff = sorted(k for k in set(stored) | set(meta) if stored.get(k) != meta.get(k))
        raise ValueError(f"cache_dir {str(cache_dir)!r} holds activations of another harvest "
                         f"(differs in {diff}); pass another folder or delete this one")
    return (load_file(str(_shard(cache_dir, i)))[_KEY] for i in range(n_shards))


def write_shards(cache_dir, meta: dict, batches: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Pass ``batches`` through, saving each as a shard; write the manifest after the last."""
    check_instance("meta", meta, dict, "a dict describing the harvest")
    check_instance("cache_dir", cache_dir, (str, os.PathLike), "a folder path")
    if not hasattr(batches, "__iter__"):
        raise TypeError(f"batches must be an iterable of tensors, got {type(batches).__name__}")
    return _write(cache_dir, meta, batches)


def _write(cache_dir, meta: dict, batches) -> Iterator[torch.Tensor]:
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob("shard_*.safetensors"):  # leftovers of an interrupted harvest
        old.unlink()
    n_shards = n_rows = 0
    for rows in batches:
        save_file({_KEY: rows.detach().cpu().contiguous()}, str(_shard(cache_dir, n_shards)))
        n_shards += 1
        n_rows += int(rows.shape[0])
        yield rows
    (cache_dir / "meta.json").write_text(json.dumps({**meta, "n_shards": n_shards,
                                                     "n_rows": n_rows}, indent=1))
