"""experiments/speculative_trace.py: the mode it traces and the saturation it reports."""
import numpy as np
import pytest

from experiments import speculative_trace


def test_a_traced_mode_is_any_protocol_mode_or_corrector_variant():
    named = lambda name: speculative_trace.mode_named(name, ["mlp", "transformer"])
    assert named("full").k == 1 and named("naive-3").corrector is None
    assert named("mlp-4+fallback:policy").mismatch == "policy" and named("mlp-4+fallback:policy").fallback
    assert named("transformer-3@0.5+critic").critic_check and named("transformer-3@0.5+critic").scale == 0.5
    with pytest.raises(ValueError, match=r"unknown mode 'mlp-3\+fallbak': at K=3 the modes are full, naive-3"):
        named("mlp-3+fallbak")


def test_saturation_is_the_share_of_steps_at_a_bound_per_action_entry():
    actions = np.asarray([[1.0, 0.2], [-0.995, 0.98], [0.5, -1.0], [0.99, 0.0]])
    assert speculative_trace.saturation(actions) == [0.75, 0.25]
    assert speculative_trace.saturation(np.zeros((0, 2))) == []
