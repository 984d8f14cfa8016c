"""Bad inputs for the public callables added after the first fuzz table: Matryoshka SAEs and
hierarchy benchmarks (Chapter 7), SAELens interop, learner notebooks, grading tools and
precomputed results (see tests/fuzz_cases.py for how to add; same format)."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import torch

from fuzz_cases import NAN_X, TNAN, TX, X, bad, codes, fn, hdata, tsae

NOWHERE = "/nonexistent/saelab-fuzz"
REPO = Path(__file__).resolve().parents[1]
NEVER = Path(tempfile.gettempdir()) / "saelab-fuzz-never"  # no case may create it


@functools.cache
def mcfg():
    from saelab.sae_config import MatryoshkaConfig
    return MatryoshkaConfig(d_in=6, d_sae=12, k=3, prefix_sizes=(4, 12))


def msae():
    from saelab.torch_sae import MatryoshkaSAE
    return MatryoshkaSAE(mcfg())


def hsae():
    """A Matryoshka SAE as wide as the hierarchy toy data (d_in=8)."""
    from saelab.sae_config import MatryoshkaConfig
    from saelab.torch_sae import MatryoshkaSAE
    return MatryoshkaSAE(MatryoshkaConfig(d_in=8, d_sae=16, k=2, prefix_sizes=(4, 16)))


def _nb():
    import nbformat
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# x")])


def more_cases() -> dict:
    from saelab import absorption, colab, hierarchy_bench, meta_sae, numpy_sae, results, torch_sae
    from saelab import sae_config as sc
    from saelab.interop import pretrained, saelens, saelens_files
    from saelab.train import TrainConfig

    ex = lambda name: lambda: [bad("function", fn(f"saelab.exercises.ch07.{name}"), None)]  # noqa: E731
    E = "saelab.exercises."
    learner = lambda name: fn(E + "learner." + name)  # noqa: E731
    myst = lambda name: fn(E + "myst_markdown." + name)  # noqa: E731
    T3 = torch.zeros(2, 8, 6)
    return {
        # -- Chapter 7: Matryoshka SAEs, absorption, hierarchy benchmarks, meta-SAEs
        **{f"saelab.exercises.ch07.{n}": ex(n)
           for n in ("nested_recon_loss", "nested_loss_grad_W_dec", "full_absorption_rate")},
        "saelab.absorption.full_absorption": lambda: [
            bad("f", absorption.full_absorption, None, np.eye(12, 8), hdata()),
            bad("data", absorption.full_absorption, codes(64), np.eye(12, 8), None),
            bad("W_dec", absorption.full_absorption, codes(64), np.eye(12, 5), hdata()),
            bad("min_share", absorption.full_absorption, codes(64), np.eye(12, 8), hdata(), min_share=1.5)],
        "saelab.sae_config.MatryoshkaConfig": lambda: [
            bad("prefix_sizes", sc.MatryoshkaConfig, d_sae=12, k=3, prefix_sizes=(4, 8)),
            bad("prefix_sizes", sc.MatryoshkaConfig, d_sae=12, k=3, prefix_sizes=(8, 4, 12)),
            bad("prefix_sizes", sc.MatryoshkaConfig, d_sae=12, k=3, prefix_sizes=()),
            bad("prefix_sizes", sc.MatryoshkaConfig, d_sae=12, k=3, prefix_sizes=(2, 12)),
            bad("activation", sc.MatryoshkaConfig, d_sae=12, k=3, activation="relu")],
        "saelab.numpy_sae.matryoshka.MatryoshkaSAE": lambda: [
            bad("cfg", numpy_sae.MatryoshkaSAE, None),
            bad("cfg", numpy_sae.MatryoshkaSAE, sc.BatchTopKConfig(d_in=6, d_sae=12, k=3)),
            bad("x", lambda: numpy_sae.MatryoshkaSAE(mcfg(), rng=0)(NAN_X)),
            bad("x", lambda: numpy_sae.MatryoshkaSAE(mcfg(), rng=0)(X[:, :4])),
            bad("dtype", numpy_sae.MatryoshkaSAE, mcfg(), dtype=np.int32)],
        "saelab.torch_sae.matryoshka.MatryoshkaSAE": lambda: [
            bad("cfg", torch_sae.MatryoshkaSAE, None),
            bad("cfg", torch_sae.MatryoshkaSAE, sc.TopKConfig(d_in=6, d_sae=12, k=3)),
            bad("x", lambda: msae()(TNAN)),
            bad("x", lambda: msae()(TX[:, :4])),
            bad("dtype", torch_sae.MatryoshkaSAE, mcfg(), dtype=torch.int32)],
        "saelab.numpy_sae.matryoshka.nested_recon_loss": lambda: [
            bad("x", numpy_sae.nested_recon_loss, None, np.zeros((2, 8, 6))),
            bad("x", numpy_sae.nested_recon_loss, NAN_X, np.zeros((2, 8, 6))),
            bad("x_hats", numpy_sae.nested_recon_loss, X, X),
            bad("x_hats", numpy_sae.nested_recon_loss, X, np.zeros((2, 8, 5)))],
        "saelab.torch_sae.matryoshka.nested_recon_loss": lambda: [
            bad("x", torch_sae.nested_recon_loss, X, T3),
            bad("x", torch_sae.nested_recon_loss, TNAN, T3),
            bad("x_hats", torch_sae.nested_recon_loss, TX, TX),
            bad("x_hats", torch_sae.nested_recon_loss, TX, torch.zeros(2, 7, 6))],
        "saelab.hierarchy_bench.hierarchy_scores": lambda: [
            bad("sae", hierarchy_bench.hierarchy_scores, None, hdata()),
            bad("data", hierarchy_bench.hierarchy_scores, hsae(), None),
            bad("data.x", hierarchy_bench.hierarchy_scores, msae(), hdata())],
        "saelab.hierarchy_bench.prefix_fvus": lambda: [
            bad("sae", hierarchy_bench.prefix_fvus, None, TX, [4]),
            bad("x", hierarchy_bench.prefix_fvus, msae(), TX[:, :4], [4]),
            bad("x", hierarchy_bench.prefix_fvus, msae(), TNAN, [4]),
            bad("prefix_sizes", hierarchy_bench.prefix_fvus, msae(), TX, [13]),
            bad("prefix_sizes", hierarchy_bench.prefix_fvus, msae(), TX, None)],
        "saelab.hierarchy_bench.take_rows": lambda: [
            bad("data", hierarchy_bench.take_rows, None, [0]),
            bad("rows", hierarchy_bench.take_rows, hdata(), [999]),
            bad("rows", hierarchy_bench.take_rows, hdata(), None)],
        "saelab.hierarchy_bench.train_and_score": lambda: [
            bad("cfg", hierarchy_bench.train_and_score, None, hdata(), hdata(), TrainConfig(n_steps=1)),
            bad("train", hierarchy_bench.train_and_score, mcfg(), None, hdata(), TrainConfig(n_steps=1)),
            bad("train_cfg", hierarchy_bench.train_and_score, mcfg(), hdata(), hdata(), None),
            bad("seed", hierarchy_bench.train_and_score, mcfg(), hdata(), hdata(),
                TrainConfig(n_steps=1), seed=-1)],
        "saelab.meta_sae.unit_rows": lambda: [bad("W_dec", meta_sae.unit_rows, None),
                                             bad("W_dec", meta_sae.unit_rows, NAN_X),
                                             bad("W_dec", meta_sae.unit_rows, np.ones(6))],
        "saelab.meta_sae.train_meta_sae": lambda: [
            bad("W_dec", meta_sae.train_meta_sae, None, 4),
            bad("n_meta", meta_sae.train_meta_sae, X, 0),
            bad("k", meta_sae.train_meta_sae, X, 4, k=5),
            bad("lr", meta_sae.train_meta_sae, X, 4, lr=float("nan"))],
        "saelab.results.load": lambda: [bad("name", results.load, "ch99_nothing"),
                                        bad("name", results.load, None)],
        # -- interop with SAELens folders and pretrained releases
        "saelab.interop.pretrained.load_pretrained": lambda: [
            bad("release", pretrained.load_pretrained, None, "x"),
            bad("release", pretrained.load_pretrained, "no-such-release", "x")],
        "saelab.interop.pretrained.pretrained_releases": lambda: [
            bad("model", pretrained.pretrained_releases, 3)],
        "saelab.interop.pretrained.resolve_pretrained": lambda: [
            bad("release", pretrained.resolve_pretrained, "no-such-release", "x"),
            bad("sae_id", pretrained.resolve_pretrained, _a_release(), "no-such-id"),
            bad("sae_id", pretrained.resolve_pretrained, _a_release(), None)],
        "saelab.interop.saelens.export_saelens": lambda: [
            bad("sae", saelens.export_saelens, None, NEVER, model_name="m", hook_name="h"),
            bad("model_name", saelens.export_saelens, tsae(), NEVER, model_name=None, hook_name="h"),
            bad("firing_density", saelens.export_saelens, tsae(), NEVER, model_name="m",
                hook_name="h", firing_density=torch.ones(5))],
        "saelab.interop.saelens.import_saelens": lambda: [
            bad("folder", saelens.import_saelens, NOWHERE), bad("folder", saelens.import_saelens, None)],
        "saelab.interop.saelens.to_saelens_form": lambda: [bad("sae", saelens.to_saelens_form, None),
                                                          bad("sae", saelens.to_saelens_form, "topk")],
        "saelab.interop.saelens_files.as_path": lambda: [bad("folder", saelens_files.as_path, "folder", None),
                                                        bad("folder", saelens_files.as_path, "folder", 3.5)],
        "saelab.interop.saelens_files.read_saelens_config": lambda: [
            bad("folder", saelens_files.read_saelens_config, NOWHERE),
            bad("norm_scaling_factor", saelens_files.read_saelens_config, _a_folder(),
                norm_scaling_factor=0.0)],
        "saelab.interop.saelens_files.read_saelens_sparsity": lambda: [
            bad("folder", saelens_files.read_saelens_sparsity, None)],
        "saelab.interop.saelens_files.read_safetensors": lambda: [
            bad("path", saelens_files.read_safetensors, NOWHERE + ".safetensors"),
            bad("path", saelens_files.read_safetensors, None)],
        # -- course tooling: Colab links, labels, learner notebooks, grading
        "saelab.colab.colab_url": lambda: [bad("path", colab.colab_url, None),
                                          bad("path", colab.colab_url, "notebooks/01.md")],
        "saelab.exercises.labels.Label": lambda: [
            bad("difficulty", fn(E + "labels.Label"), 0, 10, "numpy"),
            bad("minutes", fn(E + "labels.Label"), 1, -5, "numpy"),
            bad("data", fn(E + "labels.Label"), 1, 10, None)],
        "saelab.exercises.labels.apply": lambda: [bad("path", fn(E + "labels.apply"), None),
                                                 bad("path", fn(E + "labels.apply"), NOWHERE + ".ipynb")],
        "saelab.exercises.labels.label_markdown": lambda: [
            bad("label", fn(E + "labels.label_markdown"), "ex", None),
            bad("name", fn(E + "labels.label_markdown"), None, fn(E + "labels.Label")(1, 10, "numpy"))],
        "saelab.exercises.learner.converter_for": lambda: [bad("root", learner("converter_for"), NOWHERE),
                                                          bad("root", learner("converter_for"), None)],
        "saelab.exercises.learner.main": lambda: [bad("argv", learner("main"), "notebooks/01.ipynb")],
        "saelab.exercises.learner.make_learner_files": lambda: [
            bad("paths", learner("make_learner_files"), None, NEVER),
            bad("root", learner("make_learner_files"), [str(REPO / "notebooks")], NEVER,
                root=NOWHERE)],
        "saelab.exercises.learner.make_learner_notebook": lambda: [
            bad("nb", learner("make_learner_notebook"), None, "01", _converter()),
            bad("converter", learner("make_learner_notebook"), _nb(), "notebooks/01_x.ipynb", None),
            bad("page", learner("make_learner_notebook"), _nb(), None, _converter())],
        "saelab.exercises.myst_markdown.MystToMarkdown": lambda: [
            bad("base_url", myst("MystToMarkdown"), None, {}, {}),
            bad("glossary", myst("MystToMarkdown"), "https://x", None, {}),
            bad("citations", myst("MystToMarkdown"), "https://x", {}, [])],
        "saelab.exercises.myst_markdown.glossary_anchor": lambda: [bad("term", myst("glossary_anchor"), None),
                                                                  bad("term", myst("glossary_anchor"), "  ")],
        "saelab.exercises.myst_markdown.read_citations": lambda: [
            bad("path", myst("read_citations"), NOWHERE + ".bib"), bad("path", myst("read_citations"), None)],
        "saelab.exercises.myst_markdown.read_glossary": lambda: [
            bad("path", myst("read_glossary"), NOWHERE + ".md"), bad("path", myst("read_glossary"), None)],
        "saelab.exercises.student.find_notebooks": lambda: [
            bad("paths", fn(E + "student.find_notebooks"), None),
            bad("paths", fn(E + "student.find_notebooks"), [NOWHERE + ".ipynb"])],
        "saelab.exercises.gradebook.grade_folder": lambda: [
            bad("paths", fn(E + "gradebook.grade_folder"), None, None, NEVER / "log.txt", progress=False),
            bad("workers", fn(E + "gradebook.grade_folder"), [], None, NEVER / "log.txt", workers=0,
                progress=False),
            bad("limits", fn(E + "gradebook.grade_folder"), [], None, NEVER / "log.txt", limits=3,
                progress=False)],
        "saelab.exercises.isolation.Limits": lambda: [
            bad("cell_seconds", fn(E + "isolation.Limits"), cell_seconds=0),
            bad("memory_bytes", fn(E + "isolation.Limits"), memory_bytes=-1),
            bad("notebook_seconds", fn(E + "isolation.Limits"), notebook_seconds=float("nan"))],
        "saelab.exercises.isolation.PackageGuard": lambda: [
            bad("installed", fn(E + "isolation.PackageGuard"), NOWHERE),
            bad("installed", fn(E + "isolation.PackageGuard"), 3)],
    }


def _a_release() -> str:
    from saelab.interop.pretrained import pretrained_releases
    return pretrained_releases()[0]


@functools.cache
def _a_folder():
    """An exported SAELens folder of a tiny TopK SAE (written once per session)."""
    from saelab.interop.saelens import export_saelens
    folder = tempfile.mkdtemp(prefix="saelab-fuzz-")
    return export_saelens(tsae(), folder, model_name="m", hook_name="h", overwrite=True)


def _converter():
    from saelab.exercises.learner import converter_for
    return converter_for(REPO)

