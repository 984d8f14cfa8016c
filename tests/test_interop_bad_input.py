"""Bad SAELens folders and bad export arguments: clear errors naming the file and field.

Nothing is ever unpickled: a pickle where safetensors is expected is refused by its first bytes,
before any reader sees it (checked by a pickle whose loading would raise).
"""
import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from saelab.interop import export_saelens, import_saelens, to_saelens_form
from saelab.sae_config import JumpReLUConfig, TopKConfig
from saelab.torch_sae import make_sae

D_IN, D_SAE = 8, 20


@pytest.fixture
def folder(tmp_path):
    """A valid exported TopK folder to break."""
    torch.manual_seed(0)
    sae = make_sae(TopKConfig(d_in=D_IN, d_sae=D_SAE, k=3))
    return export_saelens(sae, tmp_path / "sae", model_name="m", hook_name="h")


def _edit_cfg(folder, **changes):
    cfg = json.loads((folder / "cfg.json").read_text())
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))


def _edit_weights(folder, **changes):
    from saelab.interop.saelens_files import read_safetensors

    tensors = read_safetensors(folder / "sae_weights.safetensors")
    for key, value in changes.items():
        if value is None:
            del tensors[key]
        else:
            tensors[key] = value
    save_file(tensors, str(folder / "sae_weights.safetensors"))


def test_the_valid_folder_loads(folder):
    assert import_saelens(folder).cfg.k == 3


