"""Official checkpoints: both layouts, the converter CLI, the orbax round trip and its error paths."""
import json

import jax
import numpy as np
import pytest

from tdmpc2_jax import checkpoints, convert, official
from tdmpc2_jax.config import make_config


def old_layout(state):
    """The layout of the checkpoints released with the paper: flat `_Qs.params.N`, N = 4 layer + j."""
    names = {"weight": 0, "bias": 1, "ln.weight": 2, "ln.bias": 3}
    out = {}
    for key, val in state.items():
        for new, old in (("_Qs.params.", "_Qs.params."), ("_target_Qs_params.", "_target_Qs.params.")):
            if key.startswith(new):
                layer, _, name = key[len(new):].partition(".")
                out[f"{old}{4 * int(layer) + names[name]}"] = val
                break
        else:
            if not key.startswith("_detach_Qs_params."):
                out[key] = val
    return out


def test_both_layouts_give_the_same_parameters(parity_dir):
    state = official.read_npz_state_dict(str(parity_dir / "weights.npz"))
    legacy = old_layout(state)
    assert "_Qs.params.9" in legacy and "_Qs.params.0.weight" not in legacy
    a, b = official.to_params(state), official.to_params(legacy)
    jax.tree.map(np.testing.assert_array_equal, a[:2], b[:2])


def test_state_dict_round_trip(parity_dir):
    state = official.read_npz_state_dict(str(parity_dir / "weights.npz"))
    cfg, params, target_qs = convert.to_project(state)
    back = official.from_params(params, target_qs, cfg)
    assert set(back) == set(state)
    for key in state:
        np.testing.assert_array_equal(back[key], state[key], err_msg=key)


def test_architecture_is_read_off_the_weights(parity_dir):
    arch = official.infer_architecture(official.read_npz_state_dict(str(parity_dir / "weights.npz")))
    readme = json.loads((parity_dir / "README.json").read_text())["config"]
    for key in ("latent_dim", "mlp_dim", "enc_dim", "num_enc_layers", "num_q", "num_bins", "action_dim"):
        assert arch[key] == readme[key], key
    assert arch["obs_dim"] == readme["obs_shape"]["state"][0] and not arch["multitask"]


def test_convert_cli_writes_an_orbax_checkpoint_that_loads_back(parity_dir, tmp_path, capsys):
    out = tmp_path / "converted"
    assert convert.command(str(parity_dir / "model_state.pt"), str(out)) == 0
    assert "latent_dim=64" in capsys.readouterr().out
    cfg, params, target_qs = checkpoints.load_model(str(out))
    ref_params, ref_target, _ = official.to_params(official.read_npz_state_dict(str(parity_dir / "weights.npz")))
    jax.tree.map(np.testing.assert_array_equal, (params, target_qs), (ref_params, ref_target))
    assert cfg.latent_dim == 64 and cfg.num_q == 5


def test_convert_reads_an_old_layout_torch_file(parity_dir, tmp_path):
    import torch
    state = official.read_npz_state_dict(str(parity_dir / "weights.npz"))
    path = tmp_path / "legacy.pt"
    torch.save({"model": {k: torch.from_numpy(np.asarray(v)) for k, v in old_layout(state).items()}}, path)
    assert convert.command(str(path), str(tmp_path / "out")) == 0
    _, params, _ = checkpoints.load_model(str(tmp_path / "out"))
    np.testing.assert_array_equal(params["qs"]["layers_2"]["kernel"],
                                  np.swapaxes(state["_Qs.params.2.weight"], -1, -2))


def test_multitask_checkpoint_converts_with_task_metadata(tmp_path):
    fixture = __import__("pathlib").Path(__file__).parent / "fixtures" / "parity_multitask"
    out = tmp_path / "mt"
    overrides = convert.overrides_of(["walker-run", "cheetah-run", "cartpole-balance"], ["500", "500", "1000"], None)
    assert convert.command(str(fixture / "weights.npz"), str(out), overrides) == 0
    cfg, params, _ = checkpoints.load_model(str(out))
    assert cfg.multitask and cfg.action_dims == (6, 6, 1) and cfg.discounts == (0.99, 0.99, 0.995)
    assert params["task_emb"].shape == (3, 16)


def test_corrupt_and_missing_files_are_clear_errors(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert convert.command(str(bad), str(tmp_path / "o")) == 2
    assert "cannot read" in capsys.readouterr().err
    assert convert.command(str(tmp_path / "absent.pt"), str(tmp_path / "o")) == 2
    assert "no checkpoint file" in capsys.readouterr().err


def test_checkpoint_of_another_model_names_what_differs(parity_dir, tmp_path):
    out = tmp_path / "c"
    convert.convert(str(parity_dir / "weights.npz"), str(out))
    other = make_config(dict(obs_dim=24, action_dim=6, latent_dim=128, mlp_dim=64, enc_dim=64))
    with pytest.raises(ValueError, match="latent_dim: model has 128, checkpoint has 64"):
        checkpoints.load_model(str(out), other)


def test_missing_checkpoint_directory_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        checkpoints.load_model(str(tmp_path / "nowhere"))
