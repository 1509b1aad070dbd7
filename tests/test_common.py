"""One battery of generic properties over every optimizer the library builds.

Each property is written once and runs over ``TABLE``, the optimizers under
test: TRSGD, TRAdam, ``trajectory_regularized`` around AdamW, Lion and
Nesterov SGD, ``proximal_regularize`` chained before SGD (with a period, and
with ``period=None``), and bfloat16 anchors. ``CASES`` is the table as pytest
parameters; ``tests/test_convergence.py`` drives each of them to a known
minimum. Behaviour that belongs to one module (the update rules, the
validation, the state helpers' corner cases) is tested in the file that
mirrors that module.

Every property runs over every case: a property that holds for TRSGD but
not for Lion is a bug either way, and a case costs a fraction of a second
(the tests that train a case on the same params share one compiled step).
Only two tests multiply the table: by the two low-precision dtypes, and by
two odd pytrees. The check of a masked pull inside a chain, which only
``proximal_regularize`` allows, runs over its two cases. ``JitAndEagerTest``
runs the properties that must hold both ways twice, with the update and the
state helpers jitted (``chex.variants``) and eagerly.
"""

from collections.abc import Callable
import dataclasses
import functools
from pathlib import Path
from typing import Any

from absl.testing import parameterized
import chex
from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import AxisType
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers

PERIOD = 3
STEPS = 7  # the anchor is refreshed at k = 0, 3 and 6
NESTEROV_SGD = functools.partial(optax.sgd, momentum=0.9, nesterov=True)


def proximal_then_sgd(
  strength: Any,
  period: int | None = PERIOD,
  learning_rate: Any = 0.05,
  anchor_dtype: Any = None,
) -> optax.GradientTransformation:
  """``proximal_regularize`` chained before plain SGD, as users write it."""
  return optax.chain(
    optax_prox.proximal_regularize(strength, period, anchor_dtype=anchor_dtype),
    optax.sgd(learning_rate),
  )


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity
class Case:
  """An optimizer under test.

  Attributes:
    name: the test id.
    factory: builds the optimizer from keyword arguments.
    kwargs: the arguments of the optimizer under test.
    injected: the float hyper-parameter that the ``inject_hyperparams`` test
      changes during training.
    bare: the same optimizer without the proximal term (for the state size).
    float16: the argument overrides that float16 params need.
    strict: whether it runs under strict dtype promotion; optax's AdamW, and
      its Lion and SGD momentum on a tree of mixed dtypes, do not.
  """

  name: str
  factory: Callable[..., optax.GradientTransformation]
  kwargs: dict[str, Any]
  injected: str
  bare: Callable[[], optax.GradientTransformation]
  float16: dict[str, Any] = dataclasses.field(default_factory=dict)
  strict: bool = True

  def make(self, **overrides: Any) -> optax.GradientTransformation:
    """The optimizer; without overrides always the same object.

    ``helpers.run`` compiles a step once per optimizer object, so the tests
    that train the same case on the same params share one compilation.
    """
    if not overrides:
      return _default_optimizer(self)
    return self.factory(**{**self.kwargs, **overrides})

  @property
  def period(self) -> int | None:
    return self.kwargs["period"]

  @property
  def anchor_dtype(self) -> Any:
    return self.kwargs.get("anchor_dtype")

  def anchor_dtype_for(self, param: Any) -> Any:
    return jnp.dtype(self.anchor_dtype or jnp.result_type(param))

  def last_refresh(self, k: int, restart: int = 0) -> int:
    """The step whose params are the anchor after update ``k``."""
    if self.period is None:
      return restart
    return restart + (k - restart) // self.period * self.period


@functools.cache
def _default_optimizer(case: Case) -> optax.GradientTransformation:
  return case.factory(**case.kwargs)


TRSGD = Case(
  "trsgd",
  optax_prox.trsgd,
  dict(learning_rate=0.05, period=PERIOD, weight_decay=1e-3),
  "learning_rate",
  lambda: optax.sgd(0.05, momentum=0.9),
)
TRADAM = Case(
  "tradam",
  optax_prox.tradam,
  dict(learning_rate=0.01, period=PERIOD),
  "learning_rate",
  lambda: optax.adam(0.01),
  {"eps": 1e-4},
)
PROXIMAL_SGD = Case(
  "proximal+sgd",
  proximal_then_sgd,
  dict(strength=0.5, period=PERIOD),
  "strength",
  lambda: optax.sgd(0.05),
)


