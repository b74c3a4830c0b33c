"""Writes a pixel-observation (obs=rgb) parity fixture from the official PyTorch TD-MPC2.

    PYTHONPATH=.venv/lib/python3.11/site-packages .venv-official/bin/python -m experiments.rgb_fixture \\
        --official-repo PATH --out tests/fixtures/parity_rgb [key=value ...]
    python -m experiments.rgb_fixture --check tests/fixtures/parity_rgb      (NumPy only)

(the official code needs tensordict, this package's helpers import jax: the PYTHONPATH gives the
official interpreter both.) PATH is a checkout of github.com/nicklashansen/tdmpc2, copied and
patched for CPU as in benchmarks/versus_official.py. The agent is the official single-task one
with obs=rgb: 64x64 RGB images, three frames stacked on the channel axis (uint8 [9, 64, 64]),
encoded by common/layers.py conv(): ShiftAug(pad=3), x/255 - 0.5, four convolutions (7/2, 5/2,
3/2, 3/1, ReLU between them), Flatten and SimNorm. The config is small (RGB below): num_channels=8,
so latent_dim = 8 * 4 * 4 = 128; official config keys given as key=value change it (for
example num_channels=4 latent_dim=64 batch_size=6 horizon=4 num_q=3 episodic=true; an episodic
batch ends a quarter of its steps in a terminal state). The weights are the official init
perturbed as in experiments/parity_fixture.py, so the zero-initialised output layers are exercised.

Written to DIR: README.json, weights.npz, forward.npz (one encode of a batch with every encoder
stage, then dynamics / reward / Q / pi on its latent) and update.npz (one official TDMPC2._update).
The images are structured, not noise: per channel a linear gradient with a disc and a rectangle
that move from frame to frame (the rectangle may cross the border, where the replicate padding of
ShiftAug shows), so that a wrong shift changes the result.

ShiftAug draws torch.randint(0, 7, (n, 1, 1, 2)) on every encode call, in act and in update alike.
Its `torch` is swapped, in the official common.layers namespace only, for one whose randint comes
from a private generator and is recorded; WorldModel.pi's randn_like and WorldModel.Q's randperm
are injected as in parity_fixture.py. Every draw is saved in call order and the global torch RNG
is checked to be untouched. In _update the order is: one shift per frame of obs[1:] (encode of the
TD-target latents, frame by frame), eps and perm of _td_target, the shift of obs[0] (the rollout's
start), eps and perm of update_pi.

--check recomputes the encoder in float64 NumPy from the saved uint8 observations, the saved shifts
and weights.npz: replicate padding by 3, an integer crop at the drawn shift, /255 - 0.5, the
convolutions, SimNorm. It prints how far that is from the official grid_sample output and every
later stage, and from the update's next_z and zs[0]; it exits 1 if the crop is off by more than
CROP_TOLERANCE (in the [-0.5, 0.5] pixel scale) or a later stage by more than RTOL of its largest
value (ATOL floor). grid_sample's coordinates are integers only up to float32 rounding, so it
leaks a few 1e-6 of the neighbouring pixels into each output pixel: up to ~1e-3 in the 0..255
scale at sharp edges, ~1e-8 by the latent.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import platform
import sys
import zipfile
from typing import Any, Iterator

import numpy as np

SEEDS = dict(torch_manual_seed_init=1, perturb=101, forward_inputs=201, forward_injection=202, update_inputs=501,
             update_injection=502)
RGB = dict(obs="rgb", task="walker-run", num_channels=8, latent_dim=128, enc_dim=64, mlp_dim=64, num_q=2,
           batch_size=4, horizon=3, dropout=0.0, action_dim=6, episode_length=500)
FRAMES, SIZE, PAD = 3, 64, 3
ENCODER_STAGES = {  # index in model._encoder.rgb -> forward.npz key (the output of that module)
    0: "enc_shifted", 3: "enc_conv1", 5: "enc_conv2", 7: "enc_conv3", 8: "enc_conv4", 9: "enc_flat", 10: "z"}
CONV_KEYS = [f"_encoder.rgb.{i}" for i in (2, 4, 6, 8)]  # .weight [out, in, k, k] and .bias [out]
CONV_STRIDES = (2, 2, 2, 1)
CROP_TOLERANCE = 1e-5  # crop vs grid_sample, in the x/255 - 0.5 scale (bilinear leakage of float32 coordinates)
RTOL, ATOL = 1e-5, 1e-6  # later stages: as tdmpc2_jax/parity.py, max |diff| <= max(RTOL max |ref|, ATOL)


def scenes(torch, g, batch: int, frames: int):
    """uint8 [batch, frames, 3, SIZE, SIZE]: per channel a gradient, a moving disc and rectangle."""
    grid = torch.arange(SIZE, dtype=torch.float32) - (SIZE - 1) / 2
    y, x = grid[:, None], grid[None, :]
    out = torch.empty(batch, frames, 3, SIZE, SIZE)
    for b in range(batch):
        slope = (torch.rand(3, 2, generator=g) * 2 - 1) * 2.5  # levels per pixel along x and y
        offset = 64 + torch.rand(3, 1, 1, generator=g) * 128
        disc_color, rect_color = torch.rand(2, 3, 1, 1, generator=g) * 255
        disc_at = (torch.rand(2, generator=g) * 2 - 1) * 18
        disc_step = (torch.rand(2, generator=g) * 2 - 1) * 3
        radius = 5 + torch.rand((), generator=g) * 8
        rect_at = (torch.rand(2, generator=g) * 2 - 1) * 36  # corner; may lie beyond the border
        rect_size = 10 + torch.rand(2, generator=g) * 20
        rect_step = (torch.rand(2, generator=g) * 2 - 1) * 2
        background = offset + slope[:, 0, None, None] * x + slope[:, 1, None, None] * y
        for f in range(frames):
            cx, cy = disc_at + f * disc_step
            disc = (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2
            (x0, y0), (w, h) = rect_at + f * rect_step, rect_size
            rect = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)
            out[b, f] = torch.where(disc, disc_color, torch.where(rect, rect_color, background))
    return out.round().clamp(0, 255).to(torch.uint8)


def stacked(torch, frames):
    """[B, T + FRAMES - 1, 3, S, S] frames -> [T, B, 3 FRAMES, S, S] observations (obs[t]: frames t..t+2)."""
    t = frames.shape[1] - FRAMES + 1
    return torch.stack([frames[:, i: i + FRAMES].flatten(1, 2) for i in range(t)])


class _LayersTorch:
    """Stands in for `torch` inside common.layers: randint is the injector's, the rest is torch's."""

    def __init__(self, torch, randint):
        self._torch, self.randint = torch, randint

    def __getattr__(self, name: str):
        return getattr(self._torch, name)


def shift_injector(torch, seed: int):
    """parity_fixture.Injector that also serves and records ShiftAug's torch.randint."""
    from experiments.parity_fixture import Injector

    class ShiftInjector(Injector):
        called_from = "?"

        @contextlib.contextmanager
        def active(self, called_from: str) -> Iterator[None]:
            layers = _official("common.layers")
            randint = torch.randint

            def fake_randint(low, high, size, *, device=None, dtype=None):
                size = tuple(size)
                if (low, high) != (0, 2 * PAD + 1) or len(size) != 4 or size[1:] != (1, 1, 2):
                    raise RuntimeError(f"unexpected torch.randint({low}, {high}, {size}) in common.layers")
                value = randint(low, high, size, generator=self.generator, dtype=dtype)
                self._record("shift", "randint", value, "ShiftAug.forward", self.called_from)
                return value  # ShiftAug scales it in place; the record is a copy

            self.called_from = called_from
            layers.torch = _LayersTorch(torch, fake_randint)
            try:
                with super().active(called_from):
                    yield
            finally:
                layers.torch = torch

        def _record(self, prefix: str, kind: str, value, called_in: str, called_from: str) -> None:
            super()._record(prefix, kind, value, called_in, self.called_from)  # the caller set last, not the block's

    return ShiftInjector(torch, seed)


