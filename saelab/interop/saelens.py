"""Exporting saelab SAEs to SAELens's folder format (v6) and importing SAELens SAEs into saelab.

SAELens's inference SAEs compute, with ``c = x - b_dec`` if ``apply_b_dec_to_input`` else ``x``,

    standard   f = ReLU(c W_enc + b_enc)
    topk       f = ReLU(TopK_k(c W_enc + b_enc))
    jumprelu   f = ReLU(z) * 1[z > threshold],   z = c W_enc + b_enc      (threshold [d_sae])
    gated      f = 1[c W_enc + b_gate > 0] * ReLU(c (W_enc * exp(r_mag)) + b_mag)
    x_hat      = f W_dec + b_dec

which are saelab's L1, TopK, JumpReLU and Gated SAEs (``saelab.torch_sae``) with the same tensor
names and layouts. BatchTopK is exported, as SAELens does, as JumpReLU with its inference
threshold theta copied to every latent (saelab's BatchTopK at inference is exactly
``ReLU(z) * 1[z > theta]``; an unset theta = -1 is written as 0, the same function). Imports fold
whatever saelab's forward pass lacks into the weights, exactly (up to float rounding):

    apply_b_dec_to_input = false:   c W_enc + b  =  (x - b_dec) W_enc + (b + b_dec W_enc)
                                    (gated: b_gate += b_dec W_enc, b_mag += exp(r_mag) b_dec W_enc)
    rescale_acts_by_decoder_norm:   n_i = ||W_dec,i||;  W_enc <- W_enc n,  b_enc <- b_enc n,
                                    W_dec <- W_dec / n     (topk ranks z_i n_i, decodes f_i / n_i)
    normalize_activations = "expected_average_only_in" with factor s:  saelab.lm.scaling's fold
    a negative JumpReLU threshold:  ReLU(z) 1[z > theta] = ReLU(z) for theta < 0, so theta <- 0

Chapter 6's activation scale is already folded into the weights (``fold_input_scale``), so an
exported SAE reads and writes raw activations and says ``normalize_activations: "none"``.
Adding a family is one entry in ``EXPORTERS`` (and, for a new SAELens architecture, one in
``IMPORT_FAMILIES`` and ``saelens_files.ARCHITECTURE_TENSORS``). Taught in Chapter 6.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from safetensors.torch import save_file

import saelab
from saelab._checks import check_finite, check_positive, check_shape
from saelab.checkpoint import CONFIG_CLASSES
from saelab.interop.saelens_files import (ARCHITECTURE_TENSORS, CFG_FILE, DTYPES, SPARSITY_FILE,
                                          WEIGHTS_FILE, as_path, read_safetensors,
                                          read_saelens_config)
from saelab.lm.scaling import fold_input_scale
from saelab.torch_sae import BaseSAE, make_sae

__all__ = ["SAELENS_FORMAT_VERSION", "LOG_SPARSITY_FLOOR", "SAELensForm", "EXPORTERS",
           "IMPORT_FAMILIES", "to_saelens_form", "export_saelens", "import_saelens"]

SAELENS_FORMAT_VERSION = "6.0.0"
"""Written as ``metadata.sae_lens_version``: the file follows the v6 format (below 6, SAELens
would read it as a pre-v6 file)."""

LOG_SPARSITY_FLOOR = 1e-10  # sparsity = log10(density + floor), SAELens's convention: dead -> -10


class SAELensForm(NamedTuple):
    """One SAE as SAELens sees it: architecture name, tensors, architecture-specific cfg fields."""

    architecture: str
    tensors: dict  # name -> tensor, SAELens names and layouts
    cfg_fields: dict  # e.g. {"k": 32} for topk


def _tensors(sae: BaseSAE, names) -> dict:
    return {name: getattr(sae, name).detach().cpu().contiguous() for name in names}


def _as(architecture: str) -> Callable[[BaseSAE], SAELensForm]:
    return lambda sae: SAELensForm(architecture, _tensors(sae, ARCHITECTURE_TENSORS[architecture]),
                                   {})


def _as_topk(sae: BaseSAE) -> SAELensForm:
    return SAELensForm("topk", _tensors(sae, ARCHITECTURE_TENSORS["topk"]),
                       {"k": int(sae.cfg.k), "rescale_acts_by_decoder_norm": False})


def _as_jumprelu(sae: BaseSAE) -> SAELensForm:
    form = _as("jumprelu")(sae)
    if bool((form.tensors["threshold"] < 0).any()):
        raise ValueError(f"sae has negative JumpReLU thresholds (min "
                         f"{form.tensors['threshold'].min().item():.3g}); saelab then outputs "
                         f"negative codes, which SAELens's JumpReLU (ReLU first) cannot")
    return form


def _global_threshold_as_jumprelu(sae: BaseSAE) -> SAELensForm:
    """BatchTopK-style SAE (one inference threshold theta []) as JumpReLU, theta on every latent."""
    theta = sae.threshold.detach().cpu().clamp_min(0)  # [] unset (-1) -> 0: both mean plain ReLU
    tensors = _tensors(sae, ARCHITECTURE_TENSORS["standard"])
    tensors["threshold"] = theta.expand(sae.cfg.d_sae).contiguous()  # [d_sae]
    return SAELensForm("jumprelu", tensors, {})


EXPORTERS: dict[str, Callable[[BaseSAE], SAELensForm]] = {
    "l1": _as("standard"),
    "topk": _as_topk,
    "jumprelu": _as_jumprelu,
    "batchtopk": _global_threshold_as_jumprelu,
    "gated": _as("gated"),
    # A Matryoshka SAE is an ordinary BatchTopK (or TopK) SAE at inference: the nesting only shapes
    # training. SAELens 6 likewise saves its matryoshka_batchtopk trainer as JumpReLU.
    "matryoshka": lambda sae: (_global_threshold_as_jumprelu if sae.cfg.activation == "batchtopk"
                               else _as_topk)(sae),
}
"""saelab family -> its SAELens form. A family missing here cannot be exported."""

IMPORT_FAMILIES = {"standard": "l1", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated"}
"""SAELens architecture -> the saelab family that computes the same function."""


def to_saelens_form(sae) -> SAELensForm:
    """``sae`` as SAELens's architecture, tensors and cfg fields (inference semantics).

    Chapter 6. Raises ``ValueError`` for a non-SAE or a family with no SAELens equivalent.
    """
    family = getattr(getattr(sae, "cfg", None), "family", None)
    if not isinstance(sae, BaseSAE):
        raise ValueError(f"sae must be a saelab torch SAE (saelab.torch_sae), got "
                         f"{type(sae).__name__}")
    if family not in EXPORTERS:
        raise ValueError(f"sae's family {family!r} has no SAELens equivalent; exportable "
                         f"families: {sorted(EXPORTERS)}")
    return EXPORTERS[family](sae)


def _check_text(name: str, value, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def export_saelens(sae, folder, *, model_name: str, hook_name: str, context_size: int | None = None,
                   prepend_bos: bool = True, dataset_path: str | None = None,
                   firing_density=None, metadata: dict | None = None,
                   overwrite: bool = False) -> Path:
    """Write ``sae`` as an SAELens v6 folder that ``sae_lens.SAE.load_from_disk`` reads. Chapter 6.

    Parameters
    ----------
    sae : saelab.torch_sae.BaseSAE
        L1, TopK, JumpReLU, BatchTopK (written as JumpReLU) or Gated; with any activation scale
        already folded in (``fold_input_scale``), so it reads raw activations.
    folder : str or Path
        Created if needed; must be empty unless ``overwrite``.
    model_name, hook_name : str
        The model and hook the SAE reads (TransformerLens names, e.g. ``"gpt2"``,
        ``"blocks.6.hook_resid_pre"``), stored in ``metadata``.
    context_size, prepend_bos, dataset_path : optional
        How the training activations were harvested (``metadata``).
    firing_density : Tensor or ndarray of shape (d_sae,), optional
        Fraction of tokens each latent fires on (``EvalReport.firing_density``); written to
        ``sparsity.safetensors`` as ``log10(density + LOG_SPARSITY_FLOOR)``.
    metadata : dict, optional
        More JSON-serialisable metadata (e.g. evaluation figures).

    Returns
    -------
    Path
        The folder.
    """
    form = to_saelens_form(sae)
    _check_text("model_name", model_name)
    _check_text("hook_name", hook_name)
    _check_text("dataset_path", dataset_path, optional=True)
    if context_size is not None and (isinstance(context_size, bool) or
                                     not isinstance(context_size, int) or context_size < 1):
        raise ValueError(f"context_size must be a positive integer or None, got {context_size!r}")
    if not isinstance(prepend_bos, bool):
        raise ValueError(f"prepend_bos must be True or False, got {prepend_bos!r}")
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite must be True or False, got {overwrite!r}")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    dtype = form.tensors["W_enc"].dtype
    dtype_name = next((name for name, d in DTYPES.items() if d == dtype), None)
    if dtype_name is None:
        raise ValueError(f"sae's dtype {dtype} cannot be written; SAELens reads {sorted(DTYPES)}")
    for name, tensor in form.tensors.items():
        check_finite(f"sae.{name}", tensor)
    sparsity = None
    if firing_density is not None:
        density = torch.as_tensor(firing_density).detach().cpu().double()
        check_shape("firing_density", density, (sae.cfg.d_sae,))
        check_finite("firing_density", density)
        if bool(((density < 0) | (density > 1)).any()):
            raise ValueError("firing_density must hold fractions in [0, 1]")
        sparsity = torch.log10(density + LOG_SPARSITY_FLOOR).float()  # [d_sae]
    cfg_meta = {"sae_lens_version": SAELENS_FORMAT_VERSION, "sae_lens_training_version": None,
                "model_name": model_name, "hook_name": hook_name, "hook_head_index": None,
                "context_size": context_size, "prepend_bos": prepend_bos,
                "dataset_path": dataset_path, "saelab_version": saelab.__version__,
                "saelab_family": sae.cfg.family, "saelab_config": dataclasses.asdict(sae.cfg)}
    cfg_meta.update(metadata or {})
    cfg = {"architecture": form.architecture, "d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae,
           "dtype": dtype_name, "device": "cpu", "apply_b_dec_to_input": True,
           "normalize_activations": "none", "reshape_activations": "none", **form.cfg_fields,
           "metadata": cfg_meta}
    try:
        text = json.dumps(cfg, indent=2, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata must be JSON-serialisable and finite ({err})") from err
    folder = as_path("folder", folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder {str(folder)!r} exists and is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"folder {str(folder)!r} is not empty; pass overwrite=True to replace "
                         f"its SAE files")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CFG_FILE).write_text(text + "\n", encoding="utf-8")
    save_file(form.tensors, str(folder / WEIGHTS_FILE))
    if sparsity is not None:
        save_file({"sparsity": sparsity}, str(folder / SPARSITY_FILE))
    elif (folder / SPARSITY_FILE).exists():
        (folder / SPARSITY_FILE).unlink()  # a stale file from an overwritten SAE
    return folder


def _check_tensors(path: Path, cfg: dict, tensors: dict) -> None:
    """Names, shapes and dtypes of ``tensors`` against ``cfg``, or ValueError naming the field."""
    names = ARCHITECTURE_TENSORS[cfg["architecture"]]
    ones = tensors.get("scaling_factor")  # pre-v6 files may carry an all-ones scaling_factor
    if ones is not None and cfg["pre_v6"] and bool((ones == 1).all()):
        del tensors["scaling_factor"]
    missing = [n for n in names if n not in tensors]
    extra = sorted(set(tensors) - set(names))
    if missing or extra:
        raise ValueError(f"{path}: a {cfg['architecture']!r} SAE needs tensors {list(names)}; "
                         f"missing {missing}, unexpected {extra}")
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    want = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    dtype = DTYPES[cfg["dtype"]]
    for name in names:
        shape = tuple(tensors[name].shape)
        expected = want.get(name, (d_sae,))
        if shape != expected:
            raise ValueError(f"{path}: tensor {name!r} has shape {shape}, but cfg.json's d_in = "
                             f"{d_in}, d_sae = {d_sae} need {expected}")
        if tensors[name].dtype != dtype:
            raise ValueError(f"{path}: tensor {name!r} has dtype {tensors[name].dtype}, but "
                             f"cfg.json's field 'dtype' is {cfg['dtype']!r}")
        check_finite(f"{path.name}:{name}", tensors[name])


def _saelab_config(cfg: dict, family: str):
    """The saelab config: the one saelab wrote into metadata if it fits, else defaults."""
    cls = CONFIG_CLASSES[family]
    sizes = {"d_in": cfg["d_in"], "d_sae": cfg["d_sae"]}
    if family == "topk":
        sizes["k"] = cfg["k"]
    stored = cfg["metadata"].get("saelab_config")
    if cfg["metadata"].get("saelab_family") == family and isinstance(stored, dict):
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            candidate = cls(**{k: v for k, v in stored.items() if k in fields})
            if all(getattr(candidate, k) == v for k, v in sizes.items()):
                return candidate
        except (TypeError, ValueError):
            pass  # an edited or foreign config: fall back to the defaults
    return cls(**sizes)


@torch.no_grad()
def _fold(cfg: dict, t: dict) -> dict:
    """SAELens tensors (float64 copies) -> tensors saelab's forward pass reproduces exactly."""
    t = {name: v.double() for name, v in t.items()}
    if not cfg["apply_b_dec_to_input"]:
        shift = t["b_dec"] @ t["W_enc"]  # [d_sae]
        if cfg["architecture"] == "gated":
            t["b_gate"] = t["b_gate"] + shift
            t["b_mag"] = t["b_mag"] + torch.exp(t["r_mag"]) * shift
        else:
            t["b_enc"] = t["b_enc"] + shift
    if cfg.get("rescale_acts_by_decoder_norm"):
        norms = t["W_dec"].norm(dim=1).clamp_min(1e-8)  # [d_sae], SAELens's clamp
        t["W_enc"], t["b_enc"] = t["W_enc"] * norms, t["b_enc"] * norms
        t["W_dec"] = t["W_dec"] / norms[:, None]
    if "threshold" in t:
        t["threshold"] = t["threshold"].clamp_min(0)
    return t