def wrapped(name: str, optimizer: Callable[..., Any], rate: float) -> Case:
  """``trajectory_regularized`` around an optax optimizer."""
  return Case(
    name,
    functools.partial(optax_prox.trajectory_regularized, optimizer),
    dict(learning_rate=rate, period=PERIOD),
    "learning_rate",
    lambda: optimizer(rate),
    strict=False,
  )


TABLE = [
  TRSGD,
  TRADAM,
  wrapped("tr-adamw", optax.adamw, 0.01),
  wrapped("tr-lion", optax.lion, 1e-3),
  wrapped("tr-nesterov-sgd", NESTEROV_SGD, 0.05),
  PROXIMAL_SGD,
  dataclasses.replace(
    PROXIMAL_SGD,
    name="proximal-fixed-anchor+sgd",
    kwargs=dict(strength=0.5, period=None),
  ),
  dataclasses.replace(
    TRSGD,
    name="trsgd-bf16-anchor",
    kwargs={**TRSGD.kwargs, "anchor_dtype": jnp.bfloat16},
  ),
  dataclasses.replace(
    TRADAM,
    name="tradam-bf16-anchor",
    kwargs={**TRADAM.kwargs, "anchor_dtype": jnp.bfloat16},
  ),
]
CASES = [
  pytest.param(
    case,
    id=case.name,
    marks=() if case.strict else pytest.mark.optax_not_strict,
  )
  for case in TABLE
]
ALL = pytest.mark.parametrize("case", CASES)
NAMED = [(case.name, case) for case in TABLE]  # for absl's parameterized
PERIODIC = pytest.mark.parametrize(
  "case", [c for c in CASES if c.values[0].period is not None]
)
PROXIMAL = pytest.mark.parametrize(
  "case", [c for c in CASES if c.values[0].factory is proximal_then_sgd]
)
STATIC_ARGS = ("period", "anchor_dtype")
# The same arithmetic, compiled differently (jit or not, fused or not).
CLOSE = {"rtol": 1e-5, "atol": 1e-6}


def params_tree(dtype: Any = jnp.float32, seed: int = 0) -> dict[str, Any]:
  """A matrix, a vector and a scalar."""
  rng = np.random.default_rng(seed)
  return {
    name: jnp.asarray(rng.normal(size=shape), dtype)
    for name, shape in (("w", (8, 6)), ("b", (6,)), ("s", ()))
  }


def anchor_of(state: Any) -> Any:
  return optax.tree.get(state, "anchor")


def cast_like_anchor(case: Case, tree: Any) -> Any:
  return jax.tree.map(lambda x: x.astype(case.anchor_dtype_for(x)), tree)


def zeros_like(tree: Any) -> Any:
  return jax.tree.map(jnp.zeros_like, tree)


def nbytes(tree: Any) -> int:
  return sum(leaf.nbytes for leaf in jax.tree.leaves(tree))


# ------------------------------------------------------ jitted and eager ----


