"""The study's statistics: picks, paired intervals and working ranges.

* :func:`paired_difference`: ``a - b`` paired by seed, with t-based 95% and
  90% intervals; "win" or "loss" only where the 95% interval excludes 0.
* :func:`replicated_word`: the verdict of several seed sets together: a
  win or loss every set gives, "equivalent" where every set's 90% interval
  lies within +-:data:`EQUIVALENCE_POINTS` (two one-sided tests at 5%),
  "inconclusive" otherwise.
* :func:`pick`: the rate with the best mean validation accuracy.
* :func:`working_range`: the rates within 2 points of the best: its edges
  and its width in decades; :func:`bootstrap_range` puts seed-bootstrap
  intervals on the width and on a shift between two methods.
"""

import dataclasses
import math

import numpy as np
import scipy.stats

WORKING_RANGE_POINTS = 2.0
EQUIVALENCE_POINTS = 0.5
BOOTSTRAP_SAMPLES = 2000


@dataclasses.dataclass(frozen=True)
class Comparison:
  """``a - b`` paired by seed: mean, 95% and 90% intervals, verdict."""

  mean: float
  low: float  # the 95% interval
  high: float
  verdict: str  # "win" (95% interval above 0), "loss" (below 0) or "tie"
  n: int
  low90: float  # the 90% interval, for the equivalence test
  high90: float


def paired_difference(a, b) -> Comparison:
  """Mean of ``a - b`` over paired seeds, with t-based intervals.

  The 95% half-width is ``t_{0.975}(n - 1) s / sqrt(n)`` with ``s`` the
  sample standard deviation (``n - 1`` in its denominator) of the ``n``
  differences; the 90% one uses ``t_{0.95}``. With a single pair there is
  no interval, and the verdict is "tie".
  """
  diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  mean, n = float(diff.mean()), len(diff)
  if n < 2:
    return Comparison(mean, -math.inf, math.inf, "tie", n, -math.inf, math.inf)
  scale = float(diff.std(ddof=1)) / math.sqrt(n)
  half95 = float(scipy.stats.t.ppf(0.975, n - 1)) * scale
  half90 = float(scipy.stats.t.ppf(0.95, n - 1)) * scale
  low, high = mean - half95, mean + half95
  verdict = "win" if low > 0 else "loss" if high < 0 else "tie"
  return Comparison(mean, low, high, verdict, n, mean - half90, mean + half90)


def replicated_word(comparisons, margin: float = EQUIVALENCE_POINTS) -> str:
  """The verdict of several seed sets' comparisons of the same pair.

  "win" or "loss" if every set gives it; "equivalent" if every set's 90%
  interval lies inside ``[-margin, +margin]`` (each set rejects both "less
  than -margin" and "more than +margin" at 5%); "inconclusive" otherwise.
  """
  words = {c.verdict for c in comparisons}
  if len(words) == 1 and words != {"tie"}:
    return words.pop()
  if all(-margin < c.low90 and c.high90 < margin for c in comparisons):
    return "equivalent"
  return "inconclusive"


def pick(val_accuracy) -> int:
  """The rate with the best mean final validation accuracy.

  ``val_accuracy`` has shape ``(seeds, rates)``; a diverged run (NaN)
  counts as 0.
  """
  mean = np.nan_to_num(np.asarray(val_accuracy), nan=0.0).mean(axis=0)
  return int(np.argmax(mean))


def working_range(
  rates, mean_accuracy_points, tolerance: float = WORKING_RANGE_POINTS
) -> float:
  """The width, in decades, of the rates within ``tolerance`` of the best.

  The difference of :func:`range_ends`.
  """
  low, high = range_ends(rates, mean_accuracy_points, tolerance)
  return high - low


