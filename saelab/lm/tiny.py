"""saelab-tiny: the small GPT-2-style language model the course trains itself and ships.

Chapter 6 runs on GPT-2 small when its weights can be downloaded; offline (a classroom, CI) it runs
on this model instead. Recipe (``TinyConfig``), all on a laptop CPU:

    corpus    = Python's documentation (saelab.lm.corpus; PSF License), 95% train / 5% held out
    tokenizer = byte-level BPE, 4096 tokens, <|endoftext|> as BOS/EOS/pad (saelab.lm.tokenizer)
    windows   = [BOS] + 127 tokens of the concatenated documents (EOS between documents)
    model     = HookedTransformer, GPT-2 layout (pre-LN, GELU, learned positions), 4 layers,
                d_model 128, 4 heads, context 128
    training  = next-token cross-entropy, AdamW (Loshchilov & Hutter 2019), linear warm-up then
                cosine decay, gradient clipping at norm 1

``train_tiny`` writes a folder that ``saelab.lm.load_model`` reads (config, safetensors weights,
tokenizer), plus the corpus (``train.txt.gz``, ``heldout.txt``), its licence (``LICENSE-PSF.txt``)
and ``train_log.json`` with the held-out loss next to the unigram and bigram baselines.
``scripts/train_tiny_model.py`` is the CLI.
Taught in Chapter 6.
"""
from __future__ import annotations

import gzip
import json
import math
import platform
import shutil
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from saelab._checks import (check_int_in_range, check_nonnegative, check_positive,
                            check_probability, check_token_ids)
from saelab.lm.models import SHIPPED_DIR, gpt2_like_config, save_model

__all__ = ["SHIPPED_DIR", "TinyConfig", "shipped_texts", "encode_documents", "pack_windows",
           "ngram_baselines", "heldout_loss", "train_tiny"]


DOC_SEPARATOR = "\n\n<|endoftext|>\n\n"  # between documents in the shipped text files


@dataclass
class TinyConfig:
    """How saelab-tiny is built. The defaults are the shipped model's."""

    n_layers: int = 4  # enough depth for a middle layer (blocks.2) with structure to find
    d_model: int = 128  # SAEs of 16x width (2048 latents) train in seconds on a CPU
    n_heads: int = 4  # d_head 32
    n_ctx: int = 128  # windows of BOS + 127 tokens
    vocab_size: int = 4096  # ~4 characters per token on this corpus
    heldout_fraction: float = 0.05  # documents never trained on; held-out loss is measured here
    batch_size: int = 32  # windows per step
    epochs: float = 4.0  # passes over the training windows; more overfits 0.5M tokens
    lr: float = 2e-3  # peak AdamW learning rate
    warmup_steps: int = 100  # linear warm-up, then cosine decay to lr / 10
    weight_decay: float = 0.1  # on matrices only (not biases, LayerNorm or embeddings)
    eval_every: int = 100  # steps between held-out evaluations in the log
    seed: int = 0  # model init, window order

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "n_ctx", "batch_size"):
            check_int_in_range(name, getattr(self, name), 1)
        check_int_in_range("vocab_size", self.vocab_size, 2)
        check_int_in_range("warmup_steps", self.warmup_steps, 0)
        check_int_in_range("seed", self.seed, 0)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model must be a multiple of n_heads = {self.n_heads}, "
                             f"got {self.d_model}")
        check_probability("heldout_fraction", self.heldout_fraction)
        for name in ("epochs", "lr"):
            check_positive(name, getattr(self, name))
        check_nonnegative("weight_decay", self.weight_decay)


def _write_docs(path: Path, docs: list[str]) -> None:
    data = DOC_SEPARATOR.join(docs).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)  # mtime 0: the same corpus gives the same bytes
    path.write_bytes(data)


def shipped_texts(split: str = "heldout", folder=None) -> list[str]:
    """Documents shipped with the model: ``"train"`` (the LM trained on them) or ``"heldout"``.

    Chapter 6 harvests SAE training activations from ``"train"`` and measures CE loss on
    ``"heldout"``. ``folder`` defaults to the installed ``SHIPPED_DIR``.
    """
    names = {"train": "train.txt.gz", "heldout": "heldout.txt"}
    if split not in names:
        raise ValueError(f"split must be one of {sorted(names)}, got {split!r}")
    path = Path(folder or SHIPPED_DIR) / names[split]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with scripts/train_tiny_model.py")
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")
    return text.split(DOC_SEPARATOR)


def encode_documents(tokenizer, docs: list[str]) -> torch.Tensor:
    """One token stream [n_tokens]: each document's tokens followed by EOS (no BOS)."""
    eos = tokenizer.eos_token_id
    ids = tokenizer(list(docs), add_special_tokens=False)["input_ids"] if docs else []
    stream = [t for doc in ids for t in (*doc, eos)]
    if not stream:
        raise ValueError("docs holds no text")
    return torch.tensor(stream, dtype=torch.long)


def pack_windows(stream: torch.Tensor, n_ctx: int, bos_token_id: int) -> torch.Tensor:
    """Cut ``stream`` into windows [n, n_ctx] of BOS + (n_ctx - 1) tokens; the tail is dropped."""
    check_int_in_range("n_ctx", n_ctx, 2, 1 << 20)
    body = n_ctx - 1
    n = stream.numel() // body
    if n == 0:
        raise ValueError(f"the stream has {stream.numel()} tokens, fewer than one window of {body}")
    rows = stream[: n * body].view(n, body)
    return torch.cat([torch.full((n, 1), bos_token_id, dtype=torch.long), rows], dim=1)


