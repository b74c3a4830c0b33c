"""Writes a parity fixture from the official PyTorch TD-MPC2, in the schema of ../shared/parity.

    python -m experiments.parity_fixture --official-repo PATH --out DIR [--episodic] [key=value ...]

PATH is a checkout of github.com/nicklashansen/tdmpc2 (needs torch==2.13.0 and tensordict==0.8.3);
its code is copied and patched for CPU exactly as in benchmarks/versus_official.py. key=value pairs
override the official config (obs_dim, action_dim and episode_length included); values are read as
JSON where they are JSON. A multitask fixture takes multitask=true tasks='["a","b"]' obs_dims='[24,5]'
action_dims='[6,1]' episode_lengths='[500,1000]' task_dim=8: observations are zero-padded to the
largest obs dim, actions are zero beyond their task's action dims, and the batches mix the tasks
(the update leaves the policy loss's gradient on the task table, which the second update uses).
Written to DIR:
README.json, model_state.pt, weights.npz, forward.npz, value.npz, update.npz and update_step2.npz
(a second update that continues from the first, so Adam's second moments are exercised).

The random draws of WorldModel.pi (torch.randn_like) and WorldModel.Q (torch.randperm) are replaced
by values from private generators and saved, in call order, next to the outputs; the global torch
RNG is used only for the official initialisation. With --episodic the termination head, its loss,
the (1 - terminated) TD targets and the termination-masked value estimate are all exercised: the
update batch terminates some sequences, and forward.npz holds the termination logits.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
from typing import Any, Iterator

import numpy as np

from benchmarks.versus_official import _Config, _number, load_official

SEEDS = dict(torch_manual_seed_init=1, perturb=101, forward_inputs=201, value_inputs=401, value_injection=402,
             update_inputs=501, update_injection=502, update2_inputs=601, update2_injection=602)
SMALL = dict(model_size=None, num_enc_layers=2, enc_dim=64, mlp_dim=64, latent_dim=64, num_q=5, dropout=0.0,
             batch_size=8, task_dim=0, compile=False, multitask=False, obs_dim=24, action_dim=6, episode_length=500)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"override {pair!r} is not key=value")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


MULTITASK_KEYS = ("tasks", "obs_dims", "action_dims", "episode_lengths")


def entropy_recorder(pi, record: dict):
    """WorldModel.pi that also records the policy's full entropy terms of the call in `record`."""
    def recording_pi(z, task):
        action, info = pi(z, task)
        record["pi_entropy_full"], record["pi_scaled_entropy_full"] = info["entropy"], info["scaled_entropy"]
        return action, info
    return recording_pi


def grad_recorder(optim, prefix: str, names: dict, record: dict):
    """optim.step that first records every parameter's gradient in `record` under prefix + its name."""
    step = optim.step

    def recording_step(*args, **kwargs):
        for p in (p for group in optim.param_groups for p in group["params"]):
            if p.grad is not None:
                record[prefix + names[id(p)]] = p.grad.clone()
        return step(*args, **kwargs)
    return recording_step


def official_config(defaults: dict, overrides: dict) -> Any:
    cfg = _Config({k: _number(v) for k, v in defaults.items() if k != "defaults"})
    cfg.update(SMALL)
    cfg.update(overrides)
    obs_dim = cfg.pop("obs_dim")
    if cfg.multitask:
        if cfg.episodic:
            raise SystemExit("the official code has no episodic multitask agent "
                             "(WorldModel.termination asserts task is None)")
        lists = [cfg.get(k) for k in MULTITASK_KEYS]
        lists_ok = all(isinstance(x, list) and x for x in lists) and len({len(x) for x in lists}) == 1
        if not lists_ok or cfg.task_dim <= 0:
            raise SystemExit(f"multitask=true needs {', '.join(MULTITASK_KEYS)} as lists of one length "
                             "and task_dim > 0")
        obs_dims = cfg.pop("obs_dims")
        # as the official make_multitask_env sets them: the largest obs and action dims, envs[0]'s episode length
        cfg.update(task=f"mt{len(cfg.tasks)}", obs_shape={"state": [max(obs_dims)]}, obs_shapes=obs_dims,
                   action_dim=max(cfg.action_dims), episode_length=cfg.episode_lengths[0])
    else:
        cfg.update(tasks=[cfg.task], obs_shape={"state": [obs_dim]}, obs_shapes="???", action_dims="???",
                   episode_lengths="???")
    cfg.update(bin_size=(cfg.vmax - cfg.vmin) / (cfg.num_bins - 1), work_dir="(unused work dir)")
    return cfg


