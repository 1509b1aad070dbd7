"""TRSGD and TRAdam against the published update rules (tests/reference.py)."""

import chex
import jax
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
  return helpers.Piecewise(
    [base * v for v in schedule.values], schedule.boundaries
  )


def assert_trajectories_close(ours, theirs, rtol=2e-5, atol=2e-6):
  """Ours in float32 against the reference in float64, step by step."""
  chex.assert_trees_all_close(list(ours), list(theirs), rtol=rtol, atol=atol)


def run_ours(tx, steps=STEPS):
  trajectory, _ = helpers.run(
    tx, helpers.jax_grad, jnp.asarray(helpers.W0, jnp.float32), steps
  )
  return trajectory


@pytest.mark.parametrize("period", [7, 3])
@pytest.mark.parametrize("lambda_w", [None, 0.05])
@pytest.mark.parametrize("nesterov", [False, True])
def test_trsgd_follows_the_rules_with_a_step_schedule(
  period, lambda_w, nesterov
):
  lr = scaled(STEP_DECAY, 0.1)
  hyperparameters = dict(
    period=period,
    lambda_w=lambda_w,
    momentum=0.8,
    nesterov=nesterov,
    weight_decay=0.03,
  )
  ours = run_ours(optax_prox.trsgd(lr, **hyperparameters))
  theirs = reference.trsgd(
    helpers.numpy_grad, helpers.W0, lr.python, STEPS, **hyperparameters
  )
  assert_trajectories_close(ours, theirs)


@pytest.mark.parametrize("period", [7, 4])
@pytest.mark.parametrize("lambda_w", [None, 0.002])
def test_tradam_follows_the_rules_with_a_step_schedule(period, lambda_w):
  lr = scaled(STEP_DECAY, 0.05)
  hyperparameters = dict(
    period=period,
    lambda_w=lambda_w,
    b1=0.8,
    b2=0.99,
    eps=1e-6,
    weight_decay=0.02,
  )
  ours = run_ours(optax_prox.tradam(lr, **hyperparameters))
  theirs = reference.tradam(
    helpers.numpy_grad, helpers.W0, lr.python, STEPS, **hyperparameters
  )
  assert_trajectories_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_trsgd_with_a_constant_learning_rate():
  ours = run_ours(optax_prox.trsgd(0.05, period=5, weight_decay=1e-2))
  theirs = reference.trsgd(
    helpers.numpy_grad,
    helpers.W0,
    lambda k: 0.05,
    STEPS,
    period=5,
    weight_decay=1e-2,
  )
  assert_trajectories_close(ours, theirs)


def test_trsgd_without_momentum_is_proximal_sgd():
  ours = run_ours(optax_prox.trsgd(0.1, period=4, momentum=None))
  theirs = reference.trsgd(
    helpers.numpy_grad, helpers.W0, lambda k: 0.1, STEPS, period=4, momentum=0.0
  )
  assert_trajectories_close(ours, theirs)


@pytest.mark.parametrize(
  "factory, hyperparameters",
  [
    (optax_prox.trsgd, dict(momentum=0.8, weight_decay=0.03)),
    (optax_prox.tradam, dict(b1=0.8, b2=0.99, eps=1e-6)),
  ],
  ids=["trsgd", "tradam"],
)
def test_lambda_w_may_be_a_schedule(factory, hyperparameters):
  # mu_k = 2 lambda_w(k) / eta_k, with both schedules stepping at other k.
  lr = scaled(STEP_DECAY, 0.05)
  lambda_w = helpers.Piecewise([0.002, 0.02, 0.0], [12, 30])
  ours = run_ours(factory(lr, period=5, lambda_w=lambda_w, **hyperparameters))
  rule = getattr(reference, factory.__name__)
  theirs = rule(
    helpers.numpy_grad,
    helpers.W0,
    lr.python,
    STEPS,
    period=5,
    lambda_w=lambda_w.python,
    **hyperparameters,
  )
  assert_trajectories_close(ours, theirs, rtol=1e-4, atol=1e-5)
  # And the schedule matters: a constant lambda_w gives another trajectory.
  constant = run_ours(factory(lr, period=5, lambda_w=0.002, **hyperparameters))
  assert not np.allclose(constant[-1], ours[-1], rtol=1e-3)


def test_the_pull_per_step_does_not_change_when_the_rate_decays():
  # mu_k * eta_k = 2 lambda_w on every step: the pull toward the anchor of a
  # zero-gradient, zero-momentum step is 2 lambda_w / (i + 1) * (w - a).
  lr = scaled(STEP_DECAY, 0.1)
  tx = optax_prox.trsgd(lr, period=4, lambda_w=0.05, momentum=None)
  w = jnp.asarray([1.0])
  state = tx.init(w)
  pulls, expected = [], []  # step by step
  for k in range(30):
    updates, state = tx.update(jnp.zeros(1), state, w)
    anchor = optax.tree.get(state, "anchor")
    pulls.append(updates)
    expected.append(-2 * 0.05 / (k % 4 + 1) * (w - anchor))
    w = w + updates + 0.01  # moves away from the anchor between steps
  chex.assert_trees_all_close(pulls, expected, rtol=1e-5)


