"""The host loop on the domains whose episodes report success (Meta-World, MyoSuite): a tiny run
trains and every eval row carries the success rate, at env steps counted with the domain's action
repeat."""
import pytest

import tiny
from helpers import rows

from tdmpc2_jax.envs.registry import action_repeat_of
from tdmpc2_jax.run_record import resolve


@pytest.mark.slow
@pytest.mark.parametrize("task, steps, episode_length", [("mw-reach", 120, 30), ("myo-reach", 80, 20)])
def test_the_host_loop_trains_and_logs_success(tmp_path, task, steps, episode_length):
    from tdmpc2_jax.loops import host

    config = tiny.run_config("dmc.py", task, tmp_path, steps=steps, seed_steps=steps // 2,
                             episode_length=episode_length, eval_freq=steps, checkpoint_every=1000)
    assert tiny.load_config("dmc.py", task).episode_length == 100
    result = host.train(resolve(config))
    assert result["episode_success"] in (0.0, 1.0)
    evals = rows(tmp_path / "eval.csv")
    assert [r["episode_success"] != "" for r in evals] == [True, True]
    assert [int(r["step"]) for r in evals] == [0, steps * action_repeat_of(task)]  # env steps
