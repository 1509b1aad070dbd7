"""Problems, schedules and runners shared by the tests."""

import bisect
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

DIM = 5
_RNG = np.random.default_rng(0)
# A noisy, ill-conditioned quadratic: grad f_k(w) = A w - b + noise_k.
A = np.diag(np.linspace(0.5, 4.0, DIM))
B = _RNG.normal(size=DIM)
NOISE = _RNG.normal(scale=0.3, size=(200, DIM))
W0 = _RNG.normal(size=DIM)


def numpy_grad(w: np.ndarray, k: int) -> np.ndarray:
  return A @ w - B + NOISE[k]


def jax_grad(w: jax.Array, k: int) -> jax.Array:
  a, b, noise = (jnp.asarray(x, w.dtype) for x in (A, B, NOISE[k]))
  return a @ w - b + noise


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


def run(
    tx: optax.GradientTransformation,
    grad_fn: Callable[[Any, int], Any],
    params: Any,
    steps: int,
    *,
    jit: bool = True,
) -> tuple[list[Any], Any]:
  """Applies ``steps`` updates; returns every params and the final state."""
  update = jax.jit(tx.update) if jit else tx.update
  state = tx.init(params)
  trajectory = [params]
  for k in range(steps):
    updates, state = update(grad_fn(params, k), state, params)
    params = optax.apply_updates(params, updates)
    trajectory.append(params)
  return trajectory, state


def assert_same_structure_shapes_dtypes(a: Any, b: Any) -> None:
  """Asserts two pytrees have one structure, and equal shapes and dtypes."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert (jnp.shape(x), jnp.result_type(x)) == (
        jnp.shape(y), jnp.result_type(y)), (x, y)
