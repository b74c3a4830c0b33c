"""Official PyTorch TD-MPC2 state dicts <-> this project's parameter pytrees.

Reads both official layouts:
  current: `_Qs.params.<layer>.<name>`, `_detach_Qs_params.*`, `_target_Qs_params.*`;
  older (checkpoints released with the paper): `_Qs.params.<N>` / `_target_Qs.params.<N>` with
  N = 4 * layer + j, j indexing (weight, bias, ln.weight, ln.bias).
Torch Linear weights are [out, in]; Flax kernels are [in, out]. The pixel encoder's convolutions
(`_encoder.rgb.2`, `.4`, `.6`, `.8`: torch [out, in, kh, kw]) become `layers_0..3` (kernels
[kh, kw, in, out]).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from tdmpc2_jax import torch_archive

StateDict = dict[str, np.ndarray]

MODULES = {  # official prefix -> (our tree, part)
    "_encoder.state.": ("params", "encoder"),
    "_encoder.rgb.": ("params", "encoder"),
    "_dynamics.": ("params", "dynamics"),
    "_reward.": ("params", "reward"),
    "_termination.": ("params", "termination"),
    "_pi.": ("params", "pi"),
    "_Qs.params.": ("params", "qs"),
    "_target_Qs_params.": ("target_qs", None),
}
CONV_LAYERS = (2, 4, 6, 8)  # indices of the Conv2d layers in the official pixel encoder's Sequential
SKIPPED_PREFIXES = ("_detach_Qs_params.",)  # shares storage with _Qs.params
OLD_NAMES = ("weight", "bias", "ln.weight", "ln.bias")


def read_torch_checkpoint(path: str) -> StateDict:
    """An official `.pt` checkpoint -> {official key: numpy array}, read without torch (nothing in it runs).

    Both released layouts: `torch.save({"model": state_dict})` and a bare state dict. The arrays are
    read-only and mapped from the file; entries that are no tensors (the `__batch_size` and `__device`
    that the Q-ensemble's TensorDictParams adds) are left out.
    """
    blob = torch_archive.load(path)
    state = blob["model"] if isinstance(blob, dict) and "model" in blob else blob
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)} if isinstance(state, dict) else {}
    if not arrays:
        raise ValueError(f"{path}: holds no state dict of tensors, so no TD-MPC2 checkpoint")
    return arrays


def read_npz_state_dict(path: str) -> StateDict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def upgrade_layout(state: StateDict) -> StateDict:
    """Older released layout -> current key names (returns the input if already current)."""
    if not any(k.startswith("_Qs.params.") and re.fullmatch(r"\d+", k[len("_Qs.params."):]) for k in state):
        return state
    out = {}
    for key, val in state.items():
        for old, new in (("_Qs.params.", "_Qs.params."), ("_target_Qs.params.", "_target_Qs_params.")):
            rest = key[len(old):] if key.startswith(old) else None
            if rest is not None and rest.isdigit():
                n = int(rest)
                out[f"{new}{n // 4}.{OLD_NAMES[n % 4]}"] = val
                break
        else:
            out[key] = val
    return out


def _set(tree: dict, path: list[str], value: np.ndarray) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def to_params(state: StateDict) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Official state dict (either layout) -> (params, target_qs, buffers).

    buffers holds the non-parameter tensors (`log_std_min`, `log_std_dif`, `_action_masks`).
    """
    state = upgrade_layout(dict(state))
    trees: dict[str, dict] = {"params": {}, "target_qs": {}}
    buffers = {}
    normed = {key[: -len(".ln.weight")] for key in state if key.endswith(".ln.weight")}
    for key, val in state.items():
        if key.startswith(SKIPPED_PREFIXES) or "__" in key:
            continue
        if key == "_task_emb.weight":
            trees["params"]["task_emb"] = np.asarray(val, np.float32)
            continue
        prefix = next((p for p in MODULES if key.startswith(p)), None)
        if prefix is None:
            buffers[key] = np.asarray(val)
            continue
        tree, part = MODULES[prefix]
        layer, _, name = key[len(prefix):].partition(".")
        if not layer.isdigit() or name not in OLD_NAMES:
            raise ValueError(f"unexpected official key {key!r}")
        val = np.asarray(val, np.float32)
        if prefix == "_encoder.rgb.":
            if name not in ("weight", "bias") or int(layer) not in CONV_LAYERS:
                raise ValueError(f"unexpected official key {key!r}")
            conv = f"layers_{CONV_LAYERS.index(int(layer))}"
            _set(trees[tree], [part, conv, "kernel" if name == "weight" else "bias"],
                 np.transpose(val, (2, 3, 1, 0)) if name == "weight" else val)
            continue
        if name == "weight":
            val = np.swapaxes(val, -1, -2)
        if key[: key.rindex(name) - 1] in normed or name.startswith("ln."):
            leaf = {"weight": ["linear", "kernel"], "bias": ["linear", "bias"],
                    "ln.weight": ["ln", "scale"], "ln.bias": ["ln", "bias"]}[name]
        else:
            leaf = {"weight": ["kernel"], "bias": ["bias"]}[name]
        path = ([part] if part else []) + [f"layers_{layer}"] + leaf
        _set(trees[tree], path, val)
    return trees["params"], trees["target_qs"], buffers


def from_params(params: Mapping[str, Any], target_qs: Mapping[str, Any], cfg) -> StateDict:
    """Inverse of to_params (current layout; `_detach_Qs_params` equals `_Qs.params`)."""
    out: StateDict = {}
    inverse = {v[1]: k for k, v in MODULES.items() if v[0] == "params" and k != "_encoder.rgb."}

    def walk(prefix: str, tree: Mapping[str, Any]) -> None:
        for layer_name, layer in tree.items():
            i = layer_name[len("layers_"):]
            if "linear" in layer:
                out[f"{prefix}{i}.weight"] = np.swapaxes(np.asarray(layer["linear"]["kernel"]), -1, -2)
                out[f"{prefix}{i}.bias"] = np.asarray(layer["linear"]["bias"])
                out[f"{prefix}{i}.ln.weight"] = np.asarray(layer["ln"]["scale"])
                out[f"{prefix}{i}.ln.bias"] = np.asarray(layer["ln"]["bias"])
            else:
                out[f"{prefix}{i}.weight"] = np.swapaxes(np.asarray(layer["kernel"]), -1, -2)
                out[f"{prefix}{i}.bias"] = np.asarray(layer["bias"])

    for part, tree in params.items():
        if part == "task_emb":
            out["_task_emb.weight"] = np.asarray(tree)
        elif part == "encoder" and getattr(cfg, "obs", "state") == "rgb":
            for i, layer in enumerate(CONV_LAYERS):
                conv = tree[f"layers_{i}"]
                out[f"_encoder.rgb.{layer}.weight"] = np.transpose(np.asarray(conv["kernel"]), (3, 2, 0, 1))
                out[f"_encoder.rgb.{layer}.bias"] = np.asarray(conv["bias"])
        else:
            walk(inverse[part], tree)
    qs = {k: v for k, v in out.items() if k.startswith("_Qs.params.")}
    out.update({"_detach_Qs_params." + k[len("_Qs.params."):]: v for k, v in qs.items()})
    walk("_target_Qs_params.", target_qs)
    out["log_std_min"] = np.asarray(int(cfg.log_std_min))
    out["log_std_dif"] = np.asarray(int(cfg.log_std_max - cfg.log_std_min))
    if cfg.multitask:
        masks = np.zeros((cfg.num_tasks, cfg.action_dim), np.float32)
        for t, dim in enumerate(cfg.action_dims):
            masks[t, :dim] = 1.0
        out["_action_masks"] = masks
    return out


def infer_architecture(state: StateDict) -> dict[str, Any]:
    """Architecture keys of an official state dict (either layout), for building a Config."""
    params, _, buffers = to_params(state)
    enc = params["encoder"]
    layers = sorted(enc, key=lambda n: int(n.split("_")[1]))
    task_dim = params["task_emb"].shape[1] if "task_emb" in params else 0
    pi_head = params["pi"]["layers_2"]["kernel"]
    if "kernel" in enc[layers[0]]:  # the pixel encoder: conv kernels [kh, kw, in, out]
        channels = enc[layers[0]]["kernel"].shape[3]
        encoder = dict(obs="rgb", obs_dim=0, image_shape=(enc[layers[0]]["kernel"].shape[2], 64, 64),
                       num_channels=channels, latent_dim=16 * channels)
    else:
        first, last = enc[layers[0]]["linear"]["kernel"], enc[layers[-1]]["linear"]["kernel"]
        encoder = dict(obs_dim=first.shape[0] - task_dim, latent_dim=last.shape[1], enc_dim=first.shape[1],
                       num_enc_layers=len(layers))
    arch = dict(
        **encoder,
        action_dim=pi_head.shape[1] // 2,
        mlp_dim=params["dynamics"]["layers_0"]["linear"]["kernel"].shape[1],
        num_q=params["qs"]["layers_0"]["linear"]["kernel"].shape[0],
        num_bins=params["reward"]["layers_2"]["kernel"].shape[1],
        episodic="termination" in params,
        multitask=task_dim > 0,
        task_dim=task_dim,
    )
    if "log_std_min" in buffers and "log_std_dif" in buffers:
        arch["log_std_min"] = float(buffers["log_std_min"])
        arch["log_std_max"] = float(buffers["log_std_min"] + buffers["log_std_dif"])
    if task_dim:
        num_tasks = params["task_emb"].shape[0]
        masks = buffers.get("_action_masks")
        arch["action_dims"] = (tuple(int(d) for d in masks.sum(-1)) if masks is not None
                               else (arch["action_dim"],) * num_tasks)
        arch["tasks"] = tuple(f"task{i}" for i in range(num_tasks))
        arch["episode_lengths"] = (500,) * num_tasks
    return arch
