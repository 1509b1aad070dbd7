"""The study's report: ``study.md`` and its four figures.

Everything the study writes for a reader is here: :func:`markdown` builds
the page from the study's records (:mod:`examples.study_lib.protocol`) and
the pilot's (:mod:`examples.study_lib.pilot`); the ``plot_*`` functions draw
the figures. Accuracies are in points (percent).
"""

from collections.abc import Sequence
import dataclasses
import math
from typing import Any

import numpy as np

from examples.study_lib import methods as methods_lib
from examples.study_lib import pilot as pilot_lib
from examples.study_lib import protocol
from examples.study_lib import stats


@dataclasses.dataclass(frozen=True)
class Header:
  """What the report says about how the study ran."""

  command: str
  tasks: dict[str, str]  # name -> description with split sizes
  ceilings: dict[str, str]  # name -> what the task's ceiling is
  epochs: dict[str, dict[int, int]]  # task -> batch size -> epochs
  seed_sets: dict[str, list[int]]
  machine: str
  wall_minutes: float  # this run's
  study_wall_minutes: float  # of every run that trained part of the study
  train_minutes: float
  splits: dict[str, dict[str, Any]]  # set -> its split and fingerprints


# --------------------------------------------------------------------------
# Cells and tables.
# --------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> str:
  return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}"


def interval(c: stats.Comparison) -> str:
  if not math.isfinite(c.low):
    return f"{c.mean:+.1f} (1 seed)"
  return f"{c.mean:+.1f} [{c.low:+.1f}, {c.high:+.1f}]"


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def tuning_cell(t: protocol.Tuning, names: Sequence[str]) -> str:
  """Set A's final test accuracy, then each set's picked rate."""
  first = t.sets[names[0]]
  rates = " / ".join(f"{t.picked_rate(n):.3g}" for n in names)
  return f"{mean_std(first.picked_test)} @ {rates}"


def accuracy_table(tunings: Sequence[protocol.Tuning], names) -> str:
  """Method x batch size: final test accuracy of set A and picked rates."""
  methods = list(dict.fromkeys(t.method for t in tunings))
  sizes = sorted({t.batch_size for t in tunings})
  by_key = {(t.method, t.batch_size): t for t in tunings}
  rows = [
    [m]
    + [
      tuning_cell(by_key[m, b], names) if (m, b) in by_key else "–"
      for b in sizes
    ]
    for m in methods
  ]
  return table(["method"] + [f"batch {b}" for b in sizes], rows)


def sets_table(tunings: Sequence[protocol.Tuning], names) -> str:
  """Per tuning: each set's final test and test at the best-validation epoch."""
  rows = []
  for t in tunings:
    cells = []
    for n in names:
      s = t.sets[n]
      cells += [
        f"{np.mean(s.picked_test):.1f}",
        f"{np.mean(s.test_at_best_val):.1f}",
      ]
    rows.append([str(t.batch_size), t.method, str(t.epochs), *cells])
  head = ["batch", "method", "epochs"]
  for n in names:
    head += [f"{n}: final", f"{n}: at best val epoch"]
  return table(head, rows)


NICE_TASK = {
  "mnist1d": "MNIST-1D",
  "digits": "digits",
  "digits-bn": "digits, BatchNorm",
  "digits-gn": "digits, GroupNorm",
}


def side(v: protocol.Verdict, which: str) -> str:
  """A method of a verdict, with its net where the verdict crosses nets."""
  task = v.task if which == "method" else v.baseline_task
  name = getattr(v, which)
  return name if v.task == v.baseline_task else f"{name} ({NICE_TASK[task]})"


def pair_name(v: protocol.Verdict) -> str:
  return f"{side(v, 'method')} − {side(v, 'baseline')}"


def verdict_word(v: protocol.Verdict) -> str:
  """The replicated word (bold: a win or a loss) and the pooled estimate."""
  word = f"**{v.word}**" if v.word in ("win", "loss") else v.word
  return f"{word}, {interval(v.pooled)}"


