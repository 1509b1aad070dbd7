"""The schedules: ``inner_loop_schedule`` and the coupled strength."""

import chex
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers
from tests import reference

DECAY = helpers.Piecewise([0.6, 0.06], [7])


@pytest.mark.parametrize("learning_rate", [0.6, DECAY], ids=["float", "decay"])
def test_inner_loop_schedule_divides_the_rate_by_the_position(learning_rate):
  schedule = optax_prox.inner_loop_schedule(learning_rate, period=3)
  rate = DECAY.python if callable(learning_rate) else lambda k: learning_rate
  expected = [rate(k) / (k % 3 + 1) for k in range(12)]
  np.testing.assert_allclose(
    [schedule(jnp.asarray(k)) for k in range(12)], expected, rtol=1e-6
  )


def test_a_hand_composition_with_the_schedule_is_trsgd_without_momentum():
  # chain(proximal_regularize(mu, S), sgd(inner_loop_schedule(eta, S))) is
  # TRSGD without momentum for mu = 2 lambda_w / eta.
  eta, lambda_w, period, steps = 0.1, 0.02, 4, 30
  tx = optax.chain(
    optax_prox.proximal_regularize(2 * lambda_w / eta, period),
    optax.sgd(optax_prox.inner_loop_schedule(eta, period)),
  )
  ours, _ = helpers.run(
    tx, helpers.jax_grad, jnp.asarray(helpers.W0, jnp.float32), steps
  )
  theirs = reference.trsgd(
    helpers.numpy_grad,
    helpers.W0,
    lambda k: eta,
    steps,
    period=period,
    lambda_w=lambda_w,
    momentum=0.0,
  )
  chex.assert_trees_all_close(list(ours), list(theirs), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("values", [[0.0, 0.1], [0.1, 0.0]])
def test_no_pull_where_the_rate_is_zero(values):
  # mu_k = 2 lambda_w / eta_k would divide by zero; the pull is off there.
  lr = helpers.Piecewise(values, [3])
  tx = optax_prox.trsgd(lr, period=6, lambda_w=0.01, momentum=None)
  w = jnp.asarray([1.0])
  state = tx.init(w)
  for k in range(6):
    updates, state = tx.update(jnp.zeros(1), state, w)
    if lr.python(k) == 0:
      np.testing.assert_array_equal(updates, 0.0)
    w = w + 0.5  # away from the anchor, so that any pull would show