def rgb_config(defaults: dict, overrides: dict) -> Any:
    from experiments.parity_fixture import official_config

    cfg = official_config(defaults, {**RGB, **overrides})
    cfg.obs_shape = {"rgb": [3 * FRAMES, SIZE, SIZE]}  # in place of official_config's state shape
    if cfg.latent_dim != cfg.num_channels * 4 * 4:
        raise SystemExit("conv() flattens num_channels x 4 x 4: latent_dim must be 16 num_channels")
    return cfg


@contextlib.contextmanager
def encoder_stages(model) -> Iterator[dict]:
    """Outputs of the ENCODER_STAGES modules of model._encoder.rgb, kept while the block runs."""
    seen: dict[str, Any] = {}
    hooks = [model._encoder["rgb"][i].register_forward_hook(
        lambda _m, _in, out, key=key: seen.__setitem__(key, out.detach().clone())) for i, key in ENCODER_STAGES.items()]
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()


def forward_fixture(torch, agent, cfg, seed: int) -> tuple[dict, dict]:
    from experiments.parity_fixture import _describe, _np

    g = torch.Generator().manual_seed(seed)
    model, math = agent.model, _official("common.math")
    b = cfg.batch_size
    obs = stacked(torch, scenes(torch, g, b, FRAMES))[0]  # [B, 9, 64, 64]
    action = torch.rand(b, cfg.action_dim, generator=g) * 2 - 1
    inject = shift_injector(torch, seed + 1)
    out: dict[str, Any] = dict(obs=obs, action=action)
    with torch.no_grad(), inject.active("forward"), encoder_stages(model) as stages:
        z = model.encode(obs, None)
        out.update(stages)
        if not torch.equal(out["z"], z):
            raise RuntimeError("the SimNorm hook disagrees with model.encode")
        out.update(z=z, z_next=model.next(z, action, None), reward_logits=model.reward(z, action, None))
        out["reward_value"] = math.two_hot_inv(out["reward_logits"], cfg)
        for name, target in (("q", False), ("q_target", True)):
            logits = model.Q(z, action, None, return_type="all", target=target)
            out[f"{name}_logits_all"] = logits
            out[f"{name}_values_all"] = torch.stack([math.two_hot_inv(q, cfg) for q in logits])
        pi_action, info = model.pi(z, None)
        out.update(pi_action=pi_action, pi_mean=info["mean"], pi_log_std=info["log_std"], pi_entropy=info["entropy"],
                   pi_scaled_entropy=info["scaled_entropy"])
        out["pi_head_out"] = model._pi(z)
        out["pi_mean_pre_tanh"] = out["pi_head_out"][..., : cfg.action_dim]
        eps = torch.from_numpy(inject.arrays["eps_0"])
        out["pi_gaussian_logprob_pre_squash"] = math.gaussian_logprob(eps, info["log_std"])
        out["q_min"] = model.Q(z, action, None, return_type="min")
        perm = inject.arrays["perm_0"]
        randperm = torch.randperm  # q_avg reuses the same permutation (the schema has one `perm` for both)
        torch.randperm = lambda n, **_: torch.as_tensor(perm)
        try:
            out["q_avg"] = model.Q(z, action, None, return_type="avg")
        finally:
            torch.randperm = randperm
    arrays = {k: _np(v) for k, v in out.items()}
    arrays.update(shift=inject.arrays["shift_0"], eps=inject.arrays["eps_0"], perm=perm)
    info = {"mode": "model.eval(), torch.no_grad()",
            "call_sequence": ["encode (ShiftAug randint -> shift)", "next", "reward", "Q all", "Q all target",
                              "pi (randn_like -> eps)", "Q min (randperm -> perm)", "Q avg (the same perm)"],
            "injected_randomness_call_order": inject.order,
            "key_meanings": FORWARD_MEANINGS, "keys": _describe(arrays)}
    return arrays, info


