"""proximal_regularize: a hand-traced trajectory, and drop-in use with optax."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers


def test_hand_traced_trajectory():
  # strength 0.5, period 3, plain SGD at 0.1, constant gradient 1 from w=10:
  # k=0 (i=0): a=10,  g=1,                   w=9.9
  # k=1 (i=1): g=1 + 0.5 (9.9 - 10) = 0.95,   w=9.805
  # k=2 (i=2): g=1 + 0.5 (9.805 - 10)=0.9025, w=9.71475
  # k=3 (i=0): a=9.71475, g=1,                w=9.61475
  tx = optax.chain(optax_prox.proximal_regularize(0.5, period=3),
                   optax.sgd(0.1))
  trajectory, state = helpers.run(tx, lambda w, k: jnp.ones_like(w),
                                  jnp.asarray([10.0]), 4)
  np.testing.assert_allclose(
      np.concatenate(trajectory), [10.0, 9.9, 9.805, 9.71475, 9.61475],
      rtol=1e-6)
  prox_state = state[0]
  np.testing.assert_allclose(prox_state.anchor, [9.71475], rtol=1e-6)
  # 4 updates applied; the next one is at position 1 of its inner loop.
  np.testing.assert_array_equal(prox_state.counts, [4, 1])


def test_strength_schedule_is_evaluated_at_the_update_count():
  seen = []

  def strength(count):
    seen.append(count)
    return jnp.asarray(0.0)

  tx = optax_prox.proximal_regularize(strength, period=2)
  seen.clear()  # construction checks the schedule at step 0
  params = jnp.zeros(2)
  state = tx.init(params)
  for _ in range(3):
    _, state = tx.update(params, state, params)
  assert [int(c) for c in seen] == [0, 1, 2]


def test_position_is_minus_one_exactly_when_the_next_update_refreshes():
  tx = optax.chain(optax_prox.proximal_regularize(0.5, period=3),
                   optax.sgd(0.1))
  params = jnp.asarray([1.0])
  state = tx.init(params)
  positions = [int(state[0].counts[1])]
  for _ in range(7):
    updates, state = tx.update(jnp.ones(1), state, params)
    params = optax.apply_updates(params, updates)
    positions.append(int(state[0].counts[1]))
  assert positions == [-1, 1, 2, -1, 1, 2, -1, 1]


def test_without_a_period_the_first_params_stay_the_anchor():
  tx = optax.chain(optax_prox.proximal_regularize(0.5), optax.sgd(0.1))
  trajectory, state = helpers.run(tx, lambda w, k: jnp.ones_like(w),
                                  jnp.asarray([10.0]), 25)
  np.testing.assert_array_equal(state[0].anchor, [10.0])
  # w_{k+1} = w_k - 0.1 (1 + 0.5 (w_k - 10)): a contraction toward 8.
  w = 10.0
  for _ in range(25):
    w = w - 0.1 * (1 + 0.5 * (w - 10.0))
  np.testing.assert_allclose(trajectory[-1], [w], rtol=1e-6)
  assert int(state[0].counts[1]) == 25


INT32_MAX = np.iinfo(np.int32).max


@pytest.mark.parametrize("period, position, expected", [
    (3, 1, -1),  # 1 -> 2 -> -1 -> 1 -> ... : eight updates end on a refresh
    (None, INT32_MAX - 4, INT32_MAX),  # saturates; never refreshed again
])
def test_counters_saturate_or_cycle_past_the_int32_limit(period, position,
                                                        expected):
  tx = optax_prox.proximal_regularize(jnp.asarray(1.0), period)
  params = jnp.ones(2)
  state = tx.init(params)._replace(
      counts=jnp.asarray([INT32_MAX - 4, position], jnp.int32))
  for _ in range(8):
    _, state = tx.update(jnp.zeros(2), state, params)
  np.testing.assert_array_equal(state.counts, [INT32_MAX, expected])


def test_period_may_be_as_long_as_int32_allows():
  tx = optax_prox.proximal_regularize(1.0, INT32_MAX)
  params = jnp.ones(1)
  state = tx.init(params)._replace(
      counts=jnp.asarray([5, INT32_MAX - 1], jnp.int32))
  _, state = tx.update(jnp.zeros(1), state, params)
  np.testing.assert_array_equal(state.counts, [6, -1])
