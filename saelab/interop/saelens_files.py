"""Reading a SAELens-format SAE folder safely: ``cfg.json``, the weights, the sparsity file.

SAELens (v6) stores an SAE as a folder:

    cfg.json                 {"d_in", "d_sae", "dtype", "architecture", "apply_b_dec_to_input",
                              "normalize_activations", "reshape_activations", "k" (topk only),
                              "metadata": {"sae_lens_version", "model_name", "hook_name", ...}}
    sae_weights.safetensors  W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in],
                             plus threshold [d_sae] (jumprelu), or b_gate, r_mag, b_mag [d_sae]
                             instead of b_enc (gated)
    sparsity.safetensors     optional; one tensor ``sparsity`` [d_sae] = log10 firing frequency

A ``cfg.json`` without ``metadata.sae_lens_version`` (or a top-level ``sae_lens_version``) of at
least 6 was written by SAELens 5 or earlier ("pre-v6"): it names the hook ``hook_point``, may
lack ``architecture`` (then "standard"), may say ``"activation_fn": "topk"`` with
``activation_fn_kwargs.k`` instead of ``"architecture": "topk"``, and may hold
``normalize_activations`` as a bool. ``read_saelens_config`` turns both into one v6-style dict
and refuses, naming the file, field and value, whatever saelab cannot represent.

Only safetensors are read: a weights file that is a pickle or ``torch.save`` archive is refused
with a message, never loaded (unpickling can run arbitrary code). Used by
:mod:`saelab.interop.saelens`; taught in Chapter 6 ("Published SAEs").
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from saelab._checks import check_positive

__all__ = ["CFG_FILE", "WEIGHTS_FILE", "SPARSITY_FILE", "DTYPES", "ARCHITECTURE_TENSORS",
           "as_path", "read_saelens_config", "read_safetensors", "read_saelens_sparsity"]

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SPARSITY_FILE = "sparsity.safetensors"

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
"""cfg.json ``dtype`` -> torch dtype (SAELens also writes ``"torch.float32"`` etc.; accepted)."""

_BASE = ("W_enc", "b_enc", "W_dec", "b_dec")
ARCHITECTURE_TENSORS = {
    "standard": _BASE,
    "topk": _BASE,
    "jumprelu": _BASE + ("threshold",),
    "gated": ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec"),
}
"""SAELens architectures saelab reads -> the tensors ``sae_weights.safetensors`` must hold."""

_TRANSCODERS = ("transcoder", "skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder")
_V6 = 6  # first SAELens major version with the metadata block


def as_path(name: str, value) -> Path:
    """``value`` as a Path, or ValueError naming ``name`` if it is not a str or PathLike."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{name} must be a folder or file path (str or Path), got {value!r}")
    return Path(value)


def _major(version) -> int | None:
    """Leading integer of a version string ("6.54.12" -> 6); None if there is none."""
    head = str(version).strip().lstrip("vV").split(".")[0]
    return int(head) if head.isdigit() else None


def _from_pre_v6(raw: dict) -> dict:
    """A pre-v6 cfg.json as a v6-style dict (SAELens's documented renames and defaults)."""
    cfg = dict(raw)
    for old, new in (("hook_point", "hook_name"), ("hook_point_head_index", "hook_head_index")):
        if old in cfg and new not in cfg:
            cfg[new] = cfg.pop(old)
    activation = cfg.get("activation_fn_str", cfg.get("activation_fn", "relu"))
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if activation == "topk" and "k" in kwargs:
        cfg.setdefault("architecture", "topk")
        cfg.setdefault("k", kwargs["k"])
    elif activation not in ("relu", None):
        cfg["_bad_activation"] = activation
    cfg.setdefault("architecture", "standard")
    cfg.setdefault("apply_b_dec_to_input", True)
    norm = cfg.get("normalize_activations")
    if isinstance(norm, bool) or norm is None:
        cfg["normalize_activations"] = "expected_average_only_in" if norm else "none"
    cfg.setdefault("reshape_activations", "hook_z" if "hook_z" in str(cfg.get("hook_name", ""))
                   else "none")
    meta_keys = ("model_name", "hook_name", "hook_head_index", "context_size", "prepend_bos",
                 "dataset_path", "model_from_pretrained_kwargs", "neuronpedia_id",
                 "sae_lens_version", "sae_lens_training_version")
    cfg["metadata"] = {k: cfg[k] for k in meta_keys if k in cfg}
    return cfg


def _check_int(path: Path, cfg: dict, key: str) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{path}: field {key!r} must be a positive integer, got {value!r}")
    return value