def test_missing_folder_cfg_or_weights(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_saelens(tmp_path / "nowhere")
    (folder / "sae_weights.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="sae_weights.safetensors is missing"):
        import_saelens(folder)
    (folder / "cfg.json").unlink()
    with pytest.raises(FileNotFoundError, match="cfg.json is missing"):
        import_saelens(folder)


class _Bomb:
    """Unpickling this raises: proof that nothing was unpickled."""

    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise AssertionError("a pickle was loaded")


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_where_safetensors_is_expected_is_refused_unread(folder, writer):
    path = folder / "sae_weights.safetensors"
    path.unlink()
    if writer == "pickle":
        path.write_bytes(pickle.dumps({"W_enc": _Bomb()}, protocol=4))
        expected = "sae_weights.safetensors is a pickle"
    else:
        torch.save({"W_enc": torch.zeros(D_IN, D_SAE)}, path)
        expected = "sae_weights.safetensors is a zip archive"
    with pytest.raises(ValueError, match=f"{expected}.*never unpickles"):
        import_saelens(folder)


def test_garbage_weights_and_garbage_json(folder):
    (folder / "sae_weights.safetensors").write_bytes(b"not a tensor file at all")
    with pytest.raises(ValueError, match="sae_weights.safetensors is not a readable safetensors"):
        import_saelens(folder)
    (folder / "cfg.json").write_text("{ not json")
    with pytest.raises(ValueError, match="cfg.json is not valid JSON"):
        import_saelens(folder)
    (folder / "cfg.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        import_saelens(folder)


@pytest.mark.parametrize("changes,match", [
    ({"architecture": "matching_pursuit"}, "field 'architecture' is 'matching_pursuit'"),
    ({"architecture": "skip_transcoder"},
     "field 'architecture' is 'skip_transcoder'; a transcoder"),
    ({"normalize_activations": "layer_norm"}, "field 'normalize_activations' is 'layer_norm'"),
    ({"reshape_activations": "hook_z"}, "field 'reshape_activations' is 'hook_z'"),
    ({"d_sae": 0}, "field 'd_sae' must be a positive integer, got 0"),
    ({"d_in": "8"}, "field 'd_in' must be a positive integer, got '8'"),
    ({"dtype": "int8"}, "field 'dtype' is 'int8'"),
    ({"k": None}, "field 'k' must be a positive integer, got None"),
    ({"k": 999}, "field 'k' is 999, more than d_sae = 20"),
    ({"apply_b_dec_to_input": "yes"}, "field 'apply_b_dec_to_input' must be true or false"),
])
def test_cfg_saelab_cannot_represent_names_field_and_value(folder, changes, match):
    _edit_cfg(folder, **changes)
    with pytest.raises(ValueError, match=match):
        import_saelens(folder)


def test_d_sae_that_disagrees_with_the_tensors(folder):
    _edit_cfg(folder, d_sae=D_SAE + 1)
    with pytest.raises(ValueError, match=r"tensor 'W_enc' has shape \(8, 20\).*d_sae = 21"):
        import_saelens(folder)


@pytest.mark.parametrize("changes,match", [
    ({"b_enc": torch.zeros(D_SAE + 2)}, r"tensor 'b_enc' has shape \(22,\)"),
    ({"W_dec": torch.zeros(D_IN, D_SAE)}, r"tensor 'W_dec' has shape \(8, 20\).*need \(20, 8\)"),
    ({"b_dec": torch.zeros(D_IN, dtype=torch.float64)}, "tensor 'b_dec' has dtype torch.float64"),
    ({"W_enc": torch.zeros(D_IN, D_SAE, dtype=torch.int32)},
     "tensor 'W_enc' has dtype torch.int32"),
    ({"b_enc": None}, r"missing \['b_enc'\]"),
    ({"threshold": torch.zeros(D_SAE)}, r"unexpected \['threshold'\]"),
    ({"b_enc": torch.full((D_SAE,), float("nan"))}, "b_enc contains 20 NaN"),
])
def test_tensors_of_the_wrong_name_shape_or_dtype(folder, changes, match):
    _edit_weights(folder, **changes)
    with pytest.raises(ValueError, match=match):
        import_saelens(folder)


def test_bad_sparsity_file(folder):
    from saelab.interop import read_saelens_sparsity

    save_file({"density": torch.zeros(D_SAE)}, str(folder / "sparsity.safetensors"))
    with pytest.raises(ValueError, match="sparsity.safetensors must hold one 1-D tensor"):
        read_saelens_sparsity(folder)


def test_import_arguments(folder):
    with pytest.raises(ValueError, match="folder must be a folder or file path .* got 5"):
        import_saelens(5)
    with pytest.raises(ValueError, match="norm_scaling_factor must be positive"):
        import_saelens(folder, norm_scaling_factor=-1.0)
    with pytest.raises(ValueError, match="dtype must be a floating-point torch dtype"):
        import_saelens(folder, dtype=torch.int64)


def test_export_arguments(folder, tmp_path):
    sae = import_saelens(folder)
    with pytest.raises(ValueError,
                       match=r"sae must be a saelab torch SAE \(saelab.torch_sae\), got Linear"):
        export_saelens(torch.nn.Linear(2, 2), tmp_path / "a", model_name="m", hook_name="h")
    with pytest.raises(ValueError, match="hook_name must be a non-empty string, got ''"):
        export_saelens(sae, tmp_path / "a", model_name="m", hook_name="")
    with pytest.raises(ValueError, match="context_size must be a positive integer"):
        export_saelens(sae, tmp_path / "a", model_name="m", hook_name="h", context_size=0)
    with pytest.raises(ValueError, match="firing_density must have shape"):
        export_saelens(sae, tmp_path / "a", model_name="m", hook_name="h",
                       firing_density=torch.zeros(3))
    with pytest.raises(ValueError, match=r"firing_density must hold fractions in \[0, 1\]"):
        export_saelens(sae, tmp_path / "a", model_name="m", hook_name="h",
                       firing_density=torch.full((D_SAE,), 2.0))
    with pytest.raises(ValueError, match="metadata must be JSON-serialisable"):
        export_saelens(sae, tmp_path / "a", model_name="m", hook_name="h",
                       metadata={"x": object()})
    with pytest.raises(ValueError, match="overwrite must be True or False, got 'yes'"):
        export_saelens(sae, tmp_path / "a", model_name="m", hook_name="h", overwrite="yes")
    with pytest.raises(ValueError, match="is not empty; pass overwrite=True"):
        export_saelens(sae, folder, model_name="m", hook_name="h")
    # the refused calls wrote nothing into a fresh folder
    assert not (tmp_path / "a").exists()


def test_negative_jumprelu_threshold_cannot_be_exported(tmp_path):
    sae = make_sae(JumpReLUConfig(d_in=D_IN, d_sae=D_SAE))
    with torch.no_grad():
        sae.threshold[3] = -0.5
    with pytest.raises(ValueError, match="negative JumpReLU thresholds"):
        to_saelens_form(sae)


def test_a_family_without_an_equivalent_is_refused(monkeypatch):
    from saelab.interop import saelens

    sae = make_sae(TopKConfig(d_in=D_IN, d_sae=D_SAE, k=2))
    monkeypatch.delitem(saelens.EXPORTERS, "topk")
    with pytest.raises(ValueError, match="family 'topk' has no SAELens equivalent"):
        to_saelens_form(sae)
