"""The study's protocol: tune, compare on two seed sets, ablate, vary.

* :func:`tune`: one method at one batch size, every rate of its grid on the
  seeds of both sets at once; each set picks its rate by mean final
  validation accuracy, and a pick at a grid edge widens the grid.
* :func:`compare`: TR minus each baseline, paired by seed, per seed set,
  and whether the verdict replicated.
* :func:`sensitivity`: TR at its tuned rate over period x lambda_w / eta_0.
"""

from collections.abc import Callable
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


class Interrupted(Exception):
  """Raised when the study stops early on purpose (``--stop-after-epochs``)."""


@dataclasses.dataclass
class Runner:
  """Trains plans, keeps every run's record, checkpoints and resumes.

  A finished sweep's history is saved as JSON in ``checkpoint_dir``; a sweep
  in progress is saved there by orbax (see :func:`sweep_lib.train`).
  """

  checkpoint_dir: str
  epochs: int
  checkpoint_every_s: float = 60.0
  epoch_budget: int | None = None  # stop after this many epochs (tests)
  on_epoch: Callable[[float], None] = lambda sweeps: None  # progress
  runs: list = dataclasses.field(default_factory=list)
  train_seconds: float = 0.0  # of every sweep, also those run before a resume
  datasets: dict = dataclasses.field(default_factory=dict)

  def dataset(self, task: data_lib.Task) -> data_lib.Dataset:
    if task.name not in self.datasets:
      self.datasets[task.name] = task.load()
    return self.datasets[task.name]

  def plan(self, method, task, configs, batch_size, period=10, epochs=None):
    data = self.dataset(task)
    return sweep_lib.Plan(
      method,
      task,
      tuple(configs),
      batch_size,
      epochs or self.epochs,
      len(data.train_x) // batch_size,
      period,
    )

  def run(
    self, plan: sweep_lib.Plan, part: str, seed_sets: dict[int, str]
  ) -> dict[str, np.ndarray]:
    """Trains ``plan`` (or loads its finished history); records its runs."""
    os.makedirs(self.checkpoint_dir, exist_ok=True)
    done_path = os.path.join(self.checkpoint_dir, plan.slug + ".json")
    if os.path.exists(done_path):
      with open(done_path) as f:
        saved = json.load(f)
      history = {k: np.asarray(saved[k], np.float32) for k in sweep_lib.METRICS}
      self.train_seconds += saved["seconds"]
      self.on_epoch(plan.epochs / self.epochs)
    else:
      if self.epoch_budget is not None and self.epoch_budget <= 0:
        raise Interrupted()
      trained, start = [], time.perf_counter()

      def on_epoch():
        trained.append(1)
        self.on_epoch(1 / self.epochs)  # a unit: a sweep of the study's epochs

      history, done = sweep_lib.train(
        plan,
        self.dataset(plan.task),
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
    self.record(plan, part, seed_sets, history)
    return history

  def record(self, plan, part, seed_sets, history) -> None:
    as_list = lambda a: [
      None if not np.isfinite(v) else round(float(v), 6) for v in a
    ]
    for index, config in enumerate(plan.configs):
      self.runs.append(
        {
          "task": plan.task.name,
          "part": part,
          "method": plan.method.name,
          "batch_size": plan.batch_size,
          "seed": config.seed,
          "seed_set": seed_sets[config.seed],
          "learning_rate": config.learning_rate,
          "history": {
            name: as_list(values[:, index]) for name, values in history.items()
          },
          "config": {
            "period": plan.period,
            "lambda_w_over_eta0": config.lambda_ratio,
            "epochs": plan.epochs,
            "steps_per_epoch": plan.steps_per_epoch,
            "weight_decay": methods_lib.WEIGHT_DECAY,
          },
        }
      )


def final(history, metric):
  return np.asarray(history[metric][-1], np.float64)


def tune(
  runner: Runner,
  task,
  method,
  batch_size,
  seed_sets,
  *,
  grid_size: int,
  grid_factor: float,
  max_widen: int,
  part: str = "compare",
  epochs: int | None = None,
) -> dict:
  """Tunes ``method``'s rate on each seed set; returns the summary.

  ``seed_sets`` maps a set's name ("A", "B") to its seeds. All rates and
  seeds train in one sweep. While a set's pick sits at an edge of the rates
  tried so far, the grid grows by two rates beyond that edge (at most
  ``max_widen`` times).
  """
  by_seed = {s: name for name, seeds in seed_sets.items() for s in seeds}
  seeds = [s for name in seed_sets for s in seed_sets[name]]
  rates = methods_lib.grid(
    method.grid_centre(batch_size), grid_size, grid_factor
  )
  results = {}  # (seed, rate) -> (final val acc, final test acc, test loss)
  new, widenings = rates, 0
  while True:
    configs = [sweep_lib.Config(s, r) for s in seeds for r in new]
    history = runner.run(
      runner.plan(method, task, configs, batch_size, epochs=epochs),
      part,
      by_seed,
    )
    for i, c in enumerate(configs):
      results[c.seed, c.learning_rate] = (
        final(history, "val_accuracy")[i],
        final(history, "test_accuracy")[i],
        final(history, "test_loss")[i],
      )
    rates = sorted({r for _, r in results})
    picks = {
      name: stats.pick([[results[s, r][0] for r in rates] for s in set_seeds])
      for name, set_seeds in seed_sets.items()
    }
    new = sorted(
      {
        r
        for p in picks.values()
        for r in methods_lib.widened(rates, p, grid_factor)
      }
      - set(rates)
    )
    if not new or widenings >= max_widen:
      break
    widenings += 1
  summary = {
    "task": task.name,
    "method": method.name,
    "batch_size": batch_size,
    "learning_rates": rates,
    "epochs": epochs or runner.epochs,
    "widenings": widenings,
    "sets": {},
  }
  for name, set_seeds in seed_sets.items():
    val, test, loss = (
      np.array([[results[s, r][k] for r in rates] for s in set_seeds])
      for k in range(3)
    )
    p = picks[name]
    summary["sets"][name] = {
      "seeds": list(set_seeds),
      "picked": p,
      "picked_learning_rate": rates[p],
      "at_edge": stats.at_edge(p, len(rates)),
      "val_accuracy_mean": np.nan_to_num(val).mean(axis=0).tolist(),
      "test_accuracy_mean": np.nan_to_num(test).mean(axis=0).tolist(),
      "test_accuracy_per_seed": np.nan_to_num(test[:, p]).tolist(),
      "test_loss_per_seed": loss[:, p].tolist(),
    }
  return summary


def compare(ours: dict, theirs: dict) -> dict:
  """``ours`` minus ``theirs`` in test accuracy, per seed set, paired."""
  out = {
    "task": ours["task"],
    "batch_size": ours["batch_size"],
    "method": ours["method"],
    "baseline": theirs["method"],
    "sets": {},
  }
  for name in ours["sets"]:
    c = stats.paired_difference(
      ours["sets"][name]["test_accuracy_per_seed"],
      theirs["sets"][name]["test_accuracy_per_seed"],
    )
    out["sets"][name] = c._asdict()
  verdicts = [s["verdict"] for s in out["sets"].values()]
  out["replicated"] = len(set(verdicts)) == 1
  return out


def sensitivity(
  runner: Runner,
  task,
  method,
  batch_size,
  learning_rate,
  seeds,
  periods,
  ratios,
) -> dict:
  """Test accuracy at ``learning_rate`` over ``periods`` x ``ratios``."""
  accuracy = np.zeros((len(periods), len(ratios)))
  spread = np.zeros_like(accuracy)
  for i, period in enumerate(periods):
    configs = [
      sweep_lib.Config(s, learning_rate, r) for s in seeds for r in ratios
    ]
    history = runner.run(
      runner.plan(method, task, configs, batch_size, period),
      "sensitivity",
      {s: "A" for s in seeds},
    )
    test = np.nan_to_num(final(history, "test_accuracy")).reshape(
      len(seeds), len(ratios)
    )
    accuracy[i], spread[i] = test.mean(axis=0), test.std(axis=0)
  return {
    "task": task.name,
    "method": method.name,
    "batch_size": batch_size,
    "learning_rate": learning_rate,
    "periods": list(periods),
    "lambda_w_over_eta0": list(ratios),
    "test_accuracy_mean": accuracy.tolist(),
    "test_accuracy_std": spread.tolist(),
  }