FORWARD_MEANINGS = {
    "obs": "uint8 [B, 9, 64, 64]: three RGB frames stacked on channels (frame f = channels 3f..3f+2)",
    "action": "[B, A] in [-1, 1]",
    "shift": "ShiftAug's torch.randint(0, 7, (B, 1, 1, 2)) as drawn (float32 integers 0..6): [..., 0] is the "
             "column (x) offset, [..., 1] the row (y) offset into the replicate-padded 70x70 image",
    "enc_shifted": "output of ShiftAug (_encoder.rgb.0): grid_sample of the padded image, 0..255 scale, [B, 9, 64, 64]",
    "enc_conv1": "ReLU(conv 7x7 stride 2) of (enc_shifted / 255 - 0.5)  [B, C, 29, 29]  (_encoder.rgb.2, .3)",
    "enc_conv2": "ReLU(conv 5x5 stride 2)  [B, C, 13, 13]  (_encoder.rgb.4, .5)",
    "enc_conv3": "ReLU(conv 3x3 stride 2)  [B, C, 6, 6]  (_encoder.rgb.6, .7)",
    "enc_conv4": "conv 3x3 stride 1, no ReLU  [B, C, 4, 4]  (_encoder.rgb.8)",
    "enc_flat": "Flatten of enc_conv4 (channel-major: index c*16 + 4*row + col)  [B, 16 C]",
    "z": "SimNorm(enc_flat) = model.encode(obs, None)  [B, latent_dim]",
    "eps, perm, q_*, pi_*, reward_*, z_next": "as in the state fixtures (experiments/parity_fixture.py)",
}


