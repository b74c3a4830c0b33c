"""Policy transfer between host dm_control and the MJX DM Control tasks: committed agents acting
closed loop (the planner in eval mode) on each variant of their task.

    python -m experiments.mjx_transfer [--agents=walker-walk-1M,...] [--variants=host,playground,...]
        [--episodes=5] [--out=DIR]

Variants (the environment an agent acts in):
  host                      dm_control on host MuJoCo (`envs/dmc.py`)
  playground                MuJoCo Playground's port on MJX (`envs/mjx.py`)
  exact                     dm_control's own model and task on MJX (`envs/mjx_dmc.py`, the `-exact` tasks)
  playground-height         walker: Playground's port with observation entry 14 (its torso's upright
                            component) replaced by the torso's height, dm_control's `height`
  playground-height-solver  walker: that, with dm_control's solver options in Playground's model
                            (iterations, line-search iterations, the Euler damping flag)

The first two splits of the walker's host -> Playground gap are thus the observation (playground
-> playground-height) and the solver (-> playground-height-solver); what remains is the rest of
Playground's port (its start distribution, the observation read before the last physics step's
positions), and `exact` shows what MJX itself costs on dm_control's own model.

Evaluation follows `python -m tdmpc2_jax.evaluate` (`evaluation.evaluate_task`) with the seed
`EVAL_SEED`: a host variant's episodes run one after another in a dm_control task seeded
`eval_seed(EVAL_SEED)`, an MJX variant's all at once from key `eval_seed(EVAL_SEED)`, so the host,
playground and exact rows are what that command prints for the same seed and episode count. The
planner is the official one (512 samples x 6 iterations, the run config's default), the one the
committed agents' README evaluates with. On walker the torso's height is kept at every step: an
episode fell at the first step, after the torso first stood (`STOOD_STEPS` steps in a row at
dm_control's stand height, 1.2 m), at which it is below half of it (`fall_step`).

Writes episodes.csv (one row per episode) after each variant, summary.csv (per agent and variant:
mean, std and a bootstrap 95% interval of the mean return, and the falls) and README.md (the
command, the machine, the table) under --out; run again with the same flags, it skips the variants
episodes.csv already holds.
"""
from __future__ import annotations

import csv
import datetime
import pathlib
import sys
import time
from typing import Any, Callable, NamedTuple

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "mjx_transfer"
EVAL_SEED = 0  # the evaluation seed of every variant (evaluate's --seed)
EPISODES = 5
BOOTSTRAP = dict(n_resamples=10_000, confidence_level=0.95, seed=0)  # scipy.stats.bootstrap, percentile method
STAND_HEIGHT = 1.2  # dm_control walker.py _STAND_HEIGHT
STOOD_STEPS = 25  # agent steps in a row at the stand height that count as standing (1.25 s)
HEIGHT_ENTRY = 14  # the walker observation's entry for dm_control's height (Playground: the torso's zz)
SOLVER_OPTIONS = ("solver", "iterations", "ls_iterations", "tolerance", "ls_tolerance", "disableflags")
HOST = "host"
VARIANTS = (HOST, "playground", "exact", "playground-height", "playground-height-solver")
EPISODE_COLUMNS = ("agent", "task", "trained_on", "evaluated_on", "variant", "seed", "episode", "return", "length",
                   "fall_step")
SUMMARY_COLUMNS = ("agent", "task", "trained_on", "evaluated_on", "variant", "episodes", "mean", "std", "ci_low",
                   "ci_high", "falls")


class Agent(NamedTuple):
    name: str
    task: str  # dash task name
    trained_on: str  # "host" or "mjx"
    path: str  # params-only checkpoint, relative to the repository root
    variants: tuple[str, ...]  # in the order they run


AGENTS = (
    Agent("walker-walk-1M", "walker-walk", "host", "experiments/results/agents/walker-walk-1M/model",
          ("playground", "playground-height", "host", "exact", "playground-height-solver")),
    Agent("cheetah-run-1M", "cheetah-run", "host", "experiments/results/agents/cheetah-run-1M/model",
          ("playground", "host", "exact")),
    Agent("cartpole-swingup-mjx", "cartpole-swingup", "mjx",
          "experiments/results/agents/cartpole-swingup-mjx/model", ("host", "playground", "exact")),
)


