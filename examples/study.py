r"""Is TR worth using at small batch? Tune once, then confirm on fresh seeds.

SGD, TRSGD, Adam and TRAdam on MNIST-1D (1-D CNN, batch 8 and 32) and on
real MNIST digits (2-D CNN, plain, with BatchNorm and with GroupNorm, at
batch 2 and 8), every net at a batch size on the same budget, and the
baselines at batch 64 as a control of what small batches cost.

1. **Tune**: each method's rate on 6 tuning seeds, on validation only:
   five rates half a decade apart, then a quarter decade either side of
   the best.
2. **Plan**: each cell's confirmation seeds, from the tuning runs' paired
   sd, so that a true difference of 0 is called equivalent at the margin
   with 80% power (report.plan).
3. **Check and confirm**: every pick at twice the budget on the tuning
   seeds (has the budget converged?), and on fresh confirmation seeds, each
   on its own data split; at batch 8 also the paper's untuned settings.
4. **Compare**: the declared family (each TR method against its own base
   in every cell, Holm-corrected) and the secondary comparisons, each one
   verdict from one interval (examples/evidence.py).

  python -m examples.study --workers 2   # make study, about 90 min
  python -m examples.study --quick --out /tmp/study  # about 2 min
  python -m examples.study --render      # the page again, from the record

Sweeps are cached in ``--checkpoint-dir``: a stopped study resumes there,
and its recorded wall time sums its runs.
"""

import argparse
import json
import os
import sys
import time

from examples import evidence
from examples import machine
from examples.study_lib import design as design_lib
from examples.study_lib import protocol
from examples.study_lib import report

HERE = os.path.dirname(__file__)
TEMPLATE = os.path.join(HERE, "study_lib", "results.md.j2")
SUMMARY = os.path.join(HERE, "study_lib", "summary.md.j2")
CONFIRMATION_OFFSET = 1000  # confirmation seeds: first seed + 1000 + i


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--quick",
    action="store_true",
    help="every net and every kind of job, 1 epoch",
  )
  parser.add_argument("--out", default="docs/results")
  parser.add_argument("--workers", type=int, default=1)
  parser.add_argument(
    "--first-seed",
    type=int,
    default=0,
    help="tuning seeds from here, confirmation from +1000",
  )
  parser.add_argument("--checkpoint-dir", default="results/study_checkpoints")
  parser.add_argument(
    "--page", default=None, help="render the Results page into this file"
  )
  parser.add_argument(
    "--summary",
    nargs="*",
    default=(),
    help="pages whose study summary block is replaced",
  )
  parser.add_argument(
    "--render",
    action="store_true",
    help="only render --page and --summary from OUT's record",
  )
  return parser.parse_args(argv)


def jobs(design, kind, seeds, directory, picks=None, plans=None):
  """One job of ``kind`` per method and cell, the longest first."""
  made = [
    protocol.Job(
      kind,
      cell,
      m,
      seeds if plans is None else seeds[: plans[cell]["seeds"]],
      directory,
      design.coarse,
      design.refine,
      rate=picks and picks[cell][m]["tune"]["picked"],
      paper=kind == "confirm" and cell.has_paper_settings,
    )
    for cell in design.cells
    for m in cell.methods
  ]
  return sorted(made, key=lambda job: -job.cost)


def by_cell(finished) -> dict:
  """``{cell: {method: {kind: result}}}`` of finished jobs."""
  out = {}
  for job, result in finished:
    out.setdefault(job.cell, {}).setdefault(job.method, {})[job.kind] = result
  return out


