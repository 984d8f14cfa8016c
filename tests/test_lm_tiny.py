"""saelab-tiny (Chapter 6): the corpus, the BPE tokenizer, windows, n-gram baselines, training,
and the shipped model itself.

Everything except the shipped-model tests runs on small stand-ins: a fake standard-library folder
for the corpus filter, a few pydoc topics for the tokenizer, and a 2-layer model trained for a few
steps. The shipped-model tests read saelab/lm/shipped/saelab-tiny/ and fail if its files are
missing (they are part of the package). One slow test reads the real standard library.
"""
import json
import math
import os
import platform
import re
import sysconfig
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pydoc_data.topics import topics  # noqa: E402
from transformer_lens import HookedTransformer  # noqa: E402

from saelab import lm  # noqa: E402
from saelab.lm import tiny  # noqa: E402
from saelab.lm.corpus import (MIN_DOC_CHARS, _docstrings, python_docs_corpus,  # noqa: E402
                              split_documents)
from saelab.lm.tiny import (TinyConfig, encode_documents, heldout_loss,  # noqa: E402
                            ngram_baselines, pack_windows, shipped_texts, train_tiny)
from saelab.lm.tokenizer import (SPECIAL_TOKEN, load_tokenizer, train_tokenizer,  # noqa: E402
                                 wrap_tokenizer)

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TOPICS = [topics[name] for name in sorted(topics)]  # ~80 documents of real Python docs
VOCAB = 300  # 256 bytes, <|endoftext|> and 43 merges: trains in well under a second


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TOPICS[:10], VOCAB)


# ----- corpus -------------------------------------------------------------------------------------

