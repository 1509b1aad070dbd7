"""The optimizers under study, each a factory of a base learning rate.

Every factory has the signature ``make(learning_rate, lambda_ratio, *,
total_updates, batch_size, period, weight_decay)``; ``learning_rate`` and
``lambda_ratio`` (lambda_w / eta_0, used by the TR variants only) may be
traced, so that a sweep vmaps over them through ``optax.inject_hyperparams``.
All methods use coupled L2 weight decay (1e-4 when tuned, the paper's 5e-4
at its own settings) and the paper's step schedule.

Learning rates live on one lattice, 10^(k/2) (half a decade apart), so that
a TR method and its baseline are measured at the same rates.
"""

from collections.abc import Callable
import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from examples.schedules import step_decay
import optax_prox

WEIGHT_DECAY = 1e-4
PAPER_WEIGHT_DECAY = 5e-4
STEPS_PER_DECADE = 2  # the lattice of rates: 10^(k / STEPS_PER_DECADE)
MOMENTUM = 0.9
LOOKAHEAD_SYNC_PERIOD = 5
LOOKAHEAD_SLOW_STEP_SIZE = 0.5
ACCUMULATED_BATCH = 64


class LookaheadState(NamedTuple):
  """State of :func:`lookahead_keeping_slow_weights`.

  Attributes:
    inner: the state of ``optax.lookahead``.
    slow: the slow weights, a copy of the params tree.
  """

  inner: optax.LookaheadState
  slow: optax.Params


def lookahead_keeping_slow_weights(
  fast_optimizer: optax.GradientTransformation,
) -> optax.GradientTransformation:
  """``optax.lookahead`` for a model that holds only the fast weights.

  ``optax.lookahead`` expects ``LookaheadParams(fast, slow)`` as the params;
  ``nnx.Optimizer`` passes the model's params. This wrapper keeps the slow
  weights in the optimizer state instead and returns the fast updates.
  """
  lookahead = optax.lookahead(
    fast_optimizer, LOOKAHEAD_SYNC_PERIOD, LOOKAHEAD_SLOW_STEP_SIZE
  )

  def init_fn(params):
    slow = jax.tree.map(jnp.copy, params)
    return LookaheadState(
      lookahead.init(optax.LookaheadParams(params, slow)), slow
    )

  def update_fn(updates, state, params=None):
    pair = optax.LookaheadParams(params, state.slow)
    pair_updates, inner = lookahead.update(updates, state.inner, pair)
    slow = optax.apply_updates(state.slow, pair_updates.slow)
    return pair_updates.fast, LookaheadState(inner, slow)

  return optax.GradientTransformation(init_fn, update_fn)


def plain(base: Callable[[Any], optax.GradientTransformation]):
  """The base optimizer with L2 weight decay on the step schedule."""

  def make(learning_rate, lambda_ratio, *, total_updates, weight_decay, **_):
    del lambda_ratio  # no pull
    return optax.chain(
      optax.add_decayed_weights(weight_decay),
      base(step_decay(learning_rate, total_updates)),
    )

  return make


def pulled(base, *, decay: bool, pull: bool):
  """TR's two ingredients, each on or off.

  ``decay``: the step size divided by i + 1 inside each inner loop of
  ``period`` steps. ``pull``: the proximal gradient ``mu_k (w - anchor)``
  with ``mu_k = 2 lambda_w / eta_k``, the anchor refreshed every ``period``
  steps. Both is TRSGD/TRAdam (``optax_prox.trajectory_regularized``).
  """

  def make(
    learning_rate, lambda_ratio, *, total_updates, period, weight_decay, **_
  ):
    schedule = step_decay(learning_rate, total_updates)
    lambda_w = lambda_ratio * learning_rate if pull else 0.0
    if decay:
      return optax_prox.trajectory_regularized(
        base,
        schedule,
        period=period,
        lambda_w=lambda_w,
        weight_decay=weight_decay,
      )
    strength = lambda count: 2 * lambda_w / schedule(count)
    return optax.chain(
      optax_prox.proximal_regularize(strength, period),
      optax.add_decayed_weights(weight_decay),
      base(schedule),
    )

  return make


def lookahead(make_fast):
  def make(learning_rate, lambda_ratio, **kwargs):
    return lookahead_keeping_slow_weights(
      make_fast(learning_rate, lambda_ratio, **kwargs)
    )

  return make


