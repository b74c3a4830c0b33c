"""Fixtures of the speculative-execution tests: a tiny world model for cartpole-sized tasks."""

import jax
import pytest

from tdmpc2_jax.config import make_config
from tdmpc2_jax.world_model import WorldModel

from speculative_helpers import CFG


@pytest.fixture(scope="module")
def model():
    return WorldModel(make_config(CFG))


@pytest.fixture(scope="module")
def params(model):
    return model.init(jax.random.key(0))