def verdict_grid(verdicts: Sequence[protocol.Verdict]) -> str:
  """Comparison x batch size: the replicated word and the pooled estimate.

  Verdicts of several tasks get a row each, named with the task.
  """
  several = len({v.task for v in verdicts}) > 1

  def row_name(v: protocol.Verdict) -> str:
    crossed = v.task != v.baseline_task
    return (
      f"{NICE_TASK[v.task]}: {pair_name(v)}"
      if several and not crossed
      else pair_name(v)
    )

  pairs = list(dict.fromkeys(row_name(v) for v in verdicts))
  sizes = sorted({v.batch_size for v in verdicts})
  by_key = {(row_name(v), v.batch_size): v for v in verdicts}
  rows = [
    [pair]
    + [
      verdict_word(by_key[pair, b]) if (pair, b) in by_key else "–"
      for b in sizes
    ]
    for pair in pairs
  ]
  return table(["comparison"] + [f"batch {b}" for b in sizes], rows)


def interval90(c: stats.Comparison) -> str:
  if not math.isfinite(c.low90):
    return "–"
  return f"[{c.low90:+.2f}, {c.high90:+.2f}]"


def verdict_table(verdicts: Sequence[protocol.Verdict], names) -> str:
  """Every verdict in full: each set's mean and intervals, and the pool."""
  rows = []
  for v in verdicts:
    cells = [
      f"{interval(v.sets[n])} {v.sets[n].verdict}; 90% {interval90(v.sets[n])}"
      for n in names
    ]
    rows.append(
      [str(v.batch_size), pair_name(v), *cells, interval(v.pooled), v.word]
    )
  head = ["batch", "comparison"]
  head += [f"set {n}: mean [95% CI] word; 90% CI" for n in names]
  head += [f"pooled {sum(v.pooled.n for v in verdicts[:1])} seeds [95% CI]"]
  return table(head + ["verdict"], rows)


def signed(value: float, low: float, high: float) -> str:
  """``+0.12 [+0.03, +0.20]``: a signed value and its interval."""
  return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def span(low: float, high: float) -> str:
  return f"[{low:.2f}, {high:.2f}]"


def range_cells(r: stats.RangeStats) -> str:
  """Width [interval] and the two edges of one working range."""
  return (
    f"{r.width:.2f} {span(*r.width_interval)},"
    f" {r.low_rate:.3g}–{r.high_rate:.3g}"
  )


def range_table(ranges: Sequence[protocol.RangeComparison], names) -> str:
  """Per TR method and set: both ranges, the width gap and the shift."""
  rows = []
  for r in ranges:
    for n in names:
      ours, theirs = r.sets[n]
      rows.append(
        [
          f"{NICE_TASK[r.task]}, {r.batch_size}",
          f"{r.method} vs {r.baseline}",
          n,
          range_cells(ours),
          range_cells(theirs),
          signed(ours.width_gap, *ours.width_gap_interval),
          signed(ours.shift, *ours.shift_interval),
        ]
      )
    rows.append(["", "", "both sets", "", "", r.width_word, r.shift_word])
  head = [
    "cell",
    "pair",
    "set",
    "TR: width in decades [95% CI], rates within 2 points",
    "baseline: the same",
    "width gap [95% CI]",
    "shift in decades [95% CI]",
  ]
  return table(head, rows)


def budget_row(p, previous, budget, last_word: str) -> list[str]:
  """One doubling of a ladder (or an accumulation check) as a table row."""
  move = budget.val_accuracy - previous.val_accuracy
  return [
    p.task,
    str(p.batch_size),
    f"{previous.epochs} → {budget.epochs}",
    f"{previous.val_accuracy:.1f} → {budget.val_accuracy:.1f}",
    f"{move:+.2f}",
    f"{budget.method} @ {budget.learning_rate:.3g}",
    last_word,
  ]


def pilot_table(record: pilot_lib.Record) -> str:
  """Each ladder's doublings, then each accumulation check."""
  rows = [
    budget_row(
      p,
      previous,
      budget,
      "**chosen**" if p.chosen_epochs == previous.epochs else "",
    )
    for p in record.ladders
    for previous, budget in zip(p.budgets, p.budgets[1:])
  ]
  rows += [
    budget_row(
      c,
      *c.budgets,
      "converged" if c.converged else "**not converged**: no verdicts",
    )
    for c in record.accumulation
  ]
  head = [
    "task",
    "batch",
    "epochs",
    "best mean val acc",
    "move",
    "best at the longer budget",
    "",
  ]
  return table(head, rows)


def sensitivity_table(m: protocol.SensitivityMap) -> str:
  rows = [
    [f"period {period}"] + [f"{a:.1f} ± {s:.1f}" for a, s in zip(mean, std)]
    for period, mean, std in zip(m.periods, m.mean, m.std)
  ]
  return table(["period"] + [f"λw/η0 = {r:g}" for r in m.ratios], rows)


