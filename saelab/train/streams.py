"""Resumable streams of training batches: a folder of activation shards, or a live harvest.

Both are a sequence of *chunks* (a shard file of ``saelab.lm.disk_cache``; one forward batch of
token windows) re-cut into batches of ``batch_size`` rows:

    epoch e    chunk order  = a seeded permutation of the chunks (shards), or 0, 1, ... (harvest)
               each chunk's rows in a seeded order (seed, e, chunk): only one chunk in memory
    position   (epoch, index in the epoch's chunk order, rows of that chunk already used)

``position()`` and ``seek(position)`` are what :func:`saelab.train.train_sae` saves in a
training-state checkpoint and restores (:mod:`saelab.train.state`), so a resumed run sees the
batches an uninterrupted one would have.

Several ranks (``torchrun``): a shard folder is read in the same order by every rank and each
keeps rows ``rank::world_size`` of every global batch, the rule ``train_sae`` applies to a
tensor, so N processes train the same weights as one (every rank reads every shard; memory is
one shard). A harvest gives each rank its own windows (``saelab.lm.harvesting``, windows
``rank::world_size``), so each rank runs forward passes on its own share of the corpus.
Chapter 4 (training at scale); the command line is :mod:`saelab.train.cli`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from saelab._checks import check_instance, check_int_in_range

__all__ = ["ChunkStream", "shard_stream", "harvest_stream", "shard_folder_info"]


class ChunkStream:
    """Batches [batch_size // world_size, d] of rows cut from ``n_chunks`` chunks, forever.

    ``load(i)`` returns chunk ``i``'s rows [n_i, d]; with ``split_rows`` (shards) they are the
    same on every rank and each rank keeps rows ``rank::world_size`` of each global batch,
    otherwise (harvest) they are already this rank's. ``source`` describes the data (kept in
    checkpoints, compared on resume).
    """

    def __init__(self, n_chunks: int, load: Callable[[int], torch.Tensor], batch_size: int, *,
                 seed: int = 0, shuffle_chunks: bool = True, split_rows: bool = True,
                 rank: int = 0, world_size: int = 1, source: dict | None = None) -> None:
        self.n_chunks = check_int_in_range("n_chunks", n_chunks, 1)
        if not callable(load):
            raise TypeError(f"load must be a callable chunk index -> tensor, got {load!r}")
        self.world_size = check_int_in_range("world_size", world_size, 1)
        self.rank = check_int_in_range("rank", rank, 0, world_size - 1)
        self.batch_size = check_int_in_range("batch_size", batch_size, world_size)
        if batch_size % world_size:
            raise ValueError(f"batch_size must be a multiple of world_size = {world_size}, "
                             f"got {batch_size}")
        self.seed = check_int_in_range("seed", seed, 0)
        self.load, self.shuffle_chunks, self.split_rows = load, bool(shuffle_chunks), split_rows
        self.source = dict(source or {})
        self.epoch = self.index = self.offset = 0
        self._rows: torch.Tensor | None = None  # the current chunk's rows, shuffled

    def describe(self) -> dict:
        """What the stream reads (JSON): compared with a checkpoint's on resume."""
        return {**self.source, "batch_size": self.batch_size, "seed": self.seed,
                "split_rows": self.split_rows}

    def position(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "offset": self.offset}

    def seek(self, position: dict) -> None:
        check_instance("position", position, dict, "a dict from position()")
        if set(position) != {"epoch", "index", "offset"}:
            raise ValueError(f"position must have keys epoch, index, offset, got {position!r}")
        self.epoch = check_int_in_range("position['epoch']", position["epoch"], 0)
        self.index = check_int_in_range("position['index']", position["index"], 0,
                                        self.n_chunks)
        self.offset = check_int_in_range("position['offset']", position["offset"], 0)
        self._rows = None

    def b_dec_sample(self, n: int) -> torch.Tensor:
        """The first ``n`` rows of the first global batch (what one process would use)."""
        fresh = ChunkStream(self.n_chunks, self.load, self.batch_size, seed=self.seed,
                            shuffle_chunks=self.shuffle_chunks, split_rows=self.split_rows,
                            source=self.source,
                            world_size=1 if self.split_rows else self.world_size,
                            rank=0 if self.split_rows else self.rank)
        return next(fresh)[:n]

    def _chunk(self, epoch: int, index: int) -> int:
        if not self.shuffle_chunks:
            return index
        return int(np.random.default_rng([self.seed, epoch]).permutation(self.n_chunks)[index])

    def _current(self) -> torch.Tensor:
        if self.index == self.n_chunks:  # next epoch
            self.epoch, self.index, self.offset = self.epoch + 1, 0, 0
        if self._rows is None:
            chunk = self._chunk(self.epoch, self.index)
            rows = self.load(chunk)  # [n_rows, d]
            order = np.random.default_rng([self.seed, self.epoch, chunk]).permutation(len(rows))
            self._rows = rows[torch.from_numpy(order)]
        return self._rows

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        need = self.batch_size if self.split_rows else self.batch_size // self.world_size
        pieces, empty = [], 0
        while need:
            rows = self._current()
            take = min(need, rows.shape[0] - self.offset)
            pieces.append(rows[self.offset:self.offset + take])
            self.offset += take
            need -= take
            empty = empty + 1 if take == 0 else 0
            if empty > self.n_chunks:
                raise ValueError(f"every chunk of the stream is empty ({self.source})")
            if self.offset >= rows.shape[0]:
                self.index, self.offset, self._rows = self.index + 1, 0, None
        batch = torch.cat(pieces)
        return batch[self.rank::self.world_size] if self.split_rows else batch


