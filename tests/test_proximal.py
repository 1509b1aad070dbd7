"""proximal_regularize: a hand-traced trajectory, its counters, and properties.

The properties run over random pytrees, shapes, dtypes, periods, strengths and
optimizers drawn by Hypothesis; the generic properties of every optimizer of
the library are in ``test_common.py``.
"""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
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
  tx = optax.chain(
    optax_prox.proximal_regularize(0.5, period=3), optax.sgd(0.1)
  )
  trajectory, state = helpers.run(
    tx, lambda w, k: jnp.ones_like(w), jnp.asarray([10.0]), 4
  )
  np.testing.assert_allclose(
    np.concatenate(trajectory), [10.0, 9.9, 9.805, 9.71475, 9.61475], rtol=1e-6
  )
  prox_state = state[0]
  np.testing.assert_allclose(prox_state.anchor, [9.71475], rtol=1e-6)
  # 4 updates applied; the next one is at position 1 of its inner loop.
  assert (int(prox_state.step), int(prox_state.position)) == (4, 1)


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
  tx = optax.chain(
    optax_prox.proximal_regularize(0.5, period=3), optax.sgd(0.1)
  )
  params = jnp.asarray([1.0])
  state = tx.init(params)
  positions = [int(state[0].position)]
  for _ in range(7):
    updates, state = tx.update(jnp.ones(1), state, params)
    params = optax.apply_updates(params, updates)
    positions.append(int(state[0].position))
  assert positions == [-1, 1, 2, -1, 1, 2, -1, 1]


def test_without_a_period_the_first_params_stay_the_anchor():
  tx = optax.chain(
    optax_prox.proximal_regularize(0.5, period=None), optax.sgd(0.1)
  )
  trajectory, state = helpers.run(
    tx, lambda w, k: jnp.ones_like(w), jnp.asarray([10.0]), 25
  )
  np.testing.assert_array_equal(state[0].anchor, [10.0])
  # w_{k+1} = w_k - 0.1 (1 + 0.5 (w_k - 10)): a contraction toward 8.
  w = 10.0
  for _ in range(25):
    w = w - 0.1 * (1 + 0.5 * (w - 10.0))
  np.testing.assert_allclose(trajectory[-1], [w], rtol=1e-6)
  assert int(state[0].position) == 25


INT32_MAX = np.iinfo(np.int32).max


@pytest.mark.parametrize(
  "period, position, expected",
  [
    (3, 1, -1),  # 1 -> 2 -> -1 -> 1 -> ... : eight updates end on a refresh
    (None, INT32_MAX - 4, INT32_MAX),  # saturates; never refreshed again
  ],
)
def test_counters_saturate_or_cycle_past_the_int32_limit(
  period, position, expected
):
  tx = optax_prox.proximal_regularize(jnp.asarray(1.0), period)
  params = jnp.ones(2)
  state = tx.init(params)._replace(
    step=jnp.asarray(INT32_MAX - 4, jnp.int32),
    position=jnp.asarray(position, jnp.int32),
  )
  for _ in range(8):
    _, state = tx.update(jnp.zeros(2), state, params)
  assert (int(state.step), int(state.position)) == (INT32_MAX, expected)


def test_period_may_be_as_long_as_int32_allows():
  tx = optax_prox.proximal_regularize(1.0, INT32_MAX)
  params = jnp.ones(1)
  state = tx.init(params)._replace(
    step=jnp.asarray(5, jnp.int32), position=jnp.asarray(INT32_MAX - 1)
  )
  _, state = tx.update(jnp.zeros(1), state, params)
  assert (int(state.step), int(state.position)) == (6, -1)


SETTINGS = hypothesis.settings(
  derandomize=True,
  max_examples=12,
  deadline=None,
  suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]
EPS = {jnp.dtype(d): float(jnp.finfo(d).eps) for d in DTYPES}
OPTIMIZERS = {
  "sgd": lambda: optax.sgd(0.1, momentum=0.9),
  "adam": lambda: optax.adam(1e-2),
  "lion": lambda: optax.lion(1e-3),
  "rmsprop": lambda: optax.rmsprop(1e-2),
}


