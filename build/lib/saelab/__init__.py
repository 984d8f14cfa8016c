"""saelab: an executable course on sparse autoencoders for mechanistic interpretability.

The package holds everything the chapters import: the toy model of superposition (Chapter 1),
sparse autoencoders written twice, in NumPy with hand-derived gradients and in PyTorch
(Chapters 2 and 4), training loops, evaluation metrics (Chapter 5) and the exercise checkers
used by every chapter.
"""
from __future__ import annotations

__version__ = "0.1.0"


def get_device() -> str:
    """Return the best available torch device name: ``"cuda"``, then ``"mps"``, then ``"cpu"``.

    Library code never calls this on its own: it runs on whatever device its inputs live on.
    Notebooks call it once at the top to pick where to put their tensors.
    """
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
