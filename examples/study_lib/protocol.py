"""The study's protocol: tune, compare on two seed sets, measure ranges.

* :func:`tune`: one method at one batch size, every rate of its grid on the
  seeds of both sets, each set on its own data split (:func:`split_of`), in
  a sweep per set. Each set picks its rate by mean final
  validation accuracy; while a curve is still within 2 points of its best
  at an edge of the grid, the grid grows by two rates on that side.
* :func:`at_rate`: one method at one fixed rate (the paper's settings).
* :func:`compare`: TR minus a baseline in final test accuracy, paired by
  seed, per seed set and pooled, with the replicated verdict.
* :func:`compare_ranges`: each method's working range of rates (edges and
  width, with seed-bootstrap intervals) and TR's shift against its plain
  optimizer.
* :func:`sensitivity`: TR at its tuned rate over period x lambda_w / eta_0.

Every result is a frozen dataclass; ``dataclasses.asdict`` makes it JSON.
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import json
import os
import shutil
import time

import numpy as np

from examples.study_lib import data as data_lib
from examples.study_lib import methods as methods_lib
from examples.study_lib import stats
from examples.study_lib import sweep as sweep_lib

SeedSets = Mapping[str, Sequence[int]]  # "A" -> seeds, "B" -> seeds


def split_of(seeds: Sequence[int]) -> int:
  """The data split of a seed set: seeds ``8k .. 8k + 7`` train on split k.

  Set A (seeds 0..7) has split 0, the split of earlier versions; set B its
  own, and ``--first-seed 16`` draws fresh splits 2 and 3.
  """
  return seeds[0] // len(seeds)


class Interrupted(Exception):
  """Raised when the study stops early on purpose (``--stop-after-epochs``)."""


@dataclasses.dataclass
class Runner:
  """Trains plans, checkpoints and resumes them.

  A finished sweep's history is saved as JSON in ``checkpoint_dir``; a sweep
  in progress is saved there by orbax (see :func:`sweep_lib.train`).
  ``on_epoch`` is called after every epoch of every sweep with the number of
  configurations trained, so that a progress bar can count run-epochs.
  """

  checkpoint_dir: str
  checkpoint_every_s: float = 60.0
  epoch_budget: int | None = None  # stop after this many epochs (tests)
  on_epoch: Callable[[int], None] = lambda configs: None
  train_seconds: float = 0.0  # of every sweep, also those run before a resume

  def plan(self, method, task, configs, batch_size, epochs, **options):
    """A sweep of ``configs``, on the data split of their seed set."""
    split = split_of(sorted({c.seed for c in configs}))
    return sweep_lib.Plan(
      method,
      task,
      tuple(configs),
      batch_size,
      epochs,
      len(task.load(split).train_x) // batch_size,
      split=split,
      **options,
    )

  def run(self, plan: sweep_lib.Plan) -> dict[str, np.ndarray]:
    """Trains ``plan`` (or loads its finished history)."""
    os.makedirs(self.checkpoint_dir, exist_ok=True)
    done_path = os.path.join(self.checkpoint_dir, plan.slug + ".json")
    if os.path.exists(done_path):
      with open(done_path) as f:
        saved = json.load(f)
      self.train_seconds += saved["seconds"]
      self.on_epoch(plan.epochs * len(plan.configs))
      return {k: np.asarray(saved[k], np.float32) for k in sweep_lib.METRICS}
    if self.epoch_budget is not None and self.epoch_budget <= 0:
      raise Interrupted()
    trained, start = [], time.perf_counter()

    def on_epoch():
      trained.append(1)
      self.on_epoch(len(plan.configs))

    history, done = sweep_lib.train(
      plan,
      plan.task.load(plan.split),
      checkpoint_dir=self.checkpoint_dir,
      checkpoint_every_s=self.checkpoint_every_s,
      max_new_epochs=self.epoch_budget,
      on_epoch=on_epoch,
    )
    if self.epoch_budget is not None:
      self.epoch_budget -= len(trained)
    if not done:
      raise Interrupted()
    seconds = time.perf_counter() - start  # this process's share only
    self.train_seconds += seconds
    with open(done_path + ".tmp", "w") as f:
      json.dump(
        {"seconds": seconds, **{k: v.tolist() for k, v in history.items()}}, f
      )
    os.replace(done_path + ".tmp", done_path)
    shutil.rmtree(
      os.path.join(self.checkpoint_dir, plan.slug), ignore_errors=True
    )
    return history


@dataclasses.dataclass(frozen=True)
class RunResult:
  """What the study keeps of one run, accuracies in points."""

  val: float  # final validation accuracy
  test: float  # final test accuracy
  test_at_best_val: float  # test accuracy at the epoch of best validation


def run_results(history, configs) -> dict[tuple[int, float], RunResult]:
  """``(seed, rate) -> RunResult`` for every configuration of a sweep."""
  points = {k: 100 * np.nan_to_num(v) for k, v in history.items()}
  best_epoch = np.argmax(points["val_accuracy"], axis=0)
  return {
    (c.seed, c.learning_rate): RunResult(
      float(points["val_accuracy"][-1, i]),
      float(points["test_accuracy"][-1, i]),
      float(points["test_accuracy"][best_epoch[i], i]),
    )
    for i, c in enumerate(configs)
  }


@dataclasses.dataclass(frozen=True)
class SetResult:
  """One seed set's view of a grid of rates; accuracies in points.

  Attributes:
    seeds: the set's seeds.
    picked: the index of the rate with the best mean validation accuracy.
    val_mean: the mean final validation accuracy at each rate.
    test_mean: the mean final test accuracy at each rate.
    test: the final test accuracy of each seed (rows) at each rate.
    test_at_best_val: per seed, at the picked rate, the test accuracy at
      the epoch of best validation accuracy.
  """

  seeds: tuple[int, ...]
  picked: int
  val_mean: tuple[float, ...]
  test_mean: tuple[float, ...]
  test: tuple[tuple[float, ...], ...]
  test_at_best_val: tuple[float, ...]

  @property
  def picked_test(self) -> tuple[float, ...]:
    """Each seed's final test accuracy at the picked rate."""
    return tuple(row[self.picked] for row in self.test)


