"""Activation harvesting: text -> token windows -> forward passes stopped at a hook -> activations.

    windows = chunks of seq_len - 1 tokens of the concatenated corpus, each prefixed with BOS
    acts    = model(windows) read at hook_name; the forward pass stops there   # [b, seq_len, d]
    rows    = acts at positions that are neither BOS nor padding                 # [n_tokens, d]

The recipe of Bricken et al. (2023) and of SAELens (Bloom et al. 2024): fixed-length windows,
BOS dropped because its residual norm is an outlier. Rows stream out batch by batch
(``iter_activations``), optionally through an on-disk cache of safetensors shards; ``harvest``
collects them into one tensor, ``ActivationBuffer`` (saelab.lm.buffer) shuffles them in bounded
memory. Taught in Chapter 6.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import torch
from tqdm.auto import tqdm

from saelab._checks import check_int_in_range
from saelab.lm.disk_cache import read_shards, write_shards
from saelab.lm.hooks import check_hook_name, run_to_hook

__all__ = ["run_to_hook", "token_windows", "keep_mask", "iter_activations", "harvest",
           "read_text_files"]


def read_text_files(paths) -> Iterator[str]:
    """Yield the text of each file in ``paths`` (a path, a folder of ``*.txt`` or a list)."""
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


def token_windows(model, corpus, seq_len: int, *, max_windows: int | None = None,
                  text_column: str = "text") -> torch.Tensor:
    """Cut a text corpus into windows [n_windows, seq_len]: BOS then seq_len - 1 corpus tokens.

    ``corpus`` is an iterable of strings (or of dicts with a ``text_column`` field, as a Hugging
    Face ``datasets`` dataset yields); texts are joined with the model's EOS/BOS token between
    them, and the ragged tail is dropped. ``model`` needs a tokenizer.
    """
    _check_seq_len(model, seq_len)
    tok = model.tokenizer
    if tok is None:
        raise ValueError("model has no tokenizer, so corpus must already be token windows: "
                         "pass a LongTensor [n_windows, seq_len]")
    bos = tok.bos_token_id
    body, need, windows = [], seq_len - 1, []
    for text in _texts(corpus, text_column):
        body.extend(tok(text, add_special_tokens=False)["input_ids"] + [bos])  # EOS between texts
        while len(body) >= need:
            windows.append([bos] + body[:need])
            body = body[need:]
            if max_windows is not None and len(windows) >= max_windows:
                return torch.tensor(windows, dtype=torch.long)
    if not windows:
        raise ValueError(f"corpus holds no text (or fewer than seq_len - 1 = {need} tokens); "
                         f"pass a non-empty list of strings or text files")
    return torch.tensor(windows, dtype=torch.long)  # [n_windows, seq_len]


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
            raise ValueError(f"token corpus must be a non-empty LongTensor [n_windows, seq_len], "
                             f"got {corpus.dtype} of shape {tuple(corpus.shape)}")
        _check_seq_len(model, int(corpus.shape[1]))
        if corpus.min() < 0 or corpus.max() >= model.cfg.d_vocab:
            raise ValueError(f"token corpus ids must lie in 0..{model.cfg.d_vocab - 1}")
        return corpus
    if isinstance(corpus, str):
        raise ValueError("corpus must be a list of strings, not one string: wrap it in [...]")
    max_windows = None if max_tokens is None else -(-max_tokens // (seq_len - 1))
    return token_windows(model, corpus, seq_len, max_windows=max_windows, text_column=text_column)


def _cache_meta(model, hook_name, windows, skip) -> dict:
    digest = hashlib.sha256(windows.cpu().numpy().tobytes() + repr(skip).encode()).hexdigest()
    return {"model": model.cfg.model_name, "hook_name": hook_name,
            "windows_shape": list(windows.shape), "windows_sha256": digest}


def iter_activations(model, corpus, hook_name: str = "blocks.6.hook_resid_pre", *,
                     seq_len: int = 128, batch_size: int = 32, max_tokens: int | None = None,
                     bos_token_id="auto", pad_token_id="auto", cache_dir=None,
                     progress: bool = True, text_column: str = "text") -> Iterator[torch.Tensor]:
    """An iterator over the activations at ``hook_name``, one forward batch at a time: [n_kept, d].

    Parameters
    ----------
    model : HookedTransformer
    corpus : iterable of str, datasets.Dataset, or LongTensor [n_windows, seq_len]
        Text (needs ``model.tokenizer``) or ready token windows (``seq_len`` is then their width).
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
    """
    check_hook_name(model, hook_name)  # checks run now, not at the first next()
    check_int_in_range("batch_size", batch_size, 1)
    if max_tokens is not None:
        check_int_in_range("max_tokens", max_tokens, 1)
    windows = _as_windows(model, corpus, seq_len, max_tokens, text_column)  # [n, seq_len]
    bos, pad = _special_ids(model, bos_token_id, pad_token_id)
    if cache_dir is None:
        return _forward_batches(model, windows, hook_name, batch_size, bos, pad, progress)
    meta = _cache_meta(model, hook_name, windows, (bos, pad))
    cached = read_shards(cache_dir, meta)
    if cached is not None:
        return cached
    return write_shards(cache_dir, meta, _forward_batches(model, windows, hook_name, batch_size,
                                                          bos, pad, progress))


def _forward_batches(model, windows, hook_name, batch_size, bos, pad, progress):
    starts = range(0, windows.shape[0], batch_size)
    bar = tqdm(starts, desc=f"harvest {hook_name}", unit="batch", disable=not progress)
    for s in bar:
        toks = windows[s:s + batch_size].to(model.cfg.device)  # [b, seq_len]
        act = run_to_hook(model, toks, hook_name)  # [b, seq_len, d]
        yield act[keep_mask(toks, bos, pad)]  # [n_kept, d]


def harvest(model, corpus, hook_name: str = "blocks.6.hook_resid_pre", **kwargs) -> torch.Tensor:
    """All activations at ``hook_name`` in one tensor [n_tokens, d] (BOS and padding dropped).

    Takes the arguments of ``iter_activations``. For more rows than fit in memory, stream
    ``iter_activations`` through an ``ActivationBuffer`` instead. Chapter 6.
    """
    rows = list(iter_activations(model, corpus, hook_name, **kwargs))
    if not rows or sum(r.shape[0] for r in rows) == 0:
        raise ValueError("corpus yielded no activations (every position was BOS or padding)")
    return torch.cat(rows)  # [n_tokens, d]
