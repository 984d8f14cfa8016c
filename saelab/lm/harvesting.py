"""Activation harvesting: text -> token windows -> forward passes stopped at a hook -> activations.

    windows = chunks of seq_len - 1 tokens of the concatenated corpus, each prefixed with BOS
    acts    = model(windows) read at hook_name; the forward pass stops there   # [b, seq_len, d]
    rows    = acts at positions that are neither BOS nor padding                 # [n_tokens, d]

The recipe of Bricken et al. (2023) and of SAELens (Bloom et al. 2024): fixed-length windows,
BOS dropped because its residual norm is an outlier. Rows stream out batch by batch
(``iter_activations``), optionally through an on-disk cache of safetensors shards; ``harvest``
collects them into one tensor, ``ActivationBuffer`` (saelab.lm.buffer) shuffles them in bounded
memory. Under ``torch.distributed`` (or with ``rank`` and ``world_size`` given) each rank
harvests its own windows, ``rank::world_size`` of the corpus's: disjoint, and together the
1-process harvest (Chapter 4, training at scale). Taught in Chapter 6.
"""
from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Iterator

import torch
from tqdm.auto import tqdm

from saelab._checks import check_instance, check_int_in_range, check_not_none, check_token_ids
from saelab.lm.disk_cache import read_shards, write_shards
from saelab.lm.hooks import _check_model, check_hook_name, hook_width, run_to_hook

__all__ = ["run_to_hook", "token_windows", "keep_mask", "iter_activations", "harvest",
           "read_text_files", "rank_shard"]


def read_text_files(paths) -> Iterator[str]:
    """Yield the text of each file in ``paths`` (a path, a folder of ``*.txt`` or a list)."""
    check_instance("paths", paths, (str, Path, list, tuple), "a path, a folder or a list of paths")
    if isinstance(paths, (str, Path)):
        p = Path(paths)
        paths = sorted(p.glob("*.txt")) if p.is_dir() else [p]
    for p in paths:
        yield Path(p).read_text(encoding="utf-8", errors="replace")


def _texts(corpus, text_column: str) -> Iterator[str]:
    for item in corpus:  # a list of str, or a datasets.Dataset of {"text": ...} rows
        text = item[text_column] if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise ValueError(f"corpus items must be str or dicts with a {text_column!r} field, "
                             f"got {type(item).__name__}")
        if text.strip():
            yield text


def _iter_windows(tok, corpus, seq_len: int, text_column: str) -> Iterator[list[int]]:
    """Windows of BOS + seq_len - 1 tokens, tokenising one document at a time (lazy).

    Memory holds one document's tokens and one partial window, whatever the corpus size.
    """
    bos, need, body = tok.bos_token_id, seq_len - 1, []
    for text in _texts(corpus, text_column):
        body.extend(tok(text, add_special_tokens=False)["input_ids"])
        body.append(bos)  # EOS between texts
        start = 0
        while len(body) - start >= need:
            yield [bos] + body[start:start + need]
            start += need
        del body[:start]


def _window_batches(model, corpus, seq_len: int, batch_size: int, max_windows: int | None,
                    text_column: str, shard: tuple[int, int] = (0, 1)) -> Iterator[torch.Tensor]:
    """LongTensor batches [<= batch_size, seq_len] of windows, produced lazily from text;
    of windows ``rank::world`` only, for ``shard = (rank, world)``."""
    windows = _iter_windows(model.tokenizer, corpus, seq_len, text_column)
    if max_windows is not None:
        windows = itertools.islice(windows, max_windows)
    windows = itertools.islice(windows, shard[0], None, shard[1])
    while True:
        batch = list(itertools.islice(windows, batch_size))
        if not batch:
            return
        yield torch.tensor(batch, dtype=torch.long)  # [b, seq_len]


def _check_text_corpus(model, corpus, seq_len) -> None:
    _check_seq_len(model, seq_len)
    check_not_none("corpus", corpus, "an iterable of strings (or of dicts with a text field)")
    if isinstance(corpus, str):
        raise ValueError("corpus must be a list of strings, not one string: wrap it in [...]")
    if not hasattr(corpus, "__iter__"):
        raise TypeError(f"corpus must be an iterable of strings, got {type(corpus).__name__}")
    if model.tokenizer is None:
        raise ValueError("model has no tokenizer, so corpus must already be token windows: "
                         "pass a LongTensor [n_windows, seq_len]")


def _no_text_error(seq_len: int) -> ValueError:
    return ValueError(f"corpus holds no text (or fewer than seq_len - 1 = {seq_len - 1} tokens); "
                      f"pass a non-empty list of strings or text files")