def range_ends(
  rates, mean_accuracy_points, tolerance: float = WORKING_RANGE_POINTS
) -> tuple[float, float]:
  """``log10`` of the smallest and the largest rate within ``tolerance``.

  The range is the run of grid rates around the best one whose mean
  accuracy (in points) is at least ``best - tolerance``, extended on each
  side to where the straight line (in log rate) to the next rate crosses
  that threshold. At an edge of the grid it stops at the edge, so the width
  is then a lower bound (:func:`open_edges` says where). A NaN counts as 0.
  """
  log_rate = np.log10(np.asarray(rates, np.float64))
  accuracy = np.nan_to_num(np.asarray(mean_accuracy_points, np.float64))
  best = int(np.argmax(accuracy))
  threshold = accuracy[best] - tolerance
  ends = []
  for step in (-1, 1):
    i = best
    while 0 <= i + step < len(accuracy) and accuracy[i + step] >= threshold:
      i += step
    end = log_rate[i]
    if 0 <= i + step < len(accuracy):  # the curve falls below: interpolate
      fraction = (accuracy[i] - threshold) / (accuracy[i] - accuracy[i + step])
      end += fraction * (log_rate[i + step] - log_rate[i])
    ends.append(end)
  return float(ends[0]), float(ends[1])


@dataclasses.dataclass(frozen=True)
class RangeStats:
  """A working range and, against a baseline's, its width and shift.

  Widths and shifts in decades, with 95% seed-bootstrap intervals; the
  shift is the move of the range's centre (in log rate) from the
  baseline's.
  """

  low_rate: float  # the smallest rate within 2 points (interpolated)
  high_rate: float  # the largest
  width: float
  width_interval: tuple[float, float]
  width_gap: float  # width minus the baseline's width
  width_gap_interval: tuple[float, float]
  shift: float
  shift_interval: tuple[float, float]


def percentile_interval(samples) -> tuple[float, float]:
  low, high = np.percentile(np.asarray(samples), [2.5, 97.5])
  return float(low), float(high)


def bootstrap_range(
  rates,
  test,
  base_rates,
  base_test,
  samples: int = BOOTSTRAP_SAMPLES,
  seed: int = 0,
) -> RangeStats:
  """A method's working range against a baseline's, with seed bootstrap.

  Args:
    rates: the method's grid of rates.
    test: its test accuracy (points), shape ``(seeds, len(rates))``.
    base_rates: the baseline's grid.
    base_test: its accuracy, ``(seeds, len(base_rates))``, the same seeds
      in the same order (the resampling is paired).
    samples: bootstrap resamples of the seeds.
    seed: of the resampling.

  Returns:
    The range of the mean curve, and the intervals of the width, the width
    gap and the shift from the 2.5th and 97.5th percentiles over resamples
    (each a draw of as many seeds as there are, with replacement).
  """
  test, base_test = np.asarray(test), np.asarray(base_test)

  def measure(rows):
    ours = range_ends(rates, test[rows].mean(axis=0))
    theirs = range_ends(base_rates, base_test[rows].mean(axis=0))
    width = ours[1] - ours[0]
    return (
      width,
      width - (theirs[1] - theirs[0]),
      (ours[0] + ours[1] - theirs[0] - theirs[1]) / 2,
      ours,
    )

  width, gap, shift, ends = measure(np.arange(len(test)))
  draws = np.random.default_rng(seed).integers(
    0, len(test), (samples, len(test))
  )
  measured = np.array([measure(rows)[:3] for rows in draws])
  return RangeStats(
    10 ** ends[0],
    10 ** ends[1],
    width,
    percentile_interval(measured[:, 0]),
    gap,
    percentile_interval(measured[:, 1]),
    shift,
    percentile_interval(measured[:, 2]),
  )


def open_edges(
  mean_accuracy_points, tolerance: float = WORKING_RANGE_POINTS
) -> tuple[bool, bool]:
  """Whether the first and the last rate are inside the working range.

  A grid whose curve falls off on both sides returns ``(False, False)``.
  """
  accuracy = np.nan_to_num(np.asarray(mean_accuracy_points, np.float64))
  inside = accuracy >= accuracy.max() - tolerance
  return bool(inside[0]), bool(inside[-1])
