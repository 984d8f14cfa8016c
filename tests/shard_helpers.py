"""A small folder of activation shards (the saelab.lm.disk_cache format) for training tests."""
from __future__ import annotations

import torch

from saelab.lm.disk_cache import write_shards


def random_shard_folder(folder, sizes, d_in: int, seed: int, meta: dict | None = None):
    """Write one shard of standard-normal rows [n, d_in] per entry of ``sizes``; return folder."""
    g = torch.Generator().manual_seed(seed)
    meta = {"model": "m", "hook_name": "h"} if meta is None else meta
    list(write_shards(folder, meta, [torch.randn(n, d_in, generator=g) for n in sizes]))
    return folder
