"""One small config per SAE family (both L1 decoder-norm choices), shared by the tests."""
from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                               MatryoshkaConfig, TopKConfig)


def family_configs(d_in: int, d_sae: int, threshold_init: float = 0.2) -> dict:
    """Name -> config for every family; TopK, BatchTopK and Matryoshka keep 5 latents, AuxK uses 8;
    Matryoshka nests three prefixes (d_sae/4, d_sae/2, d_sae)."""
    return {
        "l1-unit": L1Config(d_in, d_sae, decoder_norm="unit"),
        "l1-weighted": L1Config(d_in, d_sae, decoder_norm="weighted"),
        "topk": TopKConfig(d_in, d_sae, k=5, k_aux=8),
        "jumprelu": JumpReLUConfig(d_in, d_sae, threshold_init=threshold_init),
        "batchtopk": BatchTopKConfig(d_in, d_sae, k=5, k_aux=8),
        "gated": GatedConfig(d_in, d_sae),
        "matryoshka": MatryoshkaConfig(d_in, d_sae, k=5, k_aux=8,
                                       prefix_sizes=(d_sae // 4, d_sae // 2, d_sae)),
    }
