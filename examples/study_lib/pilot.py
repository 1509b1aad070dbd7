"""The pilot that chooses the study's training budgets.

For each task and batch size it trains the plain baselines (SGD and Adam),
each at three rates half a decade apart, on a few seeds, for a ladder of
budgets E, 2E, 4E, ... epochs (each budget a run of its own, with the
study's step schedule). The *best tuned baseline* of a budget is the best
mean final validation accuracy over those methods and rates. The budget
chosen is the first E whose doubling moves it by less than
:data:`TOLERANCE_POINTS`: :func:`plateau_epochs`.

Gradient accumulation makes 8 to 32 times fewer updates than the plain
optimizers at the same epochs, so the pilot checks it on its own
(:func:`check_accumulation`): at each chosen budget E and at 2 E, the best
of its three rates must move by less than the same tolerance, or the study
reports no verdict against it there.

Each ladder and each check is saved in ``OUT/pilot.json`` as soon as it
ends; a rerun keeps what is saved and runs the rest (delete the file to
start over).

  python -m examples.study --pilot --out docs/results
"""

from collections.abc import Callable, Iterator, Sequence
import contextlib
import dataclasses
import fcntl
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


@dataclasses.dataclass(frozen=True)
class AccumulationCheck:
  """Accumulated SGD at a chosen budget and at twice it.

  ``converged``: the best of its rates moved by less than
  :data:`TOLERANCE_POINTS` of mean validation accuracy.
  """

  task: str
  batch_size: int
  budgets: tuple[Budget, Budget]
  converged: bool


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
    if 2 * epochs in accuracy and moved_less(
      accuracy[epochs], accuracy[2 * epochs], tolerance
    ):
      return epochs
  return None


def moved_less(before: float, after: float, tolerance: float) -> bool:
  """``|after - before| < tolerance``, with float32 noise rounded away.

  The accuracies are means of float32 fractions over a few seeds, so a
  move of exactly 0.5 points (16 more of 3200 validation predictions) can
  come out as 0.49999; rounded to 1e-4 points it counts as 0.5.
  """
  return round(abs(after - before), 4) < tolerance


def best_baseline(
  task: data_lib.Task,
  data: data_lib.Dataset,
  batch_size: int,
  epochs: int,
  on_epoch: Callable[[], None],
  names: Sequence[str] = BASELINES,
) -> Budget:
  """Trains the ``names`` for ``epochs``; returns the best of them."""
  best, seconds = None, 0.0
  for name in names:
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
  data = task.load(0)
  budgets: list[Budget] = []
  epochs = first_epochs
  while epochs <= max_epochs:
    budgets.append(best_baseline(task, data, batch_size, epochs, on_epoch))
    chosen = plateau_epochs([(b.epochs, b.val_accuracy) for b in budgets])
    if chosen is not None:
      break
    epochs *= 2
  return Pilot(task.name, batch_size, tuple(budgets), chosen)


def check_accumulation(
  task: data_lib.Task,
  batch_size: int,
  epochs: int,
  on_epoch: Callable[[], None] = lambda: None,
) -> AccumulationCheck:
  """Accumulated SGD at ``epochs`` and ``2 epochs``: has it converged?"""
  data = task.load(0)
  names = (ACCUMULATED,)
  budgets = tuple(
    best_baseline(task, data, batch_size, e, on_epoch, names)
    for e in (epochs, 2 * epochs)
  )
  converged = moved_less(
    budgets[0].val_accuracy, budgets[1].val_accuracy, TOLERANCE_POINTS
  )
  return AccumulationCheck(task.name, batch_size, budgets, converged)