@pytest.mark.parametrize(
  "values",
  [[0.0, 0.1, 0.1, 0.0], [0.1, 0.0, 0.1, 0.0]],
  ids=["warmup-from-zero-and-decay-to-zero", "zero-in-the-middle"],
)
def test_zero_learning_rate_steps_have_no_pull_and_no_nan(values):
  lr = helpers.Piecewise(values, [5, 17, 30])
  ours = run_ours(
    optax_prox.trsgd(lr, period=4, lambda_w=0.01, weight_decay=1e-3)
  )
  theirs = reference.trsgd(
    helpers.numpy_grad,
    helpers.W0,
    lr.python,
    STEPS,
    period=4,
    lambda_w=0.01,
    weight_decay=1e-3,
  )
  chex.assert_tree_all_finite(ours)
  assert_trajectories_close(ours, theirs)


# The reference's train.py: epochs of 23 steps with the inner-loop counter
# restarted at 0 each epoch (so every epoch ends with a short inner loop of
# 23 mod 7 = 2 steps), the rate set per epoch and dropped x0.1 after 2 of 4
# epochs, lambda_w fixed at 0.1 x the initial rate.
EPOCH_LENGTH, EPOCHS, RESTART_PERIOD = 23, 4, 7


def epoch_rate(k):
  return jnp.where(k >= 2 * EPOCH_LENGTH, 0.01, 0.1)


def epoch_rate_in_python(k):
  return 0.01 if k >= 2 * EPOCH_LENGTH else 0.1


def run_restarting_each_epoch(tx, w0):
  """Trains as train.py does, calling restart_inner_loop at each epoch."""
  step = jax.jit(tx.update)
  w, state = w0, tx.init(w0)
  trajectory = [w]
  for k in range(EPOCHS * EPOCH_LENGTH):
    if k % EPOCH_LENGTH == 0:
      state = optax_prox.restart_inner_loop(state)
    updates, state = step(helpers.jax_grad(w, k), state, w)
    w = optax.apply_updates(w, updates)
    trajectory.append(w)
  return trajectory


def max_relative_deviation(ours, theirs):
  return max(
    np.linalg.norm(np.asarray(w) - w_ref) / np.linalg.norm(w_ref)
    for w, w_ref in zip(ours, theirs, strict=True)
  )


@pytest.mark.parametrize("name", ["trsgd", "tradam"])
def test_restarting_each_epoch_reproduces_the_reference_driver(name):
  kwargs = {
    "trsgd": dict(momentum=0.9, weight_decay=5e-4),
    "tradam": dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=5e-4),
  }
  with jax.enable_x64(True):
    tx = getattr(optax_prox, name)(
      epoch_rate, period=RESTART_PERIOD, **kwargs[name]
    )
    ours = run_restarting_each_epoch(tx, jnp.asarray(helpers.W0))
    assert ours[-1].dtype == jnp.float64
  theirs = getattr(reference, name)(
    helpers.numpy_grad,
    helpers.W0,
    epoch_rate_in_python,
    EPOCHS * EPOCH_LENGTH,
    period=RESTART_PERIOD,
    epoch_length=EPOCH_LENGTH,
    **kwargs[name],
  )
  assert max_relative_deviation(ours, theirs) < 1e-9
  # Without the restarts the trajectory leaves the driver's after epoch 1.
  cycling = getattr(reference, name)(
    helpers.numpy_grad,
    helpers.W0,
    epoch_rate_in_python,
    EPOCHS * EPOCH_LENGTH,
    period=RESTART_PERIOD,
    **kwargs[name],
  )
  assert max_relative_deviation(cycling, theirs) > 1e-4


def tiny_gradient(w, k):
  return 1e-6 * helpers.jax_grad(w, k)


@pytest.mark.optax_not_strict  # runs optax's Adam
def test_tradam_adds_eps_before_the_bias_correction_as_the_reference():
  # With gradients of order 1e-6, eps = 1e-8 is not negligible next to
  # sqrt(v), and where it is added changes the trajectory.
  with jax.enable_x64(True):
    w0 = jnp.asarray(helpers.W0)
    ours, _ = helpers.run(
      optax_prox.tradam(0.01, period=5), tiny_gradient, w0, STEPS
    )
    optax_placement, _ = helpers.run(
      optax_prox.trajectory_regularized(optax.adam, 0.01, period=5),
      tiny_gradient,
      w0,
      STEPS,
    )
  theirs = reference.tradam(
    lambda w, k: 1e-6 * helpers.numpy_grad(w, k),
    helpers.W0,
    lambda k: 0.01,
    STEPS,
    period=5,
  )
  assert max_relative_deviation(ours, theirs) < 1e-12
  travelled = np.linalg.norm(theirs[-1] - theirs[0])
  assert np.linalg.norm(np.asarray(optax_placement[-1]) - theirs[-1]) > (
    0.1 * travelled
  )