class Episodes(NamedTuple):
    returns: np.ndarray  # [E]
    lengths: np.ndarray  # [E]
    heights: np.ndarray | None  # [E, T] the walker torso's height at the start of every step (None: not walker)


# ------------------------------------------------------------------------------------ the walker's height


def torso_height(model, torso: int, data) -> Any:
    """dm_control's walker `height` (the torso body's world z) of one MJX state: [] float.

    dm_control reads `xpos` after `mj_step1` has recomputed the kinematics of the new positions;
    an MJX state after `mjx.step` holds the kinematics of the positions before the step, so they are
    recomputed here."""
    from mujoco import mjx

    return mjx.kinematics(model, data).xpos[torso, 2]


class HeightObservation:
    """Playground's walker with observation entry HEIGHT_ENTRY replaced by `torso_height`; the rest
    of Playground's environment interface (reset, step, sizes, models) passes through."""

    def __init__(self, playground_env: Any):
        self.inner = playground_env
        self.torso = playground_env.mj_model.body("torso").id

    observation_size = property(lambda self: self.inner.observation_size)
    action_size = property(lambda self: self.inner.action_size)
    mj_model = property(lambda self: self.inner.mj_model)
    mjx_model = property(lambda self: self.inner.mjx_model)

    def _with_height(self, state):
        import jax.numpy as jnp

        obs = jnp.asarray(state.obs)
        height = torso_height(self.mjx_model, self.torso, state.data)
        return state.replace(obs=obs.at[HEIGHT_ENTRY].set(height.astype(obs.dtype)))

    def reset(self, key):
        return self._with_height(self.inner.reset(key))

    def step(self, state, ctrl):
        return self._with_height(self.inner.step(state, ctrl))


def use_dm_control_solver(playground_env: Any, domain: str) -> list[str]:
    """Sets SOLVER_OPTIONS of dm_control's `domain` model in a Playground environment's model (and
    the MJX model made from it); returns the options changed, as 'name: old -> new'."""
    from mujoco import mjx

    from tdmpc2_jax.envs.mjx_dmc import load_model

    reference, _ = load_model(domain)
    model, changed = playground_env.mj_model, []
    for name in SOLVER_OPTIONS:
        old, new = getattr(model.opt, name), getattr(reference.opt, name)
        if old != new:
            changed.append(f"{name}: {old} -> {new}")
            setattr(model.opt, name, new)
    playground_env._mjx_model = mjx.put_model(model, impl="jax")  # where Playground keeps it (envs/mjx.py)
    return changed


def fall_step(heights: np.ndarray) -> int | None:
    """The first step at which the torso is below half the stand height after it first stood
    (STOOD_STEPS steps in a row at or above the stand height: an episode starts with the torso at
    its resting height above the ground before it drops); None where the walker never stood or never
    fell after. heights: [T]."""
    up = np.concatenate([[0], np.cumsum(heights >= STAND_HEIGHT)])
    stood = np.flatnonzero(up[STOOD_STEPS:] - up[:-STOOD_STEPS] == STOOD_STEPS)
    if not stood.size:
        return None
    start = stood[0] + STOOD_STEPS
    below = np.flatnonzero(heights[start:] < STAND_HEIGHT / 2)
    return int(start + below[0]) if below.size else None


# ------------------------------------------------------------------------------------ evaluation


def mjx_env(task: str, variant: str):
    """The MJXEnv of an MJX variant of a dash task."""
    from tdmpc2_jax.envs.mjx import MJXEnv

    if variant == "exact":
        return MJXEnv(f"{task}-exact")
    base = MJXEnv(task)
    if variant == "playground":
        return base
    if not task.startswith("walker-"):
        raise ValueError(f"variant {variant} replaces the walker's height entry: {task} has none")
    inner = base.playground_env
    if variant == "playground-height-solver":
        print(f"  {task}: {', '.join(use_dm_control_solver(inner, 'walker')) or 'solver options already equal'}")
    return MJXEnv(task, playground_env=HeightObservation(inner))


