"""``trajectory_regularized``: any optax factory, built with the step size.

The update rules of ``trsgd`` and ``tradam`` against the reference are in
``test_update_rules.py``; the battery over every optimizer is in
``test_common.py``.
"""

import functools

import chex
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers
from tests import reference

W0 = jnp.asarray([1.0, -2.0])


def linear_grad(w, k):
  return w + k


@pytest.mark.optax_not_strict  # optax's sgd momentum
def test_around_sgd_it_is_trsgd():
  lr = helpers.Piecewise([0.1, 0.01], [20])
  sgd = functools.partial(optax.sgd, momentum=0.9)
  tx = optax_prox.trajectory_regularized(sgd, lr, period=6, weight_decay=1e-3)
  ours, _ = helpers.run(
    tx, helpers.jax_grad, jnp.asarray(helpers.W0, jnp.float32), 30
  )
  theirs = reference.trsgd(
    helpers.numpy_grad, helpers.W0, lr.python, 30, period=6, weight_decay=1e-3
  )
  chex.assert_trees_all_close(list(ours), list(theirs), rtol=2e-5, atol=2e-6)


def test_the_factory_gets_the_inner_step_size_as_learning_rate():
  rates = []

  def recording_sgd(learning_rate):
    rates.append(learning_rate)
    return optax.sgd(learning_rate)

  tx = optax_prox.trajectory_regularized(recording_sgd, 0.6, period=3)
  helpers.run(tx, linear_grad, W0, 4, step=helpers.update_and_apply(tx.update))
  # init, then the updates at positions 0, 1, 2 and 0 again.
  np.testing.assert_allclose(rates, [0.6, 0.6, 0.3, 0.2, 0.6], rtol=1e-6)


@pytest.mark.parametrize(
  "factory",
  [
    lambda learning_rate: optax.sgd(learning_rate),
    functools.partial(optax.sgd, momentum=0.5),
  ],
  ids=["lambda", "partial"],
)
def test_factories_that_take_learning_rate_are_accepted(factory):
  tx = optax_prox.trajectory_regularized(factory, 0.1)
  updates, _ = tx.update(jnp.ones(2), tx.init(W0), W0)
  chex.assert_trees_all_close(updates, -0.1 * jnp.ones(2))


def test_keyword_arguments_are_passed_on_to_the_optimizer():
  forwarded = optax_prox.trajectory_regularized(
    optax.sgd, 0.1, period=3, momentum=0.9, nesterov=True
  )
  partial = optax_prox.trajectory_regularized(
    functools.partial(optax.sgd, momentum=0.9, nesterov=True), 0.1, period=3
  )
  plain = optax_prox.trajectory_regularized(optax.sgd, 0.1, period=3)
  runs = [
    helpers.run(tx, linear_grad, W0, 5)[0][-1]
    for tx in (forwarded, partial, plain)
  ]
  chex.assert_trees_all_equal(runs[0], runs[1])
  assert not np.allclose(runs[0], runs[2])  # ...and really reach it


def test_keyword_arguments_are_passed_on_under_inject_hyperparams():
  injected = optax.inject_hyperparams(
    functools.partial(optax_prox.trajectory_regularized, optax.sgd),
    static_args=("period",),
  )(0.1, period=3, momentum=0.9)
  direct = optax_prox.trajectory_regularized(
    optax.sgd, 0.1, period=3, momentum=0.9
  )
  runs = [helpers.run(tx, linear_grad, W0, 5)[0] for tx in (injected, direct)]
  chex.assert_trees_all_close(*runs, rtol=1e-6)


def test_the_default_lambda_w_is_a_tenth_of_the_first_rate():
  lr = helpers.Piecewise([0.2, 0.02], [4])
  runs = [
    helpers.run(
      optax_prox.trsgd(lr, period=3, lambda_w=lambda_w), linear_grad, W0, 6
    )[0]
    for lambda_w in (None, 0.02)
  ]
  chex.assert_trees_all_equal(*runs)
