"""Timing jitted steps on donated buffers, interleaved, with paired ratios."""

from collections.abc import Callable, Hashable, Mapping, Sequence
import dataclasses
import statistics
import time
from typing import Any

import jax

MIN_ROUNDS = 3  # where a time budget sets the rounds


def tree_bytes(tree: Any) -> int:
  """The total size in bytes of a tree's arrays."""
  return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


class DonatedLoop:
  """Runs ``step(*carry, *constants) -> carry`` compiled, the carry donated.

  A call runs ``steps`` steps, each one's carry (params, optimizer state)
  feeding the next, and blocks once, when they are done. ``scanned=False``:
  one call of the compiled step per step, dispatched without waiting for
  the previous one, as in a Python training loop, which pays the host's
  cost per array passed; ``scanned=True``: the steps run in one
  ``lax.scan``. Construction compiles and runs one call, untimed.
  """

  def __init__(
    self,
    step: Callable[..., Any],
    carry: Sequence[Any],
    constants: Sequence[Any],
    steps: int,
    scanned: bool,
  ):
    def scanned_steps(*args):
      def body(carry, _):
        return tuple(step(*carry, *args[len(carry) :])), None

      return jax.lax.scan(body, args[: len(carry)], length=steps)[0]

    program = jax.jit(
      scanned_steps if scanned else step,
      donate_argnums=tuple(range(len(carry))),
    )
    self.compiled = program.lower(*carry, *constants).compile()
    self.steps, self.calls = steps, 1 if scanned else steps
    self.constants = tuple(constants)
    self.arrays = len(jax.tree.leaves((carry, constants)))  # passed per call
    self.carry = jax.block_until_ready(self.compiled(*carry, *constants))

  def __call__(self) -> None:
    for _ in range(self.calls):
      self.carry = self.compiled(*self.carry, *self.constants)
    jax.block_until_ready(self.carry)

  def temp_bytes(self) -> int:
    """The compiled program's scratch memory, beyond arguments and outputs."""
    return self.compiled.memory_analysis().temp_size_in_bytes

  def alias_bytes(self) -> int:
    """The bytes of outputs written in place of a donated argument."""
    return self.compiled.memory_analysis().alias_size_in_bytes

  def bytes_accessed(self) -> float:
    """XLA's estimate of the bytes one call reads and writes."""
    return self.compiled.cost_analysis()["bytes accessed"]


@dataclasses.dataclass(frozen=True)
class Ratio:
  """The median of per-round ratios, between its quartiles low and high."""

  median: float
  low: float
  high: float

  def __str__(self) -> str:
    return f"{self.median:.2f}x ({self.low:.2f}-{self.high:.2f})"


def paired_ratio(
  candidate: Sequence[float], baseline: Sequence[float]
) -> Ratio:
  """Summarises ``candidate[i] / baseline[i]`` over the rounds ``i``.

  Dividing within a round cancels the load both saw.
  """
  ratios = [c / b for c, b in zip(candidate, baseline, strict=True)]
  if len(ratios) == 1:
    return Ratio(ratios[0], ratios[0], ratios[0])
  low, median, high = statistics.quantiles(ratios, n=4, method="inclusive")
  return Ratio(median, low, high)


@dataclasses.dataclass(frozen=True)
class Timing:
  """Seconds per step (the median over rounds) and the ratio to a baseline."""

  seconds: float
  ratio: Ratio


def compare(
  loops: Mapping[Hashable, DonatedLoop],
  baseline_of: Callable[[Hashable], Hashable],
  repeats: int,
  budget: float | None = None,
) -> dict[Hashable, Timing]:
  """Times ``repeats`` rounds ``A B C A B C ...``; ratios to the baselines.

  Load changes hit a round's loops alike. A baseline maps to its own key.
  With a ``budget`` in seconds, the first round's time sets how many of the
  ``repeats`` rounds fit in it, at least ``MIN_ROUNDS``.
  """
  rounds = {key: [] for key in loops}

  def run_round() -> None:
    for key, loop in loops.items():
      start = time.perf_counter()
      loop()
      rounds[key].append((time.perf_counter() - start) / loop.steps)

  start = time.perf_counter()
  run_round()
  if budget is not None:
    fit = int(budget / (time.perf_counter() - start))
    repeats = min(repeats, max(MIN_ROUNDS, fit))
  for _ in range(repeats - 1):
    run_round()
  return {
    key: Timing(
      statistics.median(times), paired_ratio(times, rounds[baseline_of(key)])
    )
    for key, times in rounds.items()
  }
