"""Picking a learning rate, and paired comparisons with t-based intervals."""

import math
from typing import NamedTuple

import numpy as np

# Two-sided 95% quantiles of Student's t, t_{0.975}(df), for df = 1..30.
T_975 = (
  12.706,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.160,
  2.145,
  2.131,
  2.120,
  2.110,
  2.101,
  2.093,
  2.086,
  2.080,
  2.074,
  2.069,
  2.064,
  2.060,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042,
)


def t_975(df: int) -> float:
  """t_{0.975}(df); beyond 30 degrees of freedom, a close approximation."""
  if df < 1:
    raise ValueError(f"need at least 1 degree of freedom, got {df}")
  if df <= len(T_975):
    return T_975[df - 1]
  return 1.95996 + 2.3722 / df + 2.8224 / df**2  # Cornish-Fisher, error <1e-3


class Comparison(NamedTuple):
  """``a - b`` paired by seed: mean, 95% interval and verdict."""

  mean: float
  low: float
  high: float
  verdict: str  # "win" (interval above 0), "loss" (below 0) or "tie"
  n: int


def paired_difference(a, b) -> Comparison:
  """Mean of ``a - b`` over paired seeds, with a t-based 95% interval.

  "win" or "loss" only where the interval excludes 0, else "tie". With a
  single pair there is no interval, and the verdict is "tie".
  """
  diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  mean, n = float(diff.mean()), len(diff)
  if n < 2:
    return Comparison(mean, -math.inf, math.inf, "tie", n)
  half = t_975(n - 1) * float(diff.std(ddof=1)) / math.sqrt(n)
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


def at_edge(picked: int, num_rates: int) -> bool:
  return picked in (0, num_rates - 1)