def batch_tasks(torch, cfg, g, size: int):
    """Task ids [size] (every task at least once when size allows) and the obs / action masks of each
    row ([size, obs_dim], [size, A]); None and ones for a single-task config."""
    obs_dim = cfg.obs_shape["state"][0]
    if not cfg.multitask:
        return None, torch.ones(size, obs_dim), torch.ones(size, cfg.action_dim)
    n = len(cfg.tasks)
    task = torch.cat([torch.arange(n), torch.randint(n, (max(size - n, 0),), generator=g)])[:size]
    task = task[torch.randperm(size, generator=g)]
    obs_mask = (torch.arange(obs_dim)[None] < torch.tensor(cfg.obs_shapes)[task][:, None]).float()
    action_mask = (torch.arange(cfg.action_dim)[None] < torch.tensor(cfg.action_dims)[task][:, None]).float()
    return task, obs_mask, action_mask


class Injector:
    """Replaces torch.randn_like / torch.randperm with recorded draws from private generators."""

    def __init__(self, torch, seed: int):
        self.torch, self.generator = torch, torch.Generator().manual_seed(seed)
        self.arrays: dict[str, np.ndarray] = {}
        self.order: list[dict] = []

    @contextlib.contextmanager
    def active(self, called_from: str) -> Iterator[None]:
        torch = self.torch
        randn, randn_like, randperm = torch.randn, torch.randn_like, torch.randperm

        def fake_randn_like(x, **_):
            value = randn(x.shape, generator=self.generator, dtype=x.dtype)
            self._record("eps", "randn_like", value, "WorldModel.pi", called_from)
            return value

        def fake_randperm(n, **_):
            value = randperm(n, generator=self.generator)
            self._record("perm", "randperm", value, "WorldModel.Q", called_from)
            return value

        torch.randn_like, torch.randperm = fake_randn_like, fake_randperm
        state = torch.get_rng_state()
        try:
            yield
        finally:
            torch.randn_like, torch.randperm = randn_like, randperm
            if not torch.equal(state, torch.get_rng_state()):
                raise RuntimeError("the global torch RNG was used during a fixture call")

    def _record(self, prefix: str, kind: str, value, called_in: str, called_from: str) -> None:
        key = f"{prefix}_{sum(d['key'].startswith(prefix) for d in self.order)}"
        self.arrays[key] = value.numpy().copy()
        self.order.append(dict(key=key, kind=kind, shape=list(value.shape), called_in=called_in,
                               called_from=called_from))


def perturb(torch, agent, seed: int) -> None:
    """Every parameter += 0.05 N(0, 1); each target Q = online Q + 0.01 N(0, 1) (so they differ)."""
    g = torch.Generator().manual_seed(seed)
    model = agent.model
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith(("_detach_Qs_params.", "_target_Qs_params.")):
                p += 0.05 * torch.randn(p.shape, generator=g)
        state = model.state_dict()  # shares storage with the parameters
        for name in sorted(k for k in state if k.startswith("_target_Qs_params.") and "__" not in k):
            online = state["_Qs.params." + name[len("_target_Qs_params."):]]
            state[name].copy_(online + 0.01 * torch.randn(online.shape, generator=g))


