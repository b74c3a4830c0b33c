"""How the speculative commands run episodes on a run's backend, chosen once: batched MJX rollouts
(one compiled program, progress every tenth of the steps) or host episodes one after another
(progress every episode)."""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

from tdmpc2_jax.speculative import calibration, dataset, modes


class Episodes(NamedTuple):
    """The three ways the protocol runs episodes, each `(env, speculator, params, ..., key, count)`:
    `count` is episodes for run_mode and calibrate, and the size of a collection for label (host:
    episodes; MJX: batched steps of `envs` environments)."""

    run_mode: Callable  # (env, speculator, params, corrector_params, key, episodes) -> a mode's figures
    calibrate: Callable  # (env, speculator, params, key, episodes) -> Checks of full replanning
    label: Callable  # (env, speculator, params, corrector_params, key, count) -> Dataset


def episodes_on(backend: str, on_step: Callable[[int], None], on_episode: Callable[[int, float, int], None],
                envs: int = 1) -> Episodes:
    """The Episodes of "mjx" (reporting to `on_step`, labels from `envs` environments at once) or
    of "host" (reporting to `on_episode`)."""
    if backend == "mjx":
        label = lambda env, spec, p, c, key, steps: dataset.label_rollouts(env, spec, p, c, key, envs, steps, on_step)
        return Episodes(functools.partial(modes.run_mjx, on_progress=on_step),
                        functools.partial(calibration.calibration_mjx, on_progress=on_step), label)
    return Episodes(functools.partial(modes.run_host, on_episode=on_episode),
                    functools.partial(calibration.calibration_host, on_episode=on_episode),
                    functools.partial(dataset.label_host, on_episode=on_episode))
