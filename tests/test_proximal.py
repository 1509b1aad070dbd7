"""proximal_regularize: a hand-traced trajectory, and drop-in use with optax."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from flax import nnx

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


class DropInTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_and_eager_agree(self):
    tx = optax.chain(optax_prox.proximal_regularize(0.3, period=4),
                     optax.sgd(0.05, momentum=0.9))
    params = {"w": jnp.asarray(helpers.W0, jnp.float32), "b": jnp.ones(())}
    state = tx.init(params)
    update = self.variant(tx.update)
    for k in range(9):
      grads = {"w": helpers.jax_grad(params["w"], k), "b": params["b"]}
      updates, state = update(grads, state, params)
      params = optax.apply_updates(params, updates)
    expected, _ = helpers.run(
        tx, lambda p, k: {"w": helpers.jax_grad(p["w"], k), "b": p["b"]},
        {"w": jnp.asarray(helpers.W0, jnp.float32), "b": jnp.ones(())}, 9,
        jit=False)
    chex.assert_trees_all_close(params, expected[-1], rtol=1e-6)

  @parameterized.named_parameters(
      ("trsgd", lambda: optax_prox.trsgd(0.1, period=3, weight_decay=1e-3)),
      ("prox_lion", lambda: optax.chain(
          optax_prox.proximal_regularize(0.1, 3), optax.lion(1e-3))),
  )
  def test_state_is_stable_and_no_recompilation(self, make_tx):
    tx = make_tx()
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    state = tx.init(params)
    traces = []

    @jax.jit
    def step(params, state):
      traces.append(None)
      updates, state = tx.update(params, state, params)
      return optax.apply_updates(params, updates), state

    for _ in range(7):
      new_params, new_state = step(params, state)
      helpers.assert_same_structure_shapes_dtypes(new_state, state)
      params, state = new_params, new_state
    assert len(traces) == 1


@pytest.mark.parametrize("tx", [
    optax_prox.proximal_regularize(0.5, period=2),
    optax_prox.trsgd(0.1, period=2),
], ids=["proximal_regularize", "trsgd"])
def test_accepts_extra_args(tx):
  params = jnp.ones(2)
  state = tx.init(params)
  updates, _ = tx.update(params, state, params, value=jnp.ones(()), key=0)
  np.testing.assert_array_equal(
      updates, tx.update(params, state, params)[0])


def test_donated_params_and_state():
  tx = optax_prox.trsgd(0.1, period=3)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, state):
    updates, state = tx.update(params, state, params)
    return optax.apply_updates(params, updates), state

  params = jnp.arange(4.0)
  state = tx.init(params)
  expected, _ = helpers.run(tx, lambda p, k: p, jnp.arange(4.0), 5)
  for _ in range(5):
    params, state = step(params, state)
  np.testing.assert_allclose(params, expected[-1], rtol=1e-6)
  # The anchor never aliases the params buffer that donation frees.
  assert not optax.tree.get(state, "anchor").is_deleted()


def test_init_runs_on_shape_dtype_structs():
  tx = optax_prox.tradam(1e-3, anchor_dtype=jnp.bfloat16)
  params = {"w": jax.ShapeDtypeStruct((3, 4), jnp.float32),
            "h": jax.ShapeDtypeStruct((2,), jnp.bfloat16)}
  state = jax.eval_shape(tx.init, params)
  anchor = optax.tree.get(state, "anchor")
  assert anchor["w"].shape == (3, 4) and anchor["w"].dtype == jnp.bfloat16
  assert anchor["h"].shape == (2,) and anchor["h"].dtype == jnp.bfloat16


@pytest.mark.optax_not_strict
def test_inside_multi_steps_sees_averaged_gradients():
  # MultiSteps averages 3 micro-batch gradients, then applies one TRSGD
  # step: the same trajectory as TRSGD on the averaged gradients.
  tx = optax_prox.trsgd(0.1, period=2)
  micro = optax.MultiSteps(tx, every_k_schedule=3)
  params = jnp.asarray(helpers.W0, jnp.float32)
  state = micro.init(params)
  for k in range(12):
    updates, state = micro.update(helpers.jax_grad(params, k), state, params)
    params = optax.apply_updates(params, updates)

  def averaged(w, step):
    return sum(helpers.jax_grad(w, 3 * step + j) for j in range(3)) / 3

  expected, _ = helpers.run(tx, averaged, jnp.asarray(helpers.W0,
                                                      jnp.float32), 4)
  np.testing.assert_allclose(params, expected[-1], rtol=1e-5)


def test_masked_stores_the_anchor_only_for_masked_in_leaves():
  tx = optax.chain(
      optax.masked(optax_prox.proximal_regularize(1.0, period=3),
                   {"kernel": True, "bias": False}),
      optax.sgd(0.1))
  params = {"kernel": jnp.ones(3), "bias": jnp.ones(2)}
  state = tx.init(params)
  anchor = optax.tree.get(state, "anchor")
  assert isinstance(anchor["bias"], optax.MaskedNode)
  assert anchor["kernel"].shape == (3,)
  grads = {"kernel": jnp.ones(3), "bias": jnp.ones(2)}
  for _ in range(2):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  # Step 1 pulls the kernel (g = 1 + (0.9 - 1)) but not the bias (g = 1).
  np.testing.assert_allclose(updates["kernel"], -0.09, rtol=1e-6)
  np.testing.assert_allclose(updates["bias"], -0.1, rtol=1e-6)


def test_strength_is_injectable():
  tx = optax.inject_hyperparams(optax_prox.proximal_regularize,
                                static_args=("period",))(strength=1.0,
                                                         period=4)
  params = jnp.asarray([2.0])
  state = tx.init(params)
  _, state = tx.update(jnp.zeros(1), state, params)
  state.hyperparams["strength"] = jnp.asarray(3.0)
  updates, state = jax.jit(tx.update)(jnp.zeros(1), state, params + 1.0)
  np.testing.assert_allclose(updates, [3.0])  # 3 * ((2 + 1) - 2)


@pytest.mark.parametrize("factory", [optax_prox.trsgd, optax_prox.tradam])
@pytest.mark.optax_not_strict
def test_learning_rate_is_injectable(factory):
  injected = optax.inject_hyperparams(factory, static_args=("period",))(
      learning_rate=0.01, period=3)
  plain = factory(0.01, period=3)
  params = jnp.asarray(helpers.W0, jnp.float32)
  ours, state = helpers.run(injected, helpers.jax_grad, params, 7)
  theirs, _ = helpers.run(plain, helpers.jax_grad, params, 7)
  chex.assert_trees_all_close(ours, theirs, rtol=1e-5)
  # A learning rate of 0 stops training without inf or NaN.
  state.hyperparams["learning_rate"] = jnp.asarray(0.0)
  updates, _ = jax.jit(injected.update)(params, state, ours[-1])
  np.testing.assert_array_equal(updates, np.zeros_like(updates))


def test_injected_period_must_be_static():
  with pytest.raises(TypeError, match="static_args=\\('period',\\)"):
    tx = optax.inject_hyperparams(optax_prox.trsgd)(learning_rate=0.1,
                                                    period=3)
    state = tx.init(jnp.ones(2))
    jax.jit(tx.update)(jnp.ones(2), state, jnp.ones(2))


def test_apply_if_finite_skips_the_whole_update():
  tx = optax.apply_if_finite(optax_prox.trsgd(0.1, period=3), 5)
  params = jnp.ones(2)
  state = tx.init(params)
  updates, state = tx.update(jnp.ones(2), state, params)
  params = optax.apply_updates(params, updates)
  before = state.inner_state
  updates, state = tx.update(jnp.asarray([jnp.inf, 1.0]), state, params)
  np.testing.assert_array_equal(updates, np.zeros(2))
  chex.assert_trees_all_equal(state.inner_state, before)
  updates, state = tx.update(jnp.ones(2), state, params)
  assert np.all(np.isfinite(updates)) and np.all(updates != 0)


def test_flax_nnx_optimizer_matches_plain_optax():
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  initial = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
  tx = optax_prox.trsgd(0.05, period=2, weight_decay=1e-3)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(8, 3)), jnp.float32)

  def loss(model):
    return jnp.mean(model(x) ** 2)

  @nnx.jit
  def train_step(model, optimizer):
    grads = nnx.grad(loss)(model)
    optimizer.update(model, grads)

  for _ in range(5):
    train_step(model, optimizer)

  def pure_loss(params):
    return loss(nnx.merge(nnx.graphdef(model), params))

  expected, _ = helpers.run(
      tx, lambda p, k: jax.grad(pure_loss)(p), initial, 5)
  chex.assert_trees_all_close(nnx.state(model, nnx.Param), expected[-1],
                              rtol=1e-5)
  # Period 2: the anchor holds the params passed to the last step, k = 4.
  anchor = optax.tree.get(optimizer.opt_state, "anchor")
  chex.assert_trees_all_close(jax.tree.leaves(anchor),
                              jax.tree.leaves(expected[4]), rtol=1e-5)


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
