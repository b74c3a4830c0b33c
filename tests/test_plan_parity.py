"""Parity of MPPI planning with the official `TDMPC2.act`, on the plan.npz of the parity fixtures.

plan.npz (tests/fixtures/make_plan.py) holds official act() calls on the fixture's weights with
every random draw recorded. Here `planner.plan` runs eagerly under jax.disable_jit (its scan and
fori_loop become Python loops, one draw call per step) while jax.random.normal,
jax.random.categorical and planner.sample_pair answer with the recorded draws in call order:

- normal: the prior's [H, P, A] (the official H WorldModel.pi draws stacked), then per iteration the
  Gaussian samples [H, N - P, A] and the policy draws at z_H [N, A], then the exploration noise [A];
- sample_pair: the first two of each iteration's randperm(num_q);
- categorical(key, log score): argmax(log score + gumbel), the official gumbel_softmax_sample's
  argmax for the same gumbel noise.

Action, final mean (and warm start), final std, the drawn elite's sequence, the latent and the last
iteration's scores are compared with the normwise 1e-5 of tdmpc2_jax.parity; the drawn elite must be
the same one.
"""
from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax import parity, planner
from tdmpc2_jax.agent import Agent

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
DIRS = ("parity_official", "parity_multitask")
SETTINGS = ("iterations", "num_samples", "num_elites", "num_pi_trajs", "horizon", "temperature", "min_std", "max_std")


def entries(name: str) -> list[dict]:
    return parity.Fixture(str(FIXTURES / name)).readme["files"]["plan.npz"]["cases"]


CASES = [(name, case["name"]) for name in DIRS for case in entries(name)]


@functools.cache
def loaded(name: str, **changes) -> tuple[Agent, dict, dict, dict]:
    """(agent with the fixture's planner settings, params, plan.npz arrays, README entry of plan.npz)."""
    fixture = parity.Fixture(str(FIXTURES / name))
    entry = fixture.readme["files"]["plan.npz"]
    settings = {k: v for k, v in entry["planner_settings"].items() if k in SETTINGS}
    agent = Agent(fixture.cfg.replace(**dict(settings, **changes)))
    params, _ = parity.load_params(agent, fixture.state_dict())
    return agent, params, fixture.arrays("plan.npz"), entry


class RecordedDraws:
    """The official draws of one act() call, served in this planner's call order."""

    def __init__(self, order: list[dict], arrays: dict, horizon: int):
        prior, rest = order[:horizon], order[horizon:]
        assert [d["kind"] for d in prior] == ["randn_like"] * horizon, "the prior's H policy draws come first"
        self.normals = [np.stack([arrays[d["key"]] for d in prior])]
        self.normals += [arrays[d["key"]] for d in rest if d["kind"] in ("randn", "randn_like")]
        self.pairs = [arrays[d["key"]][:2] for d in rest if d["kind"] == "randperm"]
        self.gumbels = [arrays["gumbel_" + d["key"][len("exponential_"):]] for d in rest if d["kind"] == "exponential_"]
        self.log_scores: list[jax.Array] = []
        self.drawn: list[int] = []

    def normal(self, key, shape=(), dtype=jnp.float32):
        value = self.normals.pop(0)
        assert tuple(shape) == value.shape, f"normal of shape {tuple(shape)} where the official drew {value.shape}"
        return jnp.asarray(value, dtype)

    def sample_pair(self, key, num_q):
        return jnp.asarray(self.pairs.pop(0), jnp.int32)

    def categorical(self, key, logits, axis=-1, shape=None):
        gumbel = self.gumbels.pop(0)
        assert logits.shape == gumbel.shape and shape is None and axis in (-1, 0)
        index = jnp.argmax(logits + gumbel)
        self.log_scores.append(logits)
        self.drawn.append(int(index))
        return index

    def all_used(self) -> bool:
        return not (self.normals or self.pairs or self.gumbels)


def run_case(monkeypatch, name: str, case: str, **changes) -> tuple[list[parity.Row], dict]:
    """Our plan on one recorded case: (comparison rows, {'elite': (ours, official)})."""
    agent, params, arrays, entry = loaded(name, **changes)
    info = next(c for c in entry["cases"] if c["name"] == case)
    ref = {k[len(case) + 1:]: v for k, v in arrays.items() if k.startswith(case + "/")}
    cfg = agent.cfg
    draws = RecordedDraws(info["injected_randomness_call_order"], ref, cfg.horizon)
    task = jnp.asarray(ref["task"], jnp.int32) if "task" in ref else None
    with monkeypatch.context() as patch:
        patch.setattr(jax.random, "normal", draws.normal)
        patch.setattr(jax.random, "categorical", draws.categorical)
        patch.setattr(planner, "sample_pair", draws.sample_pair)
        with jax.disable_jit(), jax.default_matmul_precision("highest"):
            out, state = planner.plan(agent.model, params, jnp.asarray(ref["obs"]), planner.PlanState(
                jnp.asarray(ref["prev_mean"])), jax.random.key(0), jnp.asarray(ref["t0"]), task,
                eval_mode=bool(ref["eval_mode"]))
    assert draws.all_used(), "this planner drew fewer numbers than the official one"
    rows = [parity.compare(f"{name}/{case}/{key}", ours, ref[ref_key]) for key, ours, ref_key in (
        ("action", out.action, "action"), ("mean", out.mean, "mean"), ("warm_start", state.mean, "mean"),
        ("std", out.std, "std"), ("sequence", out.sequence, "sequence"), ("z", out.z, "z"),
        ("score", jnp.exp(draws.log_scores[0]), "score"))]
    return rows, {"elite": (draws.drawn[0], int(ref["elite_index"]))}


def test_the_fixtures_cover_the_planner_cases():
    for name in DIRS:
        cases = entries(name)
        assert {(c["t0"], c["eval_mode"]) for c in cases} == {(True, True), (True, False), (False, True),
                                                               (False, False)}
        for c in cases:  # the elite sets are decided by margins far above float32 rounding
            assert min(c["elite_boundary_value_gap_per_iteration"]) > 1e-4 and c["gumbel_argmax_lead"] > 1e-3
    multitask = entries("parity_multitask")
    action_dims = parity.Fixture(str(FIXTURES / "parity_multitask")).cfg.action_dims
    assert {c["task"] for c in multitask} == {0, 1, 2} and min(action_dims) < max(action_dims)


@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}-{c}" for n, c in CASES])
@pytest.mark.slow
def test_plan_matches_the_official_planner(monkeypatch, name, case):
    rows, info = run_case(monkeypatch, name, case)
    bad = [r for r in rows if not r.ok]
    assert not bad, parity.format_table(rows)
    ours, official = info["elite"]
    assert ours == official


@pytest.mark.slow
def test_a_wrong_temperature_fails(monkeypatch):
    """The comparison is sharp enough to see a 10% error in the softmax temperature."""
    cfg = loaded("parity_official")[0].cfg
    rows, _ = run_case(monkeypatch, "parity_official", "warm_explore", temperature=cfg.temperature * 1.1)
    assert {r.name.rsplit("/", 1)[-1] for r in rows if not r.ok} >= {"mean", "std", "score"}