def read_saelens_config(folder, norm_scaling_factor: float | None = None) -> dict:
    """Read and check ``folder/cfg.json``; return it as a v6-style dict. Chapter 6.

    The result always has ``d_in``, ``d_sae``, ``dtype`` (a key of ``DTYPES``), ``architecture``
    (a key of ``ARCHITECTURE_TENSORS``), ``apply_b_dec_to_input`` (bool),
    ``normalize_activations``, ``metadata`` (dict) and ``pre_v6`` (bool); ``k`` and
    ``rescale_acts_by_decoder_norm`` for topk.

    Raises ``FileNotFoundError`` for a missing folder or file and ``ValueError`` naming the field
    and value for anything saelab cannot represent: an unknown architecture, a transcoder,
    ``reshape_activations`` other than "none", ``normalize_activations`` other than "none" (or
    "expected_average_only_in" when ``norm_scaling_factor`` is given: the caller folds it).
    """
    folder = as_path("folder", folder)
    if norm_scaling_factor is not None:
        check_positive("norm_scaling_factor", norm_scaling_factor)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist or is not a folder; "
                                f"an SAELens SAE is a folder with {CFG_FILE} and {WEIGHTS_FILE}")
    path = folder / CFG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: an SAELens SAE folder needs {CFG_FILE} "
                                f"next to {WEIGHTS_FILE}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    major = _major(meta.get("sae_lens_version", raw.get("sae_lens_version", "")))
    pre_v6 = major is None or major < _V6
    cfg = _from_pre_v6(raw) if pre_v6 else dict(raw, metadata=dict(meta))
    cfg["pre_v6"] = pre_v6
    if "_bad_activation" in cfg:
        raise ValueError(f"{path}: field 'activation_fn' is {cfg['_bad_activation']!r}; saelab "
                         f"reads ReLU ('relu') and TopK ('topk') SAELens SAEs only")
    cfg["d_in"], cfg["d_sae"] = _check_int(path, cfg, "d_in"), _check_int(path, cfg, "d_sae")
    arch = cfg.get("architecture")
    if arch in _TRANSCODERS:
        raise ValueError(f"{path}: field 'architecture' is {arch!r}; a transcoder maps one "
                         f"activation to another, while saelab's SAEs reconstruct their input")
    if arch not in ARCHITECTURE_TENSORS:
        raise ValueError(f"{path}: field 'architecture' is {arch!r}, which saelab cannot read "
                         f"(it reads {sorted(ARCHITECTURE_TENSORS)})")
    dtype = str(cfg.get("dtype", "float32")).removeprefix("torch.")
    if dtype not in DTYPES:
        raise ValueError(f"{path}: field 'dtype' is {cfg.get('dtype')!r}; expected one of "
                         f"{sorted(DTYPES)}")
    cfg["dtype"] = dtype
    if not isinstance(cfg.get("apply_b_dec_to_input", True), bool):
        raise ValueError(f"{path}: field 'apply_b_dec_to_input' must be true or false, got "
                         f"{cfg['apply_b_dec_to_input']!r}")
    cfg.setdefault("apply_b_dec_to_input", True)
    reshape = cfg.setdefault("reshape_activations", "none")
    if reshape != "none":
        raise ValueError(f"{path}: field 'reshape_activations' is {reshape!r}; saelab's SAEs "
                         f"read flat [batch, d_in] activations only ('none')")
    norm = cfg.setdefault("normalize_activations", "none")
    if norm == "expected_average_only_in" and norm_scaling_factor is None:
        raise ValueError(f"{path}: field 'normalize_activations' is {norm!r}: the SAE expects "
                         f"inputs multiplied by a constant that is not in the folder; pass it as "
                         f"norm_scaling_factor=... (load_pretrained takes it from the registry)")
    if norm not in ("none", "expected_average_only_in"):
        raise ValueError(f"{path}: field 'normalize_activations' is {norm!r}; saelab represents "
                         f"'none' (and 'expected_average_only_in' with a known factor) only")
    if arch == "topk":
        k = _check_int(path, cfg, "k")
        if k > cfg["d_sae"]:
            raise ValueError(f"{path}: field 'k' is {k}, more than d_sae = {cfg['d_sae']}")
        rescale = cfg.setdefault("rescale_acts_by_decoder_norm", False)
        if not isinstance(rescale, bool):
            raise ValueError(f"{path}: field 'rescale_acts_by_decoder_norm' must be true or "
                             f"false, got {rescale!r}")
    return cfg


def _looks_like_pickle(path: Path) -> str | None:
    """A description if the file starts like a pickle or a torch.save zip archive, else None."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save writes pickles inside one)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle"
    return None


def read_safetensors(path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, on the CPU; never unpickles anything.

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` naming the file for a pickle
    or ``torch.save`` file, or anything else that is not a readable safetensors file.
    """
    path = as_path("path", path)
    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r}: no such file (a .safetensors file)")
    kind = _looks_like_pickle(path)
    if kind is not None:
        raise ValueError(f"{path} is {kind}, not a safetensors file; saelab never unpickles "
                         f"files (loading a pickle can run any code). Convert it where you trust "
                         f"it, with safetensors.torch.save_file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file ({err})") from err


def read_saelens_sparsity(folder) -> torch.Tensor | None:
    """``sparsity`` [d_sae] (log10 firing frequency) from ``folder/sparsity.safetensors``, or None.

    Raises ``ValueError`` naming the file if it exists but lacks a 1-D ``sparsity`` tensor.
    """
    path = as_path("folder", folder) / SPARSITY_FILE
    if not path.is_file():
        return None
    tensors = read_safetensors(path)
    if "sparsity" not in tensors or tensors["sparsity"].ndim != 1:
        found = {name: tuple(t.shape) for name, t in tensors.items()}
        raise ValueError(f"{path} must hold one 1-D tensor named 'sparsity', found {found}")
    return tensors["sparsity"]
