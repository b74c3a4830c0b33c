"""The TD-MPC2 world model as pure functions over a parameter pytree.

`WorldModel(cfg)` holds only static things (the Flax modules, action masks, discounts); every method
takes the parameters explicitly. Parameters are a dict:

    encoder, dynamics, reward, pi: mlp parameters
    qs:          Q-head parameters stacked on a leading [num_q] axis
    termination: (episodic only) mlp parameters
    task_emb:    (multitask only) [num_tasks, task_dim] embedding table

Pixel observations (cfg.obs == "rgb") are encoded by the official conv stack after its random shift
(replicate padding of SHIFT_PAD, then an integer crop); the shift is drawn by the caller
(`draw_shift`) like every other random number.

Multitask follows the official semantics: the task embedding (rows renormalised to norm <= 1) is
concatenated to every network input, actions beyond a task's own dimensions are masked.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax import ops
from tdmpc2_jax.config import Config
from tdmpc2_jax.networks import MLP, ConvEncoder, dense, split_first_linear
from tdmpc2_jax.types import Params

SHIFT_PAD = 3  # the official ShiftAug's padding (pixels on each side of a 64x64 image)


class WorldModel:
    """Encoder, latent dynamics, reward, termination, policy prior and Q ensemble of one agent."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        hidden = (cfg.mlp_dim, cfg.mlp_dim)
        if cfg.obs == "rgb":
            self.encoder = ConvEncoder(cfg.num_channels, cfg.simnorm_dim)
        else:
            self.encoder = MLP((cfg.enc_dim,) * max(cfg.num_enc_layers - 1, 1), cfg.latent_dim,
                               simnorm_dim=cfg.simnorm_dim)
        self.dynamics = MLP(hidden, cfg.latent_dim, simnorm_dim=cfg.simnorm_dim)
        self.reward_net = MLP(hidden, cfg.num_bins, zero_head=True)
        self.termination_net = MLP(hidden, 1) if cfg.episodic else None
        self.pi_net = MLP(hidden, 2 * cfg.action_dim)
        self.q_net = MLP(hidden, cfg.num_bins, dropout_rate=cfg.dropout, zero_head=True)
        masks = np.ones((cfg.num_tasks, cfg.action_dim), np.float32)
        if cfg.multitask:
            masks[:] = 0.0
            for i, dim in enumerate(cfg.action_dims):
                masks[i, :dim] = 1.0
        self.action_masks = jnp.asarray(masks)  # [num_tasks, A]
        self.discounts = jnp.asarray(cfg.discounts, jnp.float32)  # [num_tasks]

    # ------------------------------------------------------------------ parameters
    def init(self, key: jax.Array) -> Params:
        """Official initialisation: N(0, 0.02) weights, zero biases, zero reward/Q heads."""
        cfg = self.cfg
        k_enc, k_dyn, k_rew, k_term, k_pi, k_q, k_emb = jax.random.split(key, 7)
        z_dim, za_dim = cfg.latent_dim + cfg.task_dim, cfg.latent_dim + cfg.task_dim + cfg.action_dim
        init = lambda net, k, width: net.init(k, jnp.zeros((1, width)))["params"]
        if cfg.obs == "rgb":
            encoder = self.encoder.init(k_enc, jnp.zeros((1, *cfg.image_shape)))["params"]
        else:
            encoder = init(self.encoder, k_enc, cfg.obs_dim + cfg.task_dim)
        params = {
            "encoder": encoder,
            "dynamics": init(self.dynamics, k_dyn, za_dim),
            "reward": init(self.reward_net, k_rew, za_dim),
            "pi": init(self.pi_net, k_pi, z_dim),
            "qs": jax.vmap(lambda k: init(self.q_net, k, za_dim))(jax.random.split(k_q, cfg.num_q)),
        }
        if cfg.episodic:
            params["termination"] = init(self.termination_net, k_term, z_dim)
        if cfg.multitask:
            params["task_emb"] = jax.random.uniform(k_emb, (cfg.num_tasks, cfg.task_dim), minval=-0.02, maxval=0.02)
        return params

    # ------------------------------------------------------------------ task conditioning
    def task_embedding(self, params: Params, task: jax.Array) -> jax.Array:
        """Rows of the task table [..., task_dim], renormalised to norm <= 1 (torch max_norm=1).

        As in torch the renormalisation is not differentiated through (the gradient reaches the row
        as if it had been stored renormalised).
        """
        row = params["task_emb"][task]
        norm = jnp.linalg.norm(row, axis=-1, keepdims=True)
        renormed = row * jnp.where(norm > 1.0, 1.0 / (norm + 1e-7), 1.0)
        return row + jax.lax.stop_gradient(renormed - row)

    def with_task(self, params: Params, x: jax.Array, task: jax.Array | None) -> jax.Array:
        """[x, task embedding] for a multitask agent, x otherwise. `task` broadcasts to x.shape[:-1]."""
        if not self.cfg.multitask:
            return x
        if task is None:
            raise ValueError("a multitask model needs a task index")
        emb = self.task_embedding(params, jnp.asarray(task))
        emb = jnp.broadcast_to(emb, x.shape[:-1] + emb.shape[-1:])
        return jnp.concatenate([x, emb], axis=-1)

    def action_mask(self, task: jax.Array | None) -> jax.Array:
        """[..., A] mask of the task's own action dimensions (all ones for a single task)."""
        if not self.cfg.multitask:
            return self.action_masks[0]
        return self.action_masks[jnp.asarray(task)]

    def discount(self, task: jax.Array | None) -> jax.Array:
        """Discount of the task ([] or [...] like task)."""
        if not self.cfg.multitask:
            return self.discounts[0]
        return self.discounts[jnp.asarray(task)]

    # ------------------------------------------------------------------ components
    def encode(self, params: Params, obs: jax.Array, task: jax.Array | None = None,
               shift: jax.Array | None = None) -> jax.Array:
        """obs [..., obs_dim] or images [..., C, H, W] -> z [..., latent_dim].

        Images are shifted by `shift` [..., 2] ((column, row) offsets into the padded image, from
        `draw_shift`); without one they are not shifted (offset SHIFT_PAD).
        """
        if self.cfg.obs != "rgb":
            self._check_last(obs, self.cfg.obs_dim, "obs")
            return self.encoder.apply({"params": params["encoder"]}, self.with_task(params, obs, task))
        if obs.shape[-3:] != self.cfg.image_shape:
            raise ValueError(f"images must end in {self.cfg.image_shape} [C, H, W], got shape {tuple(obs.shape)}")
        batch_shape = obs.shape[:-3]
        if shift is None:
            shift = jnp.full(batch_shape + (2,), SHIFT_PAD, jnp.int32)
        images = obs.reshape((-1, *self.cfg.image_shape))
        shifted = ops.random_shift(images, shift.reshape(-1, 2), SHIFT_PAD)
        z = self.encoder.apply({"params": params["encoder"]}, shifted)
        return z.reshape(batch_shape + z.shape[-1:])

    def draw_shift(self, key: jax.Array, batch_shape: tuple[int, ...]) -> jax.Array | None:
        """Random shifts of images [*batch_shape, C, H, W]: [*batch_shape, 2] in 0..2 SHIFT_PAD
        (None for state observations, which are not augmented)."""
        if self.cfg.obs != "rgb":
            return None
        return jax.random.randint(key, tuple(batch_shape) + (2,), 0, 2 * SHIFT_PAD + 1, jnp.int32)

    def encode_observation(self, params: Params, obs: jax.Array, key: jax.Array,
                           task: jax.Array | None = None) -> jax.Array:
        """`encode` of observations as the agent acts on them: images get a fresh shift drawn from
        `key` (the official encoder shifts at every call, acting included)."""
        batch_shape = obs.shape[:-3] if self.cfg.obs == "rgb" else ()
        return self.encode(params, obs, task, self.draw_shift(key, batch_shape))

    def _za(self, params: Params, z: jax.Array, a: jax.Array, task) -> jax.Array:
        self._check_last(z, self.cfg.latent_dim, "z")
        self._check_last(a, self.cfg.action_dim, "action")
        return jnp.concatenate([self.with_task(params, z, task), a], axis=-1)

    def next(self, params: Params, z: jax.Array, a: jax.Array, task: jax.Array | None = None) -> jax.Array:
        """Latent dynamics: z [..., L], a [..., A] -> z' [..., L]."""
        return self.dynamics.apply({"params": params["dynamics"]}, self._za(params, z, a, task))

    def reward(self, params: Params, z: jax.Array, a: jax.Array, task: jax.Array | None = None) -> jax.Array:
        """Reward logits [..., num_bins]."""
        return self.reward_net.apply({"params": params["reward"]}, self._za(params, z, a, task))

    def termination(self, params: Params, z: jax.Array, task: jax.Array | None = None) -> jax.Array:
        """Termination logits [...] (episodic agents only)."""
        x = self.with_task(params, z, task)
        return self.termination_net.apply({"params": params["termination"]}, x)[..., 0]

    def pi(self, params: Params, z: jax.Array, eps: jax.Array, task: jax.Array | None = None) -> ops.SquashedGaussian:
        """Policy prior sample with the given N(0, 1) draws eps [..., A] (raw, masked here)."""
        self._check_last(z, self.cfg.latent_dim, "z")
        out = self.pi_net.apply({"params": params["pi"]}, self.with_task(params, z, task))
        mean, raw_log_std = jnp.split(out, 2, axis=-1)
        log_std = ops.log_std(raw_log_std, self.cfg.log_std_min, self.cfg.log_std_max - self.cfg.log_std_min)
        if self.cfg.multitask:
            mask = self.action_mask(task)
            mean, log_std, eps = mean * mask, log_std * mask, eps * mask
            action_dims = jnp.broadcast_to(jnp.sum(mask, axis=-1), mean.shape[:-1])
        else:
            action_dims = self.cfg.action_dim
        return ops.squashed_gaussian(mean, log_std, eps, action_dims)

    def q_logits(self, qs: Params, z: jax.Array, a: jax.Array, task: jax.Array | None = None, *,
                 params: Params | None = None, dropout_key: jax.Array | None = None) -> jax.Array:
        """Logits of every head in `qs` (stacked [n, ...]): [n, ..., num_bins].

        `params` supplies the task table in multitask; `dropout_key` turns dropout on (one mask per head).
        The first Linear is split into its latent and action parts (`first_linear`): the policy loss
        differentiates the heads only with respect to the action, and so never forms the latent's
        share of the input gradient.
        """
        self._check_last(z, self.cfg.latent_dim, "z")
        self._check_last(a, self.cfg.action_dim, "action")
        zt = self.with_task(params, z, task)

        def apply(p, k):
            return self.q_net.apply({"params": p}, first_linear(p, zt, a), deterministic=k is None,
                                    rngs=None if k is None else {"dropout": k}, method=MLP.after_first_linear)

        n = jax.tree.leaves(qs)[0].shape[0]
        if dropout_key is None or self.cfg.dropout == 0:
            return jax.vmap(lambda p: apply(p, None))(qs)
        return jax.vmap(apply)(qs, jax.random.split(dropout_key, n))

    def q_values(self, qs: Params, z, a, task=None, **kwargs) -> jax.Array:
        """Scalar values of every head: [n, ...]."""
        return self.to_value(self.q_logits(qs, z, a, task, **kwargs))

    def q_pair(self, qs: Params, z: jax.Array, a: jax.Array, pair: jax.Array, task: jax.Array | None = None, *,
               reduce: str, params: Params | None = None, dropout_key: jax.Array | None = None) -> jax.Array:
        """min or mean of the heads `pair` ([2] indices): [...]. Only those two heads are evaluated."""
        chosen = jax.tree.map(lambda p: p[pair], qs)
        q = self.q_values(chosen, z, a, task, params=params, dropout_key=dropout_key)
        if reduce == "min":
            return jnp.minimum(q[0], q[1])
        if reduce == "avg":
            return (q[0] + q[1]) / 2
        raise ValueError(f"reduce must be 'min' or 'avg', got {reduce!r}")

    def step(self, params: Params, z: jax.Array, a: jax.Array, task: jax.Array | None = None
             ) -> tuple[jax.Array, jax.Array]:
        """Reward value [...] and next latent [..., L] of z [..., L] under a [..., A]."""
        return self.to_value(self.reward(params, z, a, task)), self.next(params, z, a, task)

    def step_shared(self, params: Params, z: jax.Array, a: jax.Array, task: jax.Array | None = None
                    ) -> tuple[jax.Array, jax.Array]:
        """`step` from ONE latent z [L] under many actions a [N, A]: ([N], [N, L]).

        The latent's share of the first Linear of the dynamics and reward networks is computed once
        instead of N times (the same numbers up to float rounding).
        """
        self._check_last(z, self.cfg.latent_dim, "z")
        self._check_last(a, self.cfg.action_dim, "action")
        zt = self.with_task(params, z, task)
        outputs = []
        for net, name in ((self.reward_net, "reward"), (self.dynamics, "dynamics")):
            h = first_linear(params[name], zt, a)
            outputs.append(net.apply({"params": params[name]}, h, method=MLP.after_first_linear))
        reward_logits, next_z = outputs
        return self.to_value(reward_logits), next_z

    def to_value(self, logits: jax.Array) -> jax.Array:
        """Two-hot logits [..., num_bins] -> scalars [...]."""
        return ops.two_hot_inv(logits, self.cfg.num_bins, self.cfg.vmin, self.cfg.vmax)

    def soft_ce(self, logits: jax.Array, target: jax.Array) -> jax.Array:
        return ops.soft_ce(logits, target, self.cfg.num_bins, self.cfg.vmin, self.cfg.vmax)

    @staticmethod
    def _check_last(x: jax.Array, dim: int, name: str) -> None:
        if x.shape[-1:] != (dim,):
            raise ValueError(f"{name} must have last axis {dim}, got shape {tuple(x.shape)}")


def first_linear(mlp_params: Params, zt: jax.Array, a: jax.Array) -> jax.Array:
    """The first Linear of an mlp on [zt, a] as zt @ K_z + b + a @ K_a: [..., out].

    zt may lack leading axes of a (one latent for many actions); the result is the broadcast shape.
    """
    shared, per_action = split_first_linear(mlp_params, zt.shape[-1])
    return dense(shared, zt) + a @ per_action["kernel"]


def sample_pair(key: jax.Array, num_q: int) -> jax.Array:
    """Two distinct Q-head indices, like randperm(num_q)[:2]: [2] int32."""
    return jax.random.permutation(key, num_q)[:2].astype(jnp.int32)


def count_params(params: Params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