def _write(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def fake_stdlib(root: Path) -> dict[str, str]:
    """A standard-library-shaped folder; returns the docstrings by what should happen to them."""
    long = {k: f"{k.upper()}: a docstring long enough to count as a document of the corpus."
            for k in ("module", "cls", "func", "dup", "test", "tests", "idle", "testfile", "tk")}
    _write(root / "pkg" / "__init__.py", f'"""{long["module"]}"""\n'
           f'def f():\n    """{long["dup"]}"""\n'
           f'def g():\n    """Return self."""\n')  # short: dropped
    _write(root / "pkg" / "other.py", f'class C:\n    """  {long["cls"]}\n    """\n'
           f'    async def h(self):\n        """{long["func"]}"""\n'
           f'def dup():\n    """{long["dup"]}"""\n')  # the same text again: kept once
    _write(root / "pkg" / "broken.py", "def (:\n")  # a file for another Python: skipped
    _write(root / "test" / "test_mod.py", f'"""{long["test"]}"""\n')
    _write(root / "pkg" / "tests" / "helpers.py", f'"""{long["tests"]}"""\n')
    _write(root / "idlelib" / "editor.py", f'"""{long["idle"]}"""\n')
    _write(root / "test_top.py", f'"""{long["testfile"]}"""\n')
    _write(root / "tkinter" / "__init__.py", f'"""{long["tk"]}"""\n')
    return {"kept": [long["module"], long["dup"], long["cls"], long["func"]],
            "skipped": [long[k] for k in ("test", "tests", "idle", "testfile", "tk")]}


def test_corpus_filters_deduplicates_and_keeps_order(tmp_path):
    expect = fake_stdlib(tmp_path)
    docs = python_docs_corpus(tmp_path)
    long_topics = [t.strip() for t in TOPICS if len(t.strip()) >= MIN_DOC_CHARS]
    n_topics = len(dict.fromkeys(long_topics))
    assert docs[:n_topics] == list(dict.fromkeys(long_topics))  # the pydoc topics come first
    assert docs[n_topics:] == expect["kept"]  # file order, then ast.walk order; dup kept once
    assert not set(expect["skipped"]) & set(docs)  # tests, idlelib, tkinter: never documents
    assert len(set(docs)) == len(docs) and min(map(len, docs)) >= MIN_DOC_CHARS
    assert all(d == d.strip() for d in docs)
    assert python_docs_corpus(tmp_path) == docs  # a fixed order
    with pytest.raises(ValueError, match="stdlib_root .*missing.* is not a folder"):
        python_docs_corpus(tmp_path / "missing")


def test_split_by_hash_is_deterministic_and_order_independent():
    docs = [f"document {i}: some text about the number {i * i}" for i in range(400)]
    split = split_documents(docs, 0.25)
    assert sorted(split.train + split.heldout) == sorted(docs)
    assert 80 <= len(split.heldout) <= 120  # measured 101 of 400 for fraction 0.25
    again = split_documents(docs[::-1], 0.25)
    assert set(again.heldout) == set(split.heldout)  # the order of the documents does not matter
    assert again.heldout == split.heldout[::-1]  # and each side keeps the input order
    subset = docs[::7]  # a document's side does not depend on the other documents
    assert split_documents(subset, 0.25).heldout == [d for d in subset if d in split.heldout]
    smaller = split_documents(docs, 0.1)
    assert set(smaller.heldout) < set(split.heldout)  # one hash threshold: the sets nest
    assert split_documents(docs, 0.0) == (docs, [])


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_split_rejects_fraction_out_of_range(fraction):
    with pytest.raises(ValueError, match="heldout_fraction"):
        split_documents(["a document"] * 3, fraction)


def test_split_rejects_an_empty_side():
    with pytest.raises(ValueError, match="heldout_fraction 1.0 leaves one side empty"):
        split_documents(["one", "two"], 1.0)


# ----- tokenizer ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "def f(x):\n    return x + 1\n",
    "a , b . it 's don 't",  # spaces before punctuation survive (no clean-up of spaces)
    "caf\u00e9 na\u00efve \u00fcber \u4e2d\u6587 \U0001f642 \u00b5s",  # bytes outside the merges
    "  leading and trailing  ",
    "\t\ttabs\tand\r\nCRLF\n\n\nnewlines",
    " ",
])
def test_tokenizer_round_trip(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert 0 not in ids  # no special token inside ordinary text


def test_tokenizer_special_token(tok):
    assert len(tok) == VOCAB
    assert tok.convert_ids_to_tokens(0) == SPECIAL_TOKEN
    assert tok.bos_token_id == tok.eos_token_id == tok.pad_token_id == 0
    ids = tok("for x in y")["input_ids"]
    assert ids[0] == 0 and 0 not in ids[1:]  # BOS prepended, like GPT-2 in TransformerLens
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(TOPICS[:2], 100)  # fewer than the 257 byte and special tokens
    with pytest.raises(ValueError, match="no text"):
        train_tokenizer(["", "  "], VOCAB)


def test_hooked_transformer_uses_the_tokenizer(tok):
    torch.manual_seed(0)
    model = HookedTransformer(lm.gpt2_like_config(d_model=32, n_ctx=32, d_vocab=len(tok)),
                              tokenizer=tok).eval()
    text = "The for statement"
    tokens = model.to_tokens(text)  # [1, pos]
    assert tokens[0, 0] == 0 and tokens.shape[1] > 2
    assert tokens[0, 1:].tolist() == tok(text, add_special_tokens=False)["input_ids"]
    assert model.to_string(tokens[0, 1:]) == text
    strs = model.to_str_tokens(text)
    assert strs[0] == SPECIAL_TOKEN and "".join(strs[1:]) == text
    out = model.generate(text, max_new_tokens=5, do_sample=False, stop_at_eos=False,
                         verbose=False)
    assert isinstance(out, str) and out.startswith(text) and len(out) > len(text)
    gen = model.generate(tokens, max_new_tokens=5, do_sample=False, stop_at_eos=False,
                         verbose=False)
    assert gen.shape == (1, tokens.shape[1] + 5) and torch.equal(gen[:, :tokens.shape[1]], tokens)


def test_tokenizer_save_and_load(tok, tmp_path):
    tok.save_pretrained(str(tmp_path))
    back = load_tokenizer(tmp_path)
    text = TOPICS[20][:500]
    assert back(text)["input_ids"] == tok(text)["input_ids"]
    assert back.get_vocab() == tok.get_vocab() and back.bos_token_id == 0
    with pytest.raises(ValueError, match="has no tokenizer.json"):
        load_tokenizer(tmp_path / "elsewhere")


def test_wrap_rejects_tokenizer_without_endoftext():
    from tokenizers import Tokenizer, models

    plain = Tokenizer(models.WordLevel({"a": 0, "b": 1, "<unk>": 2}, unk_token="<unk>"))
    with pytest.raises(ValueError, match=r"no '<\|endoftext\|>' token"):
        wrap_tokenizer(plain)


# ----- windows and baselines ----------------------------------------------------------------------

def test_pack_windows():
    stream = torch.arange(1, 101)  # 100 tokens
    w = pack_windows(stream, n_ctx=8, bos_token_id=0)
    assert w.shape == (14, 8) and w.dtype == torch.long  # 100 // 7 = 14 windows of BOS + 7
    assert (w[:, 0] == 0).all()
    assert torch.equal(w[:, 1:].reshape(-1), stream[:98])  # in order; the tail 99, 100 dropped
    with pytest.raises(ValueError, match="has 6 tokens, fewer than one window of 7"):
        pack_windows(stream[:6], n_ctx=8, bos_token_id=0)
    with pytest.raises(ValueError, match="n_ctx"):
        pack_windows(stream, n_ctx=1, bos_token_id=0)


def test_encode_documents(tok):
    docs = ["first document", "second one\n"]
    ids = [tok(d, add_special_tokens=False)["input_ids"] for d in docs]
    stream = encode_documents(tok, docs)
    assert stream.tolist() == ids[0] + [0] + ids[1] + [0]  # EOS after each document, no BOS
    with pytest.raises(ValueError, match="docs holds no text"):
        encode_documents(tok, [])


def test_token_windows_match_pack_windows(tok):
    """Chapter 6 harvests with lm.token_windows; on the model's texts it must cut the same windows
    as training did (one BOS first, EOS between texts, never a BOS from the tokenizer inside)."""
    model = HookedTransformer(lm.gpt2_like_config(d_model=16, n_ctx=32, d_vocab=len(tok)),
                              tokenizer=tok)
    docs = TOPICS[30:33]
    want = pack_windows(encode_documents(tok, docs), 16, 0)
    got = lm.token_windows(model, docs, seq_len=16)
    assert torch.equal(got, want)
    assert (got[:, 1:] == 0).sum() == 2  # EOS after the first two texts; the third's is cut


def test_ngram_baselines_by_hand():
    train = torch.tensor([[0, 1, 2, 1], [0, 2, 2, 1]])
    held = torch.tensor([[0, 0, 1, 2]])
    got = ngram_baselines(train, held, vocab_size=3)
    # unigram: target counts (0, 3, 3) + 1 -> p = (1, 4, 4) / 9; held-out targets 0, 1, 2
    unigram = -(math.log(1 / 9) + 2 * math.log(4 / 9)) / 3
    # bigram rows + 1: prev 0 -> (1, 2, 2) / 5, prev 1 -> (1, 1, 2) / 4, prev 2 -> (1, 3, 2) / 6
    # held-out pairs (0, 0), (0, 1), (1, 2)
    bigram = -(math.log(1 / 5) + math.log(2 / 5) + math.log(2 / 4)) / 3
    assert got["unigram"] == pytest.approx(unigram, abs=1e-12)  # 1.2730
    assert got["bigram"] == pytest.approx(bigram, abs=1e-12)  # 1.0730


def test_bigram_beats_unigram_on_alternating_stream():
    w = pack_windows(torch.tensor([1, 2] * 200), n_ctx=9, bos_token_id=0)
    got = ngram_baselines(w[:30], w[30:], vocab_size=3)
    assert got["unigram"] > 0.65  # measured 0.697 (about log 2: two equally likely tokens)
    assert got["bigram"] < 0.05  # measured 0.024: the previous token decides the next


# ----- training end to end ------------------------------------------------------------------------

SMALL = TinyConfig(n_layers=2, d_model=32, n_heads=2, n_ctx=32, vocab_size=VOCAB,
                   heldout_fraction=0.25, batch_size=16, epochs=0.3, lr=1e-2, warmup_steps=5,
                   eval_every=10)


def test_train_tiny_end_to_end(tmp_path):
    docs = TOPICS[:16]  # 43k characters; trains in about a second
    log = train_tiny(tmp_path, SMALL, docs=docs, progress=False)
    assert json.loads((tmp_path / "train_log.json").read_text()) == json.loads(json.dumps(log))
    if (Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt").is_file():
        assert "PYTHON SOFTWARE FOUNDATION" in (tmp_path / "LICENSE-PSF.txt").read_text()
    split = split_documents(docs, SMALL.heldout_fraction)
    assert shipped_texts("train", tmp_path) == split.train
    assert shipped_texts("heldout", tmp_path) == split.heldout

    model = lm.load_model(tmp_path)
    assert model.tokenizer is not None and len(model.tokenizer) == VOCAB
    assert model.cfg.n_layers == 2 and model.cfg.d_vocab == VOCAB
    assert model.to_tokens("x = 1")[0, 0] == 0
    bos = model.tokenizer.bos_token_id
    held = pack_windows(encode_documents(model.tokenizer, split.heldout), SMALL.n_ctx, bos)
    train = pack_windows(encode_documents(model.tokenizer, split.train), SMALL.n_ctx, bos)
    assert log["heldout_tokens"] == held[:, 1:].numel()
    assert log["train_tokens"] == train[:, 1:].numel()
    assert log["steps"] == int(SMALL.epochs * (len(train) // SMALL.batch_size))
    # the loaded weights are the trained ones: the log's held-out loss comes back
    assert heldout_loss(model, held) == pytest.approx(log["heldout_loss"], abs=1e-5)
    assert ngram_baselines(train, held, VOCAB) == pytest.approx(log["baselines"])
    # and training did something: log(300) = 5.70 at chance, measured 4.30 after 17 steps
    assert log["heldout_loss"] < math.log(VOCAB) - 1.0
    assert log["curve"][-1]["step"] == log["steps"]


def test_train_tiny_bad_config(tmp_path):
    with pytest.raises(ValueError, match="epochs"):
        train_tiny(tmp_path, TinyConfig(epochs=0), docs=TOPICS[:4], progress=False)


def test_shipped_texts_errors(tmp_path):
    with pytest.raises(ValueError, match="split must be one of .*'test'"):
        shipped_texts("test", tmp_path)
    with pytest.raises(FileNotFoundError, match="heldout.txt is missing.*train_tiny_model.py"):
        shipped_texts("heldout", tmp_path)


def test_default_hook_name():
    gpt2_shape = HookedTransformer(lm.gpt2_like_config(n_layers=12, d_model=16, n_heads=2,
                                                       n_ctx=8, d_vocab=10))
    assert lm.default_hook_name(gpt2_shape) == "blocks.6.hook_resid_pre"
    assert lm.default_hook_name(gpt2_shape) in gpt2_shape.hook_dict


# ----- the shipped model --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    if not (tiny.SHIPPED_DIR / "model.safetensors").is_file():
        pytest.fail(f"the shipped model is missing from {tiny.SHIPPED_DIR}; build it with "
                    f"python scripts/train_tiny_model.py")
    return lm.load_model("saelab-tiny")


@pytest.fixture(scope="module")
def shipped_log():
    return json.loads((tiny.SHIPPED_DIR / "train_log.json").read_text())


def test_shipped_model_loads_and_generates(shipped):
    assert shipped.tokenizer is not None and shipped.tokenizer.bos_token_id == 0
    assert shipped.cfg.n_layers == 4 and shipped.cfg.d_vocab == len(shipped.tokenizer)
    assert lm.default_hook_name(shipped) == "blocks.2.hook_resid_pre"
    prompt = "If the argument is"
    text = shipped.generate(prompt, max_new_tokens=20, do_sample=False, verbose=False)
    assert text.startswith(prompt)
    words = re.findall(r"[A-Za-z]+", text[len(prompt):])
    vocab = set(re.findall(r"[A-Za-z]+", " ".join(shipped_texts("train"))))
    assert len(words) >= 8  # measured 17 words in 20 tokens
    # greedy text made of the corpus's words; a model after 6 steps (heldout loss 8.4) strings
    # BPE pieces into non-words: measured 0.11 to 0.40 of its words known
    assert sum(w in vocab for w in words) / len(words) >= 0.8  # measured 1.0


def test_shipped_heldout_loss_matches_log_and_beats_baselines(shipped, shipped_log):
    docs = shipped_texts("heldout")
    n_ctx = shipped.cfg.n_ctx
    windows = pack_windows(encode_documents(shipped.tokenizer, docs), n_ctx,
                           shipped.tokenizer.bos_token_id)
    assert windows[:, 1:].numel() == shipped_log["heldout_tokens"]
    loss = heldout_loss(shipped, windows)
    assert loss == pytest.approx(shipped_log["heldout_loss"], abs=1e-3)
    base = shipped_log["baselines"]
    # measured 4.72 nats/token against bigram 6.11 and unigram 6.61 (500 steps)
    assert loss < base["bigram"] - 1.0 and loss < base["unigram"] - 1.5


def test_shipped_corpus_is_the_hash_split(shipped_log):
    train, held = shipped_texts("train"), shipped_texts("heldout")
    assert len(train) == shipped_log["train_documents"]
    assert len(held) == shipped_log["heldout_documents"]
    docs = train + held
    assert len(set(docs)) == len(docs) and min(map(len, docs)) >= MIN_DOC_CHARS
    frac = shipped_log["config"]["heldout_fraction"]
    assert set(split_documents(docs, frac).heldout) == set(held)


def test_shipped_folder_is_complete_and_small(shipped):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "train.txt.gz", "heldout.txt", "train_log.json", "LICENSE-PSF.txt"):
        assert (tiny.SHIPPED_DIR / name).is_file(), name
    size = sum(p.stat().st_size for p in tiny.SHIPPED_DIR.rglob("*") if p.is_file())
    assert size < 20e6  # measured 8.4 MB (7.5 MB of float32 weights)


@pytest.mark.slow
def test_real_corpus(shipped_log):
    """The corpus of this Python: thousands of documents, nothing from tests or IDLE, and (when the
    Python version is the shipped model's) exactly the shipped train and held-out texts."""
    docs = python_docs_corpus()
    assert len(docs) > 3000  # measured 5690 on Python 3.11.7
    assert len(set(docs)) == len(docs) and min(map(len, docs)) >= MIN_DOC_CHARS
    root = Path(sysconfig.get_paths()["stdlib"])
    excluded = set()
    for sub in ("idlelib", "test/test_json", "unittest/test", "tkinter"):
        for path in (root / sub).rglob("*.py"):
            excluded.update(d.strip() for d in _docstrings(path.read_text(errors="replace")))
    excluded = {d for d in excluded if len(d) >= MIN_DOC_CHARS}
    assert len(excluded) > 500  # measured 1359 (with test/test_importlib too)
    assert not excluded & set(docs)
    if platform.python_version() == shipped_log["python"]:
        split = split_documents(docs, shipped_log["config"]["heldout_fraction"])
        assert split.train == shipped_texts("train")
        assert split.heldout == shipped_texts("heldout")
