import pytest

from tdmpc2_jax.config import MODEL_SIZES, make_config


def test_model_size_fills_size_keys_and_explicit_keys_win():
    cfg = make_config(dict(model_size=1, obs_dim=24, action_dim=6))
    assert (cfg.enc_dim, cfg.mlp_dim, cfg.latent_dim, cfg.num_enc_layers, cfg.num_q) == (256, 384, 128, 2, 2)
    cfg = make_config(dict(model_size=317, mlp_dim=64, obs_dim=24, action_dim=6))
    assert cfg.mlp_dim == 64 and cfg.latent_dim == MODEL_SIZES[317]["latent_dim"] and cfg.num_q == 8


def test_unknown_model_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown model_size 7.*\[1, 5, 19, 48, 317\]"):
        make_config(dict(model_size=7, obs_dim=24, action_dim=6))


def test_unknown_key_names_close_matches():
    with pytest.raises(ValueError, match="did you mean 'horizon'"):
        make_config(dict(obs_dim=24, action_dim=6, horizn=5))


def test_discount_follows_episode_length():
    cfg = make_config(dict(obs_dim=3, action_dim=1, episode_length=500))
    assert cfg.discounts == (0.99,)
    cfg = make_config(dict(obs_dim=3, action_dim=1, episode_length=10))
    assert cfg.discounts == (0.95,)  # clipped below
    cfg = make_config(dict(obs_dim=3, action_dim=1, episode_length=10_000))
    assert cfg.discounts == (0.995,)  # clipped above


def test_large_action_spaces_plan_two_more_iterations():
    assert make_config(dict(obs_dim=3, action_dim=19)).plan_iterations == 6
    assert make_config(dict(obs_dim=3, action_dim=38)).plan_iterations == 8


def test_multitask_needs_consistent_task_lists():
    with pytest.raises(ValueError, match="multitask"):
        make_config(dict(obs_dim=3, action_dim=2, multitask=True, tasks=["a", "b"], action_dims=[2],
                         episode_lengths=[500, 500], task_dim=4))


def test_obs_shape_stands_for_obs_dim_like_the_official_config():
    cfg = make_config(dict(obs_shape={"state": [24]}, action_dim=6, wandb_project="x"), strict=False)
    assert cfg.obs_dim == 24


@pytest.mark.parametrize("bad, message", [
    (dict(mlp_dim=0), "mlp_dim=0"),
    (dict(horizon=0), "horizon=0"),
    (dict(vmin=5.0, vmax=-5.0), "vmin=5.0 must be <= vmax"),
    (dict(min_std=3.0), "min_std=3.0 must be <= max_std"),
    (dict(dropout=1.0), "dropout must be in"),
    (dict(num_pi_trajs=-1), "num_pi_trajs and iterations must be >= 0"),
    (dict(episodic="maybe"), "episodic must be true or false"),
])
def test_out_of_range_settings_are_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        make_config(dict(obs_dim=3, action_dim=2, **bad))


def test_booleans_given_as_text_are_read_as_such():
    assert make_config(dict(obs_dim=3, action_dim=2, episodic="False")).episodic is False
    assert make_config(dict(obs_dim=3, action_dim=2, episodic="true")).episodic is True
