"""The offline dataset reader: official chunks read without torch, and the windows drawn from them.

fixtures/offline_mt3 holds real dm_control episodes of three mt30 tasks in the official chunk format
(written by torch + tensordict 0.8.3); fixtures/offline_old_format holds one chunk of the same episodes
written by tensordict 0.2.1, the layout of the published 2023 data. Other chunks are written here by
`write_chunk`, a small inverse of the reader that emits the same pickle layout.
"""
from __future__ import annotations

import io
import json
import pathlib
import pickle
import shutil
import subprocess
import sys
import zipfile
from typing import Any, NamedTuple

import chex
import numpy as np
import pytest

from tdmpc2_jax.buffers.offline import DATASET_SPECS, DatasetSpec, OfflineDataset, read_chunk

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
MT3 = FIXTURES / "offline_mt3"
OLD = FIXTURES / "offline_old_format"
MT30 = DATASET_SPECS["mt30"]
MT3_SPEC = MT30._replace(name="mt3", num_tasks=3, num_files=2, buffer_size=6 * 501)
TASK_DIMS = {0: (24, 6), 1: (5, 1), 2: (8, 2)}  # walker-walk, cartpole-swingup, cup-catch: (obs, action)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(MT3 / "reference.npz") as data:
        return {k: data[k] for k in data.files}


# ---------------------------------------------------------------------------------------------------
# a writer of torch.save archives holding a TensorDict, in tensordict 0.8's pickle layout


class Global(NamedTuple):
    module: str
    name: str


class Call(NamedTuple):
    func: Any
    args: tuple


class PersistentId(NamedTuple):
    value: tuple


_STORAGES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
             np.dtype("int64"): "LongStorage", np.dtype("int32"): "IntStorage", np.dtype("bool"): "BoolStorage"}


def _emit(obj, out: bytearray) -> None:
    """Protocol-2 pickle opcodes of obj (globals, calls and persistent ids given as the tuples above)."""
    if isinstance(obj, Global):
        out += b"c" + f"{obj.module}\n{obj.name}\n".encode()
    elif isinstance(obj, Call):
        _emit(obj.func, out), _emit(obj.args, out)
        out += b"R"
    elif isinstance(obj, PersistentId):
        _emit(obj.value, out)
        out += b"Q"
    elif isinstance(obj, tuple):
        out += b"("
        for item in obj:
            _emit(item, out)
        out += b"t"
    elif isinstance(obj, dict):
        out += b"}("
        for key, value in obj.items():
            _emit(key, out), _emit(value, out)
        out += b"u"
    else:  # str, int, bool, None
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=2)
        pickler.fast = True  # no memo
        pickler.dump(obj)
        out += buffer.getvalue()[2:-1]  # without PROTO and STOP


def tensor(key: str, array: np.ndarray, storages: dict[str, bytes], transpose: bool = False) -> Call:
    """A `torch._utils._rebuild_tensor_v2` call over a new storage `key` holding array."""
    array = np.asarray(array)
    if transpose:  # store the transpose's bytes; the tensor is a strided view of them
        storages[key] = np.ascontiguousarray(array.T).tobytes()
        stride = tuple(int(np.prod(array.shape[:i], dtype=np.int64)) for i in range(array.ndim))
    else:
        storages[key] = np.ascontiguousarray(array).tobytes()
        stride = tuple(int(np.prod(array.shape[i + 1:], dtype=np.int64)) for i in range(array.ndim))
    storage = PersistentId(("storage", Global("torch", _STORAGES[array.dtype]), key, "cpu", array.size))
    return Call(Global("torch._utils", "_rebuild_tensor_v2"),
                (storage, 0, tuple(array.shape), stride, False, Call(Global("collections", "OrderedDict"), ())))


def tensordict(entries: dict[str, Any], batch: tuple[int, ...]) -> Call:
    state = {"_tensordict": entries, "_device": None, "_batch_size": Call(Global("torch", "Size"), (batch,)),
             "_td_dim_names": None}
    return Call(Global("tensordict._reductions", "_make_td"), (Global("tensordict._td", "TensorDict"), state))


def write_archive(path, root, storages: dict[str, bytes], compress: bool = False) -> None:
    """A torch.save zip archive whose data.pkl is `root`."""
    out = bytearray(b"\x80\x02")
    _emit(root, out)
    out += b"."
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("archive/data.pkl", bytes(out))
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")


