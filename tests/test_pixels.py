"""Pixel observations: the encoder and the whole update against the official code
(tests/fixtures/parity_rgb), official rgb weights, shapes, frame stacking and the frame buffer."""
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny
from helpers import kill_9_once, rows
from tiny import ROOT

from tdmpc2_jax import checkpoints, convert, loading, official, ops, parity
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.buffers.episodic import EpisodeBuffer
from tdmpc2_jax.config import make_config
from tdmpc2_jax.envs.base import StepResult
from tdmpc2_jax.envs import registry
from tdmpc2_jax.envs.pixels import PixelEnv
from tdmpc2_jax.networks import ConvEncoder
from tdmpc2_jax.planner import init_plan_state, make_planner
from tdmpc2_jax.types import Batch
from tdmpc2_jax.world_model import WorldModel
from tdmpc2_jax.run_record import resolve

FIXTURE = ROOT / "tests" / "fixtures" / "parity_rgb"


def official_conv_params(weights) -> dict:
    """`_encoder.rgb.{2,4,6,8}` (torch [out, in, kh, kw]) as the encoder's layers (kernels [kh, kw, in, out])."""
    return {f"layers_{i}": {"kernel": jnp.asarray(np.transpose(weights[f"_encoder.rgb.{2 + 2 * i}.weight"], (2, 3, 1, 0))),
                            "bias": jnp.asarray(weights[f"_encoder.rgb.{2 + 2 * i}.bias"])} for i in range(4)}


def test_the_shift_is_the_official_one():
    forward = np.load(FIXTURE / "forward.npz")
    shift = forward["shift"].reshape(-1, 2)
    shifted = ops.random_shift(jnp.asarray(forward["obs"]), jnp.asarray(shift), pad=3)
    chex.assert_shape(shifted, (4, 9, 64, 64))
    # the official grid_sample weighs in neighbours by a few millionths at sharp edges
    np.testing.assert_allclose(np.asarray(shifted) / 255, forward["enc_shifted"] / 255, atol=1e-5)
    # (column, row) order matters: the recorded shifts are not symmetric, so swapping them misses
    swapped = ops.random_shift(jnp.asarray(forward["obs"]), jnp.asarray(shift[:, ::-1]), pad=3)
    assert np.abs(np.asarray(swapped) - forward["enc_shifted"]).max() > 1.0


