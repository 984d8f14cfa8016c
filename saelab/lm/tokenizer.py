"""A byte-level BPE tokenizer trained with Hugging Face ``tokenizers``, wrapped like GPT-2's.

Byte-level BPE (Sennrich et al. 2016; Radford et al. 2019, GPT-2): text is read as UTF-8 bytes, so
every string encodes and ``decode(encode(s)) == s`` exactly; merges of frequent byte pairs make the
vocabulary. As in GPT-2, one special token ``<|endoftext|>`` serves as BOS, EOS and padding.

The wrapper is a ``transformers.PreTrainedTokenizerFast`` with ``add_bos_token=True``, so
TransformerLens's ``to_tokens``, ``to_string``, ``to_str_tokens`` and ``generate`` behave as they do
for GPT-2 (BOS first). Used by the shipped model, ``saelab.lm.tiny`` (Chapter 6).
"""
from __future__ import annotations

from pathlib import Path

from saelab._checks import check_int_in_range

__all__ = ["SPECIAL_TOKEN", "train_tokenizer", "wrap_tokenizer", "load_tokenizer"]

SPECIAL_TOKEN = "<|endoftext|>"
"""BOS, EOS and padding, as in GPT-2; id 0 in tokenizers trained here."""


def train_tokenizer(docs: list[str], vocab_size: int = 4096):
    """Train a byte-level BPE tokenizer of ``vocab_size`` tokens on ``docs``; return it wrapped.

    The 256 byte symbols and ``<|endoftext|>`` are always in the vocabulary; the rest are merges.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    check_int_in_range("vocab_size", vocab_size, 257 + 1, 1 << 20)
    if not any(doc.strip() for doc in docs):
        raise ValueError("docs holds no text to train a tokenizer on")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(docs, trainer)
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok, name: str = "saelab-bpe"):
    """``tokenizers.Tokenizer`` -> ``PreTrainedTokenizerFast`` that prepends BOS, as TransformerLens expects.

    ``name`` is recorded as ``name_or_path``; TransformerLens reads it when it attaches the
    tokenizer (it never reloads it here, because ``add_bos_token`` is already set).
    """
    from transformers import PreTrainedTokenizerFast

    if not hasattr(tok, "token_to_id"):
        raise TypeError(f"tok must be a tokenizers.Tokenizer (see train_tokenizer), got "
                        f"{type(tok).__name__}")
    if tok.token_to_id(SPECIAL_TOKEN) is None:
        raise ValueError(f"the tokenizer has no {SPECIAL_TOKEN!r} token to use as BOS/EOS/pad")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL_TOKEN,
                                   eos_token=SPECIAL_TOKEN, pad_token=SPECIAL_TOKEN,
                                   add_bos_token=True, name_or_path=name)


def load_tokenizer(folder):
    """Read a tokenizer saved by ``save_pretrained`` (``tokenizer.json``) from ``folder``."""
    from tokenizers import Tokenizer

    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"folder {str(folder)!r} has no tokenizer.json")
    return wrap_tokenizer(Tokenizer.from_file(str(path)), name=str(folder))
