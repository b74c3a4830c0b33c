"""Agent configuration: one frozen, hashable record of every setting the agent uses.

Configuration is read once at the edge (CLI, fixture README) and turned into a `Config`; the library
only ever sees this record, so it can be a static argument of jitted functions.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from tdmpc2_jax.names import close_matches

# Model-size presets of the official code (parameters in millions -> architecture keys).
MODEL_SIZES: dict[int, dict[str, int]] = {
    1: dict(enc_dim=256, mlp_dim=384, latent_dim=128, num_enc_layers=2, num_q=2),
    5: dict(enc_dim=256, mlp_dim=512, latent_dim=512, num_enc_layers=2, num_q=5),
    19: dict(enc_dim=1024, mlp_dim=1024, latent_dim=768, num_enc_layers=3, num_q=5),
    48: dict(enc_dim=1792, mlp_dim=1792, latent_dim=768, num_enc_layers=4, num_q=5),
    317: dict(enc_dim=4096, mlp_dim=4096, latent_dim=1376, num_enc_layers=5, num_q=8),
}
SIZE_KEYS = ("enc_dim", "mlp_dim", "latent_dim", "num_enc_layers", "num_q")


@dataclasses.dataclass(frozen=True)
class Config:
    """Every hyperparameter of one TD-MPC2 agent (official names and defaults, 5M architecture)."""

    # task geometry: state observations are vectors [obs_dim]; pixels (obs="rgb") are uint8 images
    # image_shape = [C, H, W] (stacked RGB frames) and leave obs_dim 0
    obs_dim: int
    action_dim: int
    obs: str = "state"
    image_shape: tuple[int, ...] = ()
    episode_length: int = 500
    episodic: bool = False
    # multitask (official semantics: padded obs, padded + masked actions, per-task discount)
    multitask: bool = False
    tasks: tuple[str, ...] = ()
    obs_dims: tuple[int, ...] = ()
    action_dims: tuple[int, ...] = ()
    episode_lengths: tuple[int, ...] = ()
    task_dim: int = 0
    # architecture
    num_enc_layers: int = 2
    enc_dim: int = 256
    num_channels: int = 32  # convolution widths of the pixel encoder
    mlp_dim: int = 512
    latent_dim: int = 512
    num_q: int = 5
    dropout: float = 0.01
    simnorm_dim: int = 8
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    # training
    batch_size: int = 256
    horizon: int = 3
    rho: float = 0.5
    lr: float = 3e-4
    enc_lr_scale: float = 0.3
    grad_clip_norm: float = 20.0
    tau: float = 0.01
    consistency_coef: float = 20.0
    reward_coef: float = 0.1
    value_coef: float = 0.1
    termination_coef: float = 1.0
    entropy_coef: float = 1e-4
    discount_denom: float = 5.0
    discount_min: float = 0.95
    discount_max: float = 0.995
    # planning
    mpc: bool = True
    iterations: int = 6
    num_samples: int = 512
    num_elites: int = 64
    num_pi_trajs: int = 24
    min_std: float = 0.05
    max_std: float = 2.0
    temperature: float = 0.5

    def __post_init__(self):
        if self.obs not in ("state", "rgb"):
            raise ValueError(f"obs must be 'state' or 'rgb', got {self.obs!r}")
        if self.obs == "rgb":
            self._check_pixels()
        elif self.obs_dim <= 0 or self.action_dim <= 0:
            raise ValueError(f"obs_dim and action_dim must be positive, got {self.obs_dim}, {self.action_dim}")
        positive = ("num_enc_layers", "enc_dim", "mlp_dim", "latent_dim", "simnorm_dim", "batch_size", "horizon",
                    "num_samples", "num_elites", "episode_length")
        not_positive = [f"{k}={getattr(self, k)}" for k in positive if getattr(self, k) < 1]
        if not_positive:
            raise ValueError(f"these must be >= 1: {', '.join(not_positive)}")
        if self.num_pi_trajs < 0 or self.iterations < 0:
            raise ValueError(f"num_pi_trajs and iterations must be >= 0, got {self.num_pi_trajs}, {self.iterations}")
        for low, high in (("vmin", "vmax"), ("log_std_min", "log_std_max"), ("min_std", "max_std"),
                          ("discount_min", "discount_max")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low}={getattr(self, low)} must be <= {high}={getattr(self, high)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.latent_dim % self.simnorm_dim:
            raise ValueError(f"latent_dim={self.latent_dim} is not divisible by simnorm_dim={self.simnorm_dim}")
        if self.num_q < 2:
            raise ValueError(f"num_q must be >= 2 (a random pair of heads is drawn), got {self.num_q}")
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be >= 2 for two-hot regression, got {self.num_bins}")
        if self.num_pi_trajs >= self.num_samples:
            raise ValueError(f"num_pi_trajs={self.num_pi_trajs} must be < num_samples={self.num_samples}")
        if self.num_elites > self.num_samples:
            raise ValueError(f"num_elites={self.num_elites} must be <= num_samples={self.num_samples}")
        if self.multitask:
            n = len(self.tasks)
            if not (n and len(self.action_dims) == n and len(self.episode_lengths) == n):
                raise ValueError("multitask needs tasks, action_dims and episode_lengths of equal length")
            if self.task_dim <= 0:
                raise ValueError("multitask needs task_dim > 0")
            if max(self.action_dims) != self.action_dim:
                raise ValueError(f"action_dim={self.action_dim} must equal max(action_dims)={max(self.action_dims)}")
        elif self.task_dim:
            raise ValueError("task_dim must be 0 for a single-task agent")

    def _check_pixels(self) -> None:
        if self.action_dim <= 0:
            raise ValueError(f"action_dim must be positive, got {self.action_dim}")
        if len(self.image_shape) != 3 or self.image_shape[1:] != (64, 64) or self.image_shape[0] < 1:
            raise ValueError(f"obs=rgb takes images [C, 64, 64] (the official encoder's size), got image_shape "
                             f"{self.image_shape}")
        if self.obs_dim:
            raise ValueError(f"obs=rgb has no obs_dim (the images are image_shape), got obs_dim={self.obs_dim}")
        if self.multitask:
            raise ValueError("obs=rgb is single-task (the official code has no multitask pixel encoder)")
        if self.latent_dim != 16 * self.num_channels:
            raise ValueError(f"obs=rgb needs latent_dim = 16 * num_channels (the conv encoder's flattened 4x4 map): "
                             f"num_channels={self.num_channels} gives {16 * self.num_channels}, latent_dim is "
                             f"{self.latent_dim}")

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation: (obs_dim,) or, for pixels, image_shape (C, H, W)."""
        return tuple(self.image_shape) if self.obs == "rgb" else (self.obs_dim,)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks) if self.multitask else 1

    @property
    def bin_size(self) -> float:
        return (self.vmax - self.vmin) / (self.num_bins - 1)

    @property
    def plan_iterations(self) -> int:
        """MPPI iterations: two more for large action spaces (official heuristic)."""
        return self.iterations + 2 * int(self.action_dim >= 20)

    def discount_for(self, episode_length: int) -> float:
        """clip((L/denom - 1) / (L/denom), discount_min, discount_max)."""
        frac = episode_length / self.discount_denom
        return min(max((frac - 1) / frac, self.discount_min), self.discount_max)

    @property
    def discounts(self) -> tuple[float, ...]:
        """Discount per task ([num_tasks]); a single entry for a single-task agent."""
        lengths = self.episode_lengths if self.multitask else (self.episode_length,)
        return tuple(self.discount_for(length) for length in lengths)

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    def architecture(self) -> dict[str, Any]:
        """The keys that fix the parameter shapes (what a checkpoint must agree on)."""
        keys = ("obs", "obs_dim", "image_shape", "action_dim", "episodic", "multitask", "task_dim", "num_enc_layers",
                "enc_dim", "num_channels", "mlp_dim", "latent_dim", "num_q", "simnorm_dim", "num_bins")
        out = {k: getattr(self, k) for k in keys}
        out["num_tasks"] = self.num_tasks
        return out


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Config))