def token_windows(model, corpus, seq_len: int, *, max_windows: int | None = None,
                  text_column: str = "text") -> torch.Tensor:
    """Cut a text corpus into windows [n_windows, seq_len]: BOS then seq_len - 1 corpus tokens.

    ``corpus`` is an iterable of strings (or of dicts with a ``text_column`` field, as a Hugging
    Face ``datasets`` dataset yields); texts are joined with the model's EOS/BOS token between
    them, and the ragged tail is dropped. ``model`` needs a tokenizer. Documents are tokenised
    one at a time, and windows are packed into tensors in blocks, so memory is the result
    (8 bytes per token) plus one document; ``iter_activations`` streams without the result.
    """
    _check_model(model)
    _check_text_corpus(model, corpus, seq_len)
    if max_windows is not None:
        check_int_in_range("max_windows", max_windows, 1)
    blocks = list(_window_batches(model, corpus, seq_len, 4096, max_windows, text_column))
    if not blocks:
        raise _no_text_error(seq_len)
    return torch.cat(blocks)  # [n_windows, seq_len]


def _check_seq_len(model, seq_len: int) -> None:
    check_int_in_range("seq_len", seq_len, 2)
    if seq_len > model.cfg.n_ctx:
        raise ValueError(f"seq_len must not exceed the model's context n_ctx = {model.cfg.n_ctx}, "
                         f"got {seq_len}")


def _special_ids(model, bos_token_id, pad_token_id):
    tok = model.tokenizer
    if bos_token_id == "auto":
        bos_token_id = None if tok is None else tok.bos_token_id
    if pad_token_id == "auto":
        pad_token_id = None if tok is None else tok.pad_token_id
    return bos_token_id, pad_token_id


