"""Official `.pt` checkpoints read without torch, and nothing in a file runs.

torch only writes the files here; every read of them goes through `tdmpc2_jax.torch_archive`, and the
torch-free tests run in a subprocess where a stub package makes `import torch` fail.
"""
from __future__ import annotations

import builtins
import collections
import os
import pickle
import subprocess
import sys
import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch

from helpers import ROOT, SMALL
from tdmpc2_jax import convert, loading, official, torch_archive
from test_official import old_layout

WEIGHTS = ROOT / "tests" / "fixtures" / "parity_official" / "weights.npz"  # a walker-run model (obs 24, action 6)


def official_state() -> dict[str, np.ndarray]:
    with np.load(WEIGHTS) as data:
        return {k: data[k] for k in data.files}


def save(path, state: dict[str, np.ndarray], wrapped: bool) -> None:
    """torch.save as the official code does ({"model": state_dict}), or the bare state dict."""
    tensors = collections.OrderedDict((k, torch.from_numpy(np.asarray(v))) for k, v in state.items())
    torch.save({"model": tensors} if wrapped else tensors, path)


def without_torch(tmp_path) -> dict[str, str]:
    """The environment of a subprocess in which `import torch` fails, as if torch were not installed."""
    stub = tmp_path / "no_torch" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("torch is not installed")\n')
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(stub.parent), str(ROOT), str(ROOT / "tests")]))


def run_without_torch(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env=without_torch(tmp_path))


