"""Bad input fails at construction or first call, naming the argument."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers


@pytest.mark.parametrize(
  "period, error, match",
  [
    (0, ValueError, "period must be >= 1"),
    (-3, ValueError, "period must be >= 1"),
    (2.5, TypeError, "period must be a Python int"),
    (True, TypeError, "period must be a Python int"),
    ("10", TypeError, "period must be a Python int"),
    (jnp.asarray(3), TypeError, "static_args=\\('period',\\)"),
    (2**31, ValueError, "period must be at most 2\\*\\*31 - 1"),
  ],
)
@pytest.mark.parametrize(
  "factory",
  [
    lambda period: optax_prox.proximal_regularize(1.0, period),
    lambda period: optax_prox.inner_loop_schedule(0.1, period),
    lambda period: optax_prox.trsgd(0.1, period=period),
    lambda period: optax_prox.tradam(0.1, period=period),
  ],
  ids=["proximal_regularize", "inner_loop_schedule", "trsgd", "tradam"],
)
def test_bad_period(factory, period, error, match):
  with pytest.raises(error, match=match):
    factory(period)


def test_numpy_integer_period_is_accepted():
  tx = optax.chain(
    optax_prox.proximal_regularize(1.0, np.int64(4)), optax.sgd(1.0)
  )
  params = jnp.ones(1)
  updates, _ = tx.update(jnp.zeros(1), tx.init(params), params)
  assert updates.shape == (1,)


@pytest.mark.parametrize("factory", [optax_prox.trsgd, optax_prox.tradam])
def test_trajectory_regularized_needs_an_int_period(factory):
  with pytest.raises(
    TypeError, match="proximal_regularize\\(strength, period=None\\)"
  ):
    factory(0.1, period=None)


def test_proximal_regularize_needs_period_spelled_out():
  # None (a fixed anchor, L2-SP) must be asked for: a forgotten period must
  # not silently turn TR's refreshed anchor into a fixed one.
  with pytest.raises(TypeError, match="missing 1 required .*'period'"):
    optax_prox.proximal_regularize(1.0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
  "optimizer, match",
  [
    (optax.adam(1e-3), "Pass `optax.adam`, not `optax.adam\\(1e-3\\)`"),
    (0.9, "optimizer must be an optax optimizer factory.* got 0.9"),
  ],
  ids=["instance", "number"],
)
def test_trajectory_regularized_needs_a_factory(optimizer, match):
  with pytest.raises(TypeError, match=match):
    optax_prox.trajectory_regularized(optimizer, 1e-3)


def test_nesterov_without_momentum_is_refused():
  with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
    optax_prox.trsgd(0.1, momentum=None, nesterov=True)


def test_a_negative_lambda_w_schedule_is_refused_at_construction():
  with pytest.raises(
    ValueError,
    match="lambda_w must be a finite number >= 0, got -0.5 at step 0",
  ):
    optax_prox.trsgd(0.1, lambda_w=lambda k: jnp.asarray(-0.5))


@pytest.mark.parametrize(
  "strength", [-0.1, float("nan"), float("inf"), lambda k: jnp.asarray(-1.0)]
)
def test_bad_strength(strength):
  with pytest.raises(ValueError, match="strength must be a finite number"):
    optax_prox.proximal_regularize(strength, 3)


def test_non_scalar_strength():
  with pytest.raises(
    TypeError, match="strength must be a real scalar, got Array"
  ):
    optax_prox.proximal_regularize(jnp.ones(2), 3)


@pytest.mark.parametrize("factory", [optax_prox.trsgd, optax_prox.tradam])
@pytest.mark.parametrize(
  "name, value",
  [
    ("lambda_w", -1e-3),
    ("lambda_w", float("nan")),
    ("weight_decay", -1e-4),
    ("learning_rate", -0.1),
  ],
)
def test_bad_coupled_hyperparameters(factory, name, value):
  kwargs = {"learning_rate": 0.1, name: value}
  with pytest.raises(ValueError, match=f"{name} must be a finite number"):
    factory(**kwargs)


@pytest.mark.parametrize("name, value", [("momentum", 1.0), ("momentum", -0.1)])
def test_bad_momentum(name, value):
  with pytest.raises(ValueError, match="momentum must lie in \\[0, 1\\)"):
    optax_prox.trsgd(0.1, **{name: value})


@pytest.mark.parametrize("name", ["b1", "b2"])
def test_bad_adam_betas(name):
  with pytest.raises(ValueError, match=f"{name} must lie in \\[0, 1\\)"):
    optax_prox.tradam(1e-3, **{name: 1.5})


def test_warmup_from_zero_needs_an_explicit_lambda_w():
  warmup = helpers.Piecewise([0.0, 0.1], [5])
  with pytest.raises(ValueError, match="Pass lambda_w explicitly"):
    optax_prox.trsgd(warmup)
  optax_prox.trsgd(warmup, lambda_w=0.01)  # explicit: fine


def test_integer_anchor_dtype():
  with pytest.raises(TypeError, match="anchor_dtype must be a floating"):
    optax_prox.proximal_regularize(1.0, 3, anchor_dtype=jnp.int32)


@pytest.mark.parametrize(
  "tx",
  [
    optax_prox.proximal_regularize(1.0, 3),
    optax_prox.trsgd(0.1),
    optax.chain(optax_prox.proximal_regularize(1.0, 3), optax.lion(1e-3)),
  ],
  ids=["proximal_regularize", "trsgd", "chain"],
)
def test_update_without_params_says_how_to_pass_them(tx):
  state = tx.init(jnp.ones(2))
  with pytest.raises(ValueError, match="tx.update\\(grads, state, params\\)"):
    tx.update(jnp.ones(2), state)


OPTIMIZERS = {
  "proximal_regularize": lambda: optax.chain(
    optax_prox.proximal_regularize(1.0, 3), optax.sgd(0.1)
  ),
  "trsgd": lambda: optax_prox.trsgd(0.1, period=3),
  "tradam": lambda: optax_prox.tradam(0.1, period=3),
}
PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}


@pytest.mark.parametrize("make_tx", OPTIMIZERS.values(), ids=OPTIMIZERS)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
  "name, changed, match",
  [
    (
      "params",
      {"w": jnp.ones((2, 3))},
      "params has a different tree .*missing \\['b'\\]",
    ),
    (
      "params",
      {"w": jnp.ones((2, 3)), "b": jnp.ones(3), "c": jnp.ones(1)},
      "params has a different tree .*unexpected \\['c'\\]",
    ),
    (
      "params",
      {"w": jnp.ones((3, 2)), "b": jnp.ones(3)},
      "params\\['w'\\] has shape \\(3, 2\\), but the optimizer state was"
      " initialized with shape \\(2, 3\\)",
    ),
    (
      "updates",
      {"w": jnp.ones((2, 3)), "b": jnp.ones(4)},
      "updates\\['b'\\] has shape \\(4,\\)",
    ),
    (
      "updates",
      [jnp.ones((2, 3)), jnp.ones(3)],
      "updates has a different tree",
    ),
  ],
  ids=[
    "params-missing-leaf",
    "params-extra-leaf",
    "params-shape",
    "grads-shape",
    "grads-tree",
  ],
)
def test_params_or_grads_unlike_the_state_get_our_message(
  make_tx, jit, name, changed, match
):
  tx = make_tx()
  state = tx.init(PARAMS)
  grads, params = (changed, PARAMS) if name == "updates" else (PARAMS, changed)
  update = jax.jit(tx.update) if jit else tx.update
  with pytest.raises(ValueError, match=match):
    update(grads, state, params)


def test_float16_params_with_tradams_default_eps_fail_at_init():
  tx = optax_prox.tradam(1e-3)
  params = {"w": jnp.ones(3, jnp.float16), "b": jnp.ones(3)}
  with pytest.raises(
    ValueError,
    match="eps=1e-08 is below float16's smallest"
    " normal number .* Pass eps=1e-4",
  ):
    tx.init(params)


def test_float16_params_with_tradams_suggested_eps_stay_finite():
  tx = optax_prox.tradam(1e-3, eps=1e-4)
  w = jnp.asarray([1.0, -2.0, 0.5], jnp.float16)
  state = tx.init(w)
  for grads in [
    jnp.asarray([1e-6, 0.0, 3e-5]),
    jnp.asarray([0.0, 0.0, 0.0]),
    jnp.asarray([2.0, -1e-7, 1e-3]),
  ]:
    updates, state = tx.update(grads.astype(jnp.float16), state, w)
    assert updates.dtype == jnp.float16
    assert bool(jnp.all(jnp.isfinite(updates))), updates
    w = optax.apply_updates(w, updates)


def test_a_transformation_without_a_learning_rate_is_refused():
  # optax.scale_by_adam(0.1) would take the step size as b1 and point the
  # updates uphill.
  with pytest.raises(
    TypeError,
    match="the first parameter of scale_by_adam is 'b1', not the learning"
    " rate.* such as optax.adam instead",
  ):
    optax_prox.trajectory_regularized(optax.scale_by_adam, 0.1)


def test_a_partial_that_fixes_the_learning_rate_is_refused():
  adam = functools.partial(optax.adam, learning_rate=1e-3)
  with pytest.raises(TypeError, match="takes no positional argument"):
    optax_prox.trajectory_regularized(adam, 1e-3)


@pytest.mark.parametrize(
  "factory",
  [
    lambda lr: optax.sgd(lr),
    lambda step_size, momentum=0.5: optax.sgd(step_size, momentum),
    functools.partial(optax.sgd, momentum=0.5),
  ],
  ids=["lr", "step_size", "partial"],
)
def test_factories_that_take_the_learning_rate_first_are_accepted(factory):
  tx = optax_prox.trajectory_regularized(factory, 0.1)
  params = jnp.ones(2)
  updates, _ = tx.update(jnp.ones(2), tx.init(params), params)
  chex.assert_trees_all_close(updates, -0.1 * jnp.ones(2))


def test_keyword_arguments_are_passed_on_to_the_optimizer():
  forwarded = optax_prox.trajectory_regularized(
    optax.sgd, 0.1, period=3, momentum=0.9, nesterov=True
  )
  partial = optax_prox.trajectory_regularized(
    functools.partial(optax.sgd, momentum=0.9, nesterov=True), 0.1, period=3
  )
  trajectories = [
    helpers.run(tx, lambda w, k: w + k, jnp.asarray([1.0, -2.0]), 5)[0]
    for tx in (forwarded, partial)
  ]
  chex.assert_trees_all_equal(*trajectories)
  # ...and really reach it: without momentum the run differs.
  plain = optax_prox.trajectory_regularized(optax.sgd, 0.1, period=3)
  other = helpers.run(plain, lambda w, k: w + k, jnp.asarray([1.0, -2.0]), 5)
  assert not np.allclose(other[0][-1], trajectories[0][-1])


def test_a_keyword_the_optimizer_does_not_take_is_named():
  with pytest.raises(
    TypeError,
    match="passes momentun on to the optimizer, but sgd takes no such"
    " argument \\(it takes accumulator_dtype, learning_rate, momentum,"
    " nesterov\\)",
  ):
    optax_prox.trajectory_regularized(optax.sgd, 0.1, momentun=0.9)


@pytest.mark.parametrize(
  "factory, name",
  [
    (optax_prox.trsgd, "momentum"),
    (optax_prox.tradam, "b1"),
    (optax_prox.tradam, "b2"),
    (optax_prox.tradam, "eps"),
  ],
)
def test_a_schedule_where_a_float_is_due_is_named(factory, name):
  schedule = optax.constant_schedule(0.5)
  with pytest.raises(
    TypeError,
    match=f"{name} must be a real scalar, not a schedule.*"
    "optax.inject_hyperparams",
  ):
    factory(0.1, **{name: schedule})


def test_an_unknown_anchor_dtype_is_named():
  with pytest.raises(TypeError, match="anchor_dtype must be a floating dtype"):
    optax_prox.proximal_regularize(1.0, 3, anchor_dtype="half-ish")


@pytest.mark.parametrize("make_tx", OPTIMIZERS.values(), ids=OPTIMIZERS)
def test_a_stack_of_states_outside_vmap_is_refused(make_tx):
  tx = make_tx()
  stacked = jax.tree.map(lambda x: jnp.stack([x, x]), PARAMS)
  states = jax.vmap(tx.init)(stacked)
  with pytest.raises(
    ValueError,
    match="tx.update got a stack of states \\(its counters have shape"
    " \\(2,\\).* call it inside jax.vmap",
  ):
    tx.update(stacked, states, stacked)
  updates, _ = jax.vmap(tx.update)(stacked, states, stacked)  # the fix
  chex.assert_trees_all_equal_shapes(updates, stacked)


def test_keyword_arguments_are_passed_on_under_inject_hyperparams():
  injected = optax.inject_hyperparams(
    functools.partial(optax_prox.trajectory_regularized, optax.sgd),
    static_args=("period",),
  )(0.1, period=3, momentum=0.9)
  direct = optax_prox.trajectory_regularized(
    optax.sgd, 0.1, period=3, momentum=0.9
  )
  runs = [
    helpers.run(tx, lambda w, k: w + k, jnp.asarray([1.0, -2.0]), 5)[0]
    for tx in (injected, direct)
  ]
  chex.assert_trees_all_close(*runs, rtol=1e-6)
