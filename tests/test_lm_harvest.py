"""saelab.lm harvesting: windows, BOS/pad dropping, the shuffling buffer, the disk cache (Ch. 6)."""
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformer_lens import HookedTransformer  # noqa: E402

from saelab import lm  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

BOS, PAD, HOOK = 0, 1, "blocks.1.hook_resid_pre"


@pytest.fixture(scope="module")
def model():
    return HookedTransformer(lm.gpt2_like_config(d_model=32, n_ctx=32, d_vocab=100)).eval()


@pytest.fixture(scope="module")
def tokens():
    toks = torch.randint(2, 100, (10, 16), generator=torch.Generator().manual_seed(0))
    toks[:, 0] = BOS
    toks[2, 11:] = PAD  # a padded window
    toks[5, 7] = BOS  # a document boundary inside a window
    return toks


def word_tokenizer(words):
    """A whitespace word-level tokenizer built with `tokenizers`, wrapped for TransformerLens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<bos>", "<pad>", "<unk>"] + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<bos>",
                                   pad_token="<pad>", unk_token="<unk>")


def test_harvest_drops_bos_and_pad(model, tokens):
    acts = lm.harvest(model, tokens, HOOK, batch_size=3, bos_token_id=BOS, pad_token_id=PAD,
                      progress=False)
    _, cache = model.run_with_cache(tokens, names_filter=HOOK)
    keep = (tokens != BOS) & (tokens != PAD)
    assert acts.shape == (int(keep.sum()), 32) == (10 * 15 - 5 - 1, 32)
    torch.testing.assert_close(acts, cache[HOOK][keep])


def test_forward_stops_at_hook(model, tokens):
    ran = []
    handle = model.blocks[1].mlp.register_forward_hook(lambda *a: ran.append(1))
    try:
        lm.harvest(model, tokens, "blocks.1.hook_resid_mid", bos_token_id=BOS, progress=False)
    finally:
        handle.remove()
    assert not ran  # block 1's MLP comes after hook_resid_mid and never ran


def test_text_corpus_through_tokenizer(model):
    words = "the cat sat on a mat and dog ran".split()
    model.tokenizer = word_tokenizer(words)  # all saelab.lm reads; set_tokenizer wants a hub name
    try:
        texts = ["the cat sat on the mat", "", "a dog ran and the cat sat"] * 4
        windows = lm.token_windows(model, texts, seq_len=8)
        # 4 x (6 + 1 + 7 + 1) = 60 tokens with separators -> 8 windows of BOS + 7
        assert windows.shape == (8, 8) and (windows[:, 0] == BOS).all()
        acts = lm.harvest(model, texts, HOOK, seq_len=8, progress=False)
        keep = windows != BOS  # "auto" reads BOS/pad ids from the tokenizer
        keep[:, 0] = False
        assert acts.shape == (int(keep.sum()), 32)
        with pytest.raises(ValueError, match="corpus holds no text"):
            lm.harvest(model, ["", "   "], HOOK, seq_len=8)
        rows = [{"text": t} for t in texts]  # a datasets.Dataset yields dicts like these
        torch.testing.assert_close(lm.harvest(model, rows, HOOK, seq_len=8, progress=False), acts)
    finally:
        model.tokenizer = None


def test_buffer_bounded_and_shuffled():
    data = torch.arange(1000, dtype=torch.float32)[:, None].repeat(1, 4)  # row i holds i
    chunks = list(data.split(37))
    buf = lm.ActivationBuffer(chunks, capacity=200, batch_size=32, seed=0)
    batches = list(buf)
    assert all(b.shape == (32, 4) for b in batches[:-1])
    out = torch.cat(batches)[:, 0]
    assert sorted(out.tolist()) == list(range(1000))  # every row exactly once
    assert buf.peak_rows <= 200 + 37
    assert not torch.equal(out, data[:, 0])  # shuffled
    first = torch.cat(batches[:3])[:, 0]
    assert first.max() < 200  # the first batches come from the first fill, not the whole set
    assert torch.equal(torch.cat(list(lm.ActivationBuffer(chunks, 200, 32, seed=0))), torch.cat(batches))


def test_buffer_feeds_from_harvest(model, tokens):
    source = lm.iter_activations(model, tokens, HOOK, batch_size=2, bos_token_id=BOS,
                                 pad_token_id=PAD, progress=False)
    batches = list(lm.ActivationBuffer(source, capacity=64, batch_size=16))
    assert sum(b.shape[0] for b in batches) == 10 * 15 - 6


def test_disk_cache_round_trip(model, tokens, tmp_path, monkeypatch):
    kw = dict(batch_size=4, bos_token_id=BOS, pad_token_id=PAD, progress=False,
              cache_dir=tmp_path / "cache")
    first = lm.harvest(model, tokens, HOOK, **kw)
    assert len(list((tmp_path / "cache").glob("shard_*.safetensors"))) == 3
    from saelab.lm import harvesting as harvest_mod

    def no_forward(*a, **k):
        raise AssertionError("read from the cache, the model must not run")

    monkeypatch.setattr(harvest_mod, "run_to_hook", no_forward)
    torch.testing.assert_close(lm.harvest(model, tokens, HOOK, **kw), first)
    with pytest.raises(ValueError, match="another harvest .*windows_sha256"):
        lm.harvest(model, tokens.flip(0), HOOK, **kw)