def set_result(results, seeds, rates) -> SetResult:
  grid = lambda field: np.array(
    [[getattr(results[s, r], field) for r in rates] for s in seeds]
  )
  val, test, at_best = grid("val"), grid("test"), grid("test_at_best_val")
  picked = stats.pick(val)
  return SetResult(
    tuple(seeds),
    picked,
    tuple(val.mean(axis=0).tolist()),
    tuple(test.mean(axis=0).tolist()),
    tuple(map(tuple, test.tolist())),
    tuple(at_best[:, picked].tolist()),
  )


@dataclasses.dataclass(frozen=True)
class Tuning:
  """One method at one batch size over a grid of rates, per seed set."""

  task: str
  method: str
  batch_size: int
  epochs: int
  weight_decay: float
  rates: tuple[float, ...]
  widenings: int
  sets: dict[str, SetResult]

  def picked_rate(self, seed_set: str) -> float:
    return self.rates[self.sets[seed_set].picked]

  def width(self, seed_set: str) -> float:
    """Decades of rates whose mean test accuracy is within 2 of the best."""
    return stats.working_range(self.rates, self.sets[seed_set].test_mean)

  def open_edges(self) -> tuple[bool, bool]:
    """Whether some set's test curve stays within 2 points at each edge."""
    return open_sides(s.test_mean for s in self.sets.values())


def open_sides(curves) -> tuple[bool, bool]:
  """Whether some of ``curves`` is within 2 points of its best at each edge."""
  edges = [stats.open_edges(curve) for curve in curves]
  return any(e[0] for e in edges), any(e[1] for e in edges)