def import_saelens(folder, *, device=None, dtype=None, norm_scaling_factor: float | None = None):
    """Load an SAELens-format folder (v6 or pre-v6) as a saelab torch SAE. Chapter 6.

    Parameters
    ----------
    folder : str or Path
        Holds ``cfg.json`` and ``sae_weights.safetensors`` (:mod:`saelab.interop.saelens_files`).
    device, dtype : optional
        Where and in what precision to put the SAE (default: CPU, cfg.json's ``dtype``).
    norm_scaling_factor : float, optional
        The input factor s of an SAE with ``normalize_activations: "expected_average_only_in"``;
        it is folded in, so the returned SAE reads raw activations. Refused otherwise.

    Returns
    -------
    saelab.torch_sae.BaseSAE
        ``L1SAE`` (standard), ``TopKSAE``, ``JumpReLUSAE`` or ``GatedSAE``, in eval mode. Its
        config is the saelab config stored in the metadata when saelab wrote the folder, else
        the family's defaults with the folder's sizes (training settings are not in the format).
    """
    if norm_scaling_factor is not None:
        check_positive("norm_scaling_factor", norm_scaling_factor)
    cfg = read_saelens_config(folder, norm_scaling_factor)
    folder = Path(folder)
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: an SAELens SAE folder needs {WEIGHTS_FILE} "
                                f"next to {CFG_FILE}")
    tensors = read_safetensors(path)
    _check_tensors(path, cfg, tensors)
    family = IMPORT_FAMILIES[cfg["architecture"]]
    saelab_cfg = _saelab_config(cfg, family)
    out_dtype = dtype if dtype is not None else DTYPES[cfg["dtype"]]
    if not (isinstance(out_dtype, torch.dtype) and out_dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    folded = _fold(cfg, tensors)
    sae = make_sae(saelab_cfg, device=device, dtype=out_dtype)
    sae.load_state_dict({name: v.to(out_dtype) for name, v in folded.items()})
    if cfg["normalize_activations"] == "expected_average_only_in":
        fold_input_scale(sae, norm_scaling_factor)  # the SAE wanted s * x: now it reads x
    sae.eval()
    return sae
