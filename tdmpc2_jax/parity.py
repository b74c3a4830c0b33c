"""Checks this implementation against fixtures computed by the official PyTorch code.

    python -m tdmpc2_jax.parity --fixture=DIR

DIR holds README.json (config, array meanings, the call order of injected random draws),
model_state.pt (or weights.npz), math.npz, forward.npz, value.npz and update.npz. Prints the
max abs / rel error of every quantity and exits 1 if any element is off by more than 1e-5 relative
(1e-6 absolute floor).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from tdmpc2_jax import ops, official, optim, xla
from tdmpc2_jax.agent import Agent, UpdateDraws, model_part
from tdmpc2_jax.checkpoints import tree_mismatches
from tdmpc2_jax.cli import parse_flags
from tdmpc2_jax.config import Config, make_config
from tdmpc2_jax.planner import estimate_value
from tdmpc2_jax.types import Batch

RTOL, ATOL = 1e-5, 1e-6
FLAGS = flags.FLAGS


class Row(NamedTuple):
    name: str
    shape: tuple[int, ...]
    max_abs: float  # max |ours - ref|
    max_rel: float  # max |ours - ref| / max |ref| (normwise relative error of the quantity)
    tolerance: float  # max(RTOL * max |ref|, ATOL)

    @property
    def ok(self) -> bool:
        return self.max_abs <= self.tolerance


def compare(name: str, ours: Any, ref: Any) -> Row:
    """Normwise comparison of one quantity (equal infinities and NaNs count as equal).

    Normwise because parameters after the first Adam step move by lr * g / (|g| + eps): where
    |g| << eps (1e-8) that is decided by float32 rounding noise of g, in torch as here.
    """
    ref = np.asarray(ref, np.float64)
    ours = np.asarray(ours, np.float64)
    finite = np.where(np.isfinite(ref), np.abs(ref), 0.0)
    tolerance = max(RTOL * float(np.max(finite, initial=0.0)), ATOL)
    if ours.size != ref.size:
        return Row(name + f" (size {ours.size} here)", ref.shape, np.inf, np.inf, tolerance)
    ours = ours.reshape(ref.shape)
    same = (ours == ref) | (np.isnan(ours) & np.isnan(ref))
    with np.errstate(invalid="ignore"):
        err = np.nan_to_num(np.where(same, 0.0, np.abs(ours - ref)), nan=np.inf)
    max_abs = float(np.max(err, initial=0.0))
    return Row(name, ref.shape, max_abs, max_abs / max(float(np.max(finite, initial=0.0)), 1e-30), tolerance)


class Fixture:
    """README.json + arrays of one fixture directory."""

    def __init__(self, directory: str):
        self.dir = directory
        path = os.path.join(directory, "README.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: is {directory} a parity fixture directory?")
        with open(path) as f:
            self.readme = json.load(f)
        self.cfg: Config = make_config(self.readme["config"], strict=False)

    def arrays(self, name: str) -> dict[str, np.ndarray] | None:
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            return None
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    def state_dict(self) -> official.StateDict:
        pt, npz = os.path.join(self.dir, "model_state.pt"), os.path.join(self.dir, "weights.npz")
        if os.path.exists(pt):
            try:
                return official.read_torch_checkpoint(pt)
            except ImportError:
                if not os.path.exists(npz):
                    raise
        return official.read_npz_state_dict(npz)

    def draw_order(self, file: str) -> list[dict]:
        return self.readme["files"].get(file, {}).get("injected_randomness_call_order", [])


def load_params(agent: Agent, state: official.StateDict):
    params, target_qs, buffers = official.to_params(state)
    expected = jax.eval_shape(agent.model.init, jax.random.key(0))
    diffs = tree_mismatches(expected, params) + tree_mismatches(expected["qs"], target_qs)
    if diffs:
        raise ValueError("official weights do not fit the fixture's config: " + "; ".join(diffs[:10]))
    cfg = agent.cfg
    if "log_std_min" in buffers:
        low, dif = float(buffers["log_std_min"]), float(buffers["log_std_dif"])
        if (low, low + dif) != (cfg.log_std_min, cfg.log_std_max):
            raise ValueError(f"weights have log_std range ({low}, {low + dif}), config "
                             f"({cfg.log_std_min}, {cfg.log_std_max})")
    as_jax = lambda tree: jax.tree.map(jnp.asarray, tree)
    return as_jax(params), as_jax(target_qs)


def _task(arrays: dict, key: str = "task"):
    return jnp.asarray(arrays[key], jnp.int32) if key in arrays else None


def shift_of(drawn: np.ndarray) -> jax.Array:
    """The official ShiftAug draw [B, 1, 1, 2] (float integers) as shifts [B, 2] int32."""
    return jnp.asarray(np.asarray(drawn).reshape(-1, 2), jnp.int32)


def check_math(cfg: Config, m: dict) -> Iterator[Row]:
    args = (cfg.num_bins, cfg.vmin, cfg.vmax)
    yield compare("math/symlog", ops.symlog(m["x"]), m["symlog"])
    yield compare("math/symexp", ops.symexp(m["x"]), m["symexp"])
    yield compare("math/two_hot", ops.two_hot(m["x"], *args), m["two_hot"])
    yield compare("math/two_hot_inv", ops.two_hot_inv(m["logits"], *args), m["two_hot_inv"])
    yield compare("math/soft_ce", ops.soft_ce(m["logits"], m["targets"][..., 0], *args), m["soft_ce"])
    yield compare("math/targets_two_hot", ops.two_hot(m["targets"][..., 0], *args), m["targets_two_hot"])
    yield compare("math/dreg_bins", ops.bins(*args), m["dreg_bins"])
    scale = jnp.ones((), jnp.float32)
    for i in (1, 2):
        x = jnp.asarray(m[f"scale_x{i}"])
        yield compare(f"math/scale_percentiles{i}", ops.percentiles_5_95(x), m[f"scale_percentiles{i}"])
        scale = ops.update_scale(scale, x, cfg.tau)
        yield compare(f"math/scale_value{i}", scale, m[f"scale_value{i}"])
        yield compare(f"math/scale_out{i}", x / scale, m[f"scale_out{i}"])
    yield compare("math/log_std", ops.log_std(m["logstd_x"], cfg.log_std_min, cfg.log_std_max - cfg.log_std_min),
                  m["logstd_out"])


def check_forward(agent: Agent, params, target_qs, f: dict) -> Iterator[Row]:
    m, task = agent.model, _task(f)
    obs, action = jnp.asarray(f["obs"]), jnp.asarray(f["action"])
    pair = jnp.asarray(f["perm"][:2], jnp.int32)
    z = m.encode(params, obs, task, shift_of(f["shift"]) if "shift" in f else None)
    yield compare("forward/z", z, f["z"])
    yield compare("forward/z_next", m.next(params, z, action, task), f["z_next"])
    reward_logits = m.reward(params, z, action, task)
    yield compare("forward/reward_logits", reward_logits, f["reward_logits"])
    yield compare("forward/reward_value", m.to_value(reward_logits), f["reward_value"])
    for name, qs in (("q", params["qs"]), ("q_target", target_qs)):
        logits = m.q_logits(qs, z, action, task, params=params)
        yield compare(f"forward/{name}_logits_all", logits, f[f"{name}_logits_all"])
        yield compare(f"forward/{name}_values_all", m.to_value(logits), f[f"{name}_values_all"])
    for reduce in ("min", "avg"):
        q = m.q_pair(params["qs"], z, action, pair, task, reduce=reduce, params=params)
        yield compare(f"forward/q_{reduce}", q, f[f"q_{reduce}"])
    policy = m.pi(params, z, jnp.asarray(f["eps"]), task)
    head = m.pi_net.apply({"params": params["pi"]}, m.with_task(params, z, task))
    eps = jnp.asarray(f["eps"]) * m.action_mask(task)
    checks = dict(pi_action=policy.action, pi_mean=policy.mean, pi_log_std=policy.log_std,
                  pi_entropy=policy.entropy, pi_scaled_entropy=policy.scaled_entropy,
                  pi_head_out=head, pi_mean_pre_tanh=head[..., : agent.cfg.action_dim] * m.action_mask(task),
                  pi_gaussian_logprob_pre_squash=ops.gaussian_logprob(eps, policy.log_std))
    if agent.cfg.episodic:
        termination = m.termination(params, z, task)
        checks.update(termination_logits=termination, termination=jax.nn.sigmoid(termination))
    for key, ours in checks.items():
        if key in f:
            yield compare(f"forward/{key}", ours, f[key])


def check_value(fixture: Fixture, agent: Agent, params, v: dict) -> Iterator[Row]:
    m = agent.model
    calls = fixture.readme["files"].get("value.npz", {}).get("calls") or [{"task": None, "output": "value",
                                                                            "actions": "actions"}]
    draws = iter(fixture.draw_order("value.npz") or [{"key": "eps_0"}, {"key": "perm_0"}])
    for i, call in enumerate(calls):
        eps, perm = v[next(draws)["key"]], v[next(draws)["key"]]
        task = call.get("task")
        task = None if task is None else jnp.asarray(v[task] if isinstance(task, str) else task, jnp.int32)
        z = jnp.asarray(v.get(call.get("z", "z"), v["z"]))
        value = estimate_value(m, params, z, jnp.asarray(v[call["actions"]]), jnp.asarray(eps),
                               jnp.asarray(perm[:2], jnp.int32), task)
        yield compare(f"value/{call['output']}" + (f"[{i}]" if len(calls) > 1 else ""), value, v[call["output"]])
    if "discount" in v:
        ours = m.discounts if agent.cfg.multitask else m.discounts[0]
        yield compare("value/discount", ours, v["discount"])


def check_task_emb_renorm(agent: Agent, params, r: dict) -> Iterator[Row]:
    """Task-embedding lookup with max_norm=1 on rows of norm 0.5, 2 and 5 (multitask fixtures)."""
    table = {**params, "task_emb": jnp.asarray(r["weight_before"])}
    task = jnp.asarray(r["task"], jnp.int32)
    yield compare("task_emb_renorm/output", agent.model.with_task(table, jnp.asarray(r["x"]), task), r["output"])
    yield compare("task_emb_renorm/looked_up_rows", agent.model.task_embedding(table, task), r["weight_after"][r["task"]])


def update_files(fixture: Fixture) -> list[str]:
    """update.npz, then update_step2.npz, update_step3.npz, ... (each continues the previous one)."""
    files = ["update.npz"]
    while os.path.exists(os.path.join(fixture.dir, f"update_step{len(files) + 1}.npz")):
        files.append(f"update_step{len(files) + 1}.npz")
    return files if os.path.exists(os.path.join(fixture.dir, "update.npz")) else []


def check_updates(fixture: Fixture, agent: Agent, params, target_qs) -> list[Row]:
    """Each update file in turn, the state carried from one to the next (fresh Adam state first)."""
    rows: list[Row] = []
    state = agent.state_from_params(params, target_qs)
    smallest_grad: dict[str, np.ndarray] = {}  # min |g| so far per parameter: Adam's conditioning
    update = xla.jit(agent.update_with_draws)
    for i, file in enumerate(update_files(fixture)):
        u = fixture.arrays(file)
        for key in (k for k in u if k.startswith(("grad/", "pi_grad/"))):
            smallest_grad[key] = np.minimum(smallest_grad.get(key, np.inf), np.abs(u[key]))
        step_rows, state = check_update(fixture, agent, update, state, u, file, smallest_grad, fresh=i == 0)
        rows += step_rows
    return rows


def check_update(fixture: Fixture, agent: Agent, update, state, u: dict, file: str, smallest_grad: dict, fresh: bool):
    cfg, label = agent.cfg, file[: -len(".npz")]
    batch = Batch(obs=jnp.asarray(u["obs"]), action=jnp.asarray(u["action"]), reward=jnp.asarray(u["reward"][..., 0]),
                  terminated=jnp.asarray(u["terminated"][..., 0]), task=_task(u))
    order = fixture.draw_order(file)
    keys = [d["key"] for d in order if d.get("kind") != "randint"] or ["eps_0", "perm_0", "eps_1", "perm_1"]
    # image shifts (pixels): one draw per encode call, obs[1], ..., obs[H] for the TD targets, then obs[0]
    shifts = [shift_of(u[d["key"]]) for d in order if d.get("kind") == "randint"]
    draws = UpdateDraws(td_eps=jnp.asarray(u[keys[0]]), td_pair=jnp.asarray(u[keys[1]][:2], jnp.int32),
                        pi_eps=jnp.asarray(u[keys[2]]), pi_pair=jnp.asarray(u[keys[3]][:2], jnp.int32),
                        dropout=jax.random.key(0), shift=jnp.stack(shifts[-1:] + shifts[:-1]) if shifts else None)
    if "scale_before" in u:
        state = state._replace(scale=jnp.asarray(u["scale_before"]).reshape(()))
    new, metrics, internals = update(state, batch, draws)
    rows = [compare(f"{label}/next_z", internals.next_z, u["next_z"]),
            compare(f"{label}/td_targets", internals.td_targets, u["td_targets"]),
            compare(f"{label}/zs", internals.zs, u["zs"])]
    rows += [compare(f"{label}/{key}", val, u[key]) for key, val in metrics.items() if key in u]
    rows += [compare(f"{label}/pi_entropy_full", internals.pi_entropy, u["pi_entropy_full"]),
             compare(f"{label}/pi_scaled_entropy_full", internals.pi_scaled_entropy, u["pi_scaled_entropy_full"]),
             compare(f"{label}/scale_after", new.scale, u["scale_after"])]
    if "leftover_grad/_task_emb.weight" in u:
        rows.append(compare(f"{label}/leftover_grad/_task_emb.weight", new.task_emb_grad,
                            u["leftover_grad/_task_emb.weight"]))
    named = {
        "grad/": official.from_params(internals.model_grads, {}, cfg),
        "pi_grad/": official.from_params({"pi": internals.pi_grads}, {}, cfg),
        "after/": official.from_params(new.params, new.target_qs, cfg),
    }
    for prefix, ours in named.items():
        for key in sorted(k for k in u if k.startswith(prefix)):
            name = key[len(prefix):]
            if name not in ours:
                rows.append(Row(f"{label}/{key} (missing here)", u[key].shape, np.inf, np.inf, ATOL))
            elif prefix == "after/":
                rows.append(compare_after_adam(f"{label}/{key}", ours[name], u[key],
                                               adam_conditioning(smallest_grad, name)))
            else:
                rows.append(compare(f"{label}/{key}", ours[name], u[key]))
    if fresh:  # the optimizer on the fixture's own gradients needs the fixture's optimizer state
        on_reference = optimizer_on_reference(agent, state, u)
        rows += [compare(f"{label}/optimizer_on_ref_grads/{name}", on_reference[name], u["after/" + name])
                 for name in sorted(on_reference) if "after/" + name in u]
    return rows, new


def adam_conditioning(smallest_grad: dict, name: str) -> np.ndarray | None:
    """Where every Adam step so far of parameter `name` was well conditioned: |g| >= 10 eps each time.

    The first step moves a parameter by lr g / (|g| + eps); for |g| << eps that amplifies the
    float32 rounding noise of g by up to lr / eps (3e4), in torch as here, and the offset stays in
    later steps. Those elements are covered by the grad/* rows and by the optimizer applied to the
    fixture's own gradients.
    """
    for prefix, grad_prefix, eps in (("_detach_Qs_params.", "grad/_Qs.params.", 1e-8), ("_pi.", "pi_grad/_pi.", 1e-5),
                                     ("", "grad/", 1e-8)):
        key = grad_prefix + name[len(prefix):]
        if name.startswith(prefix) and key in smallest_grad:
            return smallest_grad[key] >= 10 * eps
    return None


def compare_after_adam(name: str, ours: Any, ref: np.ndarray, well_conditioned: np.ndarray | None) -> Row:
    if well_conditioned is None or well_conditioned.all():
        return compare(name, ours, ref)
    excluded = int(well_conditioned.size - well_conditioned.sum())
    row = compare(name, np.asarray(ours).reshape(ref.shape)[well_conditioned], ref[well_conditioned])
    return row._replace(name=f"{name} ({excluded} with |g|<10eps left to optimizer_on_ref_grads)", shape=ref.shape)


def optimizer_on_reference(agent: Agent, state, u: dict) -> official.StateDict:
    """Both optimizer steps and the target update applied to the fixture's OWN gradients.

    Checks the optimizers (Adam eps, learning rates, encoder scale) and the soft target update free
    of the ill-conditioning of Adam's first step in our own gradients' rounding.
    """
    cfg = agent.cfg
    grads, _, _ = official.to_params({k[len("grad/"):]: v for k, v in u.items() if k.startswith("grad/")})
    pi_grads, _, _ = official.to_params({k[len("pi_grad/"):]: v for k, v in u.items() if k.startswith("pi_grad/")})
    trainable = model_part(state.params)
    if tree_mismatches(trainable, grads) or tree_mismatches(state.params["pi"], pi_grads.get("pi")):
        return {}
    trainable, _ = agent.model_optimizer.step(trainable, optim.ravel(grads), state.model_opt_state)
    params = {**state.params, **trainable}
    params["pi"], _ = agent.pi_optimizer.step(state.params["pi"], optim.ravel(pi_grads["pi"]), state.pi_opt_state)
    after_qs, _, _ = official.to_params({k[len("after/"):]: v for k, v in u.items() if k.startswith("after/_Qs.")})
    target_qs = jax.tree.map(lambda t, o: ops.lerp(t, o, cfg.tau), state.target_qs, after_qs["qs"])
    return official.from_params(params, target_qs, cfg)


def run(directory: str) -> list[Row]:
    """Every check of a fixture directory, in file order."""
    fixture = Fixture(directory)
    agent = Agent(fixture.cfg)
    params, target_qs = load_params(agent, fixture.state_dict())
    rows: list[Row] = []
    with jax.default_matmul_precision("highest"):
        if (m := fixture.arrays("math.npz")) is not None:
            rows += check_math(fixture.cfg, m)
        if (f := fixture.arrays("forward.npz")) is not None:
            rows += check_forward(agent, params, target_qs, f)
        if (v := fixture.arrays("value.npz")) is not None:
            rows += check_value(fixture, agent, params, v)
        rows += check_updates(fixture, agent, params, target_qs)
        if (r := fixture.arrays("task_emb_renorm.npz")) is not None:
            rows += check_task_emb_renorm(agent, params, r)
    if not rows:
        raise FileNotFoundError(f"{directory} holds none of math.npz, forward.npz, value.npz, update.npz")
    return rows


def format_table(rows: list[Row]) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"{'quantity':<{width}}  {'shape':<14} {'max abs':>10} {'max rel':>10} {'tolerance':>10}  ok"]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {str(r.shape):<14} {r.max_abs:>10.2e} {r.max_rel:>10.2e} "
                     f"{r.tolerance:>10.2e}  {'yes' if r.ok else 'NO'}")
    bad = [r for r in rows if not r.ok]
    lines.append(f"{len(rows) - len(bad)}/{len(rows)} quantities within {RTOL:g} relative ({ATOL:g} absolute floor)")
    return "\n".join(lines)


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_string("fixture", None, "a fixture directory, e.g. tests/fixtures/parity_official", required=True)


def check(directory: str) -> int:
    """Prints the table of the fixture in `directory`, or one error line if it cannot be read;
    returns the exit code: 0 if every quantity is within tolerance, 1 if one is not, 2 if unreadable."""
    try:
        rows = run(directory)
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


def main(argv: list[str]) -> int:
    del argv
    return check(FLAGS.fixture)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
