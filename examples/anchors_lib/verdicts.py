"""Replicated verdicts: a difference paired by seed, on two seed sets.

Each seed set gives the mean of ``a - b`` over its seeds with a 95%
t-interval (:func:`examples.study_lib.stats.paired_difference`) and a 90%
one. Only what both sets agree on is stated:

* "win" / "loss": both 95% intervals exclude 0 on the same side;
* "equivalent": otherwise, both 90% intervals lie inside ``±margin`` (two
  one-sided tests at 5% each, per set), the margin fixed before the run;
* "inconclusive": anything else.

A difference that is both significant and inside the margin is a win or a
loss: it was measured, if small; the interval shows its size.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import math

import scipy.stats

from examples.study_lib import stats


@dataclasses.dataclass(frozen=True)
class Difference:
  """``a - b`` paired by seed on one seed set, in points.

  Attributes:
    mean: the mean difference.
    low, high: its 95% t-interval.
    low90, high90: its 90% t-interval.
    n: the number of seeds.
  """

  mean: float
  low: float
  high: float
  low90: float
  high90: float
  n: int


@dataclasses.dataclass(frozen=True)
class Verdict:
  """``a - b`` on every seed set, and the word all of them support."""

  a: str
  b: str
  sets: dict[str, Difference]
  margin: float
  word: str


def paired(a: Sequence[float], b: Sequence[float]) -> Difference:
  """``a - b`` paired by seed, with its 95% and 90% t-intervals.

  The 90% interval has the same centre and a half-width scaled by
  ``t_{0.95}(n - 1) / t_{0.975}(n - 1)``.

  Args:
    a: one value per seed.
    b: the paired values, in the same seed order.

  Returns:
    The :class:`Difference`; with one seed both intervals are infinite.
  """
  c = stats.paired_difference(a, b)
  if c.n < 2:
    return Difference(c.mean, c.low, c.high, -math.inf, math.inf, c.n)
  ratio = scipy.stats.t.ppf(0.95, c.n - 1) / scipy.stats.t.ppf(0.975, c.n - 1)
  half90 = float(ratio) * (c.high - c.mean)
  return Difference(
    c.mean, c.low, c.high, c.mean - half90, c.mean + half90, c.n
  )


def word(differences: Sequence[Difference], margin: float) -> str:
  """The verdict every seed set supports, as in the module docstring.

  Args:
    differences: one per seed set.
    margin: the equivalence margin, in the differences' unit.

  Returns:
    "win", "loss", "equivalent" or "inconclusive".
  """
  if all(d.low > 0 for d in differences):
    return "win"
  if all(d.high < 0 for d in differences):
    return "loss"
  if all(-margin < d.low90 and d.high90 < margin for d in differences):
    return "equivalent"
  return "inconclusive"


def replicated(
  names: tuple[str, str],
  a: Mapping[str, Sequence[float]],
  b: Mapping[str, Sequence[float]],
  margin: float,
) -> Verdict:
  """``a - b`` paired by seed within each seed set, and the verdict.

  Args:
    names: what ``a`` and ``b`` are, for the report.
    a: seed set -> one value per seed.
    b: seed set -> the paired values.
    margin: the equivalence margin.

  Returns:
    The :class:`Verdict`.
  """
  sets = {name: paired(a[name], b[name]) for name in a}
  return Verdict(*names, sets, margin, word(list(sets.values()), margin))