def write_chunk(path, arrays: dict[str, np.ndarray], batch_dims: int = 2, **kwargs) -> None:
    storages: dict[str, bytes] = {}
    entries = {key: tensor(str(i), a, storages) for i, (key, a) in enumerate(arrays.items())}
    batch = next(iter(arrays.values())).shape[:batch_dims]
    write_archive(path, tensordict(entries, batch), storages, **kwargs)


def toy_episodes(first: int, count: int, length: int, obs_dim: int = 2, action_dim: int = 1,
                 num_tasks: int = 3) -> dict[str, np.ndarray]:
    """Episodes whose values name them: obs (episode, row, 0...), action row, reward row + 1000 * episode."""
    episode = np.arange(first, first + count)[:, None] * np.ones((1, length))
    row = np.ones((count, 1)) * np.arange(length)
    obs = np.zeros((count, length, obs_dim), np.float32)
    obs[..., 0], obs[..., 1] = episode, row
    action = np.zeros((count, length, action_dim), np.float32)
    action[..., 0] = row
    reward = (row + 1000 * episode).astype(np.float32)
    action[:, 0], reward[:, 0] = np.nan, np.nan
    task = (episode % num_tasks).astype(np.int64)
    return {"obs": obs, "action": action, "reward": reward, "task": task}


TOY = DatasetSpec("toy", num_tasks=3, episode_length=8, obs_dim=2, action_dim=1, num_files=3, buffer_size=8 * 8)


@pytest.fixture
def toy_dir(tmp_path) -> pathlib.Path:
    """Three chunks of 2, 5 and 1 episodes of 8 rows (episodes 0..7 in order)."""
    first = 0
    for c, count in enumerate((2, 5, 1)):
        write_chunk(tmp_path / f"chunk_{c}.pt", toy_episodes(first, count, TOY.episode_length))
        first += count
    return tmp_path


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------------
# read_chunk


def test_read_chunk_equals_the_reference_and_maps_the_file(reference):
    readme = json.loads((MT3 / "README.json").read_text())
    assert readme["task_order"] == ["walker-walk", "cartpole-swingup", "cup-catch"]
    first = 0
    for chunk in readme["chunks"]:
        arrays = read_chunk(MT3 / chunk["file"])
        assert sorted(arrays) == ["action", "obs", "reward", "task"]
        part = slice(first, first + chunk["episodes"])
        for key, value in arrays.items():
            assert isinstance(value, np.memmap), key
            assert value.dtype == reference[key].dtype and value.shape == reference[key][part].shape
            np.testing.assert_array_equal(value, reference[key][part], strict=True)  # NaN where NaN
        first += chunk["episodes"]
    assert first == len(reference["obs"]) == 6
    assert np.isnan(reference["action"][:, 0]).all() and np.isnan(reference["reward"][:, 0]).all()
    assert not np.isnan(reference["obs"]).any() and not np.isnan(reference["action"][:, 1:]).any()


def test_padding_is_zero_and_tasks_are_constant(reference):
    for e in range(len(reference["obs"])):
        task = int(reference["task"][e, 0])
        assert (reference["task"][e] == task).all()
        obs_dim, action_dim = TASK_DIMS[task]
        assert (reference["obs"][e, :, obs_dim:] == 0).all() and (reference["action"][e, 1:, action_dim:] == 0).all()
        assert (np.abs(reference["obs"][e, :, :obs_dim]).sum(0) > 0).all()  # every real dim moves
        assert (np.abs(reference["action"][e, 1:, :action_dim]) <= 1).all()
    assert sorted(reference["task"][:, 0].tolist()) == [0, 0, 1, 1, 2, 2]


def test_reads_the_old_tensordict_layout(reference):
    readme = json.loads((OLD / "README.json").read_text())
    assert readme["versions"]["tensordict"].startswith("0.2")
    arrays = read_chunk(OLD / "chunk_0.pt")
    count = readme["chunks"][0]["episodes"]
    assert sorted(arrays) == ["action", "obs", "reward", "task"]
    for key, value in arrays.items():
        assert isinstance(value, np.memmap)
        np.testing.assert_array_equal(value, reference[key][:count], strict=True)