def keep_mask(tokens: torch.Tensor, bos_token_id: int | None, pad_token_id: int | None,
              drop_first: bool = True) -> torch.Tensor:
    """Bool [b, pos]: True where a token is neither BOS nor padding (and not position 0).

    With GPT-2, BOS, EOS and padding are the same token, so every ``<|endoftext|>`` is dropped.
    """
    check_token_ids("tokens", tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be 2-dimensional [b, pos], got shape {tuple(tokens.shape)}")
    keep = torch.ones_like(tokens, dtype=torch.bool)  # [b, pos]
    if drop_first:
        keep[:, 0] = False
    for special in (bos_token_id, pad_token_id):
        if special is not None:
            keep &= tokens != special
    return keep


def _as_windows(model, corpus, seq_len, max_tokens, text_column) -> torch.Tensor:
    if isinstance(corpus, torch.Tensor):
        if corpus.dtype != torch.long or corpus.ndim != 2 or corpus.shape[0] == 0:
            raise ValueError(f"corpus of token windows must be a non-empty LongTensor [n_windows, seq_len], "
                             f"got {corpus.dtype} of shape {tuple(corpus.shape)}")
        _check_seq_len(model, int(corpus.shape[1]))
        if corpus.min() < 0 or corpus.max() >= model.cfg.d_vocab:
            raise ValueError(f"corpus token ids must lie in 0..{model.cfg.d_vocab - 1}")
        return corpus
    max_windows = None if max_tokens is None else -(-max_tokens // (seq_len - 1))
    return token_windows(model, corpus, seq_len, max_windows=max_windows, text_column=text_column)


def _cache_meta(model, hook_name, windows, skip) -> dict:
    digest = hashlib.sha256(windows.cpu().numpy().tobytes() + repr(skip).encode()).hexdigest()
    return {"model": model.cfg.model_name, "hook_name": hook_name,
            "windows_shape": list(windows.shape), "windows_sha256": digest}


def rank_shard(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size) whose windows a process harvests: the arguments if given, else the
    initialised ``torch.distributed`` group's, else (0, 1)."""
    if (rank is None) != (world_size is None):
        raise ValueError(f"rank and world_size must be given together, got rank={rank!r} and "
                         f"world_size={world_size!r}")
    if rank is None:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    world_size = check_int_in_range("world_size", world_size, 1)
    return check_int_in_range("rank", rank, 0, world_size - 1), world_size


def _rank_windows(windows: torch.Tensor, shard: tuple[int, int], cache_dir):
    """This rank's windows [n_rank, seq_len] and its cache folder (a subfolder per rank)."""
    rank, world = shard
    if windows.shape[0] <= rank:
        raise ValueError(f"corpus must hold more than rank = {rank} windows to give every one of "
                         f"world_size = {world} ranks some, got {windows.shape[0]}")
    if world > 1 and cache_dir is not None:
        cache_dir = Path(cache_dir) / f"rank_{rank}_of_{world}"
    return windows[rank::world], cache_dir


def iter_activations(model, corpus, hook_name: str = "blocks.6.hook_resid_pre", *,
                     seq_len: int = 128, batch_size: int = 32, max_tokens: int | None = None,
                     bos_token_id="auto", pad_token_id="auto", cache_dir=None,
                     progress: bool = True, text_column: str = "text", rank: int | None = None,
                     world_size: int | None = None) -> Iterator[torch.Tensor]:
    """An iterator over the activations at ``hook_name``, one forward batch at a time: [n_kept, d].

    Parameters
    ----------
    model : HookedTransformer
    corpus : iterable of str, datasets.Dataset, or LongTensor [n_windows, seq_len]
        Text (needs ``model.tokenizer``) or ready token windows (``seq_len`` is then their width).
        Text is tokenised lazily, one document at a time as batches are consumed, so memory does
        not grow with the corpus; with ``cache_dir`` the windows are built first (to hash them).
    hook_name : str
        A TransformerLens hook name; the forward pass stops right after it.
    seq_len, batch_size : int
        Window length (BOS included) and windows per forward pass.
    max_tokens : int, optional
        Stop tokenizing text once this many corpus tokens are in windows.
    bos_token_id, pad_token_id : int, None or "auto"
        Positions holding these ids are dropped, as is position 0; "auto" reads the tokenizer.
    cache_dir : path, optional
        Folder of safetensors shards (one per batch) plus ``meta.json``. If it holds a complete
        cache of the same model, hook and windows, rows come from disk; otherwise they are written.
        With several ranks each uses its own subfolder ``rank_R_of_W``.
    rank, world_size : int, optional
        Harvest windows ``rank::world_size`` only (``max_tokens`` counts the whole corpus).
        Default: the ``torch.distributed`` group's if one is initialised, else all windows.
    """
    check_hook_name(model, hook_name)  # checks run now, not at the first next()
    shard = rank_shard(rank, world_size)
    check_int_in_range("batch_size", batch_size, 1)
    if max_tokens is not None:
        check_int_in_range("max_tokens", max_tokens, 1)
    bos, pad = _special_ids(model, bos_token_id, pad_token_id)
    if cache_dir is None and not isinstance(corpus, torch.Tensor):  # text: stream it lazily
        _check_text_corpus(model, corpus, seq_len)
        max_windows = None if max_tokens is None else -(-max_tokens // (seq_len - 1))
        batches = _window_batches(model, corpus, seq_len, batch_size, max_windows, text_column,
                                  shard)
        first = next(batches, None)  # tokenises only until the first batch is full
        if first is None:
            raise _no_text_error(seq_len)
        return _forward(model, itertools.chain([first], batches), hook_name, bos, pad, progress)
    windows = _as_windows(model, corpus, seq_len, max_tokens, text_column)  # [n, seq_len]
    windows, cache_dir = _rank_windows(windows, shard, cache_dir)
    if cache_dir is None:
        return _forward_batches(model, windows, hook_name, batch_size, bos, pad, progress)
    meta = _cache_meta(model, hook_name, windows, (bos, pad))
    cached = read_shards(cache_dir, meta)
    if cached is not None:
        return cached
    return write_shards(cache_dir, meta, _forward_batches(model, windows, hook_name, batch_size,
                                                          bos, pad, progress))


def _forward_batches(model, windows, hook_name, batch_size, bos, pad, progress):
    batches = (windows[s:s + batch_size] for s in range(0, windows.shape[0], batch_size))
    total = -(-windows.shape[0] // batch_size)
    return _forward(model, batches, hook_name, bos, pad, progress, total)


def _forward(model, batches, hook_name, bos, pad, progress, total=None):
    bar = tqdm(batches, total=total, desc=f"harvest {hook_name}", unit="batch",
               disable=not progress)
    for toks in bar:
        toks = toks.to(model.cfg.device)  # [b, seq_len]
        act = run_to_hook(model, toks, hook_name)  # [b, seq_len, d]
        yield act[keep_mask(toks, bos, pad)]  # [n_kept, d]


def harvest(model, corpus, hook_name: str = "blocks.6.hook_resid_pre", **kwargs) -> torch.Tensor:
    """All activations at ``hook_name`` in one tensor [n_tokens, d] (BOS and padding dropped).

    Takes the arguments of ``iter_activations`` (with ``rank``/``world_size``: the rank's
    windows' rows). For more rows than fit in memory, stream
    ``iter_activations`` through an ``ActivationBuffer`` instead. The result is allocated once
    (its row count comes from the token windows, its width from ``hook_width``) and filled
    batch by batch, so peak memory is the result plus one batch. Chapter 6.
    """
    _check_model(model)
    check_hook_name(model, hook_name)
    window_args = {k: kwargs.pop(k) for k in ("seq_len", "max_tokens", "text_column")
                   if k in kwargs}
    shard = rank_shard(kwargs.pop("rank", None), kwargs.pop("world_size", None))
    seq_len = window_args.get("seq_len", 128)
    windows = _as_windows(model, corpus, seq_len, window_args.get("max_tokens"),
                          window_args.get("text_column", "text"))  # [n, seq_len], 8 B per token
    windows, kwargs["cache_dir"] = _rank_windows(windows, shard, kwargs.get("cache_dir"))
    bos, pad = _special_ids(model, kwargs.get("bos_token_id", "auto"),
                            kwargs.get("pad_token_id", "auto"))
    n_rows = int(keep_mask(windows, bos, pad).sum())
    if n_rows == 0:
        raise ValueError("corpus yielded no activations (every position was BOS or padding)")
    out = torch.empty(n_rows, hook_width(model, hook_name), dtype=model.cfg.dtype,
                      device=model.cfg.device)  # [n_tokens, d]
    filled = 0
    for rows in iter_activations(model, windows, hook_name, rank=0, world_size=1,
                                 **kwargs):  # [n_kept, d] of this rank's windows
        out[filled:filled + rows.shape[0]] = rows
        filled += rows.shape[0]
    if filled != n_rows:
        raise RuntimeError(f"harvest expected {n_rows} rows but the hook gave {filled}")
    return out