ACCUMULATED = f"SGD, accum. {methods_lib.ACCUMULATED_BATCH}"
# The first budget of each ladder, (task, batch size) -> epochs, in the
# order the pilot runs them; a ladder stops at 8x its first budget.
FIRST_EPOCHS = {
  ("mnist1d", 2): 8,
  ("mnist1d", 8): 16,
  ("digits", 8): 8,
  ("digits", 2): 4,
  ("mnist1d", 32): 32,
  ("digits-bn", 8): 8,
  ("digits-bn", 2): 4,
  ("digits-gn", 8): 8,
  ("digits-gn", 2): 4,
}
LADDER_FACTOR = 8
# Where the accumulation arm is checked, at the ladder's chosen budget.
ACCUMULATION_KEYS = (
  ("mnist1d", 8),
  ("digits", 8),
  ("digits", 2),
  ("mnist1d", 32),
)


@dataclasses.dataclass(frozen=True)
class Record:
  """Everything the pilot measured: its ladders and accumulation checks."""

  ladders: tuple[Pilot, ...]
  accumulation: tuple[AccumulationCheck, ...]

  def chosen(self, task: str, batch_size: int) -> int | None:
    return next(
      (
        p.chosen_epochs
        for p in self.ladders
        if (p.task, p.batch_size) == (task, batch_size)
      ),
      None,
    )

  def accumulation_converged(self, task: str, batch_size: int) -> bool:
    return any(
      (c.task, c.batch_size) == (task, batch_size) and c.converged
      for c in self.accumulation
    )


def budgets_of(saved) -> tuple[Budget, ...]:
  return tuple(Budget(**b) for b in saved["budgets"])


def load(path: str | None) -> Record:
  """The pilot saved by :func:`main`; an empty record for ``None``."""
  if path is None or not os.path.exists(path):
    return Record((), ())
  with open(path) as f:
    saved = json.load(f)
  return Record(
    tuple(
      Pilot(p["task"], p["batch_size"], budgets_of(p), p["chosen_epochs"])
      for p in saved["ladders"]
    ),
    tuple(
      AccumulationCheck(
        c["task"], c["batch_size"], budgets_of(c), c["converged"]
      )
      for c in saved["accumulation"]
    ),
  )


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
  """Holds an exclusive lock on ``path + '.lock'`` (one process at a time)."""
  with open(path + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def save(path: str, record: Record) -> None:
  with open(path + ".tmp", "w") as f:
    json.dump(dataclasses.asdict(record), f, indent=1)
  os.replace(path + ".tmp", path)


def main(out: str, claim: Callable[[str], bool] = lambda job: True) -> Record:
  """Runs what ``OUT/pilot.json`` lacks; returns the whole record.

  ``claim(job)`` says whether this process runs a job (the ladders first,
  then the accumulation checks, which need their ladder's choice); the
  other jobs are left to other processes (``--workers``).
  """
  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, "pilot.json")
  for task_name, batch_size in FIRST_EPOCHS:
    done = {(p.task, p.batch_size) for p in load(path).ladders}
    if (task_name, batch_size) in done or not claim(
      f"ladder-{task_name}-{batch_size}"
    ):
      continue
    first = FIRST_EPOCHS[task_name, batch_size]
    pilot = run(
      data_lib.TASKS[task_name], batch_size, first, LADDER_FACTOR * first
    )
    print(pilot, flush=True)
    with locked(path):  # another process may save meanwhile
      record = load(path)
      save(path, dataclasses.replace(record, ladders=record.ladders + (pilot,)))
  for task_name, batch_size in ACCUMULATION_KEYS:
    record = load(path)
    epochs = record.chosen(task_name, batch_size)
    done = {(c.task, c.batch_size) for c in record.accumulation}
    if epochs is None or (task_name, batch_size) in done:
      continue
    if not claim(f"accumulation-{task_name}-{batch_size}"):
      continue
    check = check_accumulation(data_lib.TASKS[task_name], batch_size, epochs)
    print(check, flush=True)
    with locked(path):
      record = load(path)
      save(
        path,
        dataclasses.replace(
          record, accumulation=record.accumulation + (check,)
        ),
      )
  return load(path)