class JitAndEagerTest(chex.TestCase):
  """Properties that hold with the functions jitted and run eagerly."""

  def optimizer(self, case: Case) -> optax.GradientTransformation:
    """The case's optimizer; the test runs in the promotion it needs."""
    if not case.strict:
      self.enter_context(jax.numpy_dtype_promotion("standard"))
    return case.make()

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(NAMED)
  def test_update_matches_the_jitted_train_step(self, case: Case):
    tx = self.optimizer(case)
    steps = PERIOD + 1  # one anchor refresh after the first
    step = helpers.update_and_apply(self.variant(tx.update))
    ours = helpers.run(tx, helpers.tree_grad, params_tree(), steps, step=step)
    fused = helpers.run(tx, helpers.tree_grad, params_tree(), steps)
    chex.assert_trees_all_close(ours, fused, **CLOSE)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(NAMED)
  def test_extra_args_are_accepted_and_ignored(self, case: Case):
    tx = self.optimizer(case)
    params = params_tree()
    state = tx.init(params)
    grads = helpers.tree_grad(params, 0)
    update = self.variant(tx.update)
    with_extras = update(
      grads, state, params, value=jnp.ones(()), key=jax.random.key(0)
    )
    chex.assert_trees_all_equal(with_extras, update(grads, state, params))

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(NAMED)
  def test_restart_inner_loop_takes_the_next_params_as_anchor(self, case: Case):
    tx = self.optimizer(case)
    step = helpers.update_and_apply(self.variant(tx.update))
    restart = PERIOD + 1  # inside the second inner loop
    trajectory, state = helpers.run(
      tx, helpers.tree_grad, params_tree(), restart, step=step
    )
    state = self.variant(optax_prox.restart_inner_loop)(state)
    for k in range(restart, restart + PERIOD + 2):
      params = trajectory[-1]
      params, state = step(params, state, helpers.tree_grad(params, k))
      trajectory.append(params)
      chex.assert_trees_all_equal(
        anchor_of(state),
        cast_like_anchor(case, trajectory[case.last_refresh(k, restart)]),
      )

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(NAMED)
  def test_set_anchor_is_pulled_toward_and_measured(self, case: Case):
    tx = self.optimizer(case)
    params = params_tree()
    target = jax.tree.map(lambda p: p + 1, params)
    state = self.variant(optax_prox.set_anchor)(tx.init(params), target)
    chex.assert_trees_all_equal(
      anchor_of(state), cast_like_anchor(case, target)
    )

    def difference(p, a):
      return np.asarray(p, np.float64) - np.asarray(a, np.float64)

    expected = np.sqrt(
      sum(
        np.sum(difference(p, a) ** 2)
        for p, a in zip(
          jax.tree.leaves(params), jax.tree.leaves(anchor_of(state))
        )
      )
    )
    distance = self.variant(optax_prox.anchor_distance)(state, params)
    chex.assert_trees_all_close(distance, np.float32(expected), rtol=1e-6)
    # Without a gradient, the first update moves every param up, to the anchor.
    updates, _ = self.variant(tx.update)(zeros_like(params), state, params)
    positive = jax.tree.map(lambda u: bool(np.all(np.asarray(u) > 0)), updates)
    assert all(jax.tree.leaves(positive)), positive


# ------------------------------------------------------------ compiling ----


@ALL
def test_init_runs_under_eval_shape(case: Case):
  tx = case.make()
  params = {
    "f32": jnp.ones((3, 4), jnp.float32),
    "bf16": jnp.ones((2,), jnp.bfloat16),
  }
  shapes = jax.eval_shape(
    tx.init,
    jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params),
  )
  chex.assert_trees_all_equal_shapes_and_dtypes(shapes, tx.init(params))
  for name, anchor in anchor_of(shapes).items():
    assert anchor.shape == params[name].shape
    assert anchor.dtype == case.anchor_dtype_for(params[name])


@ALL
def test_updates_compile_once_and_keep_the_state_layout(case: Case):
  """On a 4x2 mesh with explicit axes, the state keeps the layout of init.

  Its tree, shapes, dtypes and shardings, over anchor refreshes, a
  ``restart_inner_loop`` and a ``set_anchor``: the jitted update is traced
  once.
  """
  tx = case.make()
  chex.clear_trace_counter()
  traced_once = optax.GradientTransformationExtraArgs(
    tx.init, chex.assert_max_traces(tx.update, n=1)
  )
  mesh = jax.make_mesh(
    (4, 2), ("data", "model"), axis_types=(AxisType.Explicit,) * 2
  )
  layouts = {"w": P("data", "model"), "b": P("model"), "s": P()}
  with jax.set_mesh(mesh):
    params = {
      name: jax.device_put(value, NamedSharding(mesh, layouts[name]))
      for name, value in params_tree().items()
    }
    initial = traced_once.init(params)

    def train(params: Any, state: Any, start: int) -> tuple[Any, Any]:
      trajectory, state = helpers.run(
        traced_once,
        helpers.tree_grad,
        params,
        PERIOD + 1,  # across an anchor refresh
        state=state,
        start=start,
      )
      chex.assert_trees_all_equal_shapes_and_dtypes(state, initial)
      helpers.assert_trees_all_equal_shardings(state, initial)
      return trajectory[-1], state

    params_1, state = train(params, initial, 0)
    state = optax_prox.restart_inner_loop(state)
    params_2, state = train(params_1, state, PERIOD + 1)
    state = optax_prox.set_anchor(state, jax.tree.map(lambda p: p + 1, params))
    final, _ = train(params_2, state, 2 * (PERIOD + 1))
  chex.assert_trees_all_equal_shapes_and_dtypes(final, params)
  helpers.assert_trees_all_equal_shardings(final, params)