def _leading_dim(shape: Any) -> int:
    """obs_shape entries come as {'state': [24]}, [24] or 24."""
    if isinstance(shape, Mapping):
        if "state" not in shape:
            raise ValueError(f"expected a state observation shape, got obs shape {dict(shape)}")
        shape = shape["state"]
    if isinstance(shape, (list, tuple)):
        return int(shape[0])
    return int(shape)


def _as_bool(key: str, value: Any) -> bool:
    """True/False, 1/0 or their spellings as text ('true', 'False', '1', ...)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return bool(value)


def make_config(values: Mapping[str, Any], *, strict: bool = True) -> Config:
    """Builds a Config from official-style keys.

    `model_size` (1, 5, 19, 48, 317) fills the size keys that are not given explicitly (None or
    absent); explicit size keys always win. `obs_shape` ({"state": [D]} or {"rgb": [C, H, W]}) may stand
    for `obs_dim` (or for `obs` and `image_shape`).
    With strict=True an unknown key is an error naming close matches; with strict=False unknown keys
    (wandb settings, paths, ...) are ignored.
    """
    values = {k: v for k, v in dict(values).items() if v is not None and v != "???"}
    size = values.pop("model_size", None)
    if size is not None:
        if int(size) not in MODEL_SIZES:
            raise ValueError(f"unknown model_size {size!r}; choose one of {sorted(MODEL_SIZES)}")
        for key, val in MODEL_SIZES[int(size)].items():
            values.setdefault(key, val)
    obs_shape = values.pop("obs_shape", None)  # the official key: {'state': [D]} or {'rgb': [C, H, W]}
    if isinstance(obs_shape, Mapping) and "rgb" in obs_shape:
        values.setdefault("obs", "rgb")
        values.setdefault("image_shape", tuple(int(d) for d in obs_shape["rgb"]))
    if values.get("obs") == "rgb":
        values.setdefault("obs_dim", 0)
    if "obs_dim" not in values:
        if obs_shape is not None:
            values["obs_dim"] = _leading_dim(obs_shape)
        elif values.get("obs_shapes"):
            values["obs_dim"] = max(_leading_dim(s) for s in values["obs_shapes"])
    if values.get("multitask"):
        if "obs_shapes" in values and "obs_dims" not in values:
            values["obs_dims"] = tuple(_leading_dim(s) for s in values["obs_shapes"])
        values.setdefault("action_dim", max(values.get("action_dims", [0])))
    known, unknown = {}, []
    for key, val in values.items():
        if key in FIELD_NAMES:
            known[key] = tuple(val) if isinstance(val, list) else val
        else:
            unknown.append(key)
    if strict and unknown:
        raise ValueError("unknown config keys: " + ", ".join(k + close_matches(k, FIELD_NAMES) for k in unknown))
    missing = [k for k in ("obs_dim", "action_dim") if k not in known]
    if missing:
        raise ValueError(f"config lacks {missing}")
    types = {f.name: f.type for f in dataclasses.fields(Config)}
    for key, val in known.items():
        if types[key] == "int":
            known[key] = int(val)
        elif types[key] == "float":
            known[key] = float(val)
        elif types[key] == "bool":
            known[key] = _as_bool(key, val)
        elif key == "image_shape":
            known[key] = tuple(int(d) for d in val)
    return Config(**known)