def shard_folder_info(folder) -> dict:
    """Check a folder written by ``saelab.lm.disk_cache``; return its manifest plus ``d``
    (the row width) and ``rows`` (rows per shard), read from the shard headers."""
    check_instance("folder", folder, (str, os.PathLike), "a folder of activation shards")
    folder = Path(folder)
    manifest = folder / "meta.json"
    if not folder.is_dir():
        raise FileNotFoundError(f"folder={str(folder)!r} does not exist")
    if not manifest.is_file():
        raise ValueError(f"folder={str(folder)!r} has no meta.json: not a complete activation "
                         f"cache (saelab.lm.iter_activations(cache_dir=...) writes one)")
    try:
        meta = json.loads(manifest.read_text())
        n_shards = check_int_in_range("meta.json n_shards", meta["n_shards"], 1)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"folder={str(folder)!r}: unreadable meta.json ({err})") from err
    widths, rows = set(), []
    for i in range(n_shards):
        path = folder / f"shard_{i:05d}.safetensors"
        try:
            with safe_open(str(path), framework="pt") as fh:
                shape = fh.get_slice("activations").get_shape()
        except (SafetensorError, OSError, ValueError, KeyError) as err:
            raise ValueError(f"folder={str(folder)!r}: shard {path.name} is missing or "
                             f"unreadable ({err})") from err
        if len(shape) != 2:
            raise ValueError(f"folder={str(folder)!r}: shard {path.name} holds a tensor of "
                             f"shape {shape}; expected [rows, d]")
        widths.add(shape[1])
        rows.append(shape[0])
    if len(widths) > 1:
        raise ValueError(f"folder={str(folder)!r}: shards have different widths {sorted(widths)}")
    return {**meta, "d": widths.pop(), "rows": rows}


def shard_stream(folder, batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> ChunkStream:
    """A resumable stream over a folder of cached activation shards, in a seeded order."""
    info = shard_folder_info(folder)
    folder = Path(folder)
    digest = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]

    def load(i: int) -> torch.Tensor:
        return load_file(str(folder / f"shard_{i:05d}.safetensors"))["activations"]

    return ChunkStream(info["n_shards"], load, batch_size, seed=seed, rank=rank,
                       world_size=world_size, source={"kind": "shards", "meta": digest})


def harvest_stream(model, windows: torch.Tensor, hook_name: str, batch_size: int, *,
                   windows_per_chunk: int = 32, seed: int = 0, rank: int = 0,
                   world_size: int = 1) -> ChunkStream:
    """A resumable stream of activations harvested on the fly: chunk ``i`` is the forward pass
    over global windows ``[i * c * W, (i + 1) * c * W)`` (``c = windows_per_chunk``, ``W`` the
    world size), of which this rank runs its windows ``rank::W``."""
    from saelab.lm.harvesting import iter_activations
    from saelab.lm.hooks import check_hook_name

    check_hook_name(model, hook_name)
    check_instance("windows", windows, torch.Tensor, "a LongTensor [n_windows, seq_len]")
    if windows.dtype != torch.long or windows.ndim != 2:
        raise ValueError(f"windows must be a LongTensor [n_windows, seq_len], got {windows.dtype} "
                         f"of shape {tuple(windows.shape)}")
    check_int_in_range("windows_per_chunk", windows_per_chunk, 1)
    span = windows_per_chunk * world_size
    n_chunks = windows.shape[0] // span
    if n_chunks == 0:
        raise ValueError(f"windows must hold at least windows_per_chunk * world_size = {span} "
                         f"windows, got {windows.shape[0]}")

    def load(i: int) -> torch.Tensor:
        chunk = windows[i * span:(i + 1) * span]
        parts = iter_activations(model, chunk, hook_name, batch_size=windows_per_chunk,
                                 progress=False, rank=rank, world_size=world_size)
        return torch.cat(list(parts))  # [n_kept, d] of this rank's windows of the chunk

    digest = hashlib.sha256(windows.numpy().tobytes()).hexdigest()[:16]
    source = {"kind": "harvest", "model": model.cfg.model_name, "hook_name": hook_name,
              "windows": digest, "windows_per_chunk": windows_per_chunk,
              "world_size": world_size}
    return ChunkStream(n_chunks, load, batch_size, seed=seed, shuffle_chunks=False,
                       split_rows=False, rank=rank, world_size=world_size, source=source)