def evaluate_host(agent: Agent, episodes: int, seed: int) -> Episodes:
    """`episodes` host episodes of `agent` with the planner in eval mode (evaluation.evaluate_task's
    seeds), keeping the walker's height observation."""
    import jax

    from tdmpc2_jax import acting
    from tdmpc2_jax.agent import Agent as TDMPC2
    from tdmpc2_jax.configs.dmc import get_config
    from tdmpc2_jax.environments import make_env
    from tdmpc2_jax.loading import load_for_task
    from tdmpc2_jax.run_record import eval_seed, resolve

    run = resolve(get_config(agent.task))
    env = make_env(run, eval_seed(seed))
    agent_cfg, params = load_for_task(str(ROOT / agent.path), run, env.obs_shape, env.action_dim)
    planners = acting.Planners(TDMPC2(agent_cfg))
    walker = agent.task.startswith("walker-")

    def policy(plan_state, obs, key, t0):
        result, plan_state = planners.eval_plan(params, obs, plan_state, key, t0, None)
        return result.action, plan_state, obs[HEIGHT_ENTRY] if walker else ()

    run_ = acting.host_episodes(env, policy, planners.initial_state, jax.random.key(seed), episodes)
    heights = np.asarray(run_.info).reshape(episodes, -1) if walker else None
    return Episodes(run_.returns, np.asarray(run_.lengths), heights)


def evaluate_mjx(agent: Agent, variant: str, episodes: int, seed: int) -> Episodes:
    """`episodes` MJX episodes of `agent` at once on `variant`, with the planner in eval mode
    (evaluation.evaluate_task's key), keeping the walker's torso height."""
    import jax

    from tdmpc2_jax import acting, xla
    from tdmpc2_jax.agent import Agent as TDMPC2
    from tdmpc2_jax.configs.mjx import get_config
    from tdmpc2_jax.loading import load_for_task
    from tdmpc2_jax.run_record import eval_seed, resolve

    env = mjx_env(agent.task, variant)
    agent_cfg, params = load_for_task(str(ROOT / agent.path), resolve(get_config(agent.task)), env.obs_dim,
                                      env.action_dim)
    trace = height_trace(env) if agent.task.startswith("walker-") else None
    model = TDMPC2(agent_cfg).model
    result = xla.jit(lambda p, k: acting.evaluate_batched(model, env, p, k, episodes, trace))(
        params, jax.random.key(eval_seed(seed)))
    heights = np.asarray(result.trace).T if trace is not None else None
    return Episodes(np.asarray(result.returns), np.asarray(result.lengths), heights)


def height_trace(env) -> Callable:
    """A rollout trace (`acting.rollout`): the torso heights [N] of a batch of walker states."""
    import jax

    model = env.playground_env.mjx_model
    torso = env.playground_env.mj_model.body("torso").id
    return lambda state: jax.vmap(lambda data: torso_height(model, torso, data))(state.inner.data)


def episode_rows(agent: Agent, variant: str, seed: int, result: Episodes) -> list[dict]:
    """One episodes.csv row per episode of a variant's result."""
    falls = [None] * len(result.returns) if result.heights is None else [fall_step(h) for h in result.heights]
    return [dict(agent=agent.name, task=agent.task, trained_on=agent.trained_on,
                 evaluated_on=HOST if variant == HOST else "mjx", variant=variant, seed=seed, episode=e,
                 **{"return": float(r)}, length=int(n), fall_step="" if result.heights is None else
                 ("none" if f is None else f))
            for e, (r, n, f) in enumerate(zip(result.returns, result.lengths, falls))]


# ------------------------------------------------------------------------------------ statistics and files


