"""TRSGD and TRAdam against the published update rules (tests/reference.py)."""

import functools

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers
from tests import reference

STEPS = 45
# Decays x0.1 at step 20 and again at 33: crosses several inner loops.
STEP_DECAY = helpers.Piecewise([1.0, 0.1, 0.01], [20, 33])


def scaled(schedule: helpers.Piecewise, base: float) -> helpers.Piecewise:
  return helpers.Piecewise([base * v for v in schedule.values],
                           schedule.boundaries)


def assert_trajectories_close(ours, theirs, rtol=2e-5, atol=2e-6):
  assert len(ours) == len(theirs)
  for k, (w, w_ref) in enumerate(zip(ours, theirs)):
    np.testing.assert_allclose(np.asarray(w), w_ref, rtol=rtol, atol=atol,
                               err_msg=f"step {k}")


def run_ours(tx, steps=STEPS):
  trajectory, _ = helpers.run(tx, helpers.jax_grad,
                              jnp.asarray(helpers.W0, jnp.float32), steps)
  return trajectory


@pytest.mark.parametrize("period", [7, 3])
@pytest.mark.parametrize("lambda_w", [None, 0.05])
@pytest.mark.parametrize("nesterov", [False, True])
def test_trsgd_follows_the_rules_with_a_step_schedule(period, lambda_w,
                                                      nesterov):
  lr = scaled(STEP_DECAY, 0.1)
  ours = run_ours(optax_prox.trsgd(
      lr, period=period, lambda_w=lambda_w, momentum=0.8, nesterov=nesterov,
      weight_decay=0.03))
  theirs = reference.trsgd(
      helpers.numpy_grad, helpers.W0, lr.python, STEPS, period=period,
      lambda_w=lambda_w, momentum=0.8, nesterov=nesterov, weight_decay=0.03)
  assert_trajectories_close(ours, theirs)


@pytest.mark.optax_not_strict
@pytest.mark.parametrize("period", [7, 4])
@pytest.mark.parametrize("lambda_w", [None, 0.002])
def test_tradam_follows_the_rules_with_a_step_schedule(period, lambda_w):
  lr = scaled(STEP_DECAY, 0.05)
  ours = run_ours(optax_prox.tradam(
      lr, period=period, lambda_w=lambda_w, b1=0.8, b2=0.99, eps=1e-6,
      weight_decay=0.02))
  theirs = reference.tradam(
      helpers.numpy_grad, helpers.W0, lr.python, STEPS, period=period,
      lambda_w=lambda_w, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.02)
  assert_trajectories_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_trsgd_with_a_constant_learning_rate():
  ours = run_ours(optax_prox.trsgd(0.05, period=5, weight_decay=1e-2))
  theirs = reference.trsgd(helpers.numpy_grad, helpers.W0, lambda k: 0.05,
                           STEPS, period=5, weight_decay=1e-2)
  assert_trajectories_close(ours, theirs)


def test_trsgd_without_momentum_is_proximal_sgd():
  ours = run_ours(optax_prox.trsgd(0.1, period=4, momentum=0.0))
  theirs = reference.trsgd(helpers.numpy_grad, helpers.W0, lambda k: 0.1,
                           STEPS, period=4, momentum=0.0)
  assert_trajectories_close(ours, theirs)


@pytest.mark.optax_not_strict
def test_trajectory_regularized_around_sgd_is_trsgd():
  lr = scaled(STEP_DECAY, 0.1)
  sgd = functools.partial(optax.sgd, momentum=0.9)
  ours = run_ours(optax_prox.trajectory_regularized(
      sgd, lr, period=6, weight_decay=1e-3))
  theirs = reference.trsgd(helpers.numpy_grad, helpers.W0, lr.python, STEPS,
                           period=6, weight_decay=1e-3)
  assert_trajectories_close(ours, theirs)


def test_the_pull_per_step_does_not_change_when_the_rate_decays():
  # mu_k * eta_k = 2 lambda_w on every step: the pull toward the anchor of a
  # zero-gradient, zero-momentum step is 2 lambda_w / (i + 1) * (w - a).
  lr = scaled(STEP_DECAY, 0.1)
  tx = optax_prox.trsgd(lr, period=4, lambda_w=0.05, momentum=0.0)
  w = jnp.asarray([1.0])
  state = tx.init(w)
  for k in range(30):
    updates, state = tx.update(jnp.zeros(1), state, w)
    anchor = optax.tree.get(state, "anchor")
    i = k % 4
    expected = -2 * 0.05 / (i + 1) * (w - anchor)
    np.testing.assert_allclose(updates, expected, rtol=1e-5, err_msg=str(k))
    w = w + updates + 0.01  # moves away from the anchor between steps


@pytest.mark.parametrize(
    "values", [[0.0, 0.1, 0.1, 0.0], [0.1, 0.0, 0.1, 0.0]],
    ids=["warmup-from-zero-and-decay-to-zero", "zero-in-the-middle"])
def test_zero_learning_rate_steps_have_no_pull_and_no_nan(values):
  lr = helpers.Piecewise(values, [5, 17, 30])
  ours = run_ours(optax_prox.trsgd(lr, period=4, lambda_w=0.01,
                                   weight_decay=1e-3))
  theirs = reference.trsgd(helpers.numpy_grad, helpers.W0, lr.python, STEPS,
                           period=4, lambda_w=0.01, weight_decay=1e-3)
  assert np.all(np.isfinite(np.asarray(ours)))
  assert_trajectories_close(ours, theirs)