# ------------------------------------------------------------- wrappers ----


@ALL
def test_injected_hyperparameter_is_read_from_the_state(case: Case):
  """Setting it to 0 mid-run equals a schedule that drops to 0 there."""
  switch, steps = PERIOD + 1, STEPS + 1  # inside the second inner loop
  value = case.kwargs[case.injected]
  injected = optax.inject_hyperparams(case.factory, static_args=STATIC_ARGS)(
    **case.kwargs
  )
  before, state = helpers.run(
    injected, helpers.tree_grad, params_tree(), switch
  )
  state.hyperparams[case.injected] = jnp.zeros_like(
    state.hyperparams[case.injected]
  )
  after, _ = helpers.run(
    injected,
    helpers.tree_grad,
    before[-1],
    steps - switch,
    state=state,
    start=switch,
  )

  schedule = helpers.Piecewise([value, 0.0], [switch])
  expected, _ = helpers.run(
    case.make(**{case.injected: schedule}),
    helpers.tree_grad,
    params_tree(),
    steps,
  )
  chex.assert_trees_all_close(before + after[1:], expected, **CLOSE)
  if case.injected == "learning_rate":  # a zero rate stops training
    chex.assert_trees_all_equal(after[-1], after[0])


@PERIODIC
def test_injected_period_must_be_static(case: Case):
  injected = optax.inject_hyperparams(
    case.factory, static_args=("anchor_dtype",)
  )(**case.kwargs)
  params = params_tree()
  with helpers.raises_naming(TypeError, "period"):
    jax.jit(injected.update)(params, injected.init(params), params)


@ALL
@pytest.mark.optax_not_strict  # optax's MultiSteps
def test_multi_steps_applies_the_averaged_gradient(case: Case):
  every = 3
  tx = case.make()
  micro, micro_state = helpers.run(
    optax.MultiSteps(tx, every_k_schedule=every),
    helpers.tree_grad,
    params_tree(),
    4 * every,
  )

  def averaged(params, k):
    grads = [helpers.tree_grad(params, every * k + j) for j in range(every)]
    return jax.tree.map(lambda *g: sum(g) / every, *grads)

  expected, state = helpers.run(tx, averaged, params_tree(), 4)
  chex.assert_trees_all_close(
    (micro[-1], anchor_of(micro_state)),
    (expected[-1], anchor_of(state)),
    **CLOSE,
  )


@ALL
def test_masked_anchors_only_the_masked_in_leaves(case: Case):
  tx = case.make()
  params = params_tree()
  masked = optax.masked(tx, {"w": True, "b": False, "s": False})
  anchor = anchor_of(masked.init(params))
  assert isinstance(anchor["b"], optax.MaskedNode)
  assert isinstance(anchor["s"], optax.MaskedNode)
  assert anchor["w"].shape == params["w"].shape

  trajectory, state = helpers.run(masked, helpers.tree_grad, params, 5)
  # The masked-in leaf trains as alone; the others take the raw gradient.
  alone, alone_state = helpers.run(tx, helpers.tree_grad, {"w": params["w"]}, 5)
  chex.assert_trees_all_close(
    [p["w"] for p in trajectory], [p["w"] for p in alone], **CLOSE
  )
  unmasked = lambda params: {name: params[name] for name in ("b", "s")}
  chex.assert_trees_all_close(
    [unmasked(p) for p in trajectory[1:]],
    [
      optax.tree.add(unmasked(p), helpers.tree_grad(unmasked(p), k))
      for k, p in enumerate(trajectory[:-1])
    ],
    **CLOSE,
  )
  distance = jax.jit(optax_prox.anchor_distance)(state, trajectory[-1])
  expected = np.linalg.norm(
    np.asarray(trajectory[-1]["w"], np.float64)
    - np.asarray(anchor_of(alone_state)["w"], np.float64)
  )
  chex.assert_trees_all_close(distance, np.float32(expected), rtol=1e-6)