def run_study(args, design, clock) -> tuple:
  """Tune, plan, check and confirm: each cell's results and plan."""
  tuning = list(range(args.first_seed, args.first_seed + design.tuning_seeds))
  first = args.first_seed + CONFIRMATION_OFFSET
  confirmation = list(range(first, first + design.most_seeds))
  run = lambda todo: by_cell(
    zip(todo, evidence.run_jobs(protocol.run, todo, args.workers, clock.tick))
  )
  tune_jobs = jobs(design, "tune", tuning, args.checkpoint_dir)
  tunings = run(tune_jobs)
  plans = report.plan(design, tunings)
  checked = run(
    jobs(design, "check", tuning, args.checkpoint_dir, tunings)
    + jobs(design, "confirm", confirmation, args.checkpoint_dir, tunings, plans)
  )
  cells = {
    cell: {m: tunings[cell][m] | checked[cell][m] for m in cell.methods}
    for cell in design.cells
  }
  return cells, plans, tuning, confirmation


def record_of(args, design, cells, plans, tuning, confirmation) -> dict:
  return {
    "command": " ".join(["python -m examples.study", *args.argv]),
    "machine": machine.describe(),
    "design": {
      "tuning_seeds": tuning,
      "confirmation_seeds": confirmation,
      "margin": design.margin,
      "most_seeds": design.most_seeds,
      "alpha": evidence.ALPHA,
      "power": evidence.POWER,
      "primary": design.primary,
      "coarse": design.coarse,
      "refine": design.refine,
      "workers": args.workers,
    },
    "cells": [
      {
        "name": cell.name,
        "task": cell.task,
        "batch_size": cell.batch_size,
        "epochs": cell.epochs,
        "plan": plans[cell],
        "methods": cells[cell],
      }
      for cell in design.cells
    ],
    "analysis": report.analyse(design, cells, plans),
  }


class Clock:
  """The study's wall time, summed over the runs that made it.

  Each run adds ``[start, last]`` to a JSON file beside the checkpoints
  and moves ``last`` on after every finished job, so that a run that was
  stopped still counts up to its last finished job.
  """

  def __init__(self, path: str):
    self.path = path
    self.runs = []
    if os.path.exists(path):
      with open(path) as f:
        self.runs = json.load(f)
    self.runs.append([time.time(), time.time()])
    self.tick()

  def tick(self) -> None:
    self.runs[-1][1] = time.time()
    with open(self.path, "w") as f:
      json.dump(self.runs, f)

  @property
  def minutes(self) -> float:
    return sum(end - start for start, end in self.runs) / 60


def study_time(args, clock: Clock, trained: float) -> dict:
  """The wall time of every run so far, and the sweeps' training time."""
  clock.tick()
  return {
    "runs": len(clock.runs),
    "wall_minutes": clock.minutes,
    "training_minutes": trained / 60,
    "workers": args.workers,
  }


def training_seconds(cells) -> float:
  return sum(
    r[kind]["seconds"]
    for methods in cells.values()
    for r in methods.values()
    for kind in ("tune", "check", "confirm")
  )


def render(args) -> str:
  """Renders --page and the --summary blocks from OUT's record; the summary."""
  with open(os.path.join(args.out, "study.json")) as f:
    record = json.load(f)
  context = report.context(record)
  if args.page:
    with open(args.page, "w") as f:
      f.write(evidence.render(TEMPLATE, context))
  summary = evidence.render(SUMMARY, context)
  for path in args.summary:
    with open(path) as f:
      page = f.read()
    with open(path, "w") as f:
      f.write(evidence.replace_block(page, "study summary", summary))
  return summary


def main(argv=None) -> dict | None:
  args = parse_args(argv)
  args.argv = sys.argv[1:] if argv is None else list(argv)
  if args.render:
    render(args)
    return None
  design = design_lib.QUICK if args.quick else design_lib.FULL
  os.makedirs(args.checkpoint_dir, exist_ok=True)
  clock = Clock(os.path.join(args.checkpoint_dir, "time.json"))
  cells, plans, tuning, confirmation = run_study(args, design, clock)
  record = record_of(args, design, cells, plans, tuning, confirmation)
  record["time"] = study_time(args, clock, training_seconds(cells))
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "study.json"), "w") as f:
    json.dump(record, f, indent=1, default=float)
  report.plot(record, args.out)
  print(render(args))
  return record


if __name__ == "__main__":
  main()