def test_both_official_layouts_read_and_convert_without_torch(tmp_path):
    state = official_state()
    save(tmp_path / "current.pt", state, wrapped=True)
    save(tmp_path / "older.pt", old_layout(state), wrapped=False)  # the layout released with the paper, bare
    np.savez(tmp_path / "current.npz", **state)
    np.savez(tmp_path / "older.npz", **old_layout(state))
    code = """
import jax, numpy as np
from tdmpc2_jax import convert, loading
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit("torch was importable")
for name in ("current", "older"):
    state, ref = convert.read_state_dict(name + ".pt"), convert.read_state_dict(name + ".npz")
    assert sorted(state) == sorted(ref), name
    for key in ref:
        assert isinstance(state[key], np.memmap) and not state[key].flags.writeable, key
        np.testing.assert_array_equal(state[key], ref[key], strict=True)
    cfg, params, target_qs = loading.read_weights(name + ".pt")  # evaluate --checkpoint
    _, ref_params, ref_target_qs = loading.read_weights("current.npz")
    jax.tree.map(np.testing.assert_array_equal, (params, target_qs), (ref_params, ref_target_qs))
    started = loading.starting_weights(name + ".pt", cfg)  # --config.init_from
    jax.tree.map(np.testing.assert_array_equal, started, (ref_params, ref_target_qs))
    print(name, cfg.obs_dim, cfg.action_dim)
"""
    out = run_without_torch(tmp_path, "-c", code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["current", "24", "6", "older", "24", "6"]


def test_an_official_checkpoint_evaluates_without_torch(tmp_path):
    save(tmp_path / "older.pt", old_layout(official_state()), wrapped=False)
    out = run_without_torch(tmp_path, "-m", "tdmpc2_jax.evaluate", f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:walker-run",
                            *SMALL, "--checkpoint", str(tmp_path / "older.pt"), "--episodes", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "walker-run: 1 episodes, return mean" in out.stdout and "episode lengths [10]" in out.stdout


def test_the_checkpoint_the_official_code_wrote_reads_like_its_arrays(parity_dir):
    state = official.read_torch_checkpoint(str(parity_dir / "model_state.pt"))
    reference = official.read_npz_state_dict(str(parity_dir / "weights.npz"))
    assert sorted(state) == sorted(reference)  # its TensorDictParams' `__batch_size`, `__device` left out
    for key, value in reference.items():
        np.testing.assert_array_equal(state[key], value, strict=True)


# ---------------------------------------------------------------------------------------------------
# code in a file never runs


class Payload:
    """Unpickles as a call of `call(*args)`: what a malicious checkpoint carries."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def payloads(marker) -> dict[str, Payload]:
    return {"posix.system": Payload(os.system, f"touch {marker}"),
            "builtins.eval": Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
            "subprocess.call": Payload(subprocess.call, ["touch", str(marker)])}


@pytest.mark.parametrize("name", ["posix.system", "builtins.eval", "subprocess.call"])
def test_a_checkpoint_with_a_code_payload_is_refused_and_the_code_never_runs(tmp_path, capsys, name):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    weights = torch.zeros(3)
    torch.save({"model": collections.OrderedDict(w=weights, hook=payloads(marker)[name])}, path)
    torch.load(path, weights_only=False)  # the payload is live: torch's full unpickling runs it
    assert marker.exists()
    marker.unlink()
    assert convert.command(str(path), str(tmp_path / "out")) == 2
    error = capsys.readouterr().err
    assert error == f"error: {path}: not a plain archive of tensors: it asks to run {name}, which is refused\n"
    with pytest.raises(ValueError, match=f"it asks to run {name}"):
        loading.read_weights(str(path))
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_bare_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(payloads(marker)["posix.system"]))
    with pytest.raises(ValueError, match="not a torch.save zip archive"):
        torch_archive.load(path)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------
# files that are no checkpoint


def test_files_that_are_no_checkpoint_are_one_line(tmp_path, capsys):
    (tmp_path / "text.pt").write_text("hello, not a checkpoint\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"model": torch.zeros(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(tmp_path / "other.pt", "w") as archive:
        archive.writestr("notes.txt", "a zip, but not a torch.save archive")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"model": {"w": torch.zeros(2, dtype=torch.float8_e4m3fn)}}, tmp_path / "float8.pt")
    expected = {"text.pt": "cannot read it: not a torch.save zip archive",
                "empty.pt": "cannot read it: not a torch.save zip archive",
                "legacy.pt": "a torch.save file in the format of torch < 1.6, which is not read",
                "other.pt": "not a torch.save zip archive (no single <name>/data.pkl entry)",
                "list.pt": "holds no state dict of tensors",
                "tensor.pt": "holds no state dict of tensors",
                "float8.pt": "tensors of torch.float8_e4m3fn have no NumPy dtype"}
    for name, message in expected.items():
        assert convert.command(str(tmp_path / name), str(tmp_path / "out")) == 2, name
        error = capsys.readouterr().err
        assert error.startswith(f"error: {tmp_path / name}: ") and message in error and error.count("\n") == 1, error


# ---------------------------------------------------------------------------------------------------
# views


DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: ml_dtypes.bfloat16, torch.int64: np.int64,
          torch.int32: np.int32, torch.bool: np.bool_, torch.uint8: np.uint8}


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_views_of_one_storage_read_back_with_their_offsets_and_strides(tmp_path, dtype):
    base = torch.arange(60).reshape(5, 12)
    base = (base % 3 == 0) if dtype == torch.bool else base.to(dtype)
    views = {"whole": base, "rows": base[2:], "transposed": base.t(), "window": base[1:4, 3:9],
             "every_third": base[:, ::3], "element": base[2, 5], "broadcast": base[0, :4][None].expand(3, 4)}
    torch.save({"views": views, "meta": [1, 2.5, "text", None, (3,)]}, tmp_path / "views.pt")
    back = torch_archive.load(tmp_path / "views.pt")
    assert back["meta"] == [1, 2.5, "text", None, (3,)]
    for name, view in views.items():
        array = back["views"][name]
        assert array.dtype == np.dtype(DTYPES[dtype]), name
        assert array.shape == tuple(view.shape) and not array.flags.writeable, name
        np.testing.assert_array_equal(np.asarray(array, np.float32), view.float().numpy(), err_msg=name)
    assert isinstance(back["views"]["rows"], np.memmap)  # contiguous views are mapped from the file
