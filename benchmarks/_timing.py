"""Interleaved wall-clock timing: candidates take turns, medians win."""

import statistics
import time
from typing import Callable, Mapping


def median_seconds_per_step(
    runners: Mapping[str, Callable[[], None]],
    *,
    steps_per_call: int,
    repeats: int,
) -> dict[str, float]:
  """Times each runner in rounds ``A B C A B C ...`` and takes medians.

  Each runner performs ``steps_per_call`` steps and blocks until they are
  done. A first, untimed round warms up (compilation, allocation); then
  ``repeats`` rounds are timed. Interleaving makes a change of machine load
  hit every candidate alike, and the median discards outlier rounds.

  Args:
    runners: candidate name -> a function running ``steps_per_call`` steps.
    steps_per_call: the number of steps one call runs.
    repeats: the number of timed rounds.

  Returns:
    Candidate name -> median seconds per step.
  """
  for run in runners.values():
    run()
  samples = {name: [] for name in runners}
  for _ in range(repeats):
    for name, run in runners.items():
      start = time.perf_counter()
      run()
      samples[name].append((time.perf_counter() - start) / steps_per_call)
  return {name: statistics.median(times) for name, times in samples.items()}
