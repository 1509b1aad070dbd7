r"""When does the Trajectory Regularized Algorithm help? A replicated study.

Six optimizers (SGD, TRSGD, Adam, TRAdam, Lookahead around SGD, and SGD with
gradients accumulated to 64 examples) at batch sizes 2 to 128 on two tasks
generated locally: MNIST-1D with a 1-D CNN, and a synthetic tabular problem
with an MLP. Every method's learning rate is tuned on validation from a grid
of the same width (a pick at an edge widens it); seeds fix the
initialisation and the data order.

The comparison runs on two disjoint seed sets, A and B, each tuned on its
own: TR minus each baseline, paired by seed, with a t-based 95% interval,
is a win or a loss only where the interval excludes 0, and the report says,
verdict by verdict, whether set B gave the same word as set A. On the first
task it also splits TR into its two ingredients (ablation at batch 2, 8 and
32), maps TR's accuracy over period x lambda_w / eta_0 (batch 8), and checks
the verdicts at batch 8 with a budget of 4x the epochs.

  python -m examples.study --out docs/results      # make study, 16 min here
  python -m examples.study --quick                 # a smoke run, < 4 min

Configurations of one method train together (``jax.vmap`` over seeds and
rates, ``jax.lax.scan`` over steps); sweeps are checkpointed in
``--checkpoint-dir`` and an interrupted study resumes where it stopped, with
the same results. Run ``python -m examples.study --help`` for the options.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import tqdm

from benchmarks import machine
from examples.study_lib import data as data_lib
from examples.study_lib import methods as methods_lib
from examples.study_lib import protocol
from examples.study_lib import report

ABLATION_BATCH_SIZES = (2, 8, 32)
SENSITIVITY_BATCH_SIZE = 8
LONGER_BATCH_SIZE, LONGER_FACTOR = 8, 4  # a check: is it the short budget?
PERIODS = (2, 5, 10, 20, 50)
RATIOS = (0.01, 0.03, 0.1, 0.3, 1.0)


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    description=__doc__.split("\n")[0],
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  parser.add_argument(
    "--quick",
    action="store_true",
    help="a smoke run: batch 8 and 32, 2 epochs, 2 seeds"
    " per set, 3 rates, a 2x2 sensitivity map",
  )
  parser.add_argument("--out", default="results/study")
  parser.add_argument(
    "--seeds",
    type=int,
    default=None,
    help="seeds per set; default 8 (--quick: 2)",
  )
  parser.add_argument(
    "--first-seed",
    type=int,
    default=0,
    help="set A is first-seed + [0, seeds), set B the next seeds",
  )
  parser.add_argument(
    "--dataset",
    default="mnist1d,tabular",
    help="comma-separated tasks from "
    + ", ".join(data_lib.TASKS)
    + "; ablation and sensitivity run on the first",
  )
  parser.add_argument(
    "--batch-sizes",
    default=None,
    help="default 2,4,8,16,32,64,128 (--quick: 8,32)",
  )
  parser.add_argument(
    "--epochs", type=int, default=None, help="default 6 (--quick: 2)"
  )
  parser.add_argument(
    "--grid",
    type=int,
    default=None,
    help="rates per grid; default 5 (--quick: 3)",
  )
  parser.add_argument("--grid-factor", type=float, default=3.0)
  parser.add_argument(
    "--max-widen",
    type=int,
    default=None,
    help="widenings of a grid at most; default 3 (--quick: 1)",
  )
  parser.add_argument(
    "--methods",
    default=None,
    help="comma-separated subset of: "
    + ", ".join(m.name for m in methods_lib.COMPARED),
  )
  parser.add_argument(
    "--checkpoint-dir",
    default="results/study_checkpoints",
    help="where sweeps are saved; a rerun resumes there",
  )
  parser.add_argument(
    "--checkpoint-every",
    type=float,
    default=60.0,
    help="seconds between orbax saves of a running sweep",
  )
  parser.add_argument(
    "--stop-after-epochs", type=int, default=None, help=argparse.SUPPRESS
  )  # simulates an interruption
  args = parser.parse_args(argv)
  quick = args.quick
  for name, full, small in (
    ("seeds", 8, 2),
    ("epochs", 6, 2),
    ("grid", 5, 3),
    ("max_widen", 3, 1),
    ("batch_sizes", "2,4,8,16,32,64,128", "8,32"),
  ):
    if getattr(args, name) is None:
      setattr(args, name, small if quick else full)
  args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
  args.tasks = [data_lib.TASKS[t] for t in args.dataset.split(",")]
  names = (
    args.methods.split(",")
    if args.methods
    else [m.name for m in methods_lib.COMPARED]
  )
  unknown = [n for n in names if n not in methods_lib.BY_NAME]
  if unknown:
    parser.error(f"unknown method(s) {unknown}")
  args.method_list = [methods_lib.BY_NAME[n] for n in names]
  args.periods = (5, 20) if quick else PERIODS
  args.ratios = (0.1, 1.0) if quick else RATIOS
  return args


def task_batch_sizes(args, task) -> list[int]:
  return [
    b
    for b in args.batch_sizes
    if task.batch_sizes is None or b in task.batch_sizes
  ]


def planned_sweeps(args) -> int:
  """How many sweeps :func:`run_study` trains when no grid widens."""
  names = [m.name for m in args.method_list]
  count = sum(
    m.applies_to(b)
    for task in args.tasks
    for b in task_batch_sizes(args, task)
    for m in args.method_list
  )
  families = sum(
    v[0] in names and v[3] in names for v in methods_lib.ABLATION.values()
  )
  first = task_batch_sizes(args, args.tasks[0])
  count += 2 * families * sum(b in first for b in ABLATION_BATCH_SIZES)
  if SENSITIVITY_BATCH_SIZE in first:
    count += len(args.periods) * sum(n in names for n in methods_lib.TR_NAMES)
  if LONGER_BATCH_SIZE in first:
    count += 2 * families * LONGER_FACTOR  # counted in epochs of the study
  return count


def run_study(args, runner: protocol.Runner, seed_sets) -> dict:
  """Every tuning, comparison and map of the study, in a fixed order."""
  tune = lambda task, method, b, part="compare", epochs=None: protocol.tune(
    runner,
    task,
    method,
    b,
    seed_sets,
    grid_size=args.grid,
    grid_factor=args.grid_factor,
    max_widen=args.max_widen,
    part=part,
    epochs=epochs,
  )
  names = [m.name for m in args.method_list]
  summaries, comparisons, sensitivity = [], [], []
  ablation, ablation_comparisons = [], []
  longer, longer_comparisons = [], []
  for task_index, task in enumerate(args.tasks):
    mine = {}
    for b in task_batch_sizes(args, task):
      for method in args.method_list:
        if method.applies_to(b):
          mine[method.name, b] = tune(task, method, b)
      for ours in methods_lib.TR_NAMES:
        for theirs in methods_lib.BASELINE_NAMES:
          if (ours, b) in mine and (theirs, b) in mine:
            comparisons.append(protocol.compare(mine[ours, b], mine[theirs, b]))
    summaries.extend(mine.values())
    if task_index > 0:
      continue  # the ablation and the maps run on the first task only
    for b in [
      b for b in ABLATION_BATCH_SIZES if b in task_batch_sizes(args, task)
    ]:
      for variants in methods_lib.ABLATION.values():
        if variants[0] not in names or variants[3] not in names:
          continue
        for name in variants[1:3]:
          mine[name, b] = tune(task, methods_lib.BY_NAME[name], b, "ablation")
        ablation.extend(mine[name, b] for name in variants)
        ablation_comparisons.extend(
          protocol.compare(mine[name, b], mine[variants[0], b])
          for name in variants[1:]
        )
    b = SENSITIVITY_BATCH_SIZE
    for name in methods_lib.TR_NAMES:
      if (name, b) in mine:
        rate = mine[name, b]["sets"]["A"]["picked_learning_rate"]
        result = protocol.sensitivity(
          runner,
          task,
          methods_lib.BY_NAME[name],
          b,
          rate,
          seed_sets["A"],
          args.periods,
          args.ratios,
        )
        family = methods_lib.BY_NAME[name].family
        if (family, b) in mine:  # the plain optimizer, for reference
          result["plain"] = {
            "method": family,
            "test_accuracy": float(
              np.mean(mine[family, b]["sets"]["A"]["test_accuracy_per_seed"])
            ),
          }
        sensitivity.append(result)
    b = LONGER_BATCH_SIZE
    if b not in task_batch_sizes(args, task):
      continue
    for variants in methods_lib.ABLATION.values():
      if variants[0] in names and variants[3] in names:
        pair = [
          tune(
            task,
            methods_lib.BY_NAME[n],
            b,
            "longer",
            LONGER_FACTOR * args.epochs,
          )
          for n in (variants[0], variants[3])
        ]
        longer.extend(pair)
        longer_comparisons.append(protocol.compare(pair[1], pair[0]))
  return {
    "summaries": summaries,
    "comparisons": comparisons,
    "ablation": ablation,
    "ablation_comparisons": ablation_comparisons,
    "sensitivity": sensitivity,
    "longer": longer,
    "longer_comparisons": longer_comparisons,
  }


def markdown(
  args,
  results,
  seed_sets,
  wall: float,
  train_seconds: float,
  command: str,
  described: dict[str, str],
) -> str:
  names = list(seed_sets)
  first = args.tasks[0]
  data = {t.name: t.load() for t in args.tasks}
  sizes = "; ".join(
    f"{t.description}: {len(data[t.name].train_x)} train /"
    f" {len(data[t.name].val_x)} validation /"
    f" {len(data[t.name].test_x)} test"
    for t in args.tasks
  )
  lines = [
    "# When does TR help? A replicated small-batch study",
    "",
    f"Command: `{command}`  ",
    f"Tasks: {sizes}  ",
    f"Training: {args.epochs} epochs at every batch size, weight decay"
    f" {methods_lib.WEIGHT_DECAY}, lr x0.1 at 50% and 75%; TR with period"
    " 10 and lambda_w = 0.1 eta_0 unless varied; each method's rate picked"
    f" by mean final validation accuracy from {args.grid} rates"
    f" {args.grid_factor:g}x apart (widened by 2 rates when a pick sits at"
    " an edge)  ",
    "Seeds: "
    + ", ".join(
      f"set {n} = {seed_sets[n][0]}..{seed_sets[n][-1]}" for n in names
    )
    + ", each set tuned on its own  ",
    "Machine: "
    + "; ".join(f"{name} {value}" for name, value in described.items())
    + f"; wall time {wall / 60:.1f} min; training time"
    f" of all sweeps {train_seconds / 60:.1f} min (also those"
    " run before a resume)",
    "",
  ]
  comparisons = results["comparisons"]
  for task in args.tasks:
    rows = [s for s in results["summaries"] if s["task"] == task.name]
    if not rows:
      continue
    lines += [
      f"## {task.name}",
      "",
      f"Test accuracy (%) of seed set {names[0]} at the picked rate"
      f" (mean ± std over {len(seed_sets[names[0]])} seeds) @ the"
      " picked rate of " + " / ".join(f"set {n}" for n in names) + ":",
      "",
      report.headline_table(rows, names),
      "",
    ]
    if len(names) > 1:
      lines += [
        f"Set {names[1]}'s test accuracy (%):",
        "",
        report.headline_table(rows, names[1:]),
        "",
      ]
    verdicts = [c for c in comparisons if c["task"] == task.name]
    if verdicts:
      lines += [
        "Verdicts at a glance: TR minus each baseline in test"
        f" accuracy, paired by seed; a word in bold is a win or loss"
        f" that seed sets {' and '.join(names)} both gave (mean"
        f" difference of set {names[0]} in points):",
        "",
        report.verdict_grid(verdicts, names),
        "",
        "In full: mean [t-based 95% CI] per seed set; win/loss only"
        " where the interval excludes 0:",
        "",
        report.verdict_table(verdicts, names),
        "",
      ]
    widened = [
      f"{s['method']} at batch {s['batch_size']} ({s['widenings']}x)"
      for s in rows
      if s["widenings"]
    ]
    edge = [
      f"{s['method']} at batch {s['batch_size']}"
      for s in rows
      if any(v["at_edge"] for v in s["sets"].values())
    ]
    lines += [
      "Grids widened: "
      + (", ".join(widened) or "none")
      + "; picks still at an edge: "
      + (", ".join(edge) or "none")
      + ".",
      "",
    ]
    move = report.movement(rows, names)
    if move:
      lines += [
        f"Between the seed sets, the picked test accuracy moved"
        f" {move['mean_abs_gap_points']:.2f} points on average"
        f" (at most {move['max_abs_gap_points']:.2f}); the same rate"
        f" was picked in {move['same_picked_rate']} of"
        f" {move['tunings']} tunings.",
        "",
      ]
  if results["ablation"]:
    lines += [
      f"## Ablation ({first.name}): which ingredient does the work?",
      "",
      "Decay only: TR with lambda_w = 0 (the step divided by i +"
      " 1 inside each inner loop, no pull). Pull only:"
      " `proximal_regularize` before the plain optimizer (no decay)."
      f" Test accuracy (%), set {names[0]}:",
      "",
      report.headline_table(results["ablation"], names),
      "",
      "Each variant minus the plain optimizer (bold: replicated win or loss):",
      "",
      report.verdict_grid(results["ablation_comparisons"], names),
      "",
      report.verdict_table(results["ablation_comparisons"], names),
      "",
    ]
  if results["longer"]:
    epochs = results["longer"][0]["epochs"]
    lines += [
      f"## A longer budget ({first.name}, batch {LONGER_BATCH_SIZE},"
      f" {epochs} epochs instead of {args.epochs})",
      "",
      "The plain optimizers and TR, tuned the same way. Test"
      f" accuracy (%), set {names[0]}:",
      "",
      report.headline_table(results["longer"], names),
      "",
      report.verdict_grid(results["longer_comparisons"], names),
      "",
      report.verdict_table(results["longer_comparisons"], names),
      "",
    ]
  for result in results["sensitivity"]:
    lines += [
      f"## Sensitivity ({result['task']}): {result['method']}, batch"
      f" {result['batch_size']}, lr {result['learning_rate']:.3g}",
      "",
      f"Test accuracy (%), mean ± std over set {names[0]}"
      + (
        f" ({result['plain']['method']} at its tuned rate:"
        f" {100 * result['plain']['test_accuracy']:.1f}%)"
        if "plain" in result
        else ""
      )
      + ":",
      "",
      report.sensitivity_table(result),
      "",
    ]
  return "\n".join(lines)


def main(argv=None) -> dict:
  args = parse_args(argv)
  first = args.first_seed
  seed_sets = {
    "A": list(range(first, first + args.seeds)),
    "B": list(range(first + args.seeds, first + 2 * args.seeds)),
  }
  start = time.perf_counter()
  with tqdm.tqdm(
    total=planned_sweeps(args),
    unit="sweep",
    desc="study",
    bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sweeps"
    " [{elapsed}<{remaining}]",
  ) as progress:

    def on_epoch(sweeps):
      progress.total = max(progress.total, progress.n + sweeps)  # widened
      progress.update(sweeps)

    runner = protocol.Runner(
      args.checkpoint_dir,
      args.epochs,
      checkpoint_every_s=args.checkpoint_every,
      epoch_budget=args.stop_after_epochs,
      on_epoch=on_epoch,
    )
    try:
      results = run_study(args, runner, seed_sets)
    except protocol.Interrupted:
      print(
        f"stopped on purpose; rerun the same command to resume from"
        f" {args.checkpoint_dir}"
      )
      return {}
  wall = time.perf_counter() - start
  command = "python -m examples.study " + " ".join(
    sys.argv[1:] if argv is None else argv
  )
  described = dict(machine.describe())
  text = markdown(
    args,
    results,
    seed_sets,
    wall,
    runner.train_seconds,
    command.strip(),
    described,
  )
  config = {
    "command": command.strip(),
    "machine": described,
    "wall_seconds": wall,
    "train_seconds": runner.train_seconds,
    "epochs": args.epochs,
    "grid": args.grid,
    "grid_factor": args.grid_factor,
    "seed_sets": seed_sets,
    "batch_sizes": args.batch_sizes,
    "tasks": [t.name for t in args.tasks],
    "methods": [m.name for m in args.method_list],
    "periods": list(args.periods),
    "lambda_w_over_eta0": list(args.ratios),
    "weight_decay": methods_lib.WEIGHT_DECAY,
  }
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "study.md"), "w") as f:
    f.write(text + "\n")
  with open(os.path.join(args.out, "study.json"), "w") as f:
    json.dump({"config": config, **results, "runs": runner.runs}, f)
  names = list(seed_sets)
  report.plot_batch_sizes(
    os.path.join(args.out, "batch_sizes.png"), results["summaries"], names
  )
  report.plot_ablation(
    os.path.join(args.out, "ablation.png"), results["ablation"], names
  )
  report.plot_sensitivity(
    os.path.join(args.out, "sensitivity.png"), results["sensitivity"]
  )
  print(text)
  print(f"wall time: {wall / 60:.1f} min; outputs in {args.out}/")
  return {"config": config, **results, "runs": runner.runs}


if __name__ == "__main__":
  main()