@PROXIMAL
def test_a_masked_pull_leaves_the_other_leaves_to_the_optimizer(case: Case):
  """``chain(masked(proximal_regularize), sgd)``: no pull on the bias."""
  proximal = optax_prox.proximal_regularize(
    case.kwargs["strength"], case.period
  )
  mask = {"w": True, "b": False, "s": False}
  masked = optax.chain(optax.masked(proximal, mask), optax.sgd(0.05))
  ours, _ = helpers.run(masked, helpers.tree_grad, params_tree(), STEPS)
  pulled, _ = helpers.run(case.make(), helpers.tree_grad, params_tree(), STEPS)
  plain, _ = helpers.run(
    optax.sgd(0.05), helpers.tree_grad, params_tree(), STEPS
  )
  for name, pulls in mask.items():
    chex.assert_trees_all_close(
      [p[name] for p in ours],
      [p[name] for p in (pulled if pulls else plain)],
      **CLOSE,
    )


@ALL
def test_apply_if_finite_skips_the_whole_update(case: Case):
  tx = case.make()
  guarded = optax.apply_if_finite(tx, max_consecutive_errors=5)
  params = params_tree()
  grads = [helpers.tree_grad(params, k) for k in range(2)]
  update = jax.jit(guarded.update)
  _, state = update(grads[0], guarded.init(params), params)
  before = state.inner_state
  infinite = {**grads[1], "b": grads[1]["b"].at[0].set(jnp.inf)}
  updates, state = update(infinite, state, params)
  chex.assert_trees_all_equal(updates, zeros_like(params))
  chex.assert_trees_all_equal(state.inner_state, before)
  updates, _ = update(grads[1], state, params)

  _, plain_state = tx.update(grads[0], tx.init(params), params)
  expected, _ = tx.update(grads[1], plain_state, params)
  chex.assert_trees_all_close(updates, expected, **CLOSE)


def nnx_linear_loss(model: nnx.Linear, x: jax.Array) -> jax.Array:
  return jnp.mean(model(x) ** 2)


@ALL
def test_flax_nnx_optimizer_matches_plain_optax(case: Case):
  steps = PERIOD + 2
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  initial = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
  tx = case.make()
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(8, 3)), jnp.float32)

  @nnx.jit
  def train_step(model, optimizer):
    optimizer.update(model, nnx.grad(nnx_linear_loss)(model, x))

  for _ in range(steps):
    train_step(model, optimizer)

  graphdef = nnx.graphdef(model)
  pure_grad = jax.grad(lambda p: nnx_linear_loss(nnx.merge(graphdef, p), x))
  expected, state = helpers.run(tx, lambda p, k: pure_grad(p), initial, steps)
  chex.assert_trees_all_close(
    jax.tree.leaves(
      (nnx.state(model, nnx.Param), anchor_of(optimizer.opt_state))
    ),
    jax.tree.leaves((expected[-1], anchor_of(state))),
    **CLOSE,
  )


# --------------------------------------------------- dtypes and pytrees ----


@ALL
@pytest.mark.parametrize(
  "dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"]
)
def test_low_precision_params_keep_their_dtype(case: Case, dtype: Any):
  tx = case.make(**(case.float16 if dtype == jnp.float16 else {}))
  params = params_tree(dtype)
  trajectory, state = helpers.run(tx, helpers.tree_grad, params, STEPS)
  chex.assert_trees_all_equal_shapes_and_dtypes(state, tx.init(params))
  chex.assert_tree_all_finite(trajectory)
  chex.assert_type(jax.tree.leaves(trajectory), dtype)
  chex.assert_type(
    jax.tree.leaves(anchor_of(state)), case.anchor_dtype_for(dtype)
  )
  # apply_updates casts to the params' dtype: check the updates themselves.
  updates, _ = jax.eval_shape(
    tx.update, helpers.tree_grad(params, 0), state, params
  )
  chex.assert_type(jax.tree.leaves(updates), dtype)


ODD_TREES = {
  "none-scalar-nested": {
    "none": None,
    "scalar": jnp.asarray(3.0),
    "nested": [jnp.ones(2), (jnp.zeros(()), {"deep": jnp.ones((1, 2))})],
  },
  "empty": {},
}


@ALL
@pytest.mark.parametrize("name", sorted(ODD_TREES))
def test_odd_pytrees_keep_their_structure(case: Case, name: str):
  params = ODD_TREES[name]
  trajectory, state = helpers.run(
    case.make(), helpers.tree_grad, params, PERIOD + 1
  )
  chex.assert_trees_all_equal_structs(trajectory[-1], anchor_of(state), params)
  chex.assert_trees_all_equal(
    anchor_of(state),
    cast_like_anchor(case, trajectory[case.last_refresh(PERIOD)]),
  )