def train_rates(
  runner: Runner,
  task: data_lib.Task,
  method: methods_lib.Method,
  batch_size: int,
  rates: Sequence[float],
  seed_sets: SeedSets,
  epochs: int,
  weight_decay: float = methods_lib.WEIGHT_DECAY,
) -> dict[tuple[int, float], RunResult]:
  """Every seed at every rate, in one sweep per seed set (on its split)."""
  results = {}
  for seeds in seed_sets.values():
    configs = [sweep_lib.Config(s, r) for s in seeds for r in rates]
    plan = runner.plan(
      method,
      task,
      configs,
      batch_size,
      epochs,
      weight_decay=weight_decay,
    )
    results |= run_results(runner.run(plan), configs)
  return results


def tune(
  runner: Runner,
  task: data_lib.Task,
  method: methods_lib.Method,
  batch_size: int,
  seed_sets: SeedSets,
  *,
  epochs: int,
  grid_size: int,
  max_widen: int,
) -> Tuning:
  """Tunes ``method``'s rate on each seed set; returns the record.

  While some set's mean validation accuracy at an edge of the rates tried
  so far is within 2 points of its best, the grid grows by two lattice
  rates beyond that edge (at most ``max_widen`` times).
  """
  rates = methods_lib.grid(method.grid_centre(batch_size), grid_size)
  results, new, widenings = {}, rates, 0
  while True:
    results |= train_rates(
      runner, task, method, batch_size, new, seed_sets, epochs
    )
    rates = sorted({r for _, r in results})
    sets = {n: set_result(results, s, rates) for n, s in seed_sets.items()}
    low, high = open_sides(s.val_mean for s in sets.values())
    if not (low or high) or widenings >= max_widen:
      break
    new, widenings = methods_lib.widened(rates, low, high), widenings + 1
  return Tuning(
    task.name,
    method.name,
    batch_size,
    epochs,
    methods_lib.WEIGHT_DECAY,
    tuple(rates),
    widenings,
    sets,
  )


def at_rate(
  runner: Runner,
  task: data_lib.Task,
  method: methods_lib.Method,
  batch_size: int,
  rate: float,
  seed_sets: SeedSets,
  *,
  epochs: int,
  weight_decay: float,
) -> Tuning:
  """``method`` at one fixed ``rate`` (nothing tuned) on both seed sets."""
  results = train_rates(
    runner, task, method, batch_size, [rate], seed_sets, epochs, weight_decay
  )
  sets = {n: set_result(results, s, [rate]) for n, s in seed_sets.items()}
  return Tuning(
    task.name, method.name, batch_size, epochs, weight_decay, (rate,), 0, sets
  )


@dataclasses.dataclass(frozen=True)
class Verdict:
  """``method`` minus ``baseline`` paired by seed, per seed set and pooled.

  Attributes:
    sets: each seed set's paired difference.
    pooled: the difference over the seeds of all sets together (each seed
      at its own set's picked rates).
    word: the replicated verdict (:func:`stats.replicated_word`): "win",
      "loss", "equivalent" or "inconclusive".
    baseline_task: the baseline's task, ``task`` unless the comparison
      crosses nets (TR on BatchNorm against a method on GroupNorm).
  """

  task: str
  batch_size: int
  method: str
  baseline: str
  sets: dict[str, stats.Comparison]
  pooled: stats.Comparison
  word: str
  baseline_task: str


def verdict(ours: Tuning, theirs: Tuning, values) -> Verdict:
  """``values(tuning, set_result) -> per-seed values``, paired set by set."""
  pairs = {
    name: (values(ours, ours.sets[name]), values(theirs, theirs.sets[name]))
    for name in ours.sets
  }
  sets = {name: stats.paired_difference(*pair) for name, pair in pairs.items()}
  pooled = stats.paired_difference(
    *(np.concatenate([pair[i] for pair in pairs.values()]) for i in (0, 1))
  )
  return Verdict(
    ours.task,
    ours.batch_size,
    ours.method,
    theirs.method,
    sets,
    pooled,
    stats.replicated_word(sets.values()),
    theirs.task,
  )