def mean_interval(returns: np.ndarray) -> tuple[float, float]:
    """The bootstrap 95% percentile interval of the mean of `returns` [E] (BOOTSTRAP's resamples
    and seed); one value or equal values give that value as both ends."""
    from scipy import stats

    returns = np.asarray(returns, np.float64)
    if returns.size < 2 or np.all(returns == returns[0]):
        return float(returns.mean()), float(returns.mean())
    result = stats.bootstrap((returns,), np.mean, n_resamples=BOOTSTRAP["n_resamples"],
                             confidence_level=BOOTSTRAP["confidence_level"], method="percentile",
                             random_state=np.random.default_rng(BOOTSTRAP["seed"]))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summary_rows(episodes: list[dict]) -> list[dict]:
    """One summary.csv row per (agent, variant) of episodes.csv rows, in their order: mean, std
    (population) and bootstrap interval of the return, and falls as 'k/E' (empty where not kept)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in episodes:
        groups.setdefault((row["agent"], row["variant"]), []).append(row)
    rows = []
    for rows_ in groups.values():
        returns = np.asarray([float(r["return"]) for r in rows_])
        low, high = mean_interval(returns)
        kept = [r["fall_step"] for r in rows_ if str(r["fall_step"]) != ""]
        falls = f"{sum(str(f) != 'none' for f in kept)}/{len(rows_)}" if kept else ""
        first = rows_[0]
        rows.append(dict(**{c: first[c] for c in ("agent", "task", "trained_on", "evaluated_on", "variant")},
                         episodes=len(rows_), mean=float(returns.mean()), std=float(returns.std()), ci_low=low,
                         ci_high=high, falls=falls))
    return rows


def read_csv(path: pathlib.Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def write_csv(path: pathlib.Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    def cell(x):
        return f"{x:.6g}" if isinstance(x, float) else x

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows({c: cell(r[c]) for c in columns} for r in rows)


def table(summary: list[dict]) -> list[str]:
    """Markdown rows of summary.csv rows (read from the file: every value a string); `vs host` is a
    variant's mean return minus its agent's host mean."""
    host = {r["agent"]: float(r["mean"]) for r in summary if r["variant"] == HOST}

    def versus(r: dict) -> str:
        if r["variant"] == HOST or r["agent"] not in host:
            return "-"
        return f"{float(r['mean']) - host[r['agent']]:+.1f}"

    lines = ["| agent | trained on | evaluated on | variant | episodes | return mean +- std | 95% CI of the mean | "
             "vs host | falls |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['agent']} | {r['trained_on']} | {r['evaluated_on']} | {r['variant']} | {r['episodes']} | "
              f"{float(r['mean']):.1f} +- {float(r['std']):.1f} | [{float(r['ci_low']):.1f}, "
              f"{float(r['ci_high']):.1f}] | {versus(r)} | {r['falls'] or '-'} |" for r in summary]
    return lines


def docs_table(directory: pathlib.Path = OUT) -> str:
    """The docs block of a committed run: its summary table with links to its files."""
    name = directory.relative_to(OUT.parent).as_posix()
    link = f"../experiments/results/{name}"
    return "\n".join([f"From [{name}/summary.csv]({link}/summary.csv) (every episode: [episodes.csv]({link}/"
                      f"episodes.csv); command and machine: [README.md]({link}/README.md)). Return mean +- std over "
                      "the episodes, the bootstrap 95% interval of the mean, vs host: the mean minus the agent's host "
                      "mean, and falls: walker episodes whose torso dropped below half the stand height after "
                      "standing.", ""] + table(read_csv(directory /
                                                                                                   "summary.csv")))


def machine() -> str:
    from experiments.mjx_fidelity import machine as described

    return described()


def readme(commands: list[str], summary: list[dict]) -> str:
    """README.md of the result folder: what was run, on which machine, and the table."""
    lines = ["# Policy transfer between host dm_control and the MJX DM Control tasks", "",
             "Made by `experiments/mjx_transfer.py` (its docstring says what each variant is):", "",
             *[f"    {c}" for c in commands], "",
             f"Machine: {machine()}; {datetime.date.today().isoformat()}. Evaluation seed {EVAL_SEED}; planner in "
             "eval mode with the run config's planning settings (512 samples x 6 iterations).", "",
             "[episodes.csv](episodes.csv), [summary.csv](summary.csv).", ""]
    rows = [{k: str(v) for k, v in r.items()} for r in summary]
    return "\n".join(lines + table(rows)) + "\n"


def commands_of(out: pathlib.Path, command: str) -> list[str]:
    """The commands a README already lists, with `command` added once."""
    path = out / "README.md"
    old = [line.strip() for line in path.read_text().splitlines() if line.startswith("    python -m")] \
        if path.exists() else []
    return old + [command] * (command not in old)


def run(agents: list[Agent], variants: list[str] | None, episodes: int, out: pathlib.Path, command: str,
        evaluate: Callable[[Agent, str, int, int], Episodes] | None = None) -> list[dict]:
    """Evaluates every agent on each of its variants (those in `variants`, None: all) not yet in
    out's episodes.csv, writing episodes.csv, summary.csv and README.md after each; returns the
    summary rows. `evaluate(agent, variant, episodes, seed)` defaults to host or MJX evaluation."""
    evaluate = evaluate or (lambda a, v, e, s: evaluate_host(a, e, s) if v == HOST else evaluate_mjx(a, v, e, s))
    out.mkdir(parents=True, exist_ok=True)
    done = read_csv(out / "episodes.csv") if (out / "episodes.csv").exists() else []
    for agent in agents:
        for variant in agent.variants:
            if (variants and variant not in variants) or any(
                    r["agent"] == agent.name and r["variant"] == variant for r in done):
                continue
            began = time.monotonic()
            result = evaluate(agent, variant, episodes, EVAL_SEED)
            done += episode_rows(agent, variant, EVAL_SEED, result)
            write_results(out, done, command)
            print(f"{agent.name} on {variant}: return {result.returns.mean():.1f} +- {result.returns.std():.1f} "
                  f"({time.monotonic() - began:.0f} s)", flush=True)
    return write_results(out, done, command) if done else []


def write_results(out: pathlib.Path, episodes: list[dict], command: str) -> list[dict]:
    """episodes.csv, summary.csv and README.md of `episodes` rows under `out`; the summary rows."""
    summary = summary_rows(episodes)
    write_csv(out / "episodes.csv", episodes, EPISODE_COLUMNS)
    write_csv(out / "summary.csv", summary, SUMMARY_COLUMNS)
    (out / "README.md").write_text(readme(commands_of(out, command), summary))
    return summary


# ------------------------------------------------------------------------------------ command line


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_list("agents", None, "agents to evaluate (default: all): " + ", ".join(a.name for a in AGENTS))
    flags.DEFINE_list("variants", None, "variants to run (default: each agent's all): " + ", ".join(VARIANTS))
    flags.DEFINE_integer("episodes", EPISODES, "episodes per agent and variant")
    flags.DEFINE_string("out", str(OUT), "directory for episodes.csv, summary.csv and README.md")


def selected_agents(names: list[str] | None) -> list[Agent]:
    """The agents named (all for None), each with its checkpoint present; one clear error otherwise."""
    known = {a.name: a for a in AGENTS}
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise ValueError(f"unknown agent {unknown[0]!r}: choose from {', '.join(known)}")
    agents = [known[n] for n in names] if names else list(AGENTS)
    missing = [a for a in agents if not (ROOT / a.path).exists()]
    if missing:
        raise ValueError(f"no checkpoint for {missing[0].name} at {missing[0].path}")
    return agents


def main(argv: list[str]) -> None:
    del argv
    from tdmpc2_jax.cli import fail, setup_process
    from tdmpc2_jax.configs.dmc import get_config

    unknown = [v for v in FLAGS.variants or () if v not in VARIANTS]
    if unknown:
        fail(f"unknown variant {unknown[0]!r}: choose from {', '.join(VARIANTS)}")
    if FLAGS.episodes < 1:
        fail(f"--episodes={FLAGS.episodes}: give at least 1")
    try:
        agents = selected_agents(FLAGS.agents)
    except ValueError as err:
        fail(str(err))
    setup_process(get_config(agents[0].task))
    args = sys.argv[1:]  # the README lives in --out: its command leaves --out and its value out
    kept = [a for i, a in enumerate(args) if not a.startswith("--out") and (i == 0 or args[i - 1] != "--out")]
    command = " ".join(["python -m experiments.mjx_transfer", *kept])
    run(agents, FLAGS.variants, FLAGS.episodes, pathlib.Path(FLAGS.out), command)


if __name__ == "__main__":
    define_flags()
    app.run(main)
