"""Fixtures of the speculative-execution tests: a tiny world model for cartpole-sized tasks."""

import jax
import pytest

from tdmpc2_jax.world_model import WorldModel

import tiny


@pytest.fixture(scope="module")
def model():
    return WorldModel(tiny.agent_config())


@pytest.fixture(scope="module")
def params(model):
    return model.init(jax.random.key(0))
