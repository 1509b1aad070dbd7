r"""Every optimizer of the battery reaches the minimum of two problems.

Each optimizer in ``tests/test_common.py``'s table runs jitted, as one
``lax.scan``, from a fixed start on two problems:

* ``QUADRATIC``: :math:`\sum_j h_j (w_j - w^*_j)^2 / 2` in four dimensions,
  with curvatures :math:`h_j` from 1 to 100 (condition number 100);
* ``ROSENBROCK``: :math:`(1 - x)^2 + 100 (y - x^2)^2` from
  :math:`(-1.2, 1)`, minimum at :math:`(1, 1)` at the end of a curved, flat
  valley.

It must end within the problem's tolerance of the minimum of the objective
it optimises: the problem plus what the case adds to the gradient, its
coupled L2 ``weight_decay`` and, with ``period=None``, the pull toward the
start (the anchor it never refreshes). ``minimiser`` finds that minimum by
Newton's method from the problem's own. The decoupled weight decay in the
defaults of ``optax.adamw`` (1e-4) and ``optax.lion`` (1e-3) is left out:
it moves AdamW's end point by about 1e-5 here, and Lion ends oscillating on
a larger scale. The tolerance is 1e-3 on the quadratic and 1e-2 on
Rosenbrock, where Adam with a constant learning rate keeps wandering within
5e-3 of the minimum.

``SETTINGS`` gives each optimizer its learning rate and number of steps on
each problem. The Trajectory Regularized optimizers step
:math:`\eta / (i + 1)` inside each inner loop of three steps (on average
:math:`0.61 \eta`) and are pulled toward the anchor, so they take more
steps than their base optimizer would. Heavy-ball momentum under this
cycle of steps diverges on the quadratic from :math:`\eta = 0.012`, where
a constant step would be stable up to 0.038, so TRSGD takes 0.01. Lion
moves each coordinate by :math:`\pm\eta` and ends oscillating on that
scale, so it takes a small rate and many steps.
"""

from collections.abc import Callable
import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
import pytest

from tests import test_common
from tests.test_common import Case

NEWTON_STEPS = 20


@dataclasses.dataclass(frozen=True)
class Problem:
  """A function to minimise, where to start, its minimum, how near to end."""

  name: str
  loss: Callable[[jax.Array], jax.Array]
  start: tuple[float, ...]
  minimum: tuple[float, ...]
  tolerance: float


CURVATURES = (1.0, 4.6, 21.5, 100.0)  # log-spaced, condition number 100
W_STAR = (1.0, -1.0, 0.5, -0.5)


def quadratic(w: jax.Array) -> jax.Array:
  curvatures, w_star = jnp.asarray(CURVATURES), jnp.asarray(W_STAR)
  return jnp.sum(curvatures * (w - w_star) ** 2) / 2


def rosenbrock(w: jax.Array) -> jax.Array:
  x, y = w[0], w[1]
  return (1 - x) ** 2 + 100 * (y - x**2) ** 2


QUADRATIC = Problem("quadratic", quadratic, (0.5, -0.5, 0.0, 0.0), W_STAR, 1e-3)
ROSENBROCK = Problem("rosenbrock", rosenbrock, (-1.2, 1.0), (1.0, 1.0), 1e-2)

# Optimizer: problem -> (learning rate, steps).
SETTINGS: dict[str, dict[Problem, tuple[float, int]]] = {
  "trsgd": {QUADRATIC: (1e-2, 500), ROSENBROCK: (1e-3, 5000)},
  "tradam": {QUADRATIC: (5e-2, 500), ROSENBROCK: (5e-3, 10000)},
  "tr-adamw": {QUADRATIC: (5e-2, 500), ROSENBROCK: (5e-3, 10000)},
  "tr-lion": {QUADRATIC: (2e-4, 6000), ROSENBROCK: (1e-3, 8000)},
  "tr-nesterov-sgd": {QUADRATIC: (1e-2, 500), ROSENBROCK: (1.5e-3, 5000)},
  "proximal+sgd": {QUADRATIC: (1.5e-2, 1000), ROSENBROCK: (2e-3, 10000)},
  "proximal-fixed-anchor+sgd": {
    QUADRATIC: (1.5e-2, 1000),
    ROSENBROCK: (2e-3, 10000),
  },
  "trsgd-bf16-anchor": {QUADRATIC: (1e-2, 500), ROSENBROCK: (1e-3, 5000)},
  "tradam-bf16-anchor": {QUADRATIC: (5e-2, 500), ROSENBROCK: (5e-3, 10000)},
}
RUNS = [
  pytest.param(
    param.values[0],
    problem,
    *settings,
    id=f"{param.id}-{problem.name}",
    marks=param.marks,
  )
  for param in test_common.CASES
  for problem, settings in SETTINGS.get(param.id, {}).items()
]


def added_terms(case: Case) -> tuple[float, float]:
  """The L2 weight decay and the pull toward the start that the case adds."""
  l2 = case.kwargs.get("weight_decay", 0.0)
  pull = case.kwargs["strength"] if case.period is None else 0.0
  return l2, pull


@functools.partial(jax.jit, static_argnums=0)
def minimiser(problem: Problem, l2: float, pull: float) -> jax.Array:
  """The minimum of the problem plus an L2 penalty and a pull to the start.

  Newton's method from the problem's own minimum, which the penalties of
  the cases move by little.
  """
  start = jnp.asarray(problem.start)

  def objective(w: jax.Array) -> jax.Array:
    return (
      problem.loss(w)
      + l2 / 2 * jnp.sum(w**2)
      + pull / 2 * jnp.sum((w - start) ** 2)
    )

  def newton_step(_: Any, w: jax.Array) -> jax.Array:
    hessian = jax.hessian(objective)(w)
    return w - jnp.linalg.solve(hessian, jax.grad(objective)(w))

  return jax.lax.fori_loop(
    0, NEWTON_STEPS, newton_step, jnp.asarray(problem.minimum)
  )


def train(
  tx: optax.GradientTransformation, problem: Problem, steps: int
) -> jax.Array:
  """The params after ``steps`` updates from the start, in one scan."""

  def step(carry: Any, _: None) -> tuple[Any, None]:
    w, state = carry
    updates, state = tx.update(jax.grad(problem.loss)(w), state, w)
    return (optax.apply_updates(w, updates), state), None

  @jax.jit
  def steps_from(w: jax.Array) -> jax.Array:
    (w, _), _ = jax.lax.scan(step, (w, tx.init(w)), length=steps)
    return w

  return steps_from(jnp.asarray(problem.start))


def test_every_optimizer_of_the_battery_has_settings():
  assert set(SETTINGS) == {case.name for case in test_common.TABLE}


@pytest.mark.parametrize(("case", "problem", "learning_rate", "steps"), RUNS)
def test_reaches_the_minimum(
  case: Case, problem: Problem, learning_rate: float, steps: int
):
  final = train(case.make(learning_rate=learning_rate), problem, steps)
  target = minimiser(problem, *added_terms(case))
  distance = float(jnp.linalg.norm(final - target))
  assert distance < problem.tolerance, (
    f"after {steps} steps at {final}, {distance:.2g} from the minimum {target}"
  )