FRAGILE_POINTS = 0.3


def fragile_picks(tunings: Sequence[protocol.Tuning]) -> str:
  """How many set-level picks a runner-up came within 0.3 points of."""
  margins = [
    np.sort(s.val_mean)[-1] - np.sort(s.val_mean)[-2]
    for t in tunings
    for s in t.sets.values()
    if len(s.val_mean) > 1
  ]
  fragile = sum(m < FRAGILE_POINTS for m in margins)
  return (
    f"{fragile} of {len(margins)} picks (a method's rate on one seed set)"
    f" beat the runner-up rate by less than {FRAGILE_POINTS} points of mean"
    " validation accuracy"
  )


def movement(tunings: Sequence[protocol.Tuning], names) -> str:
  """How much picked accuracies and rates move between the seed sets."""
  gaps = [
    abs(np.mean(t.sets[names[0]].picked_test) - np.mean(t.sets[n].picked_test))
    for t in tunings
    for n in names[1:]
  ]
  same = sum(
    t.picked_rate(names[0]) == t.picked_rate(names[1]) for t in tunings
  )
  return (
    f"Between the seed sets the picked test accuracy moved {np.mean(gaps):.2f}"
    f" points on average (at most {np.max(gaps):.2f}); the same rate was"
    f" picked in {same} of {len(tunings)} tunings."
  )


# --------------------------------------------------------------------------
# The page.
# --------------------------------------------------------------------------


def header_lines(h: Header) -> list[str]:
  sets = ", ".join(f"set {n} = {s[0]}..{s[-1]}" for n, s in h.seed_sets.items())
  splits = "; ".join(
    f"set {n} on split {d['split']} ("
    + ", ".join(f"{task} {fp}" for task, fp in d["fingerprints"].items())
    + ")"
    for n, d in h.splits.items()
  )
  lines = [
    "# TR at small batch, trained to convergence: a replicated study",
    "",
    f"Command: `{h.command}`  ",
    f"Machine: {h.machine}  ",
    f"Time: {h.study_wall_minutes:.1f} min of wall time in the runs that"
    f" trained it (this run: {h.wall_minutes:.1f} min); {h.train_minutes:.1f}"
    " min of training summed over every sweep, two of which run at a time"
    " on two workers  ",
    f"Seeds: {sets}, each set tuned on its own  ",
    f"Data: each seed set draws its own split (fingerprints): {splits}  ",
    "Training: every method at a batch size gets the same epochs, chosen by"
    " the pilot below; lr x0.1 at 50% and 75%; coupled weight decay"
    f" {methods_lib.WEIGHT_DECAY:g} (the paper's settings: its own"
    f" {methods_lib.PAPER_WEIGHT_DECAY:g}); TR with period 10 and"
    " lambda_w = 0.1 eta_0 unless varied. A rate is picked by mean final"
    " validation accuracy from a grid of rates half a decade apart, widened"
    " while a curve is within 2 points of its best at an edge.  ",
    "Verdicts: TR minus a baseline in final test accuracy, paired by seed."
    " A **win** or **loss** is one both seed sets give (95% t-interval"
    " excluding 0); *equivalent*: both sets' 90% intervals lie within"
    f" ±{stats.EQUIVALENCE_POINTS} points (two one-sided tests);"
    " *inconclusive* otherwise. Beside each, the pooled estimate over all"
    " seeds of both sets with its 95% interval. ± is the sample standard"
    " deviation (n − 1), as in the intervals.",
    "",
    "| task | data | epochs per batch size | ceiling |",
    "|---|---|---|---|",
  ]
  for task, described in h.tasks.items():
    epochs = ", ".join(f"{b}: {e}" for b, e in sorted(h.epochs[task].items()))
    lines.append(f"| {task} | {described} | {epochs} | {h.ceilings[task]} |")
  return lines + [""]


def kept_verdicts(verdicts, record: pilot_lib.Record | None):
  """The verdicts the tables show.

  None against accumulation where the pilot did not see it converge (and
  none at all in a quick run, which has no pilot).
  """
  return [
    v
    for v in verdicts
    if v.baseline != pilot_lib.ACCUMULATED
    or (record and record.accumulation_converged(v.task, v.batch_size))
  ]