def test_reading_and_sampling_never_import_torch():
    code = f"""
import sys
sys.modules["torch"] = None  # any import of torch now fails
sys.modules["tensordict"] = None
import numpy as np
from tdmpc2_jax.buffers.offline import OfflineDataset, read_chunk
read_chunk({str(OLD / 'chunk_0.pt')!r})
dataset = OfflineDataset({str(MT3)!r}, "mt30")
dataset.sample(np.random.default_rng(0), 4, 3)
print("ok", dataset.num_episodes)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ok", "6"]


def test_strided_and_compressed_tensors_read_back(tmp_path):
    arrays = toy_episodes(0, 3, 5)
    storages: dict[str, bytes] = {}
    entries = {"obs": tensor("0", arrays["obs"], storages, transpose=True),
               "reward": tensor("1", arrays["reward"], storages)}
    write_archive(tmp_path / "strided.pt", tensordict(entries, (3, 5)), storages)
    back = read_chunk(tmp_path / "strided.pt")
    np.testing.assert_array_equal(back["obs"], arrays["obs"], strict=True)
    np.testing.assert_array_equal(back["reward"], arrays["reward"], strict=True)
    write_chunk(tmp_path / "deflated.pt", arrays, compress=True)
    back = read_chunk(tmp_path / "deflated.pt")
    assert not isinstance(back["obs"], np.memmap)
    for key in arrays:
        np.testing.assert_array_equal(back[key], arrays[key], strict=True)


def test_unreadable_chunks_are_one_line_errors_naming_the_file(tmp_path):
    arrays = toy_episodes(0, 2, 4)
    storages: dict[str, bytes] = {}
    nested = tensordict({"state": tensor("0", arrays["obs"], storages)}, (2, 4))
    write_archive(tmp_path / "nested.pt", tensordict({"obs": nested}, (2, 4)), storages)
    write_archive(tmp_path / "plain.pt", {"obs": tensor("0", arrays["obs"], {})}, storages)
    write_archive(tmp_path / "foreign.pt", Call(Global("os", "system"), ("true",)), {})
    write_archive(tmp_path / "layout.pt", Call(Global("tensordict._reductions", "_rebuild_tensordict_files"),
                                               ({}, {})), {})
    write_archive(tmp_path / "lost.pt", tensordict({"obs": tensor("0", arrays["obs"], {})}, (2, 4)), {})
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps({"obs": 1}))
    (tmp_path / "cut.pt").write_bytes((MT3 / "chunk_0.pt").read_bytes()[:1000])
    expected = {"nested.pt": "key 'obs' is a nested TensorDict", "plain.pt": "holds a dict, not a TensorDict",
                "foreign.pt": "it asks to run os.system, which is refused",
                "layout.pt": "unsupported tensordict._reductions._rebuild_tensordict_files layout",
                "lost.pt": "storage data/0 is missing", "legacy.pt": "not a torch.save zip archive",
                "cut.pt": "not a torch.save zip archive"}
    for name, message in expected.items():
        with pytest.raises(ValueError) as excinfo:
            read_chunk(tmp_path / name)
        text = one_line_error(excinfo)
        assert text.startswith(str(tmp_path / name)) and message in text, text


# ---------------------------------------------------------------------------------------------------
# OfflineDataset


def test_dataset_sizes_and_memory():
    dataset = OfflineDataset(MT3, MT3_SPEC)
    assert dataset.warnings == []
    assert (dataset.num_episodes, dataset.num_transitions) == (6, 3006)
    assert dataset.bytes_per_transition == 24 * 4 + 6 * 4 + 4 + 8  # obs, action, reward, int64 task
    assert dataset.memory_bytes() == 132 * 3006 and dataset.memory_bytes(1_000_000) == 132_000_000
    np.testing.assert_array_equal(dataset.episode_task, [0, 1, 2, 0, 1, 2])


def test_official_warnings_are_returned():
    dataset = OfflineDataset(MT3, "mt30")
    assert dataset.warnings == [f"expected 4 files for the mt30 task set, found 2 in {MT3}",
                                "dataset has 6 episodes, expected 690000 episodes for the mt30 task set"]


def test_mt80_layout(tmp_path):
    write_chunk(tmp_path / "a.pt", toy_episodes(0, 2, 101, obs_dim=39, action_dim=6, num_tasks=80))
    dataset = OfflineDataset(tmp_path, "mt80")
    assert dataset.bytes_per_transition == 39 * 4 + 6 * 4 + 4 + 8
    assert dataset.memory_bytes(1_000_000) == 192_000_000
    assert dataset.warnings == [f"expected 20 files for the mt80 task set, found 1 in {tmp_path}",
                                "dataset has 2 episodes, expected 5450000 episodes for the mt80 task set"]


def test_windows_match_the_episodes_rows(reference):
    dataset = OfflineDataset(MT3, MT3_SPEC)
    horizon, batch_size = 5, 256
    batch = dataset.sample(np.random.default_rng(0), batch_size, horizon)
    chex.assert_shape(batch.obs, (horizon + 1, batch_size, 24))
    chex.assert_shape(batch.action, (horizon, batch_size, 6))
    chex.assert_shape([batch.reward, batch.terminated], (horizon, batch_size))
    chex.assert_shape(batch.task, (batch_size,))
    assert batch.obs.dtype == batch.action.dtype == batch.reward.dtype == np.float32 and batch.task.dtype == np.int32
    assert not batch.terminated.any()
    where = {reference["obs"][e, r].tobytes(): (e, r) for e in range(6) for r in range(501)}
    assert len(where) == 6 * 501  # every row's observation is distinct
    for b in range(batch_size):
        episode, start = where[batch.obs[0, b].tobytes()]
        rows = slice(start, start + horizon + 1)
        assert start + horizon <= 500
        np.testing.assert_array_equal(batch.obs[:, b], reference["obs"][episode, rows], strict=True)
        np.testing.assert_array_equal(batch.action[:, b], reference["action"][episode, start + 1: rows.stop])
        np.testing.assert_array_equal(batch.reward[:, b], reference["reward"][episode, start + 1: rows.stop])
        assert batch.task[b] == reference["task"][episode, start]
        obs_dim, action_dim = TASK_DIMS[int(batch.task[b])]
        assert (batch.obs[:, b, obs_dim:] == 0).all() and (batch.action[:, b, action_dim:] == 0).all()
    assert not np.isnan(batch.action).any() and not np.isnan(batch.reward).any()


def test_windows_stay_inside_one_episode_across_chunks(toy_dir):
    dataset = OfflineDataset(toy_dir, TOY)
    assert dataset.warnings == [] and dataset.num_episodes == 8
    batch = dataset.sample(np.random.default_rng(1), 2000, 3)
    episode, row = batch.obs[..., 0], batch.obs[..., 1]
    assert (episode == episode[0]).all() and (np.diff(row, axis=0) == 1).all()
    assert (batch.action[..., 0] == row[1:]).all() and (batch.reward == row[1:] + 1000 * episode[1:]).all()
    assert (batch.task == episode[0] % 3).all()
    assert set(episode[0].astype(int).tolist()) == set(range(8))


def test_sampling_is_uniform_over_every_start_and_deterministic(toy_dir):
    dataset = OfflineDataset(toy_dir, TOY)
    batch = dataset.sample(np.random.default_rng(2), 40_000, 3)  # 8 episodes x 5 starts
    counts = np.unique(batch.obs[0, :, 0] * 100 + batch.obs[0, :, 1], return_counts=True)[1]
    assert len(counts) == 40 and counts.min() > 850 and counts.max() < 1150
    again = dataset.sample(np.random.default_rng(2), 40_000, 3)
    for a, b in zip(batch, again):
        np.testing.assert_array_equal(a, b)
    other = dataset.sample(np.random.default_rng(3), 64, 3)
    assert not np.array_equal(other.obs, batch.obs[:, :64])
    last = dataset.sample(np.random.default_rng(4), 500, 7)  # only start 0 fits
    assert (last.obs[0, :, 1] == 0).all() and (last.obs[-1, :, 1] == 7).all()
    with pytest.raises(ValueError, match="horizon 8 does not fit episodes of 8 rows"):
        dataset.sample(np.random.default_rng(0), 4, 8)


def test_terminated_is_read_when_present(tmp_path):
    arrays = toy_episodes(0, 2, 8)
    arrays["terminated"] = np.zeros((2, 8), np.float32)
    arrays["terminated"][:, 0], arrays["terminated"][1, 7] = np.nan, 1.0
    write_chunk(tmp_path / "a.pt", arrays)
    batch = OfflineDataset(tmp_path, TOY).sample(np.random.default_rng(0), 500, 7)
    np.testing.assert_array_equal(batch.terminated[-1], batch.obs[0, :, 0] == 1)
    assert batch.terminated[:-1].sum() == 0


def test_max_episodes_loads_only_the_first_part(toy_dir):
    dataset = OfflineDataset(toy_dir, TOY, max_episodes=3)
    assert dataset.num_episodes == 3 and len(dataset.chunks) == 2 and dataset.num_transitions == 24
    episodes = dataset.sample(np.random.default_rng(5), 1000, 2).obs[0, :, 0]
    assert set(episodes.astype(int).tolist()) == {0, 1, 2}
    assert "dataset has 3 episodes, expected 8 episodes for the toy task set" in dataset.warnings
    with pytest.raises(ValueError, match="max_episodes must be positive"):
        OfflineDataset(toy_dir, TOY, max_episodes=0)


def test_bad_directories(tmp_path):
    with pytest.raises(ValueError) as excinfo:
        OfflineDataset(tmp_path / "absent")
    assert "absent does not exist" in one_line_error(excinfo)
    (tmp_path / "notes.txt").write_text("no chunks")
    with pytest.raises(ValueError) as excinfo:
        OfflineDataset(tmp_path)
    assert f"no dataset chunks match {tmp_path / '*.pt'}" in one_line_error(excinfo)
    with pytest.raises(ValueError, match="unknown dataset 'mt31'"):
        OfflineDataset(MT3, "mt31")


@pytest.mark.parametrize("spec, message", [
    (DATASET_SPECS["mt80"], "chunk_0.pt: episodes of 501 rows, expected 101 for mt80 (mt30 uses 501, mt80 101)"),
    (MT30._replace(num_tasks=2), "chunk_0.pt: task id 2 is outside [0, 2) of the mt30 task set (2 tasks)"),
    (MT30._replace(obs_dim=39), "chunk_0.pt: obs has shape (3, 501, 24), expected (3, 501, 39)"),
    (MT30._replace(action_dim=4), "chunk_0.pt: action has shape (3, 501, 6), expected (3, 501, 4)"),
])
def test_chunks_that_do_not_fit_the_set(spec, message):
    with pytest.raises(ValueError) as excinfo:
        OfflineDataset(MT3, spec)
    assert message in one_line_error(excinfo)


def test_bad_chunk_contents(tmp_path):
    cases = {
        "missing": ({k: v for k, v in toy_episodes(0, 2, 8).items() if k != "task"}, 2,
                    "missing key(s) task (has action, obs, reward)"),
        "negative": (dict(toy_episodes(0, 2, 8), task=np.full((2, 8), -1, np.int64)), 2,
                     "task id -1 is outside [0, 3) of the toy task set (3 tasks)"),
        "float_task": (dict(toy_episodes(0, 2, 8), task=np.zeros((2, 8), np.float32)), 2,
                       "task has dtype float32, expected an integer type"),
        "flat": ({k: v.reshape(16, *v.shape[2:]) for k, v in toy_episodes(0, 2, 8).items()}, 1,
                 "reward has shape (16,); expected [episodes, rows]"),
        "ragged": (dict(toy_episodes(0, 2, 8), reward=np.zeros((2, 8, 1), np.float32)), 2,
                   "reward has shape (2, 8, 1); expected [episodes, rows]"),
    }
    for name, (arrays, batch_dims, message) in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        write_chunk(directory / "chunk.pt", arrays, batch_dims=batch_dims)
        with pytest.raises(ValueError) as excinfo:
            OfflineDataset(directory, TOY)
        assert message in one_line_error(excinfo), name
    # a later chunk is checked too, and named
    shutil.copy(MT3 / "chunk_0.pt", tmp_path / "a.pt")
    write_chunk(tmp_path / "b.pt", toy_episodes(0, 1, 501, obs_dim=24, action_dim=6))
    write_chunk(tmp_path / "c.pt", toy_episodes(0, 1, 101, obs_dim=24, action_dim=6))
    with pytest.raises(ValueError) as excinfo:
        OfflineDataset(tmp_path, "mt30")
    assert one_line_error(excinfo).startswith(f"{tmp_path / 'c.pt'}: episodes of 101 rows, expected 501")


def test_the_reader_refuses_to_run_code(tmp_path):
    marker = tmp_path / "ran"
    write_archive(tmp_path / "evil.pt", Call(Global("os", "system"), (f"touch {marker}",)), {})
    with pytest.raises(ValueError, match="it asks to run os.system, which is refused"):
        read_chunk(tmp_path / "evil.pt")
    assert not marker.exists()