# ---------------------------------------------------------- checkpoints ----


@ALL
def test_resuming_from_checkpoints_continues_the_same_trajectory(
  case: Case, tmp_path: Path
):
  """Stops inside an inner loop and at its end; resumes from orbax."""
  tx = case.make()
  steps = STEPS + 2
  uninterrupted, state = helpers.run(
    tx, helpers.tree_grad, params_tree(), steps
  )
  params, resumed_state, start = params_tree(), None, 0
  for stop in (PERIOD + 1, 2 * PERIOD, steps):
    trajectory, resumed_state = helpers.run(
      tx,
      helpers.tree_grad,
      params,
      stop - start,
      state=resumed_state,
      start=start,
    )
    params, start = trajectory[-1], stop
    if stop < steps:
      saved = (params, resumed_state)
      params, resumed_state = helpers.save_and_restore(
        tmp_path / f"step_{stop}", saved
      )
      chex.assert_trees_all_equal_shapes_and_dtypes(
        (params, resumed_state), saved
      )
      helpers.assert_trees_all_equal_shardings((params, resumed_state), saved)
      chex.assert_trees_all_equal((params, resumed_state), saved)
  chex.assert_trees_all_equal(
    (params, resumed_state), (uninterrupted[-1], state)
  )


# -------------------------------------------- state size and donation ----

# A float32 matrix and vector, and a bfloat16 embedding.
MIXED_PARAMS = {
  "w": np.ones((64, 48), np.float32),
  "b": np.ones((48,), np.float32),
  "embedding": np.ones((16, 8), jnp.bfloat16),
}
# Two int32 scalars: the step and the inner position.
COUNTER_BYTES = 8


@ALL
def test_state_is_the_bare_state_plus_the_anchor_and_two_counters(case: Case):
  params = jax.tree.map(jnp.asarray, MIXED_PARAMS)
  ours = nbytes(case.make().init(params))
  with jax.numpy_dtype_promotion("standard"):  # optax's optimizers
    extra = ours - nbytes(case.bare().init(params))
  anchor = sum(
    p.size * case.anchor_dtype_for(p).itemsize for p in jax.tree.leaves(params)
  )
  if case.anchor_dtype == jnp.bfloat16:  # half the bytes of the float32 ones
    assert anchor == (nbytes(params) + nbytes(params["embedding"])) // 2
  assert extra == anchor + COUNTER_BYTES, (
    f"the state holds {extra} bytes more than the bare optimizer's, the"
    f" anchor {anchor}"
  )


def buffers(tree: Any) -> set[int]:
  return {leaf.unsafe_buffer_pointer() for leaf in jax.tree.leaves(tree)}


@ALL
def test_donated_step_updates_in_place_and_matches_an_undonated_one(
  case: Case,
):
  """Params and a state anchored at them are donated together.

  The L2-SP recipe, ``set_anchor(tx.init(params), params)``, then
  ``jax.jit(step, donate_argnums=(0, 1))``: the state shares no buffer with
  the params (else XLA refuses to donate one buffer twice), and every
  buffer passed in is written over in place. JAX deletes a donated buffer
  only where the compiled step writes an output of the same shape and dtype
  over it; one it cannot reuse stays alive, with a warning.
  """
  tx = case.make()
  params = params_tree()
  assert not buffers(params) & buffers(tx.init(params))
  state = optax_prox.set_anchor(tx.init(params), params)
  assert not buffers(params) & buffers(state)
  donated, donated_state = helpers.run(
    tx,
    helpers.tree_grad,
    params,
    STEPS,
    state=state,
    step=helpers.train_step(tx, donate=True),
  )
  freed = jax.tree.leaves((donated[:-1], state))
  assert all(leaf.is_deleted() for leaf in freed), (
    "the step does not update every params and state buffer in place"
  )
  kept, kept_state = helpers.run(
    tx,
    helpers.tree_grad,
    params_tree(),
    STEPS,
    state=optax_prox.set_anchor(tx.init(params_tree()), params_tree()),
  )
  chex.assert_trees_all_equal(
    (donated[-1], donated_state), (kept[-1], kept_state)
  )