def tuned_lines(results, names, record) -> list[str]:
  lines = ["## 1. Tuned and converged: does TR beat the baselines?", ""]
  for task in dict.fromkeys(t.task for t in results.tunings):
    tunings = [t for t in results.tunings if t.task == task]
    verdicts = kept_verdicts(
      [v for v in results.verdicts if v.task == task], record
    )
    lines += [
      f"### Tuned: {task}",
      "",
      f"Final test accuracy (%) of set {names[0]} at its picked rate (mean"
      f" ± std over {len(tunings[0].sets[names[0]].seeds)} seeds) @ the"
      " rate picked by " + " / ".join(f"set {n}" for n in names) + ":",
      "",
      accuracy_table(tunings, names),
      "",
    ]
    if verdicts:
      lines += [
        "TR minus each baseline in final test accuracy: the replicated"
        " verdict, then the pooled mean difference [95% CI] in points:",
        "",
        verdict_grid(verdicts),
        "",
        "<details><summary>Every verdict with its intervals, and the test"
        " accuracy at the best validation epoch</summary>",
        "",
        verdict_table(verdicts, names),
        "",
      ]
    else:
      lines += [
        "<details><summary>The test accuracy at the best validation"
        " epoch</summary>",
        "",
      ]
    lines += [
      sets_table(tunings, names),
      "",
      movement(tunings, names) + " " + fragile_picks(tunings) + ".",
      "",
      "</details>",
      "",
    ]
  return lines


def paper_lines(results, names, record) -> list[str]:
  del record  # no accumulation at the paper's settings
  lines = [
    "## 2. At the paper's own settings (nothing tuned)",
    "",
    "SGD with rate 0.1, momentum 0.9 and weight decay 5e-4 against TRSGD"
    " with the same; Adam with rate 1e-3 (weight decay 5e-4) against"
    " TRAdam with the same; TR with period 10 and lambda_w = 0.1 eta_0."
    " Final test accuracy (%), set A (set B):",
    "",
  ]
  rows = [
    [
      t.task,
      str(t.batch_size),
      t.method,
      f"{t.rates[0]:g}",
      " (".join(mean_std(t.sets[n].picked_test) for n in names[:2]) + ")",
    ]
    for t in results.paper
  ]
  lines += [table(["task", "batch", "method", "rate", "test"], rows), ""]
  for task in dict.fromkeys(v.task for v in results.paper_verdicts):
    verdicts = [v for v in results.paper_verdicts if v.task == task]
    lines += [f"{task}:", "", verdict_table(verdicts, names), ""]
  return lines


def range_lines(results, names, record) -> list[str]:
  del record
  lines = [
    "## 3. Where and how wide is each method's working range of rates?",
    "",
    "Per method and seed set, the rates whose mean final test accuracy is"
    " within 2 points of its best (interpolated in log rate between grid"
    " rates half a decade apart): its width in decades with a 95%"
    f" seed-bootstrap interval ({stats.BOOTSTRAP_SAMPLES} resamples of the"
    " set's seeds), its smallest and largest rate; then TR's width minus"
    " its plain optimizer's and the shift of the range's centre, in"
    " decades, each with a paired bootstrap interval. *wider*/*narrower*"
    " and *higher*/*lower*: both sets' intervals exclude 0 on that side."
    " The curves are in `robustness.png`.",
    "",
  ]
  for task in dict.fromkeys(r.task for r in results.ranges):
    ranges = [r for r in results.ranges if r.task == task]
    lines += [f"### Working range: {task}", "", range_table(ranges, names), ""]
  still_open = [
    f"{t.method} at batch {t.batch_size} ({t.task}, "
    + " and ".join(
      side for side, is_open in zip(("low", "high"), t.open_edges()) if is_open
    )
    + ")"
    for t in results.tunings
    if any(t.open_edges())
  ]
  lines += [
    "Curves still within 2 points of their best at an edge of the grid"
    " after widening (their width is a lower bound): "
    + (", ".join(still_open) or "none")
    + ".",
    "",
  ]
  return lines


def verdict_lines(verdicts, names) -> list[str]:
  """The verdicts as a grid of words, then in full with their intervals."""
  return [verdict_grid(verdicts), "", verdict_table(verdicts, names), ""]


def norm_lines(results, names, record) -> list[str]:
  del record
  if not results.norm_verdicts:
    return []
  return [
    "## 4. TR on the BatchNorm net, or switch the net to GroupNorm?",
    "",
    "TR on the BatchNorm CNN minus each method tuned on the GroupNorm CNN,"
    " paired by seed (the same split and data order, not the same"
    " initialisation):",
    "",
    *verdict_lines(results.norm_verdicts, names),
  ]