def ngram_baselines(train_windows: torch.Tensor, heldout_windows: torch.Tensor,
                    vocab_size: int) -> dict[str, float]:
    """Held-out cross-entropy (nats/token) of add-one-smoothed unigram and bigram models.

    Counted on the training windows' targets (positions 1..), scored on the same held-out targets
    as ``heldout_loss``: the baselines a language model has to beat.
    """
    check_int_in_range("vocab_size", vocab_size, 1)
    check_token_ids("train_windows", train_windows, vocab_size)
    check_token_ids("heldout_windows", heldout_windows, vocab_size)

    def pairs(w):
        return w[:, :-1].reshape(-1), w[:, 1:].reshape(-1)  # (previous, target)

    prev, nxt = pairs(train_windows)
    h_prev, h_next = pairs(heldout_windows)
    uni = torch.bincount(nxt, minlength=vocab_size).double() + 1
    uni_logp = (uni / uni.sum()).log()
    bi = torch.bincount(prev * vocab_size + nxt, minlength=vocab_size ** 2).double()
    bi = bi.view(vocab_size, vocab_size) + 1
    bi_logp = (bi / bi.sum(dim=1, keepdim=True)).log()
    return {"unigram": -uni_logp[h_next].mean().item(),
            "bigram": -bi_logp[h_prev, h_next].mean().item()}


@torch.no_grad()
def heldout_loss(model, windows: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats/token) of ``model`` over ``windows`` [n, n_ctx]."""
    check_int_in_range("batch_size", batch_size, 1)
    check_token_ids("windows", windows, model.cfg.d_vocab)
    total, count = 0.0, 0
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size].to(model.cfg.device)
        logits = model(batch)  # [b, n_ctx, vocab]
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch[:, 1:].flatten(),
                               reduction="sum")
        total += loss.item()
        count += batch[:, 1:].numel()
    return total / count


def _lr_at(step: int, total: int, cfg: TinyConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def _optimizer(model, cfg: TinyConfig):
    embeddings = ("embed", "pos_embed")  # no weight decay on embeddings, biases or LayerNorm
    decay = [p for n, p in model.named_parameters()
             if p.ndim >= 2 and not n.startswith(embeddings)]
    rest = [p for n, p in model.named_parameters() if not any(p is q for q in decay)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))


def train_tiny(out_dir, cfg: TinyConfig | None = None, docs: list[str] | None = None,
               progress: bool = True) -> dict:
    """Build saelab-tiny from scratch into ``out_dir``; return the training log (also written).

    ``docs`` defaults to ``python_docs_corpus()``; pass a list of strings to train on other text.
    """
    from transformer_lens import HookedTransformer

    from saelab.lm.corpus import python_docs_corpus, split_documents
    from saelab.lm.tokenizer import train_tokenizer

    cfg = cfg or TinyConfig()
    check_positive("epochs", cfg.epochs)
    check_positive("lr", cfg.lr)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    docs = python_docs_corpus() if docs is None else list(docs)
    split = split_documents(docs, cfg.heldout_fraction)
    tokenizer = train_tokenizer(split.train, cfg.vocab_size)
    bos = tokenizer.bos_token_id
    train_w = pack_windows(encode_documents(tokenizer, split.train), cfg.n_ctx, bos)
    held_w = pack_windows(encode_documents(tokenizer, split.heldout), cfg.n_ctx, bos)

    torch.manual_seed(cfg.seed)
    model_cfg = gpt2_like_config(n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads,
                                 n_ctx=cfg.n_ctx, d_vocab=len(tokenizer), seed=cfg.seed,
                                 model_name="saelab-tiny")
    model = HookedTransformer(model_cfg, tokenizer=tokenizer)
    opt = _optimizer(model, cfg)
    g = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = len(train_w) // cfg.batch_size
    total = int(cfg.epochs * steps_per_epoch)
    order = torch.cat([torch.randperm(len(train_w), generator=g)
                       for _ in range(math.ceil(cfg.epochs) + 1)])
    curve = []
    bar = tqdm(range(total), desc="training saelab-tiny", disable=not progress)
    for step in bar:
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, total, cfg)
        model.train()
        loss = model(train_w[idx], return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == total:
            model.eval()
            curve.append({"step": step + 1, "train_loss": round(loss.item(), 4),
                          "heldout_loss": round(heldout_loss(model, held_w), 4)})
            bar.set_postfix(heldout=curve[-1]["heldout_loss"])
    model.eval()

    save_model(model, out)
    tokenizer.save_pretrained(str(out))
    _write_docs(out / "train.txt.gz", split.train)
    _write_docs(out / "heldout.txt", split.heldout)
    license_file = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if license_file.is_file():  # the corpus is PSF-licensed text: its licence travels with it
        shutil.copyfile(license_file, out / "LICENSE-PSF.txt")
    log = {"config": asdict(cfg), "n_params": sum(p.numel() for p in model.parameters()),
           "train_documents": len(split.train), "heldout_documents": len(split.heldout),
           "train_tokens": int(train_w[:, 1:].numel()), "heldout_tokens": int(held_w[:, 1:].numel()),
           "steps": total, "heldout_loss": heldout_loss(model, held_w),
           "baselines": ngram_baselines(train_w, held_w, len(tokenizer)), "curve": curve,
           "python": platform.python_version(), "torch": torch.__version__,
           "minutes": round((time.time() - started) / 60, 2)}
    (out / "train_log.json").write_text(json.dumps(log, indent=1))
    return log
