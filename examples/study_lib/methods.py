"""The optimizers under study, each a factory of a base learning rate.

Every factory has the signature ``make(learning_rate, lambda_ratio,
weight_decay, *, total_updates, period)``; the first three may be traced,
so that a sweep vmaps over them through ``optax.inject_hyperparams``.
``lambda_ratio`` is lambda_w / eta_0 (TR only). All methods use coupled L2
weight decay (1e-4 when tuned, the paper's 5e-4 at its own settings) and
the paper's step schedule.

Rates live on one lattice, 10^(k/4) (a quarter decade apart): tuning
starts half a decade apart and refines to a quarter around the best, and a
TR method and its baseline are measured at the same rates.
"""

from collections.abc import Callable
import dataclasses
import functools
import math
from typing import Any

import optax

from examples.schedules import step_decay
import optax_prox

WEIGHT_DECAY = 1e-4
PAPER_WEIGHT_DECAY = 5e-4
STEPS_PER_DECADE = 4  # the lattice of rates: 10^(k / STEPS_PER_DECADE)
MOMENTUM = 0.9


def plain(base: Callable[[Any], optax.GradientTransformation]):
  """The base optimizer with L2 weight decay on the step schedule."""

  def make(learning_rate, lambda_ratio, weight_decay, *, total_updates, **_):
    del lambda_ratio  # no pull
    return optax.chain(
      optax.add_decayed_weights(weight_decay),
      base(step_decay(learning_rate, total_updates)),
    )

  return make


def trajectory_regularized(base):
  """TR around ``base``: ``lambda_w = lambda_ratio * eta_0``, the paper's."""

  def make(learning_rate, lambda_ratio, weight_decay, *, total_updates, period):
    return optax.chain(
      optax.add_decayed_weights(weight_decay),  # coupled, as TR's own
      optax_prox.trajectory_regularized(
        base,
        step_decay(learning_rate, total_updates),
        period=period,
        lambda_w=lambda_ratio * learning_rate,
      ),
    )

  return make


sgd = functools.partial(optax.sgd, momentum=MOMENTUM)


@dataclasses.dataclass(frozen=True)
class Method:
  """An optimizer under study.

  Attributes:
    name: its name on the page.
    family: "SGD" or "Adam", the plain optimizer it is compared with.
    centre: the centre of its first grid of rates at batch size 8.
    scaling: the centre moves as (batch size / 8) ** scaling.
    make: the factory (see the module docstring).
  """

  name: str
  family: str
  centre: float
  scaling: float
  make: Callable[..., optax.GradientTransformation]

  @property
  def is_tr(self) -> bool:
    return self.name != self.family

  def grid_centre(self, batch_size: int) -> float:
    return self.centre * (batch_size / 8) ** self.scaling


# Grid centres and slopes in the batch size from the picks of earlier
# studies (docs/results/study.json): TR's best base rates are a few times
# the plain optimizer's (inside an inner loop of 10 its mean step is 3.4x
# smaller); SGD's best rate grows almost linearly with the batch, Adam's
# barely. A centre only places the first grid on the lattice.
METHODS = (
  Method("SGD", "SGD", 1.5e-2, 0.9, plain(sgd)),
  Method("TRSGD", "SGD", 5e-2, 0.6, trajectory_regularized(sgd)),
  Method("Adam", "Adam", 7e-3, 0.3, plain(optax.adam)),
  Method("TRAdam", "Adam", 2.5e-2, 0.2, trajectory_regularized(optax.adam)),
)
BY_NAME = {m.name: m for m in METHODS}
# The paper's untuned settings, at its weight decay of 5e-4.
PAPER_RATES = {"SGD": 0.1, "TRSGD": 0.1, "Adam": 1e-3, "TRAdam": 1e-3}


def lattice_index(rate: float) -> int:
  """The lattice point nearest ``rate``: k with 10^(k/4) closest."""
  return round(STEPS_PER_DECADE * math.log10(rate))


def lattice_rate(index: int) -> float:
  """10^(index/4), to 3 significant digits."""
  return float(f"{10 ** (index / STEPS_PER_DECADE):.3g}")


def coarse_grid(centre: float, size: int) -> list[float]:
  """``size`` rates half a decade apart around ``centre``, increasing."""
  first = 2 * (lattice_index(centre) // 2) - 2 * (size // 2)
  return [lattice_rate(first + 2 * i) for i in range(size)]


def refined(rates: list[float], best: float) -> list[float]:
  """The rates a quarter decade either side of ``best``, and beyond.

  At an edge of ``rates``, also the next half-decade rate beyond it.
  """
  k = lattice_index(best)
  extra = [k - 1, k + 1]
  if best == rates[0]:
    extra.append(k - 2)
  if best == rates[-1]:
    extra.append(k + 2)
  have = {lattice_index(r) for r in rates}
  return sorted(lattice_rate(i) for i in extra if i not in have)