def ablation_lines(results, names, record) -> list[str]:
  del record
  if not results.ablation:
    return []
  return [
    "## Ablation: which ingredient does the work?",
    "",
    "Decay only: TR with lambda_w = 0 (the step divided by i + 1 inside"
    " each inner loop, no pull). Pull only: `proximal_regularize` before"
    " the plain optimizer (no decay). Final test accuracy (%), set"
    f" {names[0]}, at the converged budget:",
    "",
    accuracy_table(results.ablation, names),
    "",
    *verdict_lines(results.ablation_verdicts, names),
  ]


def sensitivity_lines(results, names, record) -> list[str]:
  del record
  lines = []
  for m in results.sensitivity:
    lines += [
      f"## Sensitivity: {m.method}, {m.task}, batch {m.batch_size}, lr"
      f" {m.learning_rate:.3g}, {m.epochs} epochs",
      "",
      f"Final test accuracy (%), mean ± std over set {names[0]}; rows: the"
      " period, columns: λw/η0 (lambda_w over the base rate eta_0):",
      "",
      sensitivity_table(m),
      "",
    ]
  return lines


def markdown(header: Header, results, record: pilot_lib.Record) -> str:
  """The whole of ``study.md``."""
  names = list(header.seed_sets)
  lines = header_lines(header)
  lines += [
    "## The pilot: how long is converged?",
    "",
    "The plain baselines (SGD and Adam) at three rates each on"
    f" {len(pilot_lib.SEEDS)} seeds of set A, for doubling budgets; the"
    " budget chosen is the first whose doubling moves the best baseline's"
    f" mean validation accuracy by less than {pilot_lib.TOLERANCE_POINTS}"
    " points. Then SGD with gradients accumulated to 64 examples, at"
    " three rates, at each chosen budget and twice it: where it moves by"
    " as much, the tables show no verdict against it (`make pilot`,"
    " `pilot.json`):",
    "",
    pilot_table(record) if record.ladders else "(No pilot: a quick run.)",
    "",
  ]
  for part in (
    tuned_lines,
    paper_lines,
    range_lines,
    norm_lines,
    ablation_lines,
    sensitivity_lines,
  ):
    lines += part(results, names, record)
  return "\n".join(lines)


# --------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------

# A TR method and its baseline share a colour family: dark is TR.
COLOURS = {
  "SGD": "#6baed6",
  "TRSGD": "#08519c",
  "Adam": "#fd8d3c",
  "TRAdam": "#a63603",
  "Lookahead(SGD)": "#74c476",
  f"SGD, accum. {methods_lib.ACCUMULATED_BATCH}": "#9e9ac8",
}


def pyplot() -> Any:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def panels(plt, rows: int, columns: int, size=(4.2, 3.4)):
  figure, axes = plt.subplots(
    rows,
    columns,
    figsize=(size[0] * columns, size[1] * rows),
    squeeze=False,
  )
  return figure, axes