def update_fixture(torch, agent, cfg, seed: int) -> tuple[dict, dict]:
    """One agent._update on an rgb batch, with its draws, internals, gradients and parameters after it."""
    from experiments.parity_fixture import METRICS, _describe, _np, entropy_recorder, grad_recorder, state_arrays

    g = torch.Generator().manual_seed(seed)
    h, b = cfg.horizon, cfg.batch_size
    obs = stacked(torch, scenes(torch, g, b, h + FRAMES))  # [H+1, B, 9, 64, 64], obs[t+1] one frame after obs[t]
    action = torch.rand(h, b, cfg.action_dim, generator=g) * 2 - 1
    reward = torch.rand(h, b, 1, generator=g) * 4 - 2
    terminated = torch.zeros(h, b, 1)
    if cfg.episodic:
        terminated = (torch.rand(h, b, 1, generator=g) < 0.25).float()
    inject = shift_injector(torch, seed + 1)
    record: dict[str, Any] = {}
    model = agent.model
    encode, td_target, update_pi, pi = model.encode, agent._td_target, agent.update_pi, model.pi

    def recording_encode(obs, task):
        inject.called_from = "_update: encode(obs[1:]) for next_z, one step t at a time" if obs.ndim == 5 \
            else "_update: encode(obs[0]) for zs[0]"
        return encode(obs, task)

    def recording_td_target(next_z, *args):
        inject.called_from = "_update: _td_target"
        record["next_z"] = next_z
        record["td_targets"] = td_target(next_z, *args)
        return record["td_targets"]

    def recording_update_pi(zs, task):
        inject.called_from = "_update: update_pi"
        record["zs"] = zs
        with _patched(model, "pi", recording_pi):
            return update_pi(zs, task)

    recording_pi = entropy_recorder(pi, record)

    names = {id(p): n for n, p in model.named_parameters()}
    scale_before = agent.scale.value.clone()
    with contextlib.ExitStack() as stack:
        for owner, attr, value in ((agent.optim, "step", grad_recorder(agent.optim, "grad/", names, record)),
                                   (agent.pi_optim, "step", grad_recorder(agent.pi_optim, "pi_grad/", names, record)),
                                   (model, "encode", recording_encode), (agent, "_td_target", recording_td_target),
                                   (agent, "update_pi", recording_update_pi)):
            stack.enter_context(_patched(owner, attr, value))
        with inject.active("_update"):
            info = agent._update(obs, action, reward, terminated)
    arrays = dict(obs=_np(obs), action=_np(action), reward=_np(reward), terminated=_np(terminated), **inject.arrays)
    arrays.update({k: _np(v) for k, v in record.items()})
    arrays.update({k: _np(v) for k, v in info.items() if k in METRICS})
    arrays.update(scale_before=_np(scale_before), scale_after=_np(agent.scale.value))
    after = state_arrays(torch, model)
    arrays.update({"after/" + k: v for k, v in after.items() if not k.startswith("_detach_Qs_params.")})
    shifts = [d["key"] for d in inject.order if d["kind"] == "randint"]
    description = {
        "call": "agent._update(obs, action, reward, terminated): one call, fresh Adam state, cfg.dropout=0",
        "parameters_before": "identical to weights.npz; RunningScale.value before = scale_before",
        "injected_randomness_call_order": inject.order,
        "injected_randomness_notes": [
            f"{', '.join(shifts[:h])}: ShiftAug of obs[1], ..., obs[H] (WorldModel.encode loops over the leading "
            f"axis of a 5-d rgb obs, one ShiftAug call per step); {shifts[h]}: ShiftAug of obs[0]",
            "eps_0 / perm_0: pi(next_z) and Q(next_z, a, min, target=True) in _td_target; eps_1 / perm_1: pi(zs) "
            "and Q(zs, a, avg, detach=True) in update_pi",
            "shift_i: raw randint [B, 1, 1, 2] (float32 integers 0..6; [..., 0] column offset, [..., 1] row offset)"],
        "key_meanings": {
            "obs": "uint8 [H+1, B, 9, 64, 64]; obs[t] stacks frames t, t+1, t+2 of one scene per batch element",
            "next_z": "model.encode(obs[1:]) [H, B, L] (no grad), the TD-target latents",
            "zs": "the latent rollout [H+1, B, L]; zs[0] = model.encode(obs[0])",
            "grad/<key>": "gradients at the model optimizer step (after clip_grad_norm_, official key names)",
            "pi_grad/<key>": "gradients at the policy optimizer step",
            "after/<key>": "model.state_dict() after the update; after/_detach_Qs_params.* is left out: it is "
                           "after/_Qs.params.* (shared storage in torch)"},
        "keys": _describe(arrays)}
    return arrays, description