@st.composite
def pytrees(draw):
  """Dicts and lists of small arrays of mixed shapes and dtypes."""
  shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)
  leaves = draw(
    st.lists(st.tuples(shapes, st.sampled_from(DTYPES)), min_size=1, max_size=4)
  )
  rng = np.random.default_rng(draw(st.integers(0, 2**16)))
  arrays = [
    jnp.asarray(rng.normal(size=shape), dtype) for shape, dtype in leaves
  ]
  if draw(st.booleans()):
    return {f"leaf{i}": a for i, a in enumerate(arrays)}
  return [arrays[0], {"rest": arrays[1:]}]


def noisy_steps(params, steps, seed):
  """A sequence of (grads, params) pairs: params need not follow updates."""
  rng = np.random.default_rng(seed)
  for _ in range(steps):
    draw = lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype)
    yield jax.tree.map(draw, params), jax.tree.map(draw, params)


def updates_of(tx, params, steps, seed):
  """The updates of ``steps`` jitted calls (one compilation per tree)."""
  update = jax.jit(tx.update)
  state = tx.init(params)
  out = []
  for grads, p in noisy_steps(params, steps, seed):
    updates, state = update(grads, state, p)
    out.append(updates)
  return out, state


@pytest.mark.optax_not_strict
@SETTINGS
@hypothesis.given(
  params=pytrees(),
  period=st.integers(1, 5),
  strength=st.floats(0.0, 5.0),
  neutral=st.sampled_from(["zero", "one"]),
  name=st.sampled_from(sorted(OPTIMIZERS)),
  seed=st.integers(0, 99),
)
def test_strength_zero_or_period_one_changes_nothing(
  params, period, strength, neutral, name, seed
):
  if neutral == "zero":
    prox = optax_prox.proximal_regularize(0.0, period)
  else:
    prox = optax_prox.proximal_regularize(strength, 1)
  ours, _ = updates_of(optax.chain(prox, OPTIMIZERS[name]()), params, 6, seed)
  bare, _ = updates_of(OPTIMIZERS[name](), params, 6, seed)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(bare)):
    assert a.dtype == b.dtype
    # Two jitted programs: equal up to rounding (XLA fuses them differently).
    a, b, eps = (
      np.asarray(a, np.float32),
      np.asarray(b, np.float32),
      EPS[a.dtype],
    )
    np.testing.assert_allclose(a, b, rtol=0, atol=4 * eps * np.max(np.abs(b)))


def assert_anchor_is(state, params, anchor_dtype):
  expected = jax.tree.map(lambda p: p.astype(anchor_dtype or p.dtype), params)
  chex.assert_trees_all_equal_dtypes(state.anchor, expected)
  chex.assert_trees_all_equal(state.anchor, expected)


