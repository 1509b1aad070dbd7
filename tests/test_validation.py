"""Bad input fails at construction or first call, naming the argument.

Each test pins the error's type and what the message must name (the
argument, the path that differs), not the sentence around them.
"""

import collections
import functools

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers
from tests.helpers import raises_naming

PERIOD_FACTORIES = {
  "proximal_regularize": lambda period: optax_prox.proximal_regularize(
    1.0, period
  ),
  "inner_loop_schedule": lambda period: optax_prox.inner_loop_schedule(
    0.1, period
  ),
  "trsgd": lambda period: optax_prox.trsgd(0.1, period=period),
  "tradam": lambda period: optax_prox.tradam(0.1, period=period),
}


@pytest.mark.parametrize(
  "period, error",
  [
    (0, ValueError),
    (-3, ValueError),
    (2**31, ValueError),
    (2.5, TypeError),
    (True, TypeError),
    ("10", TypeError),
    (jnp.asarray(3), TypeError),  # a traced one would come from a jit
  ],
)
@pytest.mark.parametrize(
  "factory", PERIOD_FACTORIES.values(), ids=PERIOD_FACTORIES
)
def test_bad_period(factory, period, error):
  with raises_naming(error, "period"):
    factory(period)


def test_the_longest_and_numpy_integer_periods_are_accepted():
  for period in (np.int64(4), 2**31 - 1):
    tx = optax.chain(
      optax_prox.proximal_regularize(1.0, period), optax.sgd(1.0)
    )
    params = jnp.ones(1)
    updates, _ = tx.update(jnp.zeros(1), tx.init(params), params)
    assert updates.shape == (1,)


@pytest.mark.parametrize("factory", [optax_prox.trsgd, optax_prox.tradam])
def test_trajectory_regularized_needs_an_int_period(factory):
  # None is proximal_regularize's fixed anchor; TR restarts its step size.
  with raises_naming(TypeError, "period"):
    factory(0.1, period=None)


def test_proximal_regularize_needs_period_spelled_out():
  # None (a fixed anchor, L2-SP) must be asked for: a forgotten period must
  # not silently turn TR's refreshed anchor into a fixed one.
  with raises_naming(TypeError, "period"):
    optax_prox.proximal_regularize(1.0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
  "optimizer", [optax.adam(1e-3), 0.9], ids=["instance", "number"]
)
def test_trajectory_regularized_needs_a_factory(optimizer):
  with raises_naming(TypeError, "optimizer"):
    optax_prox.trajectory_regularized(optimizer, 1e-3)


def test_a_factory_without_a_learning_rate_keyword_fails_in_python():
  # optax.scale_by_adam(0.1) would take the step size as b1 and point the
  # updates uphill; called by keyword, Python refuses it.
  tx = optax_prox.trajectory_regularized(optax.scale_by_adam, 0.1)
  with raises_naming(TypeError, "learning_rate"):
    tx.init(jnp.ones(2))


def test_a_keyword_the_optimizer_does_not_take_is_named():
  tx = optax_prox.trajectory_regularized(optax.sgd, 0.1, momentun=0.9)
  with raises_naming(TypeError, "momentun"):
    tx.init(jnp.ones(2))


def test_a_partial_that_fixes_the_learning_rate_is_refused():
  adam = functools.partial(optax.adam, learning_rate=1e-3)
  with raises_naming(TypeError, "optimizer", "learning_rate"):
    optax_prox.trajectory_regularized(adam, 1e-3)


def test_nesterov_without_momentum_is_refused():
  with raises_naming(ValueError, "nesterov", "momentum"):
    optax_prox.trsgd(0.1, momentum=None, nesterov=True)


@pytest.mark.parametrize(
  "strength", [-0.1, float("nan"), float("inf"), lambda k: jnp.asarray(-1.0)]
)
def test_bad_strength(strength):
  with raises_naming(ValueError, "strength"):
    optax_prox.proximal_regularize(strength, 3)


def test_non_scalar_strength():
  with raises_naming(TypeError, "strength"):
    optax_prox.proximal_regularize(jnp.ones(2), 3)


@pytest.mark.parametrize("factory", [optax_prox.trsgd, optax_prox.tradam])
@pytest.mark.parametrize(
  "name, value",
  [
    ("lambda_w", -1e-3),
    ("lambda_w", float("nan")),
    ("lambda_w", lambda k: jnp.asarray(-0.5)),
    ("weight_decay", -1e-4),
    ("learning_rate", -0.1),
  ],
)
def test_bad_coupled_hyperparameters(factory, name, value):
  with raises_naming(ValueError, name):
    factory(**{"learning_rate": 0.1, name: value})


@pytest.mark.parametrize(
  "factory, name, value",
  [
    (optax_prox.trsgd, "momentum", 1.0),
    (optax_prox.trsgd, "momentum", -0.1),
    (optax_prox.tradam, "b1", 1.5),
    (optax_prox.tradam, "b2", 1.0),
    (optax_prox.tradam, "eps", -1e-8),
  ],
)
def test_bad_decay_rates(factory, name, value):
  with raises_naming(ValueError, name):
    factory(0.1, **{name: value})


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
  with raises_naming(TypeError, name):
    factory(0.1, **{name: optax.constant_schedule(0.5)})


