"""Speed and memory of multitask TD-MPC2 on the default device: offline training, planning, the dataset.

    python -m benchmarks.multitask [--sizes=1,5,19,48] [--update_sizes=1,5] [--repeats=10] [--out=results.json]
    python -m benchmarks.multitask --quick        # a tiny model and two repeats: a smoke run

Every agent has the mt30 layout: 30 tasks in embedding order, observations padded to 24, actions to 6
(each task masked to its own action dims), a discount per task from its 500-step episodes, and the
official task-embedding width (`task_dim_of`; the mt30 19M model has latent_dim 512 as in the
official parse_cfg).

- update: offline training as `loops/offline.py` runs it, a batch drawn by an `OfflineDataset` from a
  synthetic dataset in the official chunk format (episodes of 501 rows, task ids spread over the 30
  tasks, written to a temporary directory) and moved to the device, then the jitted update. Sample
  time (draw + transfer) and update time are timed apart, each call waited for; end to end is blocks
  of `--block` loop steps with only the last one waited for, as the loop overlaps the next draw with
  the update in flight.
- plan: one observation planned by MPPI in eval mode with the official settings (horizon 3, 6
  iterations of 512 samples, 64 elites, 24 policy trajectories), for a few task indices; the median
  over all calls and the range of the per-task medians.
- memory: bytes of one transition as the chunks store it (obs, action, reward, task) for the mt30
  and mt80 layouts, per million transitions and for the whole published dataset loaded in memory.

Prints compile time (first call) apart from warm calls (medians over `--repeats`).
"""
from __future__ import annotations

import os
import platform
import struct
import tempfile
import time
import zipfile
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks._flags import define_int_list
from benchmarks._timing import first_call, spread, warm_times, write_results
from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.buffers.offline import DATASET_SPECS, DatasetSpec, OfflineDataset
from tdmpc2_jax.cli import fail, parse_flags, setup_process
from tdmpc2_jax.config import MODEL_SIZES, Config
from tdmpc2_jax.envs.task_sets import TASK_SETS, TaskSet, episode_length_of, task_dim_of
from tdmpc2_jax.planner import init_plan_state, make_planner
from tdmpc2_jax.run_config import base_config
from tdmpc2_jax.run_record import resolve

SET = "mt30"
# (obs dim, action dim) of each mt30 task in embedding order, as the DMC environments (envs/dmc.py) report them
MT30_DIMS = {
    "walker-stand": (24, 6), "walker-walk": (24, 6), "walker-run": (24, 6), "cheetah-run": (17, 6),
    "reacher-easy": (6, 2), "reacher-hard": (6, 2), "acrobot-swingup": (6, 1), "pendulum-swingup": (3, 1),
    "cartpole-balance": (5, 1), "cartpole-balance-sparse": (5, 1), "cartpole-swingup": (5, 1),
    "cartpole-swingup-sparse": (5, 1), "cup-catch": (8, 2), "finger-spin": (9, 2), "finger-turn-easy": (12, 2),
    "finger-turn-hard": (12, 2), "fish-swim": (24, 5), "hopper-stand": (15, 4), "hopper-hop": (15, 4),
    "walker-walk-backwards": (24, 6), "walker-run-backwards": (24, 6), "cheetah-run-backwards": (17, 6),
    "cheetah-run-front": (17, 6), "cheetah-run-back": (17, 6), "cheetah-jump": (17, 6),
    "hopper-hop-backwards": (15, 4), "reacher-three-easy": (8, 3), "reacher-three-hard": (8, 3),
    "cup-spin": (8, 2), "pendulum-spin": (3, 1),
}
# the --quick architecture: every layer 16 wide, two Q heads
TINY = dict(enc_dim=16, mlp_dim=16, latent_dim=16, num_enc_layers=2, num_q=2)
# task indices planned by default: walker-stand, reacher-easy, cartpole-balance, fish-swim, hopper-hop, pendulum-spin
PLAN_TASKS = (0, 4, 8, 16, 18, 29)
SHARED_NOTE = ("figures from a shared machine (other jobs ran alongside on the same cores): medians, "
               "noisy; compare within one run")
FLAGS = flags.FLAGS


# ---------------------------------------------------------------------------------------------------
# the agent


