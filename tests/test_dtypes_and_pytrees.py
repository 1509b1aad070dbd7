"""Dtypes, odd pytrees, and an inner loop that cycles past the int32 limit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers

INT32_MAX = np.iinfo(np.int32).max


def test_anchor_inherits_each_params_dtype():
  tx = optax_prox.proximal_regularize(0.1, period=3)
  params = {"f32": jnp.ones(2, jnp.float32), "bf16": jnp.ones(2, jnp.bfloat16),
            "f16": jnp.ones(2, jnp.float16)}
  anchor = tx.init(params).anchor
  assert {k: v.dtype for k, v in anchor.items()} == {
      k: v.dtype for k, v in params.items()}


def test_anchor_dtype_overrides_and_halves_the_bytes():
  params = {"w": jnp.ones((4, 4), jnp.float32)}
  wide = optax_prox.proximal_regularize(0.1, 3).init(params).anchor
  narrow = optax_prox.proximal_regularize(
      0.1, 3, anchor_dtype=jnp.bfloat16).init(params).anchor
  assert narrow["w"].dtype == jnp.bfloat16
  assert narrow["w"].nbytes * 2 == wide["w"].nbytes


def test_bfloat16_anchor_pulls_with_float32_params():
  tx = optax_prox.proximal_regularize(2.0, 3, anchor_dtype=jnp.bfloat16)
  params = jnp.asarray([1.0, 3.0], jnp.float32)
  state = tx.init(params)
  _, state = tx.update(jnp.zeros(2), state, params)
  updates, state = tx.update(jnp.zeros(2), state, params + 0.5)
  assert updates.dtype == jnp.float32
  np.testing.assert_allclose(updates, [1.0, 1.0])
  assert state.anchor.dtype == jnp.bfloat16


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_params_give_low_precision_updates_in_trsgd(dtype):
  params = {"w": jnp.ones(3, dtype), "b": jnp.zeros((), dtype)}
  trajectory, state = helpers.run(
      optax_prox.trsgd(0.1, period=2, weight_decay=1e-3),
      lambda p, k: jax.tree.map(lambda x: x + 1, p), params, 5)
  for leaf in jax.tree.leaves((trajectory, optax.tree.get(state, "anchor"))):
    assert leaf.dtype == dtype


@pytest.mark.optax_not_strict
def test_bfloat16_params_give_bfloat16_updates_in_tradam():
  tx = optax_prox.tradam(1e-3, period=2)
  params = jnp.ones(3, jnp.bfloat16)
  state = tx.init(params)
  for _ in range(3):
    updates, state = tx.update(params, state, params)
    assert updates.dtype == jnp.bfloat16
  assert optax.tree.get(state, "anchor").dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "params",
    [
        {"a": None, "b": jnp.ones(2)},
        {},
        jnp.asarray(3.0),
        {"outer": [jnp.ones(2), (jnp.zeros(()), {"deep": jnp.ones((1, 2))})]},
    ],
    ids=["none-leaf", "empty", "scalar", "nested"],
)
def test_odd_pytrees(params):
  tx = optax_prox.trsgd(0.1, period=2)
  grad_fn = lambda p, k: jax.tree.map(lambda x: x + 1.0, p)
  trajectory, state = helpers.run(tx, grad_fn, params, 3)
  assert jax.tree.structure(trajectory[-1]) == jax.tree.structure(params)
  anchor = optax.tree.get(state, "anchor")
  assert jax.tree.structure(anchor) == jax.tree.structure(params)
  # Period 2, three steps: the anchor holds the params passed at step 2.
  for a, p in zip(jax.tree.leaves(anchor), jax.tree.leaves(trajectory[2])):
    np.testing.assert_array_equal(a, p)


def test_inner_loop_keeps_cycling_past_the_int32_limit():
  period = 3
  tx = optax_prox.proximal_regularize(1.0, period)
  params = jnp.zeros(1)
  state = tx.init(params)._replace(
      inner_step=jnp.asarray(0, jnp.int32),
      prox_count=jnp.asarray(INT32_MAX - 4, jnp.int32))
  update = jax.jit(tx.update)
  refreshed = []
  for k in range(4 * period):
    params = jnp.asarray([float(k + 1)])
    previous = state.anchor
    _, state = update(jnp.zeros(1), state, params)
    refreshed.append(bool(state.anchor[0] != previous[0]))
    assert int(state.prox_count) == min(INT32_MAX - 4 + k + 1, INT32_MAX)
  assert refreshed == [True, False, False] * 4
  assert int(state.prox_count) == INT32_MAX
  assert 0 <= int(state.inner_step) < period


def test_period_may_be_as_long_as_int32_allows():
  tx = optax_prox.proximal_regularize(1.0, period=INT32_MAX)
  params = jnp.ones(1)
  state = tx.init(params)._replace(
      inner_step=jnp.asarray(INT32_MAX - 1, jnp.int32))
  _, state = tx.update(jnp.zeros(1), state, params)
  assert int(state.inner_step) == 0
