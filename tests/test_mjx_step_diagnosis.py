"""MJX against MuJoCo's C library one physics step at a time (experiments/mjx_step_diagnosis.py):
rows and contacts matched across the two sides, options checked, and a real comparison."""
import numpy as np
import pytest

from experiments import mjx_step_diagnosis as diagnosis


def test_constraint_rows_are_matched_by_jacobian_whatever_their_order():
    c_J = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    m_J = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 5.0], [1.0, 0.0, 1e-9]])  # reordered, one extra row
    J, D, aref = diagnosis.row_diffs(c_J, np.array([4.0, 8.0]), np.array([1.0, 2.0]),
                                     m_J, np.array([8.0, 1.0, 5.0]), np.array([2.5, 0.0, 1.0]))
    assert J == pytest.approx(1e-9) and D == pytest.approx(0.25) and aref == pytest.approx(0.5)
    assert all(np.isnan(diagnosis.row_diffs(c_J[:0], c_J[:0, 0], c_J[:0, 0], m_J, m_J[:, 0], m_J[:, 0])))


def test_contacts_are_matched_within_their_geom_pair():
    frame = np.eye(3).ravel()
    c = [((0, 5), np.array([1.0, 0.0, 0.0]), frame, -0.01)]
    m = [((0, 4), np.array([1.0, 0.0, 0.0]), frame, -0.5), ((0, 5), np.array([3.0, 0.0, 0.0]), frame, 0.0),
         ((0, 5), np.array([1.0, 0.0, 1e-6]), frame, -0.02)]
    dist, pos, frame_diff = diagnosis.contact_diffs(c, m)
    assert (dist, pos, frame_diff) == (pytest.approx(0.01), pytest.approx(1e-6), 0.0)
    assert all(np.isnan(diagnosis.contact_diffs(c, [])))


def test_only_known_solver_options_are_set_on_mjx():
    assert diagnosis.parse_options(["tolerance=1e-12", "iterations=200"]) == {"tolerance": 1e-12, "iterations": 200}
    with pytest.raises(ValueError, match="--mjx_option=cone=1: give NAME=VALUE with NAME one of tolerance"):
        diagnosis.parse_options(["cone=1"])


def test_mjx_and_the_c_library_agree_step_by_step_on_dm_controls_cartpole():
    """No contacts, no limits: the two forward passes and trajectories agree to float32 noise."""
    rows = diagnosis.diagnose("cartpole-swingup", agent_steps=2, seed=0, options={})
    assert len(rows) == 4 and [r["agent_step"] for r in rows] == [1, 1, 2, 2]
    assert all(r["c_contacts"] == r["mjx_contacts"] == 0 and r["c_rows"] == r["mjx_rows"] == 0 for r in rows)
    assert max(r["qacc_diff"] for r in rows) < 1e-4 * max(r["qacc_max"] for r in rows)
    assert 0 < max(r["traj_diff"] for r in rows) < 1e-4
    assert diagnosis.first_beyond(rows, "qacc_diff", diagnosis.TOLERANCES["float32"]) is None


def test_on_dm_controls_walker_a_rounding_sized_velocity_change_leaves_float32_noise_within_an_episode():
    """The C library against itself: the smaller the change, the later, but always before step 500."""
    horizons = diagnosis.perturbation_horizons("walker-walk", seed=0)
    steps = [h["first_divergent_agent_step"] for h in horizons]
    assert [h["perturbation"] for h in horizons] == list(diagnosis.PERTURBATIONS)
    assert all(s is not None and s < 500 for s in steps) and steps == sorted(steps, reverse=True)