def save(plt, figure, path: str) -> None:
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def plot_robustness(path: str, tunings, names) -> None:
  """Test accuracy against the rate: a panel per task and batch size.

  Two panels a row, sized to be read at the docs' width (about 700 px)
  without scaling, and no empty panel.
  """
  plt = pyplot()
  cells = sorted(
    {(t.task, t.batch_size) for t in tunings},
    key=lambda cell: (list(NICE_TASK).index(cell[0]), cell[1]),
  )
  columns = min(2, len(cells))
  rows = -(-len(cells) // columns)
  figure, axes = panels(plt, rows, columns, (3.3, 2.6))
  legend = {}
  for ax, (task, b) in zip(axes.flat, cells):
    for t in tunings:
      if (t.task, t.batch_size) != (task, b):
        continue
      tr = t.method in methods_lib.TR_NAMES
      (legend[t.method],) = ax.plot(
        t.rates,
        t.sets[names[0]].test_mean,
        color=COLOURS[t.method],
        linestyle="-" if tr else "--",
        marker="o" if tr else "s",
        markersize=3,
      )
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_title(f"{NICE_TASK[task]}, batch {b}", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_xlabel("base learning rate", fontsize=8)
    ax.set_ylabel(f"test acc. (%), set {names[0]}", fontsize=8)
  for ax in axes.flat[len(cells) :]:
    figure.delaxes(ax)
  figure.legend(
    list(legend.values()), list(legend), loc="lower center", ncol=3, fontsize=8
  )
  height = figure.get_size_inches()[1]
  figure.tight_layout(rect=(0, 0.6 / height, 1, 1))  # 0.6 in for the legend
  figure.savefig(path, dpi=110)
  plt.close(figure)


def plot_batch_sizes(path: str, tunings, names) -> None:
  """Tuned final test accuracy against the batch size, a panel per task."""
  plt = pyplot()
  tasks = list(dict.fromkeys(t.task for t in tunings))
  columns = min(2, len(tasks))
  rows = -(-len(tasks) // columns)
  figure, axes = panels(plt, rows, columns, (3.4, 2.8))
  for ax in axes.flat[len(tasks) :]:
    figure.delaxes(ax)
  for ax, task in zip(axes.flat, tasks):
    mine = [t for t in tunings if t.task == task]
    for method in dict.fromkeys(t.method for t in mine):
      line = sorted(
        (t for t in mine if t.method == method), key=lambda t: t.batch_size
      )
      ax.errorbar(
        [t.batch_size for t in line],
        [np.mean(t.sets[names[0]].picked_test) for t in line],
        yerr=[np.std(t.sets[names[0]].picked_test, ddof=1) for t in line],
        color=COLOURS.get(method),
        linestyle="-" if method in methods_lib.TR_NAMES else "--",
        marker="o",
        capsize=3,
        label=method,
      )
    ax.set_xscale("log", base=2)
    sizes = sorted({t.batch_size for t in mine})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.minorticks_off()
    ax.tick_params(labelsize=8)
    ax.set_xlabel("batch size", fontsize=8)
    ax.set_ylabel(f"tuned test acc. (%), set {names[0]}", fontsize=8)
    ax.set_title(NICE_TASK[task], fontsize=9)
    ax.legend(fontsize=6)
  save(plt, figure, path)


def plot_ablation(path: str, tunings, names) -> None:
  """Each family's four variants (plain, decay, pull, both), as points.

  Means with their standard deviation: the axis is cut to the data, which
  bars starting from zero would hide.
  """
  plt = pyplot()
  by_key = {(t.method, t.batch_size): t for t in tunings}
  sizes = sorted({t.batch_size for t in tunings})
  families = list(methods_lib.ABLATION)
  figure, axes = panels(plt, 1, len(families), (3.4, 3.0))
  for ax, family in zip(axes[0], families):
    variants = methods_lib.ABLATION[family]
    for j, name in enumerate(variants):
      tests = [by_key[name, b].sets[names[0]].picked_test for b in sizes]
      ax.errorbar(
        np.arange(len(sizes)) + (j - 1.5) * 0.15,
        [np.mean(x) for x in tests],
        yerr=[np.std(x, ddof=1) for x in tests],
        fmt="o",
        capsize=3,
        label=name,
      )
    ax.set_xticks(np.arange(len(sizes)), [f"batch {b}" for b in sizes])
    ax.set_xlim(-0.6, len(sizes) - 0.4)
    ax.tick_params(labelsize=8)
    ax.set_ylabel(f"final test acc. (%), set {names[0]}", fontsize=8)
    ax.set_title(f"{family}: which ingredient?", fontsize=9)
    ax.legend(fontsize=7)
  save(plt, figure, path)


def plot_sensitivity(path: str, maps) -> None:
  """Heatmaps of test accuracy over period x lambda_w / eta_0."""
  plt = pyplot()
  figure, axes = panels(plt, 1, max(1, len(maps)), (3.6, 3.0))
  for ax, m in zip(axes[0], maps):
    grid = np.asarray(m.mean)
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(m.ratios)), [f"{r:g}" for r in m.ratios])
    ax.set_yticks(range(len(m.periods)), [str(p) for p in m.periods])
    ax.tick_params(labelsize=8)
    ax.set_xlabel("λw / η0", fontsize=8)
    ax.set_ylabel("period", fontsize=8)
    for (i, j), value in np.ndenumerate(grid):
      colour = "white" if value < grid.mean() else "black"
      ax.text(
        j, i, f"{value:.1f}", ha="center", va="center", color=colour, fontsize=8
      )
    ax.set_title(
      f"{m.method}, batch {m.batch_size}, lr {m.learning_rate:.3g}",
      fontsize=9,
    )
    bar = figure.colorbar(image, ax=ax)
    bar.set_label("test accuracy (%)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
  save(plt, figure, path)
