"""Corrector datasets and fitting: collected tuples train a corrector that moves toward the teacher."""
import chex
import jax
import numpy as np
import pytest

from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.speculative.controller import SpecSettings, Speculator
from tdmpc2_jax.speculative.correctors import Corrector, CorrectorSpec

from toy_env import PointMass


@pytest.mark.slow
def test_collected_tuples_train_a_corrector_that_moves_toward_the_teacher(model, params, tmp_path):
    from tdmpc2_jax.speculative import dataset, fitting

    env = MJXEnv("toy", episode_length=6, playground_env=PointMass())
    speculator = Speculator(model, SpecSettings(horizon_k=3), history=2)
    tuples = dataset.label_rollouts(env, speculator, params, None, jax.random.key(6), num_envs=4, steps=12)
    # per env: replans at steps 0, 3, 6 (new episode), 9 -> 8 reuse steps each
    chex.assert_shape((tuples.label, tuples.inputs.z_real, tuples.inputs.k), ((32, 1), (32, 2, 16), (32, 2)))
    assert set(np.asarray(tuples.inputs.k)[:, -1].tolist()) == {1, 2}
    dataset.save(str(tmp_path / "d.npz"), tuples, dict(task="toy", K=3))
    loaded, meta = dataset.load(str(tmp_path / "d.npz"))
    chex.assert_trees_all_equal(loaded, tuples)
    assert meta == dict(task="toy", K=3)

    newest = dataset.trim(loaded, 1)  # what an MLP corrector reads
    chex.assert_trees_all_equal(newest.inputs.z_real[:, 0], loaded.inputs.z_real[:, -1])
    chex.assert_shape(newest.inputs.k, (32, 1))
    with pytest.raises(ValueError, match="holds 2 steps of history per tuple, fewer than 3"):
        dataset.trim(loaded, 3)

    spec = CorrectorSpec(kind="transformer", latent_dim=16, action_dim=1, max_k=2, history=2, hidden=16, heads=2,
                         layers=1)
    corrector = Corrector(spec)
    result = fitting.fit(corrector, loaded, jax.random.key(7), epochs=40, batch_size=8, lr=3e-3, val_fraction=0.25,
                          patience=40, log=lambda _: None)
    assert result.train_loss[-1] < 0.5 * result.train_loss[0]
    fitting.save(str(tmp_path / "corrector"), result.params, spec, dict(task="toy", K=3))
    again, restored, _ = fitting.load(str(tmp_path / "corrector"), task="toy", latent_dim=16, horizon_k=3)
    chex.assert_trees_all_equal(restored, result.params)
    with pytest.raises(ValueError, match="trained for task 'toy', not 'cheetah-run'"):
        fitting.load(str(tmp_path / "corrector"), task="cheetah-run")
    with pytest.raises(ValueError, match="K up to 3, not 6"):
        fitting.load(str(tmp_path / "corrector"), horizon_k=6)


@pytest.mark.slow
def test_host_episodes_give_tuples_labelled_by_the_teacher(model, params):
    from tdmpc2_jax.envs.registry import make_host_env
    from tdmpc2_jax.speculative import dataset

    env = make_host_env("cartpole-balance", 3, episode_length=7)
    speculator = Speculator(model, SpecSettings(horizon_k=3), history=2)
    tuples = dataset.label_host(env, speculator, params, None, jax.random.key(6), episodes=2)
    # per episode: replans at steps 0, 3, 6 -> 4 reuse steps each, at k = 1, 2, 1, 2
    chex.assert_shape((tuples.label, tuples.inputs.z_real, tuples.inputs.k), ((8, 1), (8, 2, 16), (8, 2)))
    np.testing.assert_array_equal(np.asarray(tuples.inputs.k)[:, -1], [1, 2, 1, 2] * 2)
    assert np.all(np.abs(tuples.label) <= 1.0)
    # the newest input is the step's own encoding: the first tuple's previous step is the replan at t = 0
    assert np.asarray(tuples.inputs.valid)[0].tolist() == [True, True]