def accumulated(make_inner):
  """``make_inner`` on gradients averaged over batches up to 64 examples."""

  def make(learning_rate, lambda_ratio, *, total_updates, batch_size, **kw):
    every_k = max(1, ACCUMULATED_BATCH // batch_size)
    inner = make_inner(
      learning_rate,
      lambda_ratio,
      total_updates=total_updates // every_k,
      batch_size=batch_size,
      **kw,
    )
    return optax.MultiSteps(
      inner, every_k_schedule=every_k
    ).gradient_transformation()

  return make


sgd = functools.partial(optax.sgd, momentum=MOMENTUM)
adam = optax.adam


@dataclasses.dataclass(frozen=True)
class Method:
  """An optimizer under study.

  Attributes:
    name: its name in the report.
    family: "SGD" or "Adam", the plain optimizer it is compared with.
    centre: the centre of its learning-rate grid at batch size 8.
    scaling: the grid centre moves as (batch size / 8) ** scaling.
    make: the factory (see the module docstring).
  """

  name: str
  family: str
  centre: float
  scaling: float
  make: Callable[..., optax.GradientTransformation]

  def grid_centre(self, batch_size: int) -> float:
    return self.centre * (batch_size / 8) ** self.scaling

  def applies_to(self, batch_size: int) -> bool:
    """Accumulation to 64 only makes sense below a batch of 64."""
    return not self.name.startswith("SGD, accum") or (
      batch_size < ACCUMULATED_BATCH
    )


# Grid centres and their slopes in the batch size, from the picks of the
# earlier short-budget study on MNIST-1D: TR's best base rates are a few
# times the plain optimizer's (inside an inner loop of 10 its mean step is
# 3.4x smaller); SGD's best rate grows almost linearly with the batch, Adam's
# barely. A centre only places the first grid on the lattice: a curve still
# near its best at an edge widens it.
COMPARED = (
  Method("SGD", "SGD", 1.5e-2, 0.9, plain(sgd)),
  Method("TRSGD", "SGD", 5e-2, 0.6, pulled(sgd, decay=True, pull=True)),
  Method("Adam", "Adam", 7e-3, 0.3, plain(adam)),
  Method("TRAdam", "Adam", 2.5e-2, 0.2, pulled(adam, decay=True, pull=True)),
  Method("Lookahead(SGD)", "SGD", 3e-2, 0.75, lookahead(plain(sgd))),
  Method(
    f"SGD, accum. {ACCUMULATED_BATCH}",
    "SGD",
    0.12,
    0.0,
    accumulated(plain(sgd)),
  ),
)
ABLATED = (
  Method(
    "SGD, decay only", "SGD", 4e-2, 0.5, pulled(sgd, decay=True, pull=False)
  ),
  Method(
    "SGD, pull only", "SGD", 2e-2, 1.0, pulled(sgd, decay=False, pull=True)
  ),
  Method(
    "Adam, decay only",
    "Adam",
    1.5e-2,
    0.0,
    pulled(adam, decay=True, pull=False),
  ),
  Method(
    "Adam, pull only", "Adam", 8e-3, 0.25, pulled(adam, decay=False, pull=True)
  ),
)
BY_NAME = {m.name: m for m in COMPARED + ABLATED}
TR_NAMES = ("TRSGD", "TRAdam")
BASELINE_NAMES = (
  "SGD",
  "Adam",
  "Lookahead(SGD)",
  f"SGD, accum. {ACCUMULATED_BATCH}",
)
# The ablation's four variants of each optimizer, in order.
ABLATION = {
  "SGD": ("SGD", "SGD, decay only", "SGD, pull only", "TRSGD"),
  "Adam": ("Adam", "Adam, decay only", "Adam, pull only", "TRAdam"),
}


def lattice_index(rate: float) -> int:
  """The lattice point nearest ``rate``: k with 10^(k/2) closest."""
  return round(STEPS_PER_DECADE * math.log10(rate))


def lattice_rate(index: int) -> float:
  """10^(index/2), to 3 significant digits."""
  return float(f"{10 ** (index / STEPS_PER_DECADE):.3g}")


def grid(centre: float, size: int) -> list[float]:
  """The ``size`` lattice rates around ``centre``, in increasing order."""
  first = lattice_index(centre) - size // 2
  return [lattice_rate(first + i) for i in range(size)]


def widened(rates: list[float], low: bool, high: bool, extra: int = 2):
  """``extra`` more lattice rates below (``low``) and/or above (``high``)."""
  below = lattice_index(rates[0])
  above = lattice_index(rates[-1])
  return [lattice_rate(below - j - 1) for j in range(extra) if low] + [
    lattice_rate(above + j + 1) for j in range(extra) if high
  ]
