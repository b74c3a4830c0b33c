"""Adds plan.npz to existing parity fixtures: the official MPPI planner (`TDMPC2.act`) on their weights.

    PYTHONPATH=.venv/lib/python3.11/site-packages .venv-official/bin/python -m experiments.plan_fixture \\
        --official-repo PATH tests/fixtures/parity_official tests/fixtures/parity_multitask

(the official code needs tensordict, this package's helpers import jax: the PYTHONPATH gives the
official interpreter both.) PATH is a checkout of github.com/nicklashansen/tdmpc2, copied and
patched for CPU as in benchmarks/versus_official.py. For each fixture directory the official agent
is built from README.json's config with the small planner settings of PLAN, its model is loaded from
weights.npz (checked to read back bit for bit), and every case of CASES calls `agent.act(obs, t0,
eval_mode, task)` with `_prev_mean` set first. Only plan.npz and the "plan.npz" entry of README.json's
"files" are written; the other files of the fixture are not touched.

Every random draw of a planning call comes from a private generator and is saved in call order
(README.json lists the order): WorldModel.pi's torch.randn_like (the H prior steps, then one per
iteration in _estimate_value), _plan's torch.randn (the Gaussian samples of each iteration, then the
exploration noise unless eval_mode), WorldModel.Q's torch.randperm (one per iteration) and the
Tensor.exponential_ of common.math.gumbel_softmax_sample (saved as is and as the gumbel noise
-log(x) that the official code adds to log(score)). The global torch RNG is checked to be untouched.

Besides the action and the new `_prev_mean`, the official planner's own locals are read with a
tracer on `_plan` (nothing in it is changed): the final MPPI std, the last iteration's elite indices
and scores, the drawn elite index and its sequence, the latent; a wrapper around _estimate_value
keeps the value of every sample in every iteration. README.json records, per case and iteration,
how far the num_elites-th value is from the next (the margin that decides the elite set) and how far
the drawn elite leads the runner-up in log(score) + gumbel.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import pathlib
import sys
import zipfile
from typing import Any, Iterator

import numpy as np

from benchmarks.versus_official import _Config, load_official
from experiments.parity_fixture import Injector, _describe, _np

PLAN = dict(iterations=3, num_samples=64, num_elites=8, num_pi_trajs=8)
SEED = 701  # case i draws its inputs from seed SEED + 10 i and its random draws from SEED + 10 i + 1
SINGLE_TASK_CASES = [dict(name="t0_eval", t0=True, eval_mode=True),
                     dict(name="t0_explore", t0=True, eval_mode=False),
                     dict(name="warm_eval", t0=False, eval_mode=True),
                     dict(name="warm_explore", t0=False, eval_mode=False)]
MULTITASK_CASES = [dict(name="task0_t0_eval", t0=True, eval_mode=True, task=0),
                   dict(name="task0_warm_explore", t0=False, eval_mode=False, task=0),
                   dict(name="task1_warm_eval", t0=False, eval_mode=True, task=1),
                   dict(name="task2_t0_explore", t0=True, eval_mode=False, task=2),
                   dict(name="task2_warm_explore", t0=False, eval_mode=False, task=2)]
LOCALS = ("score", "elite_idxs", "elite_value", "rand_idx", "actions", "z")


class PlanInjector(Injector):
    """Injector that also serves _plan's torch.randn and gumbel_softmax_sample's exponential_."""

    @contextlib.contextmanager
    def active(self, called_from: str) -> Iterator[None]:
        torch = self.torch
        randn, exponential_ = torch.randn, torch.Tensor.exponential_

        def fake_randn(*size, **_):
            size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
            value = randn(size, generator=self.generator, dtype=torch.float32)
            use = "exploration noise" if len(size) == 1 else "Gaussian samples"
            self._record("noise", "randn", value, f"TDMPC2._plan ({use})", called_from)
            return value

        def fake_exponential_(tensor, lambd=1.0, **_):
            exponential_(tensor, lambd, generator=self.generator)
            self._record("exponential", "exponential_", tensor, "math.gumbel_softmax_sample", called_from)
            return tensor

        with super().active(called_from):
            torch.randn, torch.Tensor.exponential_ = fake_randn, fake_exponential_
            try:
                yield
            finally:
                torch.randn, torch.Tensor.exponential_ = randn, exponential_


@contextlib.contextmanager
def watching_plan(torch, agent, horizon: int, action_dim: int) -> Iterator[dict]:
    """Reads the official _plan's locals while it runs: the last [H, A] `std` a line saw (the final
    MPPI std: `a, std = actions[0], std[0]` comes after it), LOCALS at its return, and the
    value of every _estimate_value call."""
    seen: dict[str, Any] = {"values": []}
    code = inspect.unwrap(type(agent)._plan).__code__  # under @torch.no_grad()
    estimate = agent._estimate_value

    def in_plan(frame, event, _):
        local = frame.f_locals
        std = local.get("std")
        if event == "line" and isinstance(std, torch.Tensor) and tuple(std.shape) == (horizon, action_dim):
            seen["std"] = std.clone()
        if event == "return":
            seen.update({k: local[k].clone() for k in LOCALS})
        return in_plan

    def on_call(frame, event, _):
        return in_plan if frame.f_code is code else None

    def recording_estimate(z, actions, task):
        value = estimate(z, actions, task)
        seen["values"].append(value.clone())
        return value

    agent._estimate_value = recording_estimate
    sys.settrace(on_call)
    try:
        yield seen
    finally:
        sys.settrace(None)
        del agent._estimate_value


def case_inputs(torch, cfg, case: dict, seed: int):
    """obs [obs_dim] (zero beyond the task's own obs dims) and a non-zero prev_mean [H, A] in (-0.8, 0.8).
    prev_mean is not masked to the task's actions: the planner masks what it samples."""
    g = torch.Generator().manual_seed(seed)
    obs_dim = cfg.obs_shape["state"][0]
    obs = torch.randn(obs_dim, generator=g)
    if cfg.multitask:
        obs[cfg.obs_shapes[case["task"]]:] = 0.0
    prev_mean = (torch.rand(cfg.horizon, cfg.action_dim, generator=g) * 2 - 1) * 0.8
    return obs, prev_mean


def margins(values: list, score, gumbel, num_elites: int) -> dict:
    """Per iteration: value gap between the num_elites-th and the next sample; lead of the drawn elite."""
    gaps = []
    for value in values:
        ordered = np.sort(np.nan_to_num(_np(value).ravel()))[::-1]
        gaps.append(float(ordered[num_elites - 1] - ordered[num_elites]))
    logits = np.sort(np.log(_np(score).ravel()) + gumbel)[::-1]
    return {"elite_boundary_value_gap_per_iteration": gaps, "gumbel_argmax_lead": float(logits[0] - logits[1])}


def plan_case(torch, agent, cfg, case: dict, seed: int, weights: dict) -> tuple[dict, dict]:
    """One official act() call: (arrays keyed '<case>/...', README entry of the case)."""
    load_weights(torch, agent, weights)  # each case from the fixture's weights (the task table renorms in place)
    obs, prev_mean = case_inputs(torch, cfg, case, seed)
    task = case.get("task")
    inject = PlanInjector(torch, seed + 1)
    with torch.no_grad():
        agent._prev_mean.copy_(prev_mean)
    with inject.active("TDMPC2.act"), watching_plan(torch, agent, cfg.horizon, cfg.action_dim) as seen:
        action = agent.act(obs, t0=case["t0"], eval_mode=case["eval_mode"], task=task)
    if any(bool(torch.isnan(v).any()) for v in seen["values"]):
        raise RuntimeError(f"case {case['name']}: a sample's value is NaN (nan_to_num would decide it)")
    draws = dict(inject.arrays)
    for key in [k for k in draws if k.startswith("exponential_")]:  # the official gumbel noise: -log(x)
        draws["gumbel_" + key[len("exponential_"):]] = _np(-torch.from_numpy(draws[key]).log())
    arrays = dict(obs=_np(obs), prev_mean=_np(prev_mean), t0=np.bool_(case["t0"]),
                  eval_mode=np.bool_(case["eval_mode"]), action=_np(action), mean=_np(agent._prev_mean.clone()),
                  std=_np(seen["std"]), score=_np(seen["score"]).ravel(), elite_value=_np(seen["elite_value"]).ravel(),
                  elite_idxs=_np(seen["elite_idxs"]), elite_index=np.int64(int(seen["rand_idx"])),
                  sequence=_np(seen["actions"]), z=_np(seen["z"][0]),
                  values=np.stack([_np(v).ravel() for v in seen["values"]]), **draws)
    if task is not None:
        arrays["task"] = np.int64(task)
    entry = dict(case, called="agent.act(obs, t0=t0, eval_mode=eval_mode"
                              + (", task=task)" if task is not None else ")") + " after agent._prev_mean.copy_(prev_mean)",
                 injected_randomness_call_order=inject.order,
                 **margins(seen["values"], seen["score"], draws["gumbel_0"], cfg.num_elites))
    return {f"{case['name']}/{k}": v for k, v in arrays.items()}, entry


KEY_MEANINGS = {
    "obs": "[obs_dim] observation (zero beyond the task's obs dims)",
    "prev_mean": "[H, A] agent._prev_mean before the call (ignored at t0)",
    "t0, eval_mode, task": "the act() arguments (task only in multitask fixtures)",
    "action": "[A] act()'s output",
    "mean": "[H, A] agent._prev_mean after the call: the final MPPI mean",
    "std": "[H, A] the final MPPI std (clamped, masked)",
    "score": "[num_elites] softmax(temperature * elite value) of the last iteration",
    "elite_value, elite_idxs": "[num_elites] values and sample indices of the last iteration's elites (topk order)",
    "elite_index": "the elite drawn by gumbel_softmax_sample (argmax of log(score) + gumbel)",
    "sequence": "[H, A] that elite's action sequence (its first action is executed)",
    "z": "[L] latent of obs",
    "values": "[iterations, num_samples] _estimate_value of every sample per iteration (checked free of NaN)",
    "eps_i": "WorldModel.pi's randn_like, in call order: i < H the prior's steps [num_pi_trajs, A], then one "
             "[num_samples, A] per iteration (the policy at z_H in _estimate_value)",
    "noise_i": "_plan's randn: [H, num_samples - num_pi_trajs, A] per iteration, then [A] exploration noise "
               "unless eval_mode",
    "perm_i": "WorldModel.Q's randperm(num_q), one per iteration (its first two are the heads averaged)",
    "exponential_0, gumbel_0": "[num_elites] gumbel_softmax_sample's exponential_ draw and -log of it",
}


def load_weights(torch, agent, weights: dict) -> None:
    """Loads weights.npz into the official model (its own state dict with the tensors replaced: the
    TensorDictParams keep non-tensor entries there) and checks that every tensor reads back."""
    state = agent.model.state_dict()
    tensors = {k for k, v in state.items() if isinstance(v, torch.Tensor)}
    if tensors != set(weights):
        raise RuntimeError(f"weights.npz keys differ from the official model's: {sorted(tensors ^ set(weights))[:5]}")
    state.update({k: torch.from_numpy(weights[k].copy()) for k in tensors})
    agent.model.load_state_dict(state, strict=True)
    back = agent.model.state_dict()
    differ = [k for k in weights if not np.array_equal(back[k].detach().numpy(), weights[k])]
    if differ:
        raise RuntimeError(f"weights.npz does not read back from the official model: {differ[:5]}")


def write_npz(path: pathlib.Path, arrays: dict) -> None:
    """np.savez with a fixed zip timestamp, so that a rerun writes the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())


def write_plan_fixture(agent_cls, torch, directory: pathlib.Path) -> None:
    readme_path = directory / "README.json"
    readme = json.loads(readme_path.read_text())
    cfg = _Config(dict(readme["config"], **PLAN))
    with np.load(directory / "weights.npz") as data:
        weights = {k: data[k] for k in data.files}
    torch.manual_seed(readme["seeds"]["torch_manual_seed_init"])  # the init is then overwritten by weights.npz
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        agent = agent_cls(cfg)
    cases = MULTITASK_CASES if cfg.multitask else SINGLE_TASK_CASES
    arrays, entries = {}, []
    for i, case in enumerate(cases):
        case_arrays, entry = plan_case(torch, agent, cfg, case, SEED + 10 * i, weights)
        arrays.update(case_arrays)
        entries.append(dict(entry, input_seed=SEED + 10 * i, draw_seed=SEED + 10 * i + 1))
    write_npz(directory / "plan.npz", arrays)
    readme["files"]["plan.npz"] = {
        "written_by": "experiments/plan_fixture.py (after the other files; weights.npz loaded into the official model)",
        "mode": "model.eval(); act and _plan are @torch.no_grad; cfg.compile = False",
        "planner_settings": dict(PLAN, horizon=cfg.horizon, temperature=cfg.temperature, min_std=cfg.min_std,
                                 max_std=cfg.max_std, note="the config above with these planner settings"),
        "cases": entries,
        "key_meanings": {"<case>/" + k: v for k, v in KEY_MEANINGS.items()},
        "keys": _describe(arrays),
    }
    readme_path.write_text(json.dumps(readme, indent=1))
    print(f"wrote {directory / 'plan.npz'}: " + ", ".join(c["name"] for c in cases))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", required=True, type=pathlib.Path)
    parser.add_argument("fixtures", nargs="+", type=pathlib.Path, help="parity fixture directories")
    args = parser.parse_args(argv)
    agent_cls, _, _ = load_official(args.official_repo)
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for directory in args.fixtures:
        write_plan_fixture(agent_cls, torch, directory)


if __name__ == "__main__":
    main()
