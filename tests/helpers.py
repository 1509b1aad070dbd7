"""Problems, schedules, the training loop and assertions shared by the tests."""

import ast
import bisect
from collections.abc import Callable, Iterator, Sequence
import contextlib
import functools
from pathlib import Path
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

DIM = 5
_RNG = np.random.default_rng(0)
# A noisy, ill-conditioned quadratic: grad f_k(w) = A w - b + noise_k.
A = np.diag(np.linspace(0.5, 4.0, DIM))
B = _RNG.normal(size=DIM)
NOISE = _RNG.normal(scale=0.3, size=(200, DIM))
W0 = _RNG.normal(size=DIM)

Tree = Any
GradFn = Callable[[Tree, int], Tree]


def numpy_grad(w: np.ndarray, k: int) -> np.ndarray:
  return A @ w - B + NOISE[k]


def jax_grad(w: jax.Array, k: int) -> jax.Array:
  a, b, noise = (jnp.asarray(x, w.dtype) for x in (A, B, NOISE[k]))
  return a @ w - b + noise


def tree_grad(params: Tree, k: int) -> Tree:
  """A nonlinear, step-dependent stand-in for the gradient of any pytree.

  Elementwise, so it needs no communication on sharded params, and computed
  in each leaf's dtype.
  """
  return jax.tree.map(lambda w: jnp.sin(3 * w + k) + 0.1 * w, params)


class Piecewise:
  """A piecewise-constant learning rate, as a jnp schedule and in Python.

  Built here rather than with ``optax.piecewise_constant_schedule``, which
  strict dtype promotion rejects in optax 0.2.8.
  """

  def __init__(self, values: Sequence[float], boundaries: Sequence[int]):
    assert len(values) == len(boundaries) + 1
    self.values = list(values)
    self.boundaries = list(boundaries)

  def __call__(self, count: Any) -> jax.Array:
    passed = jnp.sum(jnp.asarray(count) >= jnp.asarray(self.boundaries))
    return jnp.asarray(self.values, jnp.float32)[passed]

  def python(self, k: int) -> float:
    return self.values[bisect.bisect_right(self.boundaries, k)]


# ------------------------------------------------------- training loop ----

Step = Callable[[Tree, Tree, Tree], tuple[Tree, Tree]]


def update_and_apply(update: Callable[..., tuple[Tree, Tree]]) -> Step:
  """One step: ``update(grads, state, params)``, applied to the params."""

  def step(params: Tree, state: Tree, grads: Tree) -> tuple[Tree, Tree]:
    updates, state = update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


@functools.cache
def train_step(
  tx: optax.GradientTransformation, *, donate: bool = False
) -> Step:
  """The step of ``tx``, jitted once per ``tx``.

  With ``donate=True`` the params and state passed in are donated to the
  step: their buffers are deleted by the call.
  """
  return jax.jit(
    update_and_apply(tx.update), donate_argnums=(0, 1) if donate else ()
  )


def run(
  tx: optax.GradientTransformation,
  grad_fn: GradFn,
  params: Tree,
  steps: int,
  *,
  state: Tree | None = None,
  start: int = 0,
  step: Step | None = None,
) -> tuple[list[Tree], Tree]:
  """Applies ``steps`` updates; returns every params and the final state.

  Args:
    tx: the optimizer.
    grad_fn: ``grad_fn(params, k)`` is the gradient at step ``k``.
    params: the params to start from.
    steps: how many updates to apply.
    state: the state to start from; default ``tx.init(params)``.
    start: the step ``k`` of the first update, to resume a run.
    step: the step to apply; default ``train_step(tx)``. After a step that
      donates its inputs, the params in the returned trajectory are
      deleted, all but the last.

  Returns:
    The params before the first and after each update, and the final state.
  """
  step = train_step(tx) if step is None else step
  state = tx.init(params) if state is None else state
  trajectory = [params]
  for k in range(start, start + steps):
    params, state = step(params, state, grad_fn(params, k))
    trajectory.append(params)
  return trajectory, state


def imported_packages(path: Path) -> set[str]:
  """The top-level packages a Python file imports (``examples``, ``jax``)."""
  modules = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      modules |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      modules.add(node.module)
  return {module.split(".")[0] for module in modules}


def save_and_restore(directory: Path, tree: Tree) -> Tree:
  """Saves ``tree`` with orbax and restores it with the same shardings."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory, tree)
    checkpointer.wait_until_finished()
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
    return checkpointer.restore(directory, target)


# ---------------------------------------------------------- assertions ----


@contextlib.contextmanager
def raises_naming(error: type[Exception], *names: str) -> Iterator[None]:
  """Expects ``error``, with a message that names each of ``names``.

  The test pins what the user must be told (the argument, the path that
  differs), not the sentence that tells it.
  """
  with pytest.raises(error) as raised:
    yield
  for name in names:
    assert name in str(raised.value), (name, str(raised.value))


def assert_trees_all_equal_shardings(*trees: Tree) -> None:
  """Asserts one tree structure and equivalent shardings, leaf by leaf.

  The sharding counterpart of ``chex.assert_trees_all_equal_shapes``, which
  chex 0.1.92 lacks.
  """
  chex.assert_trees_all_equal_comparator(
    lambda a, b: a.sharding.is_equivalent_to(b.sharding, a.ndim),
    lambda a, b: f"laid out as {a.sharding} and as {b.sharding}",
    *trees,
  )