def value_inputs(torch, cfg, seed: int, num: int = 16):
    """Latents [num, L] (SimNorm of normals) and actions [H, num, A] in [-1, 1] for value.npz."""
    g = torch.Generator().manual_seed(seed)
    z = _official("common.layers").SimNorm(cfg)(torch.randn(num, cfg.latent_dim, generator=g))
    return z, torch.rand(cfg.horizon, num, cfg.action_dim, generator=g) * 2 - 1


def value_task(cfg):
    """The task of every value.npz sequence (the last task; None for a single-task config)."""
    return len(cfg.tasks) - 1 if cfg.multitask else None


def termination_logits(torch, agent, z, actions, task) -> list:
    """Termination logits [N, 1] at steps 1..H of the model rollout of z [N, L] under actions [H, N, A]."""
    logits = []
    with torch.no_grad():
        for action in actions:
            z = agent.model.next(z, action, task)
            logits.append(agent.model.termination(z, task, unnormalized=True))
    return logits


def center_termination(torch, agent, cfg, seed: int) -> float:
    """Shifts the termination head's output bias so that about half of the value rollout's
    termination logits are positive: the termination mask of _estimate_value then switches
    sequences off at different steps. Returns the shift."""
    logits = termination_logits(torch, agent, *value_inputs(torch, cfg, seed), value_task(cfg))
    ordered = torch.sort(torch.cat(logits).flatten()).values
    with torch.no_grad():
        # the widest gap between neighbours in the middle 30-70% keeps every logit clear of 0
        low, high = int(0.3 * len(ordered)), int(0.7 * len(ordered))
        gaps = ordered[low + 1: high + 1] - ordered[low:high]
        i = low + int(torch.argmax(gaps))
        shift = -float(ordered[i] + ordered[i + 1]) / 2
        agent.model._termination[-1].bias += shift
    return shift


