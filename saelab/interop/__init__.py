"""Trading SAEs with the field's tools (Chapter 6, "Published SAEs").

- ``saelens``: ``export_saelens`` writes a saelab SAE as an SAELens (v6) folder that
  ``sae_lens.SAE.load_from_disk`` reads; ``import_saelens`` reads such a folder (v6 or pre-v6)
  as a saelab SAE. ``saelens_files`` reads and checks the folder's files (never unpickling).
- ``pretrained``: ``load_pretrained(release, sae_id)`` downloads a published SAE by SAELens
  release name or Hugging Face repo path and returns it as a saelab SAE with its metadata.
"""
from __future__ import annotations

from saelab.interop.pretrained import (PretrainedSAE, SAEUnavailableError, load_pretrained,
                                       pretrained_releases, resolve_pretrained)
from saelab.interop.saelens import (EXPORTERS, IMPORT_FAMILIES, export_saelens, import_saelens,
                                    to_saelens_form)
from saelab.interop.saelens_files import read_saelens_config, read_saelens_sparsity

__all__ = ["EXPORTERS", "IMPORT_FAMILIES", "PretrainedSAE", "SAEUnavailableError",
           "export_saelens", "import_saelens", "load_pretrained", "pretrained_releases",
           "read_saelens_config", "read_saelens_sparsity", "resolve_pretrained",
           "to_saelens_form"]
