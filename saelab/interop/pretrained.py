"""Published SAEs: resolve an SAELens release name or a Hugging Face repo path, download, import.

SAELens keeps a registry of published SAEs, ``pretrained_saes.yaml`` inside the ``sae_lens``
package: each *release* (e.g. ``"gpt2-small-res-jb"``, Bloom's residual-stream SAEs for GPT-2
small) names a Hugging Face repo and maps each *SAE id* (usually the hook name, e.g.
``"blocks.6.hook_resid_pre"``) to a folder in that repo. People often pass the repo path
(``"jbloom/GPT2-Small-SAEs-Reformatted"``) where the release name is expected; both are accepted,
and ``PretrainedSAE.source`` says which one it was. Only releases stored in the SAELens folder
format are read (``conversion_func`` empty in the registry); others use formats saelab does not
read (some of them pickles) and are refused with what to do instead.

Offline, ``load_pretrained`` fails within seconds with ``SAEUnavailableError`` that says what to
do, like ``saelab.lm.load_model``; files already in the Hugging Face cache load offline. The
registry is read as YAML text, without importing ``sae_lens``. Taught in Chapter 6.
"""
from __future__ import annotations

import difflib
import functools
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch

from saelab.interop.saelens import import_saelens
from saelab.interop.saelens_files import (CFG_FILE, SPARSITY_FILE, WEIGHTS_FILE,
                                          read_saelens_config, read_saelens_sparsity)
from saelab.lm.models import _hf_offline, hub_reachable

__all__ = ["PretrainedSource", "PretrainedSAE", "SAEUnavailableError", "pretrained_releases",
           "resolve_pretrained", "load_pretrained"]


class SAEUnavailableError(OSError):
    """A published SAE cannot be had here (offline and not in the Hugging Face cache)."""


class PretrainedSource(NamedTuple):
    """Where a published SAE lives, and what the registry says about it."""

    kind: str  # "release" (an SAELens release name) or "repo" (a Hugging Face repo path)
    repo_id: str  # Hugging Face repo
    folder: str  # folder inside the repo holding cfg.json and sae_weights.safetensors
    release: str | None  # the SAELens release, if known
    info: dict  # registry entries: norm_scaling_factor, config_overrides, neuronpedia, l0, ...
    note: str  # one sentence saying how the name was read


class PretrainedSAE(NamedTuple):
    """A published SAE as a saelab SAE, with its metadata and firing statistics."""

    sae: torch.nn.Module  # saelab torch SAE, eval mode, reads raw activations
    metadata: dict  # cfg.json's metadata (model_name, hook_name, ...) + the registry's info
    log_sparsity: torch.Tensor | None  # [d_sae] log10 firing frequency, if published
    source: str  # e.g. "SAELens release 'gpt2-small-res-jb' (repo ..., folder ...)"


def _registry_path() -> Path | None:
    spec = importlib.util.find_spec("sae_lens")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained_saes.yaml"
    return path if path.is_file() else None


@functools.lru_cache(maxsize=1)
def _registry() -> dict:
    """release -> its registry entry (dict with repo_id, model, conversion_func, saes, ...)."""
    path = _registry_path()
    if path is None:
        return {}
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return data if isinstance(data, dict) else {}


def pretrained_releases(model: str | None = None) -> list[str]:
    """SAELens release names (all, or those for ``model``, e.g. ``"gpt2-small"``). Chapter 6.

    Empty when ``sae-lens`` is not installed (its registry file is the source).
    """
    if model is not None and not isinstance(model, str):
        raise ValueError(f"model must be a model name or None, got {model!r}")
    return sorted(r for r, e in _registry().items() if model is None or e.get("model") == model)


def _entry_info(entry: dict, sae: dict) -> dict:
    info = {"model": entry.get("model"), "config_overrides": entry.get("config_overrides") or {},
            "conversion_func": entry.get("conversion_func")}
    for key, name in (("norm_scaling_factor", "norm_scaling_factor"), ("l0", "expected_l0"),
                      ("variance_explained", "expected_variance_explained"),
                      ("neuronpedia", "neuronpedia_id")):
        if key in sae:
            info[name] = sae[key]
    return info