def state_arrays(torch, model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().astype(np.float32) if v.is_floating_point() else v.numpy()
            for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def forward_fixture(torch, agent, cfg, seed: int) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    model, math = agent.model, _official("common.math")
    b, obs_dim = cfg.batch_size, cfg.obs_shape["state"][0]
    task, obs_mask, action_mask = batch_tasks(torch, cfg, g, b)
    obs = torch.randn(b, obs_dim, generator=g) * obs_mask
    action = (torch.rand(b, cfg.action_dim, generator=g) * 2 - 1) * action_mask
    inject = Injector(torch, seed + 1)
    out: dict[str, Any] = dict(obs=obs, action=action)
    if task is not None:
        out["task"] = task
    with torch.no_grad(), inject.active("forward"):
        z = model.encode(obs, task)
        out.update(z=z, z_next=model.next(z, action, task), reward_logits=model.reward(z, action, task))
        out["reward_value"] = math.two_hot_inv(out["reward_logits"], cfg)
        for name, target in (("q", False), ("q_target", True)):
            logits = model.Q(z, action, task, return_type="all", target=target)
            out[f"{name}_logits_all"] = logits
            out[f"{name}_values_all"] = torch.stack([math.two_hot_inv(q, cfg) for q in logits])
        pi_action, info = model.pi(z, task)
        out.update(pi_action=pi_action, pi_mean=info["mean"], pi_log_std=info["log_std"], pi_entropy=info["entropy"],
                   pi_scaled_entropy=info["scaled_entropy"])
        out["pi_head_out"] = model._pi(model.task_emb(z, task) if task is not None else z)
        out["pi_mean_pre_tanh"] = out["pi_head_out"][..., : cfg.action_dim] * action_mask
        if cfg.episodic:
            out["termination_logits"] = model.termination(z, task, unnormalized=True)
            out["termination"] = model.termination(z, task)
        perm_order = len(inject.order)
        out["q_min"] = model.Q(z, action, task, return_type="min")
        perm = inject.arrays[inject.order[perm_order]["key"]]
        # q_avg reuses the same permutation (the schema has one `perm` for both)
        randperm = torch.randperm
        torch.randperm = lambda n, **_: torch.as_tensor(perm)
        try:
            out["q_avg"] = model.Q(z, action, task, return_type="avg")
        finally:
            torch.randperm = randperm
    arrays = {k: _np(v) for k, v in out.items()}
    arrays.update(eps=inject.arrays["eps_0"], perm=perm)
    return arrays, {"mode": "model.eval(), torch.no_grad()", "keys": _describe(arrays)}


def value_fixture(torch, agent, cfg, seed: int, num: int = 16) -> tuple[dict, dict]:
    z, actions = value_inputs(torch, cfg, seed, num)
    task = value_task(cfg)  # one task for all sequences, as in planning
    inject = Injector(torch, seed + 1)
    samples, cfg.num_samples = cfg.num_samples, num  # _estimate_value allocates zeros(cfg.num_samples, 1)
    try:
        with inject.active("_estimate_value"):
            value = agent._estimate_value(z, actions, task)
    finally:
        cfg.num_samples = samples
    arrays = dict(z=_np(z), actions=_np(actions), value=_np(value), discount=_np(agent.discount), **inject.arrays)
    if task is not None:
        arrays["task"] = np.int64(task)
    if cfg.episodic:
        for t, logits in enumerate(termination_logits(torch, agent, z, actions, task), start=1):
            arrays[f"termination_logits_{t}"] = _np(logits)
    info = {"mode": "model.eval(); agent._estimate_value is @torch.no_grad",
            "calls": [{"task": None if task is None else "task", "output": "value", "actions": "actions"}],
            "injected_randomness_call_order": inject.order, "keys": _describe(arrays)}
    return arrays, info


def update_fixture(torch, agent, cfg, seed: int) -> tuple[dict, dict]:
    """One agent._update with recorded internals, gradients and parameters after it."""
    g = torch.Generator().manual_seed(seed)
    h, b, obs_dim = cfg.horizon, cfg.batch_size, cfg.obs_shape["state"][0]
    task, obs_mask, action_mask = batch_tasks(torch, cfg, g, b)
    obs = torch.randn(h + 1, b, obs_dim, generator=g) * obs_mask
    action = (torch.rand(h, b, cfg.action_dim, generator=g) * 2 - 1) * action_mask
    reward = torch.rand(h, b, 1, generator=g) * 4 - 2
    terminated = torch.zeros(h, b, 1)
    if cfg.episodic:  # sequences 0, 2, 4, ... terminate at their last step
        terminated[-1, ::2] = 1.0
    record: dict[str, Any] = {}
    td_target, update_pi, pi = agent._td_target, agent.update_pi, agent.model.pi

    def recording_td_target(next_z, *args):
        record["next_z"] = next_z
        record["td_targets"] = td_target(next_z, *args)
        return record["td_targets"]

    def recording_update_pi(zs, task):
        record["zs"] = zs
        agent.model.pi = recording_pi
        try:
            return update_pi(zs, task)
        finally:
            agent.model.pi = pi

    recording_pi = entropy_recorder(pi, record)

    names = {id(p): n for n, p in agent.model.named_parameters()}
    model_step, agent.optim.step = agent.optim.step, grad_recorder(agent.optim, "grad/", names, record)
    pi_step, agent.pi_optim.step = agent.pi_optim.step, grad_recorder(agent.pi_optim, "pi_grad/", names, record)
    agent._td_target, agent.update_pi = recording_td_target, recording_update_pi
    inject = Injector(torch, seed + 1)
    scale_before = agent.scale.value.clone()
    try:
        with inject.active("_update"):
            info = agent._update(obs, action, reward, terminated, task=task)
    finally:
        agent._td_target, agent.update_pi = td_target, update_pi
        agent.optim.step, agent.pi_optim.step = model_step, pi_step
    order = inject.order
    for entry, source in zip(order, ("_td_target", "_td_target", "update_pi", "update_pi")):
        entry["called_from"] = source
    arrays = dict(obs=_np(obs), action=_np(action), reward=_np(reward), terminated=_np(terminated), **inject.arrays)
    if task is not None:
        arrays["task"] = _np(task)
        # the policy loss's gradient on the task table stays in .grad and joins the next model step
        arrays["leftover_grad/_task_emb.weight"] = _np(agent.model._task_emb.weight.grad.clone())
    arrays.update({k: _np(v) for k, v in record.items()})
    arrays.update({k: _np(v) for k, v in info.items() if k in METRICS})
    arrays.update(scale_before=_np(scale_before), scale_after=_np(agent.scale.value))
    arrays.update({"after/" + k: v for k, v in state_arrays(torch, agent.model).items()})
    description = {"call": f"agent._update(obs, action, reward, terminated{', task=task' if task is not None else ''})",
                   "injected_randomness_call_order": order,
                   "keys": _describe(arrays)}
    return arrays, description


METRICS = ("consistency_loss", "reward_loss", "value_loss", "termination_loss", "total_loss", "grad_norm", "pi_loss",
           "pi_grad_norm", "pi_entropy", "pi_scaled_entropy", "pi_scale")


def _official(module: str):
    import importlib

    return importlib.import_module(module)


def _np(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().numpy()
    value = np.asarray(value)
    return value.astype(np.float32) if value.dtype == np.float64 else value


def _describe(arrays: dict) -> dict:
    return {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)} for k, v in arrays.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", required=True, type=pathlib.Path)
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--episodic", action="store_true")
    parser.add_argument("overrides", nargs="*", help="official config key=value")
    args = parser.parse_args(argv)
    agent_cls, _, defaults = load_official(args.official_repo)
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg = official_config(defaults, dict(parse_overrides(args.overrides), episodic=args.episodic))
    torch.manual_seed(SEEDS["torch_manual_seed_init"])
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        agent = agent_cls(cfg)
    perturb(torch, agent, SEEDS["perturb"])
    shift = center_termination(torch, agent, cfg, SEEDS["value_inputs"]) if cfg.episodic else None
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": agent.model.state_dict()}, args.out / "model_state.pt")
    np.savez(args.out / "weights.npz", **state_arrays(torch, agent.model))
    files = {}
    for name, (arrays, info) in {
        "forward.npz": forward_fixture(torch, agent, cfg, SEEDS["forward_inputs"]),
        "value.npz": value_fixture(torch, agent, cfg, SEEDS["value_inputs"]),
        "update.npz": update_fixture(torch, agent, cfg, SEEDS["update_inputs"]),
        "update_step2.npz": update_fixture(torch, agent, cfg, SEEDS["update2_inputs"]),
    }.items():
        np.savez(args.out / name, **arrays)
        files[name] = info
    readme = {
        "description": "TD-MPC2 parity fixture from the official PyTorch code on CPU (experiments/parity_fixture.py), "
                       f"{cfg.task if cfg.multitask else 'single task'}{', episodic' if cfg.episodic else ''}. "
                       "Weights: official init (torch seed torch_manual_seed_init), every parameter + 0.05 N(0,1), "
                       "target Qs = online + 0.01 N(0,1)"
                       + (", termination output bias + termination_bias_shift" if cfg.episodic else "") + ".",
        "code_patches_for_cpu": ["'cuda:0' -> 'cpu' in tdmpc2.py and common/scale.py",
                                 "torch.optim.Adam(capturable=False)", "cfg.compile = False"],
        "torch_version": torch.__version__, "torch_num_threads": 1, "seeds": SEEDS,
        "config": {k: v for k, v in cfg.items()}, "files": files,
        "termination_bias_shift": shift,
    }
    (args.out / "README.json").write_text(json.dumps(readme, indent=1, default=str))
    print(f"wrote {args.out}: " + ", ".join(sorted(os.listdir(args.out))))


if __name__ == "__main__":
    main()