@contextlib.contextmanager
def _patched(owner, attr: str, value) -> Iterator[None]:
    """owner.attr = value while the block runs; the instance is left as it was found."""
    missing = object()
    before = vars(owner).get(attr, missing)
    setattr(owner, attr, value)
    try:
        yield
    finally:
        if before is missing:
            delattr(owner, attr)
        else:
            setattr(owner, attr, before)


def _official(module: str):
    import importlib

    return importlib.import_module(module)


def write_npz(path: pathlib.Path, arrays: dict) -> None:
    """np.savez_compressed with a fixed zip timestamp, so that a rerun writes the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue(), compresslevel=9)


def generate(official_repo: pathlib.Path, out: pathlib.Path, overrides: list[str]) -> None:
    from benchmarks.versus_official import load_official
    from experiments.parity_fixture import _describe, parse_overrides, perturb, state_arrays

    agent_cls, _, defaults = load_official(official_repo)
    import tensordict
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg = rgb_config(defaults, parse_overrides(overrides))
    torch.manual_seed(SEEDS["torch_manual_seed_init"])
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        agent = agent_cls(cfg)
    order = [n for n, _ in agent.model.named_parameters() if not n.startswith(("_detach_Qs", "_target_Qs"))]
    perturb(torch, agent, SEEDS["perturb"])
    out.mkdir(parents=True, exist_ok=True)
    weights = state_arrays(torch, agent.model)
    write_npz(out / "weights.npz", weights)
    files: dict[str, Any] = {"weights.npz": {
        "content": "every tensor of model.state_dict() under the official key names (float32; log_std_* int64)",
        "conv_encoder_keys": {k + s: list(weights[k + s].shape) for k in CONV_KEYS for s in (".weight", ".bias")},
        "notes": ["Conv2d weights are [out, in, kh, kw] (torch layout), valid padding",
                  "_detach_Qs_params.* == _Qs.params.* (shared storage in torch)",
                  "_target_Qs_params.* = _Qs.params.* + 0.01 N(0,1)"],
        "keys": _describe(weights)}}
    for name, (arrays, info) in {
        "forward.npz": forward_fixture(torch, agent, cfg, SEEDS["forward_inputs"]),
        "update.npz": update_fixture(torch, agent, cfg, SEEDS["update_inputs"]),
    }.items():
        write_npz(out / name, arrays)
        files[name] = info
    readme = {
        "description": "TD-MPC2 parity fixture from the official PyTorch code on CPU (experiments/rgb_fixture.py), "
                       "single task, obs=rgb (64x64, 3 stacked RGB frames, uint8 [9, 64, 64]). Weights: official "
                       "init (torch seed torch_manual_seed_init), every parameter + 0.05 N(0,1), target Qs = "
                       "online + 0.01 N(0,1).",
        "official_commit": _commit(official_repo),
        "code_patches_for_cpu": ["'cuda:0' -> 'cpu' in tdmpc2.py and common/scale.py",
                                 "torch.optim.Adam(capturable=False)", "cfg.compile = False"],
        "library_versions": {"python": platform.python_version(), "torch": torch.__version__,
                             "tensordict": tensordict.__version__, "numpy": np.__version__},
        "torch_version": torch.__version__, "torch_num_threads": 1, "torch_use_deterministic_algorithms": True,
        "generated_by": "PYTHONPATH=.venv/lib/python3.11/site-packages .venv-official/bin/python -m "
                        f"experiments.rgb_fixture --official-repo PATH --out {out} {' '.join(overrides)}".rstrip(),
        "checked_by": f"python -m experiments.rgb_fixture --check {out}",
        "seeds": SEEDS,
        "seed_notes": "torch.manual_seed(torch_manual_seed_init) right before TDMPC2(cfg); every other random "
                      "value comes from a private torch.Generator with the listed seed; the global torch RNG is "
                      "checked to be untouched during the forward and update calls.",
        "config": {k: v for k, v in cfg.items()},
        "config_notes": {"latent_dim": "num_channels * 4 * 4 (conv() flattens a [C, 4, 4] map)",
                         "num_q": f"{cfg.num_q}: WorldModel.Q's perm[:2] picks the heads (min / avg do not "
                                  "depend on their order)",
                         "batch_size": f"B={cfg.batch_size} (zs is allocated with cfg.batch_size inside _update)",
                         "discount": "clip((500/5-1)/(500/5), 0.95, 0.995) = 0.99"},
        "encoder": {"module": "model._encoder.rgb = common.layers.conv(): 0 ShiftAug(pad=3), 1 PixelPreprocess, "
                              "2 Conv2d(9, C, 7, stride 2), 3 ReLU, 4 Conv2d(C, C, 5, stride 2), 5 ReLU, "
                              "6 Conv2d(C, C, 3, stride 2), 7 ReLU, 8 Conv2d(C, C, 3, stride 1), 9 Flatten, "
                              "10 SimNorm",
                    "shift_aug": "on every encode call (act and update alike, train and eval alike): replicate-pad "
                                 "by 3 to 70x70, then grid_sample (bilinear, align_corners=False) at base grid + "
                                 "2 shift / 70, which lands on pixel (row + shift[..., 1], col + shift[..., 0]) of "
                                 "the padded image: an integer crop up to float32 rounding (--check)"},
        "model_init_and_perturbation": {
            "steps": ["torch.manual_seed(seed_init); agent = TDMPC2(cfg) (official init; Conv2d keeps torch's "
                      "default init)",
                      "for name, p in model.named_parameters() (order below): p += 0.05 randn(generator=g_perturb)",
                      "each _target_Qs_params.<s> (sorted): _Qs.params.<s> + 0.01 randn (same generator)"],
            "perturbed_parameter_order": order},
        "files": files,
    }
    (out / "README.json").write_text(json.dumps(readme, indent=1, default=str) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{n} ({(out / n).stat().st_size} B)" for n in sorted(os.listdir(out))))


def _commit(repo: pathlib.Path) -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# ---------------------------------------------------------------- NumPy re-computation (--check)

def shift_crop(obs: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """ShiftAug as an integer crop: obs [N, C, S, S] (0..255), shift [N, 1, 1, 2] -> float64 [N, C, S, S]."""
    padded = np.pad(obs.astype(np.float64), ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)), mode="edge")
    offsets = shift.reshape(len(obs), 2)
    if not np.array_equal(offsets, np.round(offsets)) or offsets.min() < 0 or offsets.max() > 2 * PAD:
        raise ValueError("shifts are not integers in [0, 2 pad]")
    size = obs.shape[-1]
    return np.stack([p[:, int(dy): int(dy) + size, int(dx): int(dx) + size] for p, (dx, dy) in zip(padded, offsets)])


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """Valid cross-correlation (torch Conv2d) in float64: x [N, I, H, W], weight [O, I, k, k]."""
    k = weight.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nihwab,oiab->nohw", windows, weight.astype(np.float64)) + bias.astype(np.float64)[:, None, None]


def encoder_stages_np(weights: dict, obs: np.ndarray, shift: np.ndarray, simnorm_dim: int) -> dict[str, np.ndarray]:
    """Every ENCODER_STAGES output recomputed with the crop (float64)."""
    stages = {"enc_shifted": shift_crop(obs, shift)}
    x = stages["enc_shifted"] / 255.0 - 0.5
    for i, (key, stride) in enumerate(zip(CONV_KEYS, CONV_STRIDES), start=1):
        x = conv2d(x, weights[key + ".weight"], weights[key + ".bias"], stride)
        if i < len(CONV_KEYS):
            x = np.maximum(x, 0.0)
        stages[f"enc_conv{i}"] = x
    flat = x.reshape(len(x), -1)
    groups = flat.reshape(len(x), -1, simnorm_dim)
    groups = np.exp(groups - groups.max(-1, keepdims=True))
    stages.update(enc_flat=flat, z=(groups / groups.sum(-1, keepdims=True)).reshape(flat.shape))
    return stages


def check(directory: pathlib.Path) -> bool:
    readme = json.loads((directory / "README.json").read_text())
    simnorm_dim = readme["config"]["simnorm_dim"]
    load = lambda name: dict(np.load(directory / name))
    weights, forward, update = load("weights.npz"), load("forward.npz"), load("update.npz")
    ok = True

    def report(name: str, ours: np.ndarray, ref: np.ndarray, tolerance: float | None = None, scale: float = 1.0):
        nonlocal ok
        ref = ref.astype(np.float64) / scale
        diff, largest = float(np.max(np.abs(ours / scale - ref))), float(np.max(np.abs(ref)))
        tolerance = max(RTOL * largest, ATOL) if tolerance is None else tolerance
        ok &= diff <= tolerance
        print(f"{name:<46} {str(ref.shape):<14} max |diff| {diff:.2e}  max |ref| {largest:.2e}  "
              f"tolerance {tolerance:.1e}")

    stages = encoder_stages_np(weights, forward["obs"], forward["shift"], simnorm_dim)
    report("forward/enc_shifted, crop vs grid_sample /255", stages["enc_shifted"], forward["enc_shifted"],
           CROP_TOLERANCE, scale=255.0)
    raw = float(np.max(np.abs(stages["enc_shifted"] - forward["enc_shifted"])))
    print(f"{'  (the same in the 0..255 scale)':<46} {'':<14} max |diff| {raw:.2e}")
    for key in list(ENCODER_STAGES.values())[1:]:
        report(f"forward/{key}", stages[key], forward[key])
    # the update: obs[1..H] with the first H shift draws (next_z), obs[0] with the last (zs[0])
    order = readme["files"]["update.npz"]["injected_randomness_call_order"]
    shifts = [d["key"] for d in order if d["kind"] == "randint"]
    obs = update["obs"]
    next_z = np.stack([encoder_stages_np(weights, o, update[k], simnorm_dim)["z"] for o, k in zip(obs[1:], shifts)])
    report("update/next_z (shift draws 0..H-1)", next_z, update["next_z"])
    z0 = encoder_stages_np(weights, obs[0], update[shifts[-1]], simnorm_dim)["z"]
    report("update/zs[0] (last shift draw)", z0, update["zs"][0])
    moved = [k for k in (key + s for key in CONV_KEYS for s in (".weight", ".bias"))
             if not np.array_equal(update["after/" + k], weights[k])]
    print(f"conv parameters changed by the update: {len(moved)}/{2 * len(CONV_KEYS)}")
    ok &= len(moved) == 2 * len(CONV_KEYS)
    sizes = {n: (directory / n).stat().st_size for n in sorted(os.listdir(directory))}
    print("files: " + ", ".join(f"{n} {s / 1e3:.0f} kB" for n, s in sizes.items())
          + f"; total {sum(sizes.values()) / 1e6:.2f} MB")
    print("ok" if ok else "FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, help="directory to write (then checked)")
    parser.add_argument("--check", type=pathlib.Path, metavar="DIR", help="only check an existing fixture (NumPy)")
    parser.add_argument("overrides", nargs="*", help="official config key=value")
    args = parser.parse_args(argv)
    if args.check is not None:
        return 0 if check(args.check) else 1
    if args.official_repo is None or args.out is None:
        parser.error("--official-repo and --out are needed to generate (or --check DIR)")
    generate(args.official_repo, args.out, args.overrides)
    return 0 if check(args.out) else 1


if __name__ == "__main__":
    sys.exit(main())
