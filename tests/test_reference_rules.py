"""The reference's momentum and Adam rules that trsgd and tradam build on."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


def test_zero_momentum_stores_no_buffer_also_when_injected():
  plain = optax_prox.trsgd(0.1, momentum=0.0).init(PARAMS)
  injected = optax.inject_hyperparams(
    optax_prox.trsgd, static_args=("period",)
  )(learning_rate=0.1, momentum=0.0)
  state = injected.init(PARAMS)
  assert jax.tree.structure(state.inner_state) == jax.tree.structure(plain)
  param_bytes = sum(p.nbytes for p in jax.tree.leaves(PARAMS))
  anchor_and_counts = param_bytes + 8
  assert sum(x.nbytes for x in jax.tree.leaves(plain)) == anchor_and_counts
  # The injected update keeps that tree, jitted.
  _, state = jax.jit(injected.update)(PARAMS, state, PARAMS)
  assert jax.tree.structure(state.inner_state) == jax.tree.structure(plain)


def test_momentum_changed_from_zero_is_refused():
  state = optax_prox.trsgd(0.1, momentum=0.0).init(PARAMS)
  with pytest.raises(
    ValueError,
    match="momentum is 0.9, but the optimizer state was made with momentum 0",
  ):
    optax_prox.trsgd(0.1, momentum=0.9).update(PARAMS, state, PARAMS)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_bias_correction_is_computed_in_at_least_float32(dtype):
  # b2 = 0.999 rounds to 1 in bfloat16, where sqrt(1 - b2**t) would be 0.
  tx = optax_prox.tradam(1e-2, period=4, lambda_w=0.0)
  w = jnp.ones(3, dtype)
  updates, _ = tx.update(jnp.full(3, 0.5, dtype), tx.init(w), w)
  assert updates.dtype == dtype
  # The first Adam step is -lr * sign(g) (up to eps).
  np.testing.assert_allclose(updates.astype(jnp.float32), -1e-2, rtol=1e-2)


def test_tradams_state_names_are_unique_for_optax_tree_get():
  tx = optax_prox.tradam(1e-3)
  state = tx.init(PARAMS)
  for _ in range(3):
    _, state = tx.update(PARAMS, state, PARAMS)
  assert int(optax.tree.get(state, "count")) == 3  # Adam's bias correction
  np.testing.assert_array_equal(optax.tree.get(state, "counts"), [3, 3])
