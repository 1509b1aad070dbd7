"""The momentum and Adam rules that trsgd and tradam build on."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import optax_prox

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


def state_bytes(state):
  return sum(x.nbytes for x in jax.tree.leaves(state))


def test_momentum_none_stores_no_buffer_also_when_injected():
  plain = optax_prox.trsgd(0.1, momentum=None).init(PARAMS)
  injected = optax.inject_hyperparams(
    optax_prox.trsgd, static_args=("period",)
  )(learning_rate=0.1, momentum=None)
  state = injected.init(PARAMS)
  assert jax.tree.structure(state.inner_state) == jax.tree.structure(plain)
  with_momentum = optax_prox.trsgd(0.1, momentum=0.9).init(PARAMS)
  assert state_bytes(with_momentum) - state_bytes(plain) == state_bytes(PARAMS)
  # The injected update keeps that tree, jitted.
  _, state = jax.jit(injected.update)(PARAMS, state, PARAMS)
  assert jax.tree.structure(state.inner_state) == jax.tree.structure(plain)


def test_momentum_zero_keeps_a_buffer_as_optax_sgd_does():
  # optax.sgd(momentum=0.0) keeps a trace; so does trsgd, and the buffer
  # makes the same steps as no buffer at all.
  with_buffer = optax_prox.trsgd(0.1, period=3, momentum=0.0)
  without = optax_prox.trsgd(0.1, period=3, momentum=None)
  buffer = state_bytes(with_buffer.init(PARAMS)) - state_bytes(
    without.init(PARAMS)
  )
  assert buffer == state_bytes(PARAMS)
  params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
  state_with, state_without = with_buffer.init(params), without.init(params)
  for k in range(5):
    grads = jax.tree.map(jnp.sin, optax.tree.add_scale(params, k, PARAMS))
    updates, state_with = with_buffer.update(grads, state_with, params)
    expected, state_without = without.update(grads, state_without, params)
    chex.assert_trees_all_equal(updates, expected)
    params = optax.apply_updates(params, updates)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_bias_correction_is_computed_in_at_least_float32(dtype):
  # b2 = 0.999 rounds to 1 in bfloat16, where sqrt(1 - b2**t) would be 0.
  tx = optax_prox.tradam(1e-2, period=4, lambda_w=0.0)
  w = jnp.ones(3, dtype)
  updates, _ = tx.update(jnp.full(3, 0.5, dtype), tx.init(w), w)
  assert updates.dtype == dtype
  # The first Adam step is -lr * sign(g) (up to eps).
  chex.assert_trees_all_close(
    updates.astype(jnp.float32), jnp.full(3, -1e-2), rtol=1e-2
  )


def test_tradams_state_names_are_unique_for_optax_tree_get():
  tx = optax_prox.tradam(1e-3)
  state = tx.init(PARAMS)
  for _ in range(3):
    _, state = tx.update(PARAMS, state, PARAMS)
  assert int(optax.tree.get(state, "count")) == 3  # Adam's bias correction
  assert int(optax.tree.get(state, "step")) == 3
  assert int(optax.tree.get(state, "position")) == 3
