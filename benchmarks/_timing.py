"""Interleaved wall-clock timing: candidates take turns, ratios per round."""

import dataclasses
import statistics
import time
from typing import Callable, Hashable, Mapping, Sequence, TypeVar

Key = TypeVar("Key", bound=Hashable)


@dataclasses.dataclass(frozen=True)
class Ratio:
  """A candidate's time over its baseline's, summarised over rounds.

  Attributes:
    median: the median of the per-round ratios.
    low: their first quartile.
    high: their third quartile.
  """

  median: float
  low: float
  high: float

  def __str__(self) -> str:
    return f"{self.median:.2f}x ({self.low:.2f}-{self.high:.2f})"


@dataclasses.dataclass(frozen=True)
class Timing:
  """One candidate's timing.

  Attributes:
    seconds: the median over rounds of its seconds per step.
    ratio: its per-round ratio to its baseline (see :func:`paired_ratio`).
  """

  seconds: float
  ratio: Ratio


def seconds_per_step_by_round(
    runners: Mapping[Hashable, Callable[[], None]],
    *,
    steps_per_call: int,
    repeats: int,
) -> dict[Hashable, list[float]]:
  """Times each runner in rounds ``A B C A B C ...``.

  Each runner performs ``steps_per_call`` steps and blocks until they are
  done. A first, untimed round warms up (compilation, allocation); then
  ``repeats`` rounds are timed. Interleaving makes a change of machine load
  hit every candidate of a round alike.

  Args:
    runners: candidate -> a function running ``steps_per_call`` steps.
    steps_per_call: the number of steps one call runs.
    repeats: the number of timed rounds.

  Returns:
    Candidate -> seconds per step in each round, in round order.
  """
  for run in runners.values():
    run()
  samples = {name: [] for name in runners}
  for _ in range(repeats):
    for name, run in runners.items():
      start = time.perf_counter()
      run()
      samples[name].append((time.perf_counter() - start) / steps_per_call)
  return samples


def median_seconds_per_step(
    runners: Mapping[Hashable, Callable[[], None]],
    *,
    steps_per_call: int,
    repeats: int,
) -> dict[Hashable, float]:
  """The median over rounds of :func:`seconds_per_step_by_round`."""
  samples = seconds_per_step_by_round(
      runners, steps_per_call=steps_per_call, repeats=repeats)
  return {name: statistics.median(times) for name, times in samples.items()}


def paired_ratio(candidate: Sequence[float], baseline: Sequence[float]
                 ) -> Ratio:
  """Summarises ``candidate[i] / baseline[i]`` over the rounds ``i``.

  Dividing within a round cancels the load both saw; the quartiles show how
  much is left.
  """
  ratios = [c / b for c, b in zip(candidate, baseline, strict=True)]
  if len(ratios) == 1:
    return Ratio(ratios[0], ratios[0], ratios[0])
  low, median, high = statistics.quantiles(ratios, n=4, method="inclusive")
  return Ratio(median, low, high)


def compare(
    runners: Mapping[Key, Callable[[], None]],
    baseline_of: Callable[[Key], Key],
    *,
    steps_per_call: int,
    repeats: int,
) -> dict[Key, Timing]:
  """Times runners interleaved, each against the baseline it names.

  Args:
    runners: candidate -> a function running ``steps_per_call`` steps.
    baseline_of: candidate -> the candidate it is compared with (itself for
      a baseline, whose ratio is then exactly 1).
    steps_per_call: the number of steps one call runs.
    repeats: the number of timed rounds.

  Returns:
    Candidate -> its median seconds per step and its ratio to its baseline.
  """
  rounds = seconds_per_step_by_round(
      runners, steps_per_call=steps_per_call, repeats=repeats)
  return {
      key: Timing(statistics.median(times),
                  paired_ratio(times, rounds[baseline_of(key)]))
      for key, times in rounds.items()
  }