def test_warmup_from_zero_needs_an_explicit_lambda_w():
  warmup = helpers.Piecewise([0.0, 0.1], [5])
  with raises_naming(ValueError, "lambda_w"):
    optax_prox.trsgd(warmup)
  optax_prox.trsgd(warmup, lambda_w=0.01)  # explicit: fine


@pytest.mark.parametrize("anchor_dtype", [jnp.int32, "half-ish"])
def test_anchor_dtype_must_be_floating(anchor_dtype):
  with raises_naming(TypeError, "anchor_dtype"):
    optax_prox.proximal_regularize(1.0, 3, anchor_dtype=anchor_dtype)


def test_float16_params_with_tradams_default_eps_fail_at_init():
  tx = optax_prox.tradam(1e-3)
  with raises_naming(ValueError, "eps"):
    tx.init({"w": jnp.ones(3, jnp.float16), "b": jnp.ones(3)})


OPTIMIZERS = {
  "proximal_regularize": lambda: optax.chain(
    optax_prox.proximal_regularize(1.0, 3), optax.sgd(0.1)
  ),
  "trsgd": lambda: optax_prox.trsgd(0.1, period=3),
  "tradam": lambda: optax_prox.tradam(0.1, period=3),
  "lion": lambda: optax_prox.trajectory_regularized(optax.lion, 1e-3),
}
EVERY_OPTIMIZER = pytest.mark.parametrize(
  "make_tx", OPTIMIZERS.values(), ids=OPTIMIZERS
)
PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}


@pytest.mark.optax_not_strict  # optax's lion
@EVERY_OPTIMIZER
def test_update_without_params_says_how_to_pass_them(make_tx):
  tx = make_tx()
  with raises_naming(ValueError, "params"):
    tx.update(PARAMS, tx.init(PARAMS))


@pytest.mark.optax_not_strict  # optax's lion
@EVERY_OPTIMIZER
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
  "name, changed, path",
  [
    ("params", {"w": jnp.ones((2, 3))}, "['b']"),
    ("params", {**PARAMS, "c": jnp.ones(1)}, "['c']"),
    ("params", {"w": jnp.ones((3, 2)), "b": jnp.ones(3)}, "['w']"),
    ("updates", {"w": jnp.ones((2, 3)), "b": jnp.ones(4)}, "['b']"),
    ("updates", [jnp.ones((2, 3)), jnp.ones(3)], "['b']"),
  ],
  ids=["missing", "extra", "shape", "grads-shape", "grads-tree"],
)
def test_params_or_grads_unlike_the_state_name_the_first_path(
  make_tx, jit, name, changed, path
):
  tx = make_tx()
  state = tx.init(PARAMS)
  grads, params = (changed, PARAMS) if name == "updates" else (PARAMS, changed)
  update = jax.jit(tx.update) if jit else tx.update
  with raises_naming(ValueError, name, path):
    update(grads, state, params)


@pytest.mark.optax_not_strict  # optax's lion
@EVERY_OPTIMIZER
def test_a_stack_of_states_outside_vmap_is_refused(make_tx):
  tx = make_tx()
  stacked = jax.tree.map(lambda x: jnp.stack([x, x]), PARAMS)
  states = jax.vmap(tx.init)(stacked)
  with raises_naming(ValueError, "state", "jax.vmap(tx.update)"):
    tx.update(stacked, states, stacked)
  updates, _ = jax.vmap(tx.update)(stacked, states, stacked)  # the fix
  assert jax.tree.map(jnp.shape, updates) == jax.tree.map(jnp.shape, stacked)


# A tree is compared with the anchor by its leaves' paths
# (optax_prox/_paths.py), so the helpers take the same leaves in other
# containers: the model's `nnx.state(model, nnx.Param)` for the anchor of
# an `nnx.Optimizer`'s state, or a dict for it.
@pytest.mark.parametrize(
  "anchor",
  [
    collections.OrderedDict([("w", PARAMS["w"]), ("b", PARAMS["b"])]),
    nnx.State({"w": nnx.Param(PARAMS["w"]), "b": nnx.Param(PARAMS["b"])}),
  ],
  ids=["ordered-dict", "nnx-state"],
)
def test_helpers_take_the_same_paths_in_other_containers(anchor):
  tx = optax_prox.trsgd(0.1, period=3)
  state = optax_prox.set_anchor(tx.init(PARAMS), anchor)
  stored = optax.tree.get(state, "anchor")
  assert jax.tree.structure(stored) == jax.tree.structure(PARAMS)
  np.testing.assert_array_equal(stored["w"], PARAMS["w"])
  assert float(optax_prox.anchor_distance(state, anchor)) == 0.0
