"""The study's statistics: picks, paired intervals and working ranges.

* :func:`paired_difference`: ``a - b`` paired by seed, with a t-based 95%
  interval; "win" or "loss" only where the interval excludes 0.
* :func:`pick`: the rate with the best mean validation accuracy.
* :func:`working_range`: how wide (in decades) the rates within 2 points of
  the best are.
"""

import dataclasses
import math

import numpy as np
import scipy.stats

WORKING_RANGE_POINTS = 2.0


@dataclasses.dataclass(frozen=True)
class Comparison:
  """``a - b`` paired by seed: mean, 95% interval and verdict."""

  mean: float
  low: float
  high: float
  verdict: str  # "win" (interval above 0), "loss" (below 0) or "tie"
  n: int


def paired_difference(a, b) -> Comparison:
  """Mean of ``a - b`` over paired seeds, with a t-based 95% interval.

  The half-width is ``t_{0.975}(n - 1) s / sqrt(n)`` with ``s`` the sample
  standard deviation of the ``n`` differences. With a single pair there is
  no interval, and the verdict is "tie".
  """
  diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  mean, n = float(diff.mean()), len(diff)
  if n < 2:
    return Comparison(mean, -math.inf, math.inf, "tie", n)
  t = float(scipy.stats.t.ppf(0.975, n - 1))
  half = t * float(diff.std(ddof=1)) / math.sqrt(n)
  low, high = mean - half, mean + half
  verdict = "win" if low > 0 else "loss" if high < 0 else "tie"
  return Comparison(mean, low, high, verdict, n)


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
  return float(ends[1] - ends[0])


def open_edges(
  mean_accuracy_points, tolerance: float = WORKING_RANGE_POINTS
) -> tuple[bool, bool]:
  """Whether the first and the last rate are inside the working range.

  A grid whose curve falls off on both sides returns ``(False, False)``.
  """
  accuracy = np.nan_to_num(np.asarray(mean_accuracy_points, np.float64))
  inside = accuracy >= accuracy.max() - tolerance
  return bool(inside[0]), bool(inside[-1])