@SETTINGS
@hypothesis.given(
  params=pytrees(),
  period=st.integers(1, 6),
  steps=st.integers(1, 13),
  seed=st.integers(0, 99),
  anchor_dtype=st.sampled_from([None, jnp.bfloat16]),
)
def test_anchor_is_the_params_of_the_last_refresh(
  params, period, steps, seed, anchor_dtype
):
  tx = optax_prox.proximal_regularize(0.5, period, anchor_dtype=anchor_dtype)
  passed = [p for _, p in noisy_steps(params, steps + 1, seed)]
  _, state = updates_of(tx, params, steps, seed)
  assert_anchor_is(state, passed[(steps - 1) // period * period], anchor_dtype)
  # The next update starts a new inner loop exactly when `period` divides k.
  _, state = tx.update(passed[steps], state, passed[steps])
  assert_anchor_is(state, passed[steps // period * period], anchor_dtype)


@SETTINGS
@hypothesis.given(
  params=pytrees(),
  strength=st.floats(0.0, 5.0),
  seed=st.integers(0, 99),
  anchor_dtype=st.sampled_from([None, jnp.bfloat16]),
)
def test_the_pull_is_strength_times_the_distance_to_the_anchor(
  params, strength, seed, anchor_dtype
):
  """In each param's dtype, toward the anchor as stored (bf16 or not)."""
  tx = optax_prox.proximal_regularize(
    strength, period=2, anchor_dtype=anchor_dtype
  )
  (_, first), (grads, second) = noisy_steps(params, 2, seed)
  update = jax.jit(tx.update)
  _, state = update(first, tx.init(params), first)
  updates, _ = update(grads, state, second)
  for u, g, p, a in zip(
    *map(jax.tree.leaves, (updates, grads, second, state.anchor))
  ):
    assert u.dtype == g.dtype
    pull = jnp.asarray(strength, p.dtype) * (p - a.astype(p.dtype))
    u, g, pull = (np.asarray(x, np.float32) for x in (u, g, pull))
    rounding = 2 * float(jnp.finfo(p.dtype).eps) * (np.abs(g) + np.abs(pull))
    assert np.all(np.abs(u - (g + pull)) <= rounding)


@pytest.mark.parametrize("alpha", [0.01, 0.3, 2.0])
def test_strength_is_l2_sp_alpha_and_fedprox_mu(alpha):
  # L2-SP adds alpha/2 ||w - w0||^2 to the loss (w0: the pretrained
  # weights); a FedProx client adds mu/2 ||w - w^t||^2 (w^t: the server's
  # model). The pull with strength = alpha (= mu) and a fixed anchor adds
  # exactly the gradient of that penalty.
  keys = jax.random.split(jax.random.key(0), 3)
  w = {"conv": jax.random.normal(keys[0], (3, 3)), "b": jnp.ones(3)}
  w0 = {"conv": jax.random.normal(keys[1], (3, 3)), "b": jnp.zeros(3)}
  x = jax.random.normal(keys[2], (3,))

  def loss(params):
    return jnp.sum(jnp.tanh(params["conv"] @ x + params["b"]))

  def penalized(params):
    penalty = sum(
      jnp.sum((p - a) ** 2)
      for p, a in zip(jax.tree.leaves(params), jax.tree.leaves(w0))
    )
    return loss(params) + alpha / 2 * penalty

  tx = optax_prox.proximal_regularize(alpha, period=None)
  state = optax_prox.set_anchor(tx.init(w), w0)
  updates, _ = tx.update(jax.grad(loss)(w), state, w)
  chex.assert_trees_all_close(updates, jax.grad(penalized)(w), rtol=1e-6)


def weighted_penalty(strength, importance, anchor):
  """``strength/2 sum_j F_j (w_j - a_j)^2`` as a function of ``w``."""
  return lambda w: (
    0.5
    * strength
    * sum(
      jnp.sum(f * (x - a) ** 2)
      for f, x, a in zip(*map(jax.tree.leaves, (importance, w, anchor)))
    )
  )


def test_a_weighted_pull_is_the_gradient_of_the_weighted_penalty():
  params = {"a": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[3.0], [0.0]])}
  anchor = jax.tree.map(lambda p: 0.5 * p + 0.25, params)
  importance = {
    "a": jnp.array([0.0, 1.0, 50.0]),
    "b": jnp.array([[2.0], [0.3]]),
  }
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.1), params)
  tx = optax_prox.proximal_regularize(0.7, None, weighted=True)

  def update(importance):
    state = tx.init(params)
    state = optax_prox.set_anchor(state, anchor, importance=importance)
    return tx.update(grads, state, params)[0]

  def expected(importance):
    pull = jax.grad(weighted_penalty(0.7, importance, anchor))(params)
    return jax.tree.map(jnp.add, grads, pull)

  chex.assert_trees_all_close(
    jax.jit(update)(importance), expected(importance), rtol=1e-6
  )
  scales = jnp.array([0.0, 1.0, 2.0])  # three importances, one vmap
  stacked = jax.tree.map(
    lambda f: jnp.stack([s * f for s in scales]), importance
  )
  got = jax.vmap(update)(stacked)
  for i, scale in enumerate(scales):
    scaled = jax.tree.map(lambda f, scale=scale: scale * f, importance)
    chex.assert_trees_all_close(
      jax.tree.map(lambda g, i=i: g[i], got), expected(scaled), rtol=1e-6
    )


def test_an_unweighted_pull_keeps_no_importance_and_ones_change_nothing():
  params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([[3.0]])}
  plain = optax_prox.proximal_regularize(0.5, None)
  weighted = optax_prox.proximal_regularize(0.5, None, weighted=True)
  state = plain.init(params)
  assert state.importance is None
  assert len(jax.tree.leaves(state)) == len(jax.tree.leaves(params)) + 2
  weighted_state = weighted.init(params)
  chex.assert_trees_all_equal(
    weighted_state.importance, jax.tree.map(jnp.ones_like, params)
  )
  moved = jax.tree.map(lambda p: p + 1.0, params)
  first = [
    tx.update(params, s, params)[1]
    for tx, s in ((plain, state), (weighted, weighted_state))
  ]
  updates = [
    tx.update(params, s, moved)[0] for tx, s in zip((plain, weighted), first)
  ]
  chex.assert_trees_all_equal(*updates)
