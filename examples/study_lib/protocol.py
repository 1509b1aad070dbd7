"""The study's protocol: tune on tuning seeds, then confirm on fresh ones.

Three kinds of :class:`Job`, each one method in one cell, each returning
plain per-seed numbers (accuracies in points):

* ``tune``: every rate of a coarse grid (half a decade apart) on the
  tuning seeds, then the rates a quarter decade either side of the best;
  the pick is the best mean final *validation* accuracy.
* ``check``: the pick trained for twice the budget on the tuning seeds, so
  the study can say whether its budget has converged.
* ``confirm``: the pick on the confirmation seeds (and, at the paper's
  batch size, the paper's untuned settings on the same seeds), never seen
  by the tuning.

Every sweep is cached as JSON in the checkpoint directory once finished
(and by orbax while it trains), so a stopped study resumes where it was.
"""

import dataclasses
import json
import os
import shutil
import time

import numpy as np

from examples.study_lib import data as data_lib
from examples.study_lib import design as design_lib
from examples.study_lib import methods as methods_lib
from examples.study_lib import sweep as sweep_lib

TRAIN_SIZE = 3200  # both tasks' training split


@dataclasses.dataclass(frozen=True)
class Job:
  """One method in one cell: ``kind`` is "tune", "check" or "confirm".

  ``rate`` is the pick (check, confirm); ``paper``: also train the paper's
  settings (confirm at the paper's batch size).
  """

  kind: str
  cell: design_lib.Cell
  method: str
  seeds: tuple[int, ...]
  checkpoint_dir: str
  coarse: int = 5
  refine: bool = True
  rate: float | None = None
  paper: bool = False

  @property
  def cost(self) -> float:
    """Run-epochs, to start the longest jobs first."""
    rates = self.coarse + 3 if self.kind == "tune" else 1 + self.paper
    epochs = self.cell.epochs * (2 if self.kind == "check" else 1)
    return rates * len(self.seeds) * epochs


def sweep(job: Job, configs, epochs: int) -> tuple[dict, float]:
  """Trains ``configs`` (or reads them back); ``(final metrics, seconds)``.

  The final metrics map each name of :data:`sweep_lib.METRICS` to one
  value per configuration, accuracies in points.
  """
  plan = sweep_lib.Plan(
    methods_lib.BY_NAME[job.method],
    data_lib.TASKS[job.cell.task],
    tuple(configs),
    job.cell.batch_size,
    epochs,
    TRAIN_SIZE // job.cell.batch_size,
  )
  os.makedirs(job.checkpoint_dir, exist_ok=True)
  done = os.path.join(job.checkpoint_dir, plan.slug + ".json")
  if not os.path.exists(done):
    start = time.perf_counter()
    history, _ = sweep_lib.train(plan, checkpoint_dir=job.checkpoint_dir)
    final = {k: v[-1].tolist() for k, v in history.items()}
    with open(done + ".tmp", "w") as f:
      json.dump({"seconds": time.perf_counter() - start, **final}, f)
    os.replace(done + ".tmp", done)
    shutil.rmtree(os.path.join(job.checkpoint_dir, plan.slug), True)
  with open(done) as f:
    saved = json.load(f)
  scale = lambda k, v: [100 * x for x in v] if "accuracy" in k else v
  final = {k: scale(k, saved[k]) for k in sweep_lib.METRICS}
  return final, saved["seconds"]


def grid_of(final: dict, configs, seeds, rates, metric: str) -> list:
  """``metric`` as a (seeds x rates) list, a diverged (NaN) run as 0."""
  value = {(c.seed, c.learning_rate): v for c, v in zip(configs, final[metric])}
  return [[np.nan_to_num(value[s, r]).item() for r in rates] for s in seeds]


def tune(job: Job) -> dict:
  """The coarse grid, then its refinement; the pick by validation."""
  method = methods_lib.BY_NAME[job.method]
  rates = methods_lib.coarse_grid(
    method.grid_centre(job.cell.batch_size), job.coarse
  )
  finals, configs, seconds = {}, [], 0.0
  for round_ in range(2 if job.refine else 1):
    if round_:
      val = np.array(grid_of(finals, configs, job.seeds, rates, "val_accuracy"))
      rates = methods_lib.refined(rates, rates[int(val.mean(0).argmax())])
    new = [sweep_lib.Config(s, r) for s in job.seeds for r in rates]
    final, took = sweep(job, new, job.cell.epochs)
    finals = {k: finals.get(k, []) + final[k] for k in final}
    configs, seconds = configs + new, seconds + took
    rates = sorted({c.learning_rate for c in configs})
  val = grid_of(finals, configs, job.seeds, rates, "val_accuracy")
  return {
    "rates": rates,
    "val": val,
    "test": grid_of(finals, configs, job.seeds, rates, "test_accuracy"),
    "picked": rates[int(np.mean(val, axis=0).argmax())],
    "seconds": seconds,
  }


def check(job: Job) -> dict:
  """The pick at twice the budget, on the tuning seeds."""
  configs = [sweep_lib.Config(s, job.rate) for s in job.seeds]
  final, seconds = sweep(job, configs, 2 * job.cell.epochs)
  return {"val": final["val_accuracy"], "seconds": seconds}


def confirm(job: Job) -> dict:
  """The pick (and the paper's settings) on the confirmation seeds."""
  configs = [sweep_lib.Config(s, job.rate) for s in job.seeds]
  if job.paper:
    rate = methods_lib.PAPER_RATES[job.method]
    decay = methods_lib.PAPER_WEIGHT_DECAY
    configs += [
      sweep_lib.Config(s, rate, weight_decay=decay) for s in job.seeds
    ]
  final, seconds = sweep(job, configs, job.cell.epochs)
  n = len(job.seeds)
  part = lambda k, at: [np.nan_to_num(v).item() for v in final[k][at]]
  tuned = {k: part(k, slice(0, n)) for k in ("val_accuracy", "test_accuracy")}
  result = {"val": tuned["val_accuracy"], "test": tuned["test_accuracy"]}
  if job.paper:
    result["paper"] = {
      "rate": methods_lib.PAPER_RATES[job.method],
      "test": part("test_accuracy", slice(n, None)),
    }
  return result | {"seconds": seconds}


def run(job: Job) -> dict:
  """Runs ``job`` (in a worker process; see ``evidence.run_jobs``)."""
  return {"tune": tune, "check": check, "confirm": confirm}[job.kind](job)