def compare(ours: Tuning, theirs: Tuning) -> Verdict:
  """``ours`` minus ``theirs`` in final test accuracy at the picked rates."""
  return verdict(ours, theirs, lambda tuning, s: s.picked_test)


@dataclasses.dataclass(frozen=True)
class RangeComparison:
  """The working ranges of a TR method and its plain optimizer.

  Attributes:
    sets: per seed set, ``(ours, theirs)``: each method's range (its edges
      and width, with a seed-bootstrap interval on the width), ours also
      with the width gap and the shift against theirs.
    width_word: "wider" or "narrower" if every set's interval on the width
      gap excludes 0 on that side, else "neither".
    shift_word: "higher" or "lower" likewise for the shift.
    open_edges: per method, whether its curve is still within 2 points of
      its best at the low and the high edge of its grid (a width is then a
      lower bound).
  """

  task: str
  batch_size: int
  method: str
  baseline: str
  sets: dict[str, tuple[stats.RangeStats, stats.RangeStats]]
  width_word: str
  shift_word: str
  open_edges: tuple[tuple[bool, bool], tuple[bool, bool]]


def replicated_side(intervals, above: str, below: str) -> str:
  """``above`` or ``below`` if every interval excludes 0 on that side."""
  if all(low > 0 for low, _ in intervals):
    return above
  if all(high < 0 for _, high in intervals):
    return below
  return "neither"


def compare_ranges(ours: Tuning, theirs: Tuning) -> RangeComparison:
  """Working ranges, their widths and TR's shift, per seed set."""
  sets = {}
  for name in ours.sets:
    a, b = ours.sets[name].test, theirs.sets[name].test
    sets[name] = (
      stats.bootstrap_range(ours.rates, a, theirs.rates, b),
      stats.bootstrap_range(theirs.rates, b, theirs.rates, b),
    )
  return RangeComparison(
    ours.task,
    ours.batch_size,
    ours.method,
    theirs.method,
    sets,
    replicated_side(
      [r[0].width_gap_interval for r in sets.values()], "wider", "narrower"
    ),
    replicated_side(
      [r[0].shift_interval for r in sets.values()], "higher", "lower"
    ),
    (ours.open_edges(), theirs.open_edges()),
  )


@dataclasses.dataclass(frozen=True)
class SensitivityMap:
  """TR's test accuracy (points) at one rate over period x lambda_w/eta_0."""

  task: str
  method: str
  batch_size: int
  epochs: int
  learning_rate: float
  periods: tuple[int, ...]
  ratios: tuple[float, ...]
  mean: tuple[tuple[float, ...], ...]  # periods x ratios
  std: tuple[tuple[float, ...], ...]


def sensitivity(
  runner: Runner,
  task: data_lib.Task,
  method: methods_lib.Method,
  batch_size: int,
  learning_rate: float,
  seeds: Sequence[int],
  *,
  epochs: int,
  periods: Sequence[int],
  ratios: Sequence[float],
) -> SensitivityMap:
  """Test accuracy at ``learning_rate`` over ``periods`` x ``ratios``."""
  mean, std = [], []
  for period in periods:
    configs = [
      sweep_lib.Config(s, learning_rate, r) for s in seeds for r in ratios
    ]
    plan = runner.plan(
      method,
      task,
      configs,
      batch_size,
      epochs,
      period=period,
    )
    test = 100 * np.nan_to_num(runner.run(plan)["test_accuracy"][-1])
    test = test.reshape(len(seeds), len(ratios))
    mean.append(tuple(test.mean(axis=0).tolist()))
    std.append(tuple(test.std(axis=0, ddof=1).tolist()))
  return SensitivityMap(
    task.name,
    method.name,
    batch_size,
    epochs,
    learning_rate,
    tuple(periods),
    tuple(ratios),
    tuple(mean),
    tuple(std),
  )