@pytest.mark.slow
def test_the_conv_encoder_is_the_official_one():
    forward, weights = np.load(FIXTURE / "forward.npz"), np.load(FIXTURE / "weights.npz")
    encoder = ConvEncoder(channels=8, simnorm_dim=8)
    init = encoder.init(jax.random.key(0), jnp.zeros((1, 9, 64, 64)))["params"]
    params = official_conv_params(weights)
    chex.assert_trees_all_equal_shapes(init, params)
    z = encoder.apply({"params": params}, jnp.asarray(forward["enc_shifted"]))
    chex.assert_shape(z, (4, 128))
    np.testing.assert_allclose(np.asarray(z), forward["z"], rtol=1e-5, atol=1e-6)
    # the same from the raw observations and the recorded shifts
    shifted = ops.random_shift(jnp.asarray(forward["obs"]), jnp.asarray(forward["shift"].reshape(-1, 2)), pad=3)
    np.testing.assert_allclose(np.asarray(encoder.apply({"params": params}, shifted)), forward["z"], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the whole agent on the fixture

@pytest.mark.slow
def test_the_rgb_fixture_passes_including_the_encoder_gradients_and_the_update():
    """Forward pass, TD targets, every gradient (conv layers included) and the parameters after
    one update, with the fixture's four shift draws injected (obs[1..3] first, then obs[0])."""
    rows = parity.run(str(FIXTURE))
    bad = [r for r in rows if not r.ok]
    assert not bad, parity.format_table(bad)
    names = {r.name.split(" ")[0] for r in rows}
    assert {"forward/z", "update/next_z", "update/zs", "update/td_targets", "update/grad/_encoder.rgb.2.weight",
            "update/grad/_encoder.rgb.8.bias", "update/after/_encoder.rgb.2.weight",
            "update/optimizer_on_ref_grads/_encoder.rgb.4.weight", "update/pi_loss"} <= names
    assert len(rows) > 200


@pytest.mark.slow
def test_without_the_recorded_shifts_the_update_differs():
    """The shifts matter: other shifts give other TD-target latents (so the parity above is not vacuous)."""
    fixture = parity.Fixture(str(FIXTURE))
    agent = Agent(fixture.cfg)
    params, _ = parity.load_params(agent, fixture.state_dict())
    update = np.load(FIXTURE / "update.npz")
    centred = agent.model.encode(params, jnp.asarray(update["obs"][1:]))
    assert np.abs(np.asarray(centred) - update["next_z"]).max() > 1e-3


def test_official_rgb_weights_convert_both_ways_and_in_the_older_layout():
    state = official.read_npz_state_dict(str(FIXTURE / "weights.npz"))
    cfg, params, target_qs = convert.to_project(state)
    assert (cfg.obs, cfg.image_shape, cfg.num_channels, cfg.latent_dim, cfg.obs_dim) == ("rgb", (9, 64, 64), 8, 128, 0)
    back = official.from_params(params, target_qs, cfg)
    for key in state:
        np.testing.assert_array_equal(back[key], state[key], err_msg=key)
    # the older released layout: _Qs.params.<4 layer + j>, _target_Qs.params.<...>
    names = official.OLD_NAMES
    older = {}
    for key, value in state.items():
        for new, old in (("_Qs.params.", "_Qs.params."), ("_target_Qs_params.", "_target_Qs.params.")):
            if key.startswith(new):
                layer, name = key[len(new):].split(".", 1)
                older[f"{old}{4 * int(layer) + names.index(name)}"] = value
                break
        else:
            if not key.startswith("_detach_Qs_params."):
                older[key] = value
    cfg_old, params_old, _ = convert.to_project(older)
    assert cfg_old == cfg
    jax.tree.map(np.testing.assert_array_equal, params_old, params)
    forward = np.load(FIXTURE / "forward.npz")
    z = WorldModel(cfg).encode(jax.tree.map(jnp.asarray, params), jnp.asarray(forward["obs"]),
                               shift=jnp.asarray(forward["shift"].reshape(-1, 2), jnp.int32))
    np.testing.assert_allclose(np.asarray(z), forward["z"], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- shapes, draws and planning

def pixel_config(**changes):
    values = dict(obs_dim=0, action_dim=2, obs="rgb", image_shape=(9, 64, 64), num_channels=2, latent_dim=32)
    return tiny.agent_config(**{**values, **changes})


@pytest.mark.slow
def test_pixel_world_model_shapes_and_shift_draws():
    cfg = pixel_config()
    model = WorldModel(cfg)
    params = model.init(jax.random.key(0))
    chex.assert_shape(params["encoder"]["layers_0"]["kernel"], (7, 7, 9, 2))
    images = jax.random.randint(jax.random.key(1), (4, 3, 9, 64, 64), 0, 256).astype(jnp.uint8)
    shift = model.draw_shift(jax.random.key(2), (4, 3))
    chex.assert_shape(shift, (4, 3, 2))
    assert shift.dtype == jnp.int32 and int(shift.min()) >= 0 and int(shift.max()) <= 6
    z = model.encode(params, images, shift=shift)
    chex.assert_shape(z, (4, 3, cfg.latent_dim))
    # one image's latent does not depend on the batch it is encoded in
    np.testing.assert_allclose(np.asarray(model.encode(params, images[1, 2], shift=shift[1, 2])), np.asarray(z[1, 2]),
                               rtol=1e-5, atol=1e-6)
    # acting draws a fresh shift from its key: two keys, two latents (the official encoder shifts at every call)
    z1 = model.encode_observation(params, images[0, 0], jax.random.key(3))
    z2 = model.encode_observation(params, images[0, 0], jax.random.key(4))
    chex.assert_shape(z1, (cfg.latent_dim,))
    assert np.abs(np.asarray(z1) - np.asarray(z2)).max() > 0
    assert WorldModel(tiny.agent_config()).draw_shift(jax.random.key(0), (3,)) is None
    with pytest.raises(ValueError, match=r"images must end in \(9, 64, 64\)"):
        model.encode(params, jnp.zeros((2, 3, 64, 64)))


@pytest.mark.slow
def test_a_pixel_update_and_plan_run_with_their_shapes():
    cfg = pixel_config()
    agent = Agent(cfg)
    state = agent.init(jax.random.key(0))
    h, b = cfg.horizon, cfg.batch_size
    draws = agent.sample_draws(jax.random.key(1), b)
    chex.assert_shape(draws.shift, (h + 1, b, 2))
    batch = Batch(obs=jax.random.randint(jax.random.key(2), (h + 1, b, 9, 64, 64), 0, 256).astype(jnp.uint8),
                  action=jnp.zeros((h, b, 2)), reward=jnp.ones((h, b)), terminated=jnp.zeros((h, b)))
    new, metrics = jax.jit(agent.update)(state, batch, jax.random.key(3))
    assert np.isfinite(float(metrics["total_loss"])) and int(new.step) == 1
    assert np.abs(np.asarray(new.params["encoder"]["layers_0"]["kernel"])
                  - np.asarray(state.params["encoder"]["layers_0"]["kernel"])).max() > 0
    with pytest.raises(ValueError, match=r"batch.obs must have shape \(4, 8, 9, 64, 64\)"):
        agent.update(state, batch._replace(obs=batch.obs[..., :32, :32]), jax.random.key(3))
    planned, _ = make_planner(agent.model, eval_mode=True)(new.params, batch.obs[0, 0], init_plan_state(h, 2),
                                                             jax.random.key(4), jnp.asarray(True))
    chex.assert_shape(planned.action, (2,))
    chex.assert_shape(planned.z, (cfg.latent_dim,))
    with pytest.raises(ValueError, match=r"plan takes one observation of shape \(9, 64, 64\)"):
        make_planner(agent.model, eval_mode=True)(new.params, batch.obs[0], init_plan_state(h, 2),
                                                   jax.random.key(4), jnp.asarray(True))


def test_pixel_configs_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="latent_dim = 16 \\* num_channels.*num_channels=2 gives 32, latent_dim is 16"):
        pixel_config(latent_dim=16)
    with pytest.raises(ValueError, match="obs=rgb takes images \\[C, 64, 64\\]"):
        pixel_config(image_shape=(9, 84, 84))
    with pytest.raises(ValueError, match="obs must be 'state' or 'rgb'"):
        tiny.agent_config(obs="depth")
    cfg = make_config({**tiny.AGENT, "obs_shape": {"rgb": [9, 64, 64]}, "action_dim": 2, "num_channels": 1})
    assert cfg.latent_dim == 16
    assert cfg.obs == "rgb" and cfg.obs_shape == (9, 64, 64)


# ---------------------------------------------------------------- frames: environment and buffer

class CountingCamera:
    """A host env whose camera shows the number of steps since reset in every pixel."""

    task, action_dim, episode_length = "counting", 1, 100

    def __init__(self):
        self.t = 0

    def reset(self):
        self.t = 0
        return np.zeros(1, np.float32)

    def step(self, action):
        self.t += 1
        return StepResult(np.zeros(1, np.float32), 1.0, False, False)

    def render(self, width, height):
        return np.full((height, width, 3), self.t, np.uint8)


@pytest.mark.slow
def test_the_pixel_env_stacks_the_last_three_frames_like_the_official_wrapper():
    env = PixelEnv(CountingCamera())
    newest = lambda obs: [int(obs[3 * f, 0, 0]) for f in range(3)]
    obs = env.reset()
    assert obs.shape == (9, 64, 64) and obs.dtype == np.uint8 and newest(obs) == [0, 0, 0]
    assert newest(env.step(np.zeros(1)).obs) == [0, 0, 1]
    assert newest(env.step(np.zeros(1)).obs) == [0, 1, 2]
    assert newest(env.step(np.zeros(1)).obs) == [1, 2, 3]
    assert newest(env.reset()) == [0, 0, 0]
    assert env.action_dim == 1 and env.episode_length == 100  # the rest is the wrapped env's


def episode_of_frames(steps: int, start: int) -> np.ndarray:
    """The stacked observations [T+1, 9, 64, 64] of an episode whose frame t shows start + t."""
    env, camera = PixelEnv(CountingCamera()), None
    camera = env.env
    camera.t = 0
    first = env.reset()
    obs = [first]
    for _ in range(steps):
        obs.append(env.step(np.zeros(1)).obs)
    return (np.stack(obs).astype(np.int64) + start).astype(np.uint8)


def test_the_buffer_stores_each_frame_once_and_rebuilds_the_stacks():
    buffer = EpisodeBuffer(40, (9, 64, 64), 1, horizon=3, stacked_frames=3)
    state_buffer = EpisodeBuffer(40, 9 * 64 * 64, 1, horizon=3)
    assert buffer.nbytes < state_buffer.nbytes / 10  # uint8 and one frame instead of float32 and three
    episodes = [episode_of_frames(12, 0), episode_of_frames(9, 100), episode_of_frames(15, 200)]
    for obs in episodes:
        buffer.add_episode(obs, np.zeros((len(obs) - 1, 1), np.float32), np.zeros(len(obs) - 1, np.float32))
    # the first episode was partly overwritten (12 + 1 + 9 + 1 + 15 + 1 rows in a ring of 40)
    batch = buffer.sample(np.random.default_rng(0), 64)
    chex.assert_shape(batch.obs, (4, 64, 9, 64, 64))
    assert batch.obs.dtype == np.uint8
    by_first_frame = {int(obs[0, 0, 0, 0]): obs for obs in episodes}
    for b in range(64):
        window = batch.obs[:, b]
        episode = by_first_frame[int(window[0, 0, 0, 0]) - int(window[0, 0, 0, 0]) % 100]
        start = int(np.flatnonzero((episode[:, 6, 0, 0] == window[0, 6, 0, 0]))[0])
        np.testing.assert_array_equal(window, episode[start:start + 4])
    restored = EpisodeBuffer(40, (9, 64, 64), 1, horizon=3, stacked_frames=3)
    restored.load_state_dict(buffer.state_dict())
    again = restored.sample(np.random.default_rng(0), 64)
    np.testing.assert_array_equal(again.obs, batch.obs)
    shuffled = episodes[1][::-1].copy()
    with pytest.raises(ValueError, match="not the frame stacks of one episode"):
        buffer.add_episode(shuffled, np.zeros((9, 1), np.float32), np.zeros(9, np.float32))
    with pytest.raises(ValueError, match="pixel observations must be uint8"):
        buffer.add_episode(episodes[1].astype(np.float32), np.zeros((9, 1), np.float32), np.zeros(9, np.float32))


# ---------------------------------------------------------------- end to end on a DMControl task

PIXEL_RUN = dict(obs="rgb", num_channels=2, latent_dim=32, steps=60, seed_steps=20, episode_length=20, eval_freq=60,
                 eval_episodes=1, checkpoint_every=20)


@pytest.mark.slow
def test_pixel_training_resumes_exactly_after_kill_9_and_its_checkpoint_evaluates(tmp_path):
    """Every command shares one compilation cache: the conv gradients compile once."""
    cache = tmp_path / "xla"
    command = lambda module, work_dir, *extra: [
        sys.executable, "-m", f"tdmpc2_jax.{module}", f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:cartpole-balance",
        *tiny.flags(tiny.AGENT, tiny.HOST_RUN, PIXEL_RUN, work_dir=work_dir, compilation_cache=cache), *extra]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    out = subprocess.run(command("train", straight), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "obs 9x64x64" in out.stdout + out.stderr

    kill_9_once(command("train", killed), killed / "checkpoints" / "40")
    survived = checkpoints.latest_step(str(killed / "checkpoints"))
    assert survived is not None and survived < 61, "the run must be killed mid-way"
    out = subprocess.run(command("train", killed, "--config.resume=True"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    finals = [checkpoints.load_model(str(run / "checkpoints"))[1] for run in (straight, killed)]
    jax.tree.map(np.testing.assert_array_equal, *finals)
    returns = lambda run: [(r["agent_step"], r["episode_reward"]) for r in rows(run / "eval.csv")]
    assert returns(killed) == returns(straight) and len(returns(straight)) == 2

    evaluate = command("evaluate", tmp_path / "unused", "--checkpoint", str(straight / "checkpoints"), "--episodes", "1")
    out = subprocess.run(evaluate + ["--video", str(tmp_path / "eval.mp4")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1 episodes, return mean" in out.stdout and (tmp_path / "eval.mp4").stat().st_size > 1000
    state_config = tiny.run_config("dmc.py", "cartpole-balance", tmp_path / "unused")
    with pytest.raises(ValueError, match="was trained on rgb observations: evaluate it with --config.obs=rgb"):
        loading.load_for_task(str(straight / "checkpoints"), resolve(state_config), 5, 1)


def test_pixels_are_refused_where_they_cannot_work():
    with pytest.raises(ValueError, match="only DMControl tasks have pixel observations"):
        registry.check_obs("mw-reach", "rgb")
    with pytest.raises(ValueError, match="choose 'state' or 'rgb'"):
        registry.check_obs("cartpole-balance", "pixels")
    mjx = tiny.load_config("mjx.py", "cartpole-balance")
    mjx.obs = "rgb"
    with pytest.raises(ValueError, match="obs=rgb runs on host MuJoCo.*Madrona on NVIDIA GPUs"):
        resolve(mjx)
    multitask = tiny.load_config("dmc.py", "mt30")
    multitask.obs = "rgb"
    with pytest.raises(ValueError, match="obs=rgb is single-task and online"):
        resolve(multitask)
    with pytest.raises(ValueError, match="cannot render frames"):
        PixelEnv(object())


@pytest.mark.slow
def test_an_episodic_rgb_fixture_of_other_sizes_passes():
    """Termination head and (1 - terminated) targets with pixels, horizon 4 (five shift draws),
    batch 6, 3 Q heads, 4 channels (latent 64): made by the official code like parity_rgb."""
    fixture = FIXTURE.parent / "parity_rgb_episodic"
    assert 0 < np.load(fixture / "update.npz")["terminated"].sum() < 24
    rows = parity.run(str(fixture))
    bad = [r for r in rows if not r.ok]
    assert not bad, parity.format_table(bad)
    names = {r.name.split(" ")[0] for r in rows}
    assert {"update/termination_loss", "update/grad/_encoder.rgb.2.weight", "update/grad/_termination.2.weight",
            "forward/z"} <= names


def test_the_renderer_is_chosen_or_refused_in_one_line(monkeypatch):
    from tdmpc2_jax.envs import pixels

    tried = []

    def broken(backend):
        tried.append(backend)
        return f"no {backend} library"

    monkeypatch.setattr(pixels, "_renders", broken)
    monkeypatch.setenv(pixels.DEFAULTED, "1")  # MUJOCO_GL=egl is a command line's default
    with pytest.raises(pixels.RendererUnavailable, match="MUJOCO_GL=egl: no egl library; MUJOCO_GL=osmesa: no osmesa"):
        pixels.select_renderer()
    assert tried == ["egl", "osmesa"]
    # a backend the user chose is the only one tried
    tried.clear()
    monkeypatch.delenv(pixels.DEFAULTED)
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    with pytest.raises(pixels.RendererUnavailable, match="MUJOCO_GL=osmesa: no osmesa library\\)"):
        pixels.select_renderer()
    assert tried == ["osmesa"]
