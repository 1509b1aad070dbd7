"""The pilot that chooses the study's training budgets.

For each task and batch size it trains the plain baselines (SGD and Adam),
each at three rates half a decade apart, on a few seeds, for a ladder of
budgets E, 2E, 4E, ... epochs (each budget a run of its own, with the
study's step schedule). The *best tuned baseline* of a budget is the best
mean final validation accuracy over those methods and rates. The budget
chosen is the first E whose doubling moves it by less than
:data:`TOLERANCE_POINTS`: :func:`plateau_epochs`.

  python -m examples.study --pilot --out docs/results
"""

from collections.abc import Callable, Sequence
import dataclasses
import json
import os
import time

from examples.study_lib import data as data_lib
from examples.study_lib import methods as methods_lib
from examples.study_lib import protocol
from examples.study_lib import sweep as sweep_lib

TOLERANCE_POINTS = 0.5
BASELINES = ("SGD", "Adam")
SEEDS = (0, 1, 2, 3)  # the first seeds of set A


@dataclasses.dataclass(frozen=True)
class Budget:
  """The best tuned baseline after ``epochs`` epochs."""

  epochs: int
  val_accuracy: float  # in points, the mean over the pilot's seeds
  test_accuracy: float  # of the same method and rate
  method: str
  learning_rate: float
  seconds: float


@dataclasses.dataclass(frozen=True)
class Pilot:
  """The ladder of budgets of one task and batch size, and the choice."""

  task: str
  batch_size: int
  budgets: tuple[Budget, ...]
  chosen_epochs: int | None  # None: no doubling tried stayed within 0.5


def plateau_epochs(
  accuracy_by_epochs: Sequence[tuple[int, float]],
  tolerance: float = TOLERANCE_POINTS,
) -> int | None:
  """The first budget whose doubling moves the accuracy by < ``tolerance``.

  Args:
    accuracy_by_epochs: ``(epochs, accuracy in points)`` pairs.
    tolerance: the largest move, in points, that counts as a plateau.

  Returns:
    The smallest ``E`` such that ``2 E`` was tried too and
    ``|acc(2 E) - acc(E)| < tolerance``; ``None`` if there is none.
  """
  accuracy = dict(accuracy_by_epochs)
  for epochs in sorted(accuracy):
    if 2 * epochs in accuracy and (
      abs(accuracy[2 * epochs] - accuracy[epochs]) < tolerance
    ):
      return epochs
  return None


def best_baseline(
  task: data_lib.Task,
  data: data_lib.Dataset,
  batch_size: int,
  epochs: int,
  on_epoch: Callable[[], None],
) -> Budget:
  """Trains the baselines for ``epochs``; returns the best of them."""
  best, seconds = None, 0.0
  for name in BASELINES:
    method = methods_lib.BY_NAME[name]
    centre = method.grid_centre(batch_size)
    rates = [float(f"{centre * 10**e:.3g}") for e in (-0.5, 0.0, 0.5)]
    configs = tuple(sweep_lib.Config(s, r) for s in SEEDS for r in rates)
    plan = sweep_lib.Plan(
      method,
      task,
      configs,
      batch_size,
      epochs,
      len(data.train_x) // batch_size,
    )
    start = time.perf_counter()
    history, _ = sweep_lib.train(plan, data, on_epoch=on_epoch)
    seconds += time.perf_counter() - start
    runs = protocol.run_results(history, configs)
    picked = protocol.set_result(runs, SEEDS, rates)
    i = picked.picked
    if best is None or picked.val_mean[i] > best[0]:
      best = (picked.val_mean[i], picked.test_mean[i], name, rates[i])
  assert best is not None
  return Budget(epochs, *best, seconds=seconds)


def run(
  task: data_lib.Task,
  batch_size: int,
  first_epochs: int,
  max_epochs: int,
  on_epoch: Callable[[], None] = lambda: None,
) -> Pilot:
  """Doubles the budget from ``first_epochs`` until a doubling plateaus."""
  data = task.load()
  budgets: list[Budget] = []
  epochs = first_epochs
  while epochs <= max_epochs:
    budgets.append(best_baseline(task, data, batch_size, epochs, on_epoch))
    chosen = plateau_epochs([(b.epochs, b.val_accuracy) for b in budgets])
    if chosen is not None:
      break
    epochs *= 2
  return Pilot(task.name, batch_size, tuple(budgets), chosen)


# The first budget of each ladder, (task, batch size) -> epochs, in the
# order the pilot runs them; a ladder stops at 8x its first budget.
FIRST_EPOCHS = {
  ("mnist1d", 2): 8,
  ("mnist1d", 8): 16,
  ("digits", 8): 8,
  ("digits", 2): 4,
  ("mnist1d", 32): 32,
}
LADDER_FACTOR = 8


def load(path: str | None) -> list[Pilot]:
  """The pilots saved by :func:`main`; [] for ``None``."""
  if path is None:
    return []
  with open(path) as f:
    saved = json.load(f)
  return [
    Pilot(
      p["task"],
      p["batch_size"],
      tuple(Budget(**b) for b in p["budgets"]),
      p["chosen_epochs"],
    )
    for p in saved
  ]


def main(out: str, keys=None) -> list[Pilot]:
  """Runs the pilots in ``keys`` (default all); writes ``pilot.json``."""
  pilots = []
  for task_name, batch_size in keys or FIRST_EPOCHS:
    first = FIRST_EPOCHS[task_name, batch_size]
    pilot = run(
      data_lib.TASKS[task_name], batch_size, first, LADDER_FACTOR * first
    )
    pilots.append(pilot)
    print(pilot, flush=True)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "pilot.json"), "w") as f:
      json.dump([dataclasses.asdict(p) for p in pilots], f, indent=1)
  return pilots