def resolve_pretrained(release: str, sae_id: str) -> PretrainedSource:
    """Read ``release`` as an SAELens release name or a Hugging Face repo path. Chapter 6.

    ``sae_id`` is the release's SAE id (or, for a repo path, the folder in the repo). Raises
    ``ValueError`` for unknown names, listing close ones.
    """
    for name, value in (("release", release), ("sae_id", sae_id)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    registry = _registry()
    if release in registry:
        entry = registry[release]
        saes = {s["id"]: s for s in entry.get("saes", [])}
        by_path = {str(s["path"]): s for s in entry.get("saes", [])}
        if sae_id in saes:
            sae, note = saes[sae_id], f"read {release!r} as an SAELens release name"
        elif sae_id in by_path:
            sae = by_path[sae_id]
            note = (f"read {release!r} as an SAELens release; {sae_id!r} is a folder of it, whose "
                    f"SAE id is {sae['id']!r}")
        else:
            close = difflib.get_close_matches(sae_id, list(saes), n=5, cutoff=0.5)
            raise ValueError(f"sae_id {sae_id!r} is not in release {release!r}; close ids: "
                             f"{close or list(saes)[:5]}")
        return PretrainedSource("release", entry["repo_id"], str(sae["path"]), release,
                                _entry_info(entry, sae), note)
    if "/" not in release:
        if not registry:
            raise ValueError(f"release {release!r} is not a Hugging Face repo path (owner/name), "
                             f"and release names need the registry of the sae-lens package: "
                             f"pip install 'sae-lens>=6.54,<7'")
        close = difflib.get_close_matches(release, list(registry), n=5, cutoff=0.5)
        raise ValueError(f"release {release!r} is neither an SAELens release nor a Hugging Face "
                         f"repo path (owner/name); close release names: {close}")
    matches = [(r, e) for r, e in registry.items() if e.get("repo_id") == release]
    for name, entry in matches:
        for sae in entry.get("saes", []):
            if str(sae["path"]) == sae_id or (sae["id"] == sae_id and len(matches) == 1):
                note = (f"read {release!r} as a Hugging Face repo path; it is SAELens release "
                        f"{name!r}, SAE id {sae['id']!r}")
                return PretrainedSource("repo", release, str(sae["path"]), name,
                                        _entry_info(entry, sae), note)
    also = f"; the repo is SAELens release(s) {[r for r, _ in matches]}" if matches else ""
    return PretrainedSource("repo", release, sae_id.strip("/"), None, {},
                            f"read {release!r} as a Hugging Face repo path{also}")


def _unavailable(source: PretrainedSource, why: str) -> SAEUnavailableError:
    return SAEUnavailableError(
        f"cannot load the SAE {source.folder!r} of {source.repo_id!r}: {why}. On Colab or with "
        f"internet it downloads by itself; offline, use an SAE folder on disk with "
        f"saelab.interop.import_saelens(folder) (export_saelens writes one from a saelab SAE)")


def _fetch(source: PretrainedSource, name: str, required: bool) -> str | None:
    """Local path of ``folder/name`` from the cache or the hub; None if optional and absent."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import EntryNotFoundError

    filename = f"{source.folder}/{name}"
    cached = try_to_load_from_cache(source.repo_id, filename)
    if isinstance(cached, str):
        return cached
    if cached is not None and not required:
        return None  # the cache remembers that this optional file does not exist
    if _hf_offline() or not hub_reachable():
        if not required:
            return None
        why = ("it is not in the Hugging Face cache and HF_HUB_OFFLINE is set" if _hf_offline()
               else "it is not in the Hugging Face cache and the hub cannot be reached")
        raise _unavailable(source, why)
    try:
        return hf_hub_download(source.repo_id, filename)
    except EntryNotFoundError:
        if required:
            raise FileNotFoundError(f"repo {source.repo_id!r} has no file {filename!r}; is "
                                    f"{source.folder!r} an SAELens SAE folder?") from None
        return None


def load_pretrained(release: str, sae_id: str, *, device=None, dtype=None) -> PretrainedSAE:
    """Download a published SAE and return it as a saelab SAE. Chapter 6.

    Parameters
    ----------
    release : str
        An SAELens release name (``"gpt2-small-res-jb"``) or a Hugging Face repo path
        (``"jbloom/GPT2-Small-SAEs-Reformatted"``).
    sae_id : str
        The SAE id in the release (``"blocks.6.hook_resid_pre"``) or the folder in the repo.
    device, dtype : optional
        As for :func:`saelab.interop.import_saelens`.

    Raises
    ------
    SAEUnavailableError
        Offline and not in the Hugging Face cache (within seconds, with what to do).
    ValueError
        Unknown release or id (with close names); a release in a format other than SAELens's;
        a folder whose files saelab cannot represent (see ``import_saelens``).
    """
    source = resolve_pretrained(release, sae_id)
    conversion = source.info.get("conversion_func")
    if conversion:
        raise ValueError(f"release {source.release!r} is published in another format "
                         f"(SAELens converts it with {conversion!r}); saelab reads SAELens "
                         f"folders only. With sae-lens installed: sae = sae_lens.SAE."
                         f"from_pretrained(release, sae_id); sae.save_model(folder); then "
                         f"saelab.interop.import_saelens(folder)")
    cfg_path = Path(_fetch(source, CFG_FILE, required=True))
    weights_path = Path(_fetch(source, WEIGHTS_FILE, required=True))
    sparsity_path = _fetch(source, SPARSITY_FILE, required=False)
    folder = cfg_path.parent
    if weights_path.parent != folder or (sparsity_path and Path(sparsity_path).parent != folder):
        folder = Path(tempfile.mkdtemp(prefix="saelab-sae-"))  # cache revisions differ: link them
        for path in (cfg_path, weights_path, sparsity_path):
            if path:
                os.symlink(Path(path).resolve(), folder / Path(path).name)
    factor = source.info.get("norm_scaling_factor")
    sae = import_saelens(folder, device=device, dtype=dtype, norm_scaling_factor=factor)
    metadata = dict(read_saelens_config(folder, factor)["metadata"])
    overrides = source.info.get("config_overrides", {})
    metadata.update({k: v for k, v in overrides.items() if k not in ("device", "dtype")})
    metadata.update(release=source.release, repo_id=source.repo_id, folder=source.folder,
                    **{k: v for k, v in source.info.items() if k != "config_overrides"})
    where = f"repo {source.repo_id!r}, folder {source.folder!r}"
    label = (f"SAELens release {source.release!r} ({where})" if source.kind == "release"
             else f"Hugging Face {where}")
    return PretrainedSAE(sae, metadata, read_saelens_sparsity(folder), f"{label}: {source.note}")
