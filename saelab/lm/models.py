"""Loading a language model for Chapter 6, and the hook names an SAE can be trained on.

``load_model(name)`` returns a TransformerLens ``HookedTransformer``:

- ``"gpt2"`` (or any name ``HookedTransformer.from_pretrained`` knows) when its weights are in the
  Hugging Face cache or the hub can be reached; when neither holds, one clear
  ``ModelUnavailableError`` that says how to fall back, within a few seconds instead of a
  30-second stack of retries;
- a local folder written by ``save_model`` (``config.json`` + ``model.safetensors``);
- ``"saelab-tiny"``, the small model the course ships for offline use (``saelab.lm.tiny``), a
  local folder inside the package.

Hook names are module paths (``blocks.6.hook_resid_pre``); ``check_hook_name`` rejects unknown
names and lists the valid ones that are close. Taught in Chapter 6.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from saelab._checks import check_instance, check_positive
from saelab.lm.hooks import check_hook_name, default_hook_name, hook_width  # noqa: F401 (moved)

__all__ = ["SHIPPED_MODEL", "SHIPPED_DIR", "ModelUnavailableError", "gpt2_like_config",
           "load_model", "save_model", "hub_reachable"]

SHIPPED_MODEL = "saelab-tiny"
"""Name of the small language model the course ships for offline use."""
SHIPPED_DIR = Path(__file__).parent / "shipped" / SHIPPED_MODEL
"""Its folder inside the package (config, safetensors weights, tokenizer, training log)."""

CONNECT_TIMEOUT_S = 3.0  # one TCP connect to the hub; offline machines fail it at once or here


class ModelUnavailableError(OSError):
    """The requested language model cannot be loaded here (offline, or its files are missing)."""


def _fallback_hint() -> str:
    return (f'Fall back to the model the course ships: load_model("{SHIPPED_MODEL}"), or pass '
            f"the path of a folder written by saelab.lm.save_model. On Colab, GPT-2 downloads "
            f"by itself.")


def hub_reachable(timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """True if a TCP connection to the Hugging Face hub (``HF_ENDPOINT``) opens within ``timeout``."""
    check_positive("timeout", timeout)
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hf_offline() -> bool:
    flags = (os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def _cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "config.json"), str)


def gpt2_like_config(n_layers: int = 2, d_model: int = 64, n_heads: int = 4, n_ctx: int = 64,
                     d_vocab: int = 256, seed: int = 0, **overrides):
    """A GPT-2-shaped ``HookedTransformerConfig`` of any size (GELU, LayerNorm, learned positions).

    GPT-2 small is ``n_layers=12, d_model=768, n_heads=12, n_ctx=1024, d_vocab=50257``; the
    defaults make a model small enough for tests. ``d_head = d_model / n_heads``, ``d_mlp = 4 d_model``.
    """
    from transformer_lens import HookedTransformerConfig

    if d_model % n_heads:
        raise ValueError(f"d_model must be a multiple of n_heads = {n_heads}, got {d_model}")
    kw = dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads,
              d_mlp=4 * d_model, n_ctx=n_ctx, d_vocab=d_vocab, act_fn="gelu_new",
              normalization_type="LN", positional_embedding_type="standard", seed=seed,
              device="cpu")
    return HookedTransformerConfig(**{**kw, **overrides})


def save_model(model, path) -> Path:
    """Write ``model``'s config (JSON) and weights (safetensors) to folder ``path``. Chapter 6.

    ``load_model(path)`` reads it back. Only JSON-representable config fields are kept.
    """
    from safetensors.torch import save_file

    if not hasattr(model, "cfg") or not hasattr(model, "state_dict"):
        raise TypeError(f"model must be a TransformerLens HookedTransformer, got "
                        f"{type(model).__name__}")
    check_instance("path", path, (str, os.PathLike), "a folder path")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = {}
    for f in dataclasses.fields(model.cfg):
        value = getattr(model.cfg, f.name)
        if isinstance(value, (bool, int, float, str, type(None))):
            cfg[f.name] = value
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    return path


def _load_local(path: Path, device):
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    missing = [n for n in ("config.json", "model.safetensors") if not (path / n).is_file()]
    if missing:
        raise ValueError(f"name {str(path)!r} is a folder but lacks {missing}; "
                         f"write one with saelab.lm.save_model")
    raw = json.loads((path / "config.json").read_text())
    known = {f.name for f in dataclasses.fields(HookedTransformerConfig) if f.init}
    cfg = HookedTransformerConfig(**{k: v for k, v in raw.items() if k in known})
    tokenizer = None
    if (path / "tokenizer.json").is_file():
        from saelab.lm.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(path)
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    state = load_file(str(path / "model.safetensors"))
    want = set(model.state_dict())
    missing, extra = sorted(want - set(state)), sorted(set(state) - want)
    if missing or extra:  # strict: a missing tensor would otherwise keep its random init
        raise ValueError(f"name {str(path)!r}: model.safetensors does not match config.json: "
                         f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
                         f"unexpected tensors {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    model.load_state_dict(state, strict=True)
    model.eval()
    return model.to(device) if device is not None else model


# TransformerLens loads these organisations' checkpoints with torch.load(weights_only=False)
# (pickle, which can run code), and NEED_REMOTE_CODE_MODELS with trust_remote_code=True.
_PICKLE_ORGS = ("NeelNanda/", "ArthurConmy/", "Baidicoot/")


def _refuse_unsafe(name: str) -> None:
    from transformer_lens import loading

    remote_code = tuple(getattr(loading, "NEED_REMOTE_CODE_MODELS", ()))
    if name.startswith(_PICKLE_ORGS) or (remote_code and name.startswith(remote_code)):
        raise ValueError(f"name {name!r} is refused: TransformerLens would load it through "
                         f"pickle or remote code, which can run arbitrary code. saelab loads "
                         f"only safetensors weights and its own folders; use \"gpt2\", "
                         f'"{SHIPPED_MODEL}" or a folder written by saelab.lm.save_model')


def load_model(name: str = "gpt2", device=None):
    """Load a language model as a TransformerLens ``HookedTransformer`` (Chapter 6).

    Parameters
    ----------
    name : str or path
        ``"gpt2"`` or another TransformerLens model name; ``"saelab-tiny"``; or a folder written
        by ``save_model`` (with ``tokenizer.json`` next to it, the tokenizer is attached).
    device : str or torch.device, optional
        Where to put the model (default: TransformerLens's choice for hub models, CPU otherwise).

    Raises
    ------
    ModelUnavailableError
        The weights are neither cached nor downloadable (offline), or the shipped model's files
        are missing. The message says how to fall back.
    ValueError
        A name TransformerLens does not know (with the close names it does know); a model
        TransformerLens would load through pickle or remote code (refused, with the reason); a
        local folder whose tensors do not match its config exactly (strict loading).
    """
    if isinstance(name, Path) or (isinstance(name, str) and Path(name).is_dir()):
        return _load_local(Path(name), device)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a model name or a folder path, got {name!r}")
    if name == SHIPPED_MODEL:
        if not (SHIPPED_DIR / "model.safetensors").is_file():
            raise ModelUnavailableError(
                f"the shipped model's files are missing from {SHIPPED_DIR}; rebuild them with "
                f"python scripts/train_tiny_model.py")
        return _load_local(SHIPPED_DIR, device)
    from transformer_lens import HookedTransformer, loading

    _refuse_unsafe(name)
    try:
        repo = loading.get_official_model_name(name)
    except ValueError:
        close = difflib.get_close_matches(name, loading.OFFICIAL_MODEL_NAMES, n=5)
        raise ValueError(f"name {name!r} is not a TransformerLens model; close names: {close}; "
                         f'or use "{SHIPPED_MODEL}"') from None
    _refuse_unsafe(repo)
    if not _cached(repo):
        if _hf_offline():
            raise ModelUnavailableError(
                f"cannot load {name!r}: its weights are not in the Hugging Face cache and "
                f"HF_HUB_OFFLINE is set. {_fallback_hint()}")
        if not hub_reachable():
            raise ModelUnavailableError(
                f"cannot load {name!r}: its weights are not in the Hugging Face cache and the "
                f"hub cannot be reached (no internet?). {_fallback_hint()}")
    # use_safetensors: transformers refuses pickled pytorch_model.bin weights instead of loading them
    model = HookedTransformer.from_pretrained(name, device=device, use_safetensors=True)
    model.eval()
    return model