def agent_config(size: int | str, batch_size: int, horizon: int) -> Config:
    """The mt30 agent of one model size ("tiny": the --quick architecture), as the offline loop builds it."""
    config = base_config(SET)
    if size == "tiny":
        config.update(TINY)
        config.model_size = 1
    else:
        config.model_size = size
        if size == 19:
            config.latent_dim = 512  # the official mt30 19M checkpoint's width (official parse_cfg)
    config.batch_size, config.horizon = batch_size, horizon
    tasks = TASK_SETS[SET]
    return resolve(config).multitask_agent_config(
        TaskSet(SET, tasks), DATASET_SPECS[SET].obs_dim, tuple(MT30_DIMS[t][1] for t in tasks),
        tuple(episode_length_of(t) for t in tasks), task_dim_of(SET, None if size == "tiny" else size))


def parameter_count(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


# ---------------------------------------------------------------------------------------------------
# a synthetic dataset in the official chunk format


class _Global(NamedTuple):
    """A module-level name (pickle's GLOBAL)."""

    module: str
    name: str


class _Call(NamedTuple):
    """func(*args) (pickle's REDUCE)."""

    func: Any
    args: tuple


class _Persistent(NamedTuple):
    """A reference to data outside the pickle (pickle's BINPERSID): torch's storages."""

    pid: tuple


def _pickle(obj: Any) -> bytes:
    """Protocol-2 pickle opcodes of obj: the three kinds above, tuples, dicts, str, bool, int, None."""
    if isinstance(obj, _Global):
        return b"c" + f"{obj.module}\n{obj.name}\n".encode()
    if isinstance(obj, _Call):
        return _pickle(obj.func) + _pickle(obj.args) + b"R"
    if isinstance(obj, _Persistent):
        return _pickle(obj.pid) + b"Q"
    if isinstance(obj, tuple):
        return b"(" + b"".join(_pickle(x) for x in obj) + b"t"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_pickle(k) + _pickle(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, str):
        data = obj.encode()
        return b"X" + struct.pack("<I", len(data)) + data
    if obj is None:
        return b"N"
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return b"J" + struct.pack("<i", obj)
    raise TypeError(f"cannot pickle {type(obj).__name__}")


_STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


def write_chunk(path: str, arrays: dict[str, np.ndarray]) -> None:
    """A torch.save archive of one TensorDict of batch [episodes, rows] holding `arrays` (C order)."""
    batch = next(iter(arrays.values())).shape[:2]
    entries, storages = {}, {}
    for i, (key, array) in enumerate(arrays.items()):
        array = np.ascontiguousarray(array)
        storages[str(i)] = array.tobytes()
        stride = tuple(int(np.prod(array.shape[d + 1:], dtype=np.int64)) for d in range(array.ndim))
        storage = _Persistent(("storage", _Global("torch", _STORAGE_NAMES[array.dtype]), str(i), "cpu", array.size))
        hooks = _Call(_Global("collections", "OrderedDict"), ())
        entries[key] = _Call(_Global("torch._utils", "_rebuild_tensor_v2"),
                             (storage, 0, tuple(array.shape), stride, False, hooks))
    state = {"_tensordict": entries, "_device": None, "_batch_size": _Call(_Global("torch", "Size"), (batch,)),
             "_td_dim_names": None}
    root = _Call(_Global("tensordict._reductions", "_make_td"), (_Global("tensordict._td", "TensorDict"), state))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02" + _pickle(root) + b".")
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")


def synthetic_episodes(spec: DatasetSpec, dims: list[tuple[int, int]], first: int, count: int,
                       rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`count` episodes of the official layout: episode e of task e % tasks, random observations and
    actions in each task's own dims (zeros beyond), row 0's action and reward NaN."""
    rows = spec.episode_length
    task = (np.arange(first, first + count) % len(dims)).astype(np.int64)
    obs = np.zeros((count, rows, spec.obs_dim), np.float32)
    action = np.zeros((count, rows, spec.action_dim), np.float32)
    for e, t in enumerate(task):
        obs_dim, action_dim = dims[t]
        obs[e, :, :obs_dim] = rng.standard_normal((rows, obs_dim), np.float32)
        action[e, :, :action_dim] = rng.uniform(-1, 1, (rows, action_dim)).astype(np.float32)
    reward = rng.uniform(0, 1, (count, rows)).astype(np.float32)
    action[:, 0], reward[:, 0] = np.nan, np.nan
    return {"obs": obs, "action": action, "reward": reward, "task": np.repeat(task[:, None], rows, axis=1)}


def write_dataset(directory: str, spec: DatasetSpec, dims: list[tuple[int, int]], episodes: int, chunks: int,
                  seed: int = 0) -> None:
    """`episodes` synthetic episodes of `spec`'s layout in `chunks` files chunk_<i>.pt."""
    rng = np.random.default_rng(seed)
    bounds = np.linspace(0, episodes, chunks + 1).astype(int)
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        write_chunk(os.path.join(directory, f"chunk_{c}.pt"), synthetic_episodes(spec, dims, lo, hi - lo, rng))


# ---------------------------------------------------------------------------------------------------
# the three measurements


def measure_update(size: int | str, dataset: OfflineDataset, settings: Settings) -> dict[str, Any]:
    """Compile time, sample time, update time and end-to-end loop time of offline training at one size."""
    cfg = agent_config(size, settings.batch_size, settings.horizon)
    agent = Agent(cfg)
    update = xla.jit(agent.update, donate_argnums=0)
    key, init_key = jax.random.split(jax.random.key(settings.seed))
    holder = {"state": agent.init(init_key), "key": key}
    rng = np.random.default_rng(settings.seed)

    def draw():
        return jax.tree.map(jnp.asarray, dataset.sample(rng, cfg.batch_size, cfg.horizon))

    def step(batch):
        holder["key"], k_update = jax.random.split(holder["key"])
        holder["state"], metrics = update(holder["state"], batch, k_update)
        return metrics["total_loss"]

    compile_s = first_call(lambda: step(draw()))
    sample = spread(warm_times(draw, settings.repeats))
    batch = jax.block_until_ready(draw())
    one_update = spread(warm_times(lambda: step(batch), settings.repeats))

    def loop_block():  # the offline loop's body (draw, key split, update), `block` times, waited for once
        loss = None
        for _ in range(settings.block):
            loss = step(draw())
        return loss

    end_to_end = spread([t / settings.block for t in warm_times(loop_block, settings.repeats)])
    return dict(size=size, params=parameter_count(holder["state"].params), latent_dim=cfg.latent_dim,
                task_dim=cfg.task_dim, batch_size=cfg.batch_size, horizon=cfg.horizon, first_call_s=compile_s,
                sample=sample, update=one_update, end_to_end=end_to_end,
                updates_per_s=end_to_end["calls_per_s"])


def measure_plan(size: int | str, settings: Settings) -> dict[str, Any]:
    """Compile time and warm plan times (eval mode, one observation) of one size, per task index."""
    cfg = agent_config(size, settings.batch_size, settings.horizon)
    agent = Agent(cfg)
    params = jax.jit(agent.model.init)(jax.random.key(settings.seed))
    planner = make_planner(agent.model, eval_mode=True)
    state = init_plan_state(cfg.horizon, cfg.action_dim)
    keys = iter(jax.random.split(jax.random.key(settings.seed + 1), 100_000))
    t0 = jnp.array(False)
    obs_rng = np.random.default_rng(settings.seed)
    per_task, all_times, compile_s = {}, [], None
    for index in settings.plan_tasks:
        name = TASK_SETS[SET][index]
        obs = np.zeros(cfg.obs_dim, np.float32)
        obs[: MT30_DIMS[name][0]] = obs_rng.standard_normal(MT30_DIMS[name][0])
        obs, task = jnp.asarray(obs), jnp.asarray(index, jnp.int32)
        run = lambda: planner(params, obs, state, next(keys), t0, task)[0].action  # noqa: E731
        if compile_s is None:
            compile_s = first_call(run)  # the task index is an argument: one program for every task
        times = warm_times(run, settings.repeats)
        per_task[name] = dict(index=index, action_dim=cfg.action_dims[index], **spread(times))
        all_times += times
    medians = [v["median_s"] for v in per_task.values()]
    return dict(size=size, params=parameter_count(params), latent_dim=cfg.latent_dim, task_dim=cfg.task_dim,
                horizon=cfg.horizon, iterations=cfg.iterations, num_samples=cfg.num_samples,
                num_elites=cfg.num_elites, num_pi_trajs=cfg.num_pi_trajs, first_call_s=compile_s,
                **spread(all_times), task_median_min_s=min(medians), task_median_max_s=max(medians),
                per_task=per_task)


def measure_memory(directory: str) -> list[dict[str, Any]]:
    """Bytes per transition of each official layout, read back by OfflineDataset from a small chunk."""
    rows = []
    for name, spec in DATASET_SPECS.items():
        layout_dir = os.path.join(directory, f"layout_{name}")
        os.makedirs(layout_dir)
        dims = [(spec.obs_dim, spec.action_dim)] * spec.num_tasks
        write_dataset(layout_dir, spec, dims, episodes=2, chunks=1)
        dataset = OfflineDataset(layout_dir, spec)
        per_transition = dataset.bytes_per_transition
        rows.append(dict(set=name, tasks=spec.num_tasks, obs_dim=spec.obs_dim, action_dim=spec.action_dim,
                         rows_per_episode=spec.episode_length, bytes_per_transition=per_transition,
                         bytes_per_million=dataset.memory_bytes(1_000_000), published_transitions=spec.buffer_size,
                         published_bytes=dataset.memory_bytes(spec.buffer_size)))
    return rows


# ---------------------------------------------------------------------------------------------------
# the machine and the table


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return dict(cpu=model, cores=os.cpu_count(), usable_cores=len(os.sched_getaffinity(0)),
                device=jax.devices()[0].device_kind, backend=jax.default_backend(), jax=jax.__version__,
                load_average_start=list(os.getloadavg()))


def label(size: int | str) -> str:
    return "tiny" if size == "tiny" else f"{size}M"


def table(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    ms = lambda x: f"{x * 1e3:.1f}"  # noqa: E731
    device = m["backend"] if m["device"].lower() == m["backend"] else f"{m['backend']} ({m['device']})"
    lines = [f"multitask TD-MPC2, {SET} layout ({s['tasks']} tasks, obs {s['obs_dim']}, action {s['action_dim']}); "
             f"{device}: {m['cpu']}, {m['cores']} cores; load average "
             f"{m['load_average_start'][0]:.2f} at start, {m['load_average_end'][0]:.2f} at end",
             SHARED_NOTE, ""]
    if results["update"]:
        d = s["dataset"]
        lines += [f"offline update (batch {s['batch_size']}, horizon {s['horizon']}): dataset of {d['episodes']} "
                  f"episodes x {d['rows']} rows in {d['chunks']} chunks ({d['transitions']:,} transitions, "
                  f"{d['memory_bytes'] / 2**20:.1f} MiB); medians of {s['repeats']}, end to end in blocks of "
                  f"{s['block']}",
                  f"{'':<13}{'size':>5} {'params':>10} {'task_dim':>8} {'compile s':>9} {'sample ms':>9} "
                  f"{'update ms':>9} {'loop ms':>9} {'updates/s':>9}"]
        for r in results["update"]:
            lines.append(f"{'update':<13}{label(r['size']):>5} {r['params']:>10,} {r['task_dim']:>8} "
                         f"{r['first_call_s']:>9.1f} {ms(r['sample']['median_s']):>9} "
                         f"{ms(r['update']['median_s']):>9} {ms(r['end_to_end']['median_s']):>9} "
                         f"{r['updates_per_s']:>9.2f}")
        lines.append("")
    if results["plan"]:
        p = results["plan"][0]
        tasks = ", ".join(f"{i} {TASK_SETS[SET][i]}" for i in s["plan_tasks"])
        lines += [f"planning (eval-mode MPPI, one observation: horizon {p['horizon']}, {p['iterations']} x "
                  f"{p['num_samples']} samples, {p['num_elites']} elites, {p['num_pi_trajs']} policy trajectories); "
                  f"tasks {tasks}; {s['repeats']} calls per task",
                  f"{'':<13}{'size':>5} {'params':>10} {'latent':>8} {'compile s':>9} {'median ms':>9} "
                  f"{'task min':>9} {'task max':>9} {'plans/s':>9}"]
        for r in results["plan"]:
            lines.append(f"{'plan':<13}{label(r['size']):>5} {r['params']:>10,} {r['latent_dim']:>8} "
                         f"{r['first_call_s']:>9.1f} {ms(r['median_s']):>9} {ms(r['task_median_min_s']):>9} "
                         f"{ms(r['task_median_max_s']):>9} {r['calls_per_s']:>9.2f}")
        lines.append("")
    lines += ["dataset memory (whole dataset in memory, the chunks' dtypes: obs, action, reward float32, task int64)",
              f"{'':<13}{'set':>5} {'obs':>4} {'act':>4} {'bytes/row':>9} {'MiB per 1M':>10} "
              f"{'published rows':>15} {'full load GiB':>13}"]
    for r in results["memory"]:
        lines.append(f"{'memory':<13}{r['set']:>5} {r['obs_dim']:>4} {r['action_dim']:>4} "
                     f"{r['bytes_per_transition']:>9} {r['bytes_per_million'] / 2**20:>10.1f} "
                     f"{r['published_transitions']:>15,} {r['published_bytes'] / 2**30:>13.1f}")
    return "\n".join(lines)


class Settings(NamedTuple):
    """What one run measures: the flags, with --quick applied."""

    sizes: list
    update_sizes: list
    repeats: int
    block: int
    batch_size: int
    horizon: int
    episodes: int
    chunks: int
    plan_tasks: list[int]
    seed: int
    quick: bool


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_int_list("sizes", [1, 5, 19, 48], "model sizes planned with")
    define_int_list("update_sizes", [1, 5], "model sizes trained offline (empty: skip)")
    flags.DEFINE_integer("repeats", 10, "warm calls per figure (per task for plans)")
    flags.DEFINE_integer("block", 5, "loop steps per end-to-end timing")
    flags.DEFINE_integer("batch_size", 256, "update batch size")
    flags.DEFINE_integer("horizon", 3, "planning and update horizon")
    flags.DEFINE_integer("episodes", 200, "episodes of the synthetic mt30 dataset")
    flags.DEFINE_integer("chunks", 4, "files the synthetic dataset is written in")
    define_int_list("plan_tasks", list(PLAN_TASKS), "task indices planned")
    flags.DEFINE_integer("seed", 0, "seed of the models, the dataset and the draws")
    flags.DEFINE_bool("quick", False, "a tiny model, 2 repeats, 30 episodes, 2 tasks")
    flags.DEFINE_string("out", None, "write every figure to this JSON file")


def settings_of_flags() -> Settings:
    """The run's settings, or one line and exit 2 for sizes or task indices that do not exist."""
    bad_sizes = [size for size in FLAGS.sizes + FLAGS.update_sizes if size not in MODEL_SIZES]
    bad_tasks = [i for i in FLAGS.plan_tasks if not 0 <= i < len(TASK_SETS[SET])]
    if bad_sizes:
        fail(f"model sizes {bad_sizes} are not presets {sorted(MODEL_SIZES)}")
    if bad_tasks:
        fail(f"task indices {bad_tasks} are outside [0, {len(TASK_SETS[SET])})")
    values = {name: FLAGS[name].value for name in Settings._fields}
    if FLAGS.quick:
        values.update(sizes=["tiny"], update_sizes=["tiny"], repeats=2, block=2, episodes=30, chunks=2,
                      plan_tasks=FLAGS.plan_tasks[:2])
    return Settings(**values)


def measure(settings: Settings) -> dict[str, Any]:
    """Every figure of one run: machine, settings, update, plan and memory rows, wall time."""
    start = time.perf_counter()
    spec = DATASET_SPECS[SET]
    results: dict[str, Any] = dict(machine=machine(), note=SHARED_NOTE, update=[], plan=[], memory=[])
    with tempfile.TemporaryDirectory(prefix="multitask_benchmark_") as directory:
        data_dir = os.path.join(directory, SET)
        os.makedirs(data_dir)
        write_dataset(data_dir, spec, [MT30_DIMS[t] for t in TASK_SETS[SET]], settings.episodes, settings.chunks,
                      settings.seed)
        dataset = OfflineDataset(data_dir, SET)
        results["settings"] = dict(
            set=SET, tasks=spec.num_tasks, obs_dim=spec.obs_dim, action_dim=spec.action_dim,
            batch_size=settings.batch_size, horizon=settings.horizon, repeats=settings.repeats, block=settings.block,
            plan_tasks=settings.plan_tasks, quick=settings.quick,
            dataset=dict(episodes=dataset.num_episodes, rows=spec.episode_length, chunks=len(dataset.chunks),
                         transitions=dataset.num_transitions, memory_bytes=dataset.memory_bytes()))
        for size in settings.update_sizes:
            results["update"].append(measure_update(size, dataset, settings))
            print(f"update {label(size)}: {results['update'][-1]['updates_per_s']:.2f} updates/s", flush=True)
        for size in settings.sizes:
            results["plan"].append(measure_plan(size, settings))
            print(f"plan {label(size)}: {results['plan'][-1]['median_s'] * 1e3:.1f} ms", flush=True)
        results["memory"] = measure_memory(directory)
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["wall_s"] = time.perf_counter() - start
    return results


def main(argv: list[str]) -> None:
    del argv
    settings = settings_of_flags()
    setup_process()  # as the command lines do: freed memory kept (malloc.py), logging at WARNING
    results = measure(settings)
    print()
    print(table(results))
    print(f"\n{results['wall_s']:.0f} s in all")
    write_results(results, FLAGS.out)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
