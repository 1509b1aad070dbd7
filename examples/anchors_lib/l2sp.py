"""The design and the report of ``examples/finetune_l2sp.py``.

The story trains; :func:`measure` turns its trained models into one record
per run (a :class:`Config` and its accuracies in points). Here those
records become each method's picked strength (by validation accuracy, per
seed set), the tables, the replicated verdicts and the trade-off figure.
"""

from collections.abc import Sequence
import dataclasses
from typing import Any, NamedTuple

import jax
import numpy as np

from examples.anchors_lib import evaluation
from examples.anchors_lib import output
from examples.anchors_lib import verdicts
from examples.study_lib import data as data_lib
from examples.study_lib import report as study_report
from examples.study_lib import stats

SAME_HEAD, NEW_HEAD = "same head", "new head"
MARGIN = 1.0  # points: "equivalent" needs both 90% intervals inside this
COMPARISONS = {  # (ours, baseline) per part
  SAME_HEAD: [("L2-SP", "plain"), ("L2-SP", "L2"), ("L2", "plain")],
  NEW_HEAD: [
    ("plain", "scratch"),
    ("L2-SP", "plain"),
    ("L2", "plain"),
    ("L2-SP", "scratch"),
  ],
}
METRICS = {SAME_HEAD: ("all", "old", "new"), NEW_HEAD: ("new",)}
NAMES = {"all": "all ten", "old": "old (0-4)", "new": "new (5-9)"}

Record = dict[str, Any]
Splits = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Design:
  """How much the story trains: the full run, or ``--quick``."""

  seed_sets: dict[str, tuple[int, ...]]
  strengths: tuple[float, ...]
  pretrain_steps: int
  fine_tune_steps: int

  @property
  def seeds(self) -> list[int]:
    """Every seed of every set, in order."""
    return [seed for seeds in self.seed_sets.values() for seed in seeds]


FULL = Design(
  {"A": tuple(range(8)), "B": tuple(range(8, 16))},
  (0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0),  # half a decade apart
  pretrain_steps=1000,
  fine_tune_steps=250,
)
QUICK = Design({"A": (0, 1), "B": (2, 3)}, (0.1, 10.0), 60, 20)


class Config(NamedTuple):
  """One fine-tuning run."""

  part: str  # SAME_HEAD or NEW_HEAD
  seed: int
  labels: int  # labelled examples per new class
  method: str  # "plain", "L2", "L2-SP" or (NEW_HEAD) "scratch"
  strength: float


def held_out(data: data_lib.Dataset, head: int) -> Splits:
  """The splits a model is measured on.

  Args:
    data: the digits.
    head: 10 (the same head) or 5 (a new head for classes 5-9).

  Returns:
    name -> (inputs, labels): the validation split of all ten classes and
    the test split's old classes, new classes and all ten; for a 5-way
    head, the validation and test examples of classes 5-9, labelled 0-4.
  """
  if head == 5:
    new = lambda x, y: (x[y >= 5], y[y >= 5] - 5)
    return {
      "val": new(data.val_x, data.val_y),
      "new": new(data.test_x, data.test_y),
    }
  old, new = data.test_y < 5, data.test_y >= 5
  return {
    "val": (data.val_x, data.val_y),
    "old": (data.test_x[old], data.test_y[old]),
    "new": (data.test_x[new], data.test_y[new]),
    "all": (data.test_x, data.test_y),
  }


def measure(params, graphdef, head: int, data, configs) -> list[Record]:
  """One record per run: its config and its accuracies (%).

  Args:
    params: the runs' parameters, stacked.
    graphdef: the model's structure.
    head: its number of classes, 10 or 5 (see :func:`held_out`).
    data: the digits.
    configs: the runs' configs, in the order of ``params``.

  Returns:
    Per run, its :class:`Config`'s fields and one accuracy per split of
    :func:`held_out`.
  """
  chunks, parts = evaluation.held_out(held_out(data, head))
  measured = evaluation.evaluate_models(params, graphdef, parts, chunks)
  accuracy = {name: jax.device_get(a) for name, (_, a) in measured.items()}
  return [
    {**c._asdict(), **{k: 100 * float(a[i]) for k, a in accuracy.items()}}
    for i, c in enumerate(configs)
  ]


def grid(design: Design, part: str, seed: int, labels: Sequence[int]):
  """Every run of one seed in one part: each method at each strength.

  Args:
    design: the strengths to try.
    part: ``SAME_HEAD`` or ``NEW_HEAD`` (which adds training from scratch).
    seed: the seed.
    labels: the numbers of labels per class.

  Returns:
    A list of :class:`Config`.
  """
  methods = {"plain": (0.0,), "L2": design.strengths}
  methods["L2-SP"] = design.strengths
  if part == NEW_HEAD:
    methods = {"scratch": (0.0,), **methods}
  return [
    Config(part, seed, n, method, strength)
    for n in labels
    for method, strengths in methods.items()
    for strength in strengths
  ]


def by_seed_and_strength(
  records: Sequence[Record], seeds: Sequence[int], metric: str, **where: Any
) -> tuple[np.ndarray, list[float]]:
  """``metric`` as a ``(seeds, strengths)`` array, and the strengths.

  Args:
    records: the story's records.
    seeds: the seeds, in the order of the rows.
    metric: a record's key, e.g. ``"val"``.
    **where: the values the records must have (part, labels, method).

  Returns:
    The array and the sorted strengths of its columns.
  """
  chosen = [r for r in records if all(r[k] == v for k, v in where.items())]
  strengths = sorted({r["strength"] for r in chosen})
  table = {(r["seed"], r["strength"]): r[metric] for r in chosen}
  values = [[table[(s, x)] for x in strengths] for s in seeds]
  return np.array(values, np.float64), strengths


@dataclasses.dataclass(frozen=True)
class Picked:
  """One method at the strength each seed set picked on validation.

  Attributes:
    strengths: seed set -> the strength it picked.
    test: seed set -> metric -> the test accuracy of each of its seeds.
  """

  part: str
  labels: int
  method: str
  strengths: dict[str, float]
  test: dict[str, dict[str, list[float]]]


def pick(records, design: Design, part: str, labels: int, method: str):
  """The strength with the best mean validation accuracy, per seed set.

  Args:
    records: the story's records.
    design: its seed sets.
    part: the part.
    labels: the number of labels per class.
    method: the method.

  Returns:
    A :class:`Picked`.
  """
  where = dict(part=part, labels=labels, method=method)
  strengths, test = {}, {}
  for name, seeds in design.seed_sets.items():
    val, grid_strengths = by_seed_and_strength(records, seeds, "val", **where)
    best = stats.pick(val)
    strengths[name] = grid_strengths[best]
    test[name] = {
      m: by_seed_and_strength(records, seeds, m, **where)[0][:, best].tolist()
      for m in METRICS[part]
    }
  return Picked(part, labels, method, strengths, test)


def compare(picked: Sequence[Picked], margin: float = MARGIN):
  """The replicated verdicts of :data:`COMPARISONS` on every metric.

  Args:
    picked: every method of every part and label count.
    margin: the equivalence margin, in points.

  Returns:
    ``(part, labels, metric, Verdict)`` tuples.
  """
  found = {(p.part, p.labels, p.method): p for p in picked}
  results = []
  for part, labels, _ in sorted({(p.part, p.labels, 0) for p in picked}):
    for ours, theirs in COMPARISONS[part]:
      a, b = found[(part, labels, ours)], found[(part, labels, theirs)]
      for metric in METRICS[part]:
        verdict = verdicts.replicated(
          (ours, theirs),
          {name: test[metric] for name, test in a.test.items()},
          {name: test[metric] for name, test in b.test.items()},
          margin,
        )
        results.append((part, labels, metric, verdict))
  return results


def strength_cell(p: Picked, grid: Sequence[float]) -> str:
  """Each set's picked strength; ``†`` where it is an end of the grid.

  Args:
    p: the picks of one method.
    grid: the strengths tried.

  Returns:
    For instance ``"0.01† / 0.1"``.
  """
  if p.method in ("plain", "scratch"):
    return " / ".join("0" for _ in p.strengths)
  edge = lambda s: "†" if s in (grid[0], grid[-1]) else ""
  return " / ".join(f"{s:g}{edge(s)}" for s in p.strengths.values())


def picked_table(picked: Sequence[Picked], part: str, grid) -> str:
  """Markdown: each method's picked strengths and test accuracies.

  Args:
    picked: :func:`summarise`'s picks.
    part: ``SAME_HEAD`` or ``NEW_HEAD``.
    grid: the strengths tried.

  Returns:
    The table.
  """
  head = ["labels per class", "method", "strength"]
  head += [f"{NAMES[m]} (%)" for m in METRICS[part]]
  rows = [
    [str(p.labels), p.method, strength_cell(p, grid)]
    + [output.cell({k: t[m] for k, t in p.test.items()}) for m in METRICS[part]]
    for p in picked
    if p.part == part
  ]
  return study_report.table(head, rows)


def verdict_table(compared, part: str) -> str:
  """Markdown: each comparison of one part, per seed set, and its verdict.

  Args:
    compared: :func:`compare`'s verdicts.
    part: ``SAME_HEAD`` or ``NEW_HEAD``.

  Returns:
    The table.
  """
  rows = [
    ([str(labels), f"{v.a} − {v.b}", NAMES[metric]], v)
    for p, labels, metric, v in compared
    if p == part
  ]
  head = ["labels per class", "difference", "test accuracy"]
  return output.verdict_table(head, rows)


def mean_curve(records, design: Design, metric: str, **where: Any):
  """The strengths and ``metric``'s mean over every seed at each one.

  Args:
    records: the story's records.
    design: its seeds.
    metric: a record's key, e.g. ``"old"``.
    **where: the values the records must have (part, labels, method).

  Returns:
    ``(strengths, means)``.
  """
  values, strengths = by_seed_and_strength(
    records, design.seeds, metric, **where
  )
  return strengths, values.mean(axis=0)


def grid_table(records, design: Design, labels: int) -> str:
  """Markdown: test accuracy at every strength, for the same head.

  Means over every seed of both sets; strength 0 is plain fine-tuning.

  Args:
    records: the story's records.
    design: its seeds and strengths.
    labels: the number of labels per new class.

  Returns:
    The table.
  """
  where = dict(part=SAME_HEAD, labels=labels)
  metrics = ("old", "new", "all")
  plain = [
    mean_curve(records, design, m, method="plain", **where)[1][0]
    for m in metrics
  ]
  rows = [["0 (plain)"] + [f"{v:.1f}" for v in plain] * 2]
  curves = [
    mean_curve(records, design, m, method=method, **where)[1]
    for method in ("L2", "L2-SP")
    for m in metrics
  ]
  for i, strength in enumerate(design.strengths):
    rows.append([f"{strength:g}"] + [f"{c[i]:.1f}" for c in curves])
  head = ["strength"] + [
    f"{method} {NAMES[m]}" for method in ("L2", "L2-SP") for m in metrics
  ]
  return study_report.table(head, rows)


def plot_tradeoff(path: str, records, design: Design) -> None:
  """Old- against new-class test accuracy as the strength grows.

  One panel per number of labels, one curve per method (means over every
  seed) with its weakest and strongest strength written beside it; plain
  fine-tuning and the pretrained models are single points.

  Args:
    path: the PNG file to write.
    records: the story's records.
    design: its seeds and strengths.
  """
  plt = study_report.pyplot()
  labels = sorted({r["labels"] for r in records if r["part"] == SAME_HEAD})
  figure, axes = study_report.panels(plt, 1, len(labels), size=(3.6, 3.4))
  pretrained = [r for r in records if r["part"] == "pretrained"]
  for ax, n in zip(axes[0], labels):
    where = dict(part=SAME_HEAD, labels=n)
    for method, marker, offset in (
      ("L2", "s", (4, -12)),
      ("L2-SP", "o", (5, 3)),
    ):
      strengths, new = mean_curve(
        records, design, "new", method=method, **where
      )
      old = mean_curve(records, design, "old", method=method, **where)[1]
      ax.plot(new, old, marker=marker, label=method)
      for i in (0, len(strengths) - 1):
        ax.annotate(
          f"{strengths[i]:g}",
          (new[i], old[i]),
          fontsize=9,
          xytext=offset,
          textcoords="offset points",
        )
    plain = [
      r
      for r in records
      if r["method"] == "plain" and r.items() >= where.items()
    ]
    for name, rows, marker in (
      ("plain", plain, "*"),
      ("pretrained", pretrained, "X"),
    ):
      point = [np.mean([r[m] for r in rows]) for m in ("new", "old")]
      ax.plot(*point, marker, color="black", markersize=9, label=name, zorder=3)
    ax.set(
      xlabel="new classes 5-9 (%)",
      ylabel="old classes 0-4 (%)",
      title=f"{n} labels per new class",
      xlim=(-3, 103),
      ylim=(-3, 103),
    )
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(0.02, 0.5))
  study_report.save(plt, figure, path)


METHODS = ("scratch", "plain", "L2", "L2-SP")  # the order of the tables


def summarise(records, design: Design):
  """Every method's picks and the replicated verdicts.

  Args:
    records: the story's records.
    design: its seed sets and strengths.

  Returns:
    ``(picked, compared)``: a list of :class:`Picked` and the result of
    :func:`compare`.
  """
  order = lambda key: (key[0] != SAME_HEAD, key[1], METHODS.index(key[2]))
  keys = {(r["part"], r["labels"], r["method"]) for r in records}
  keys = sorted((k for k in keys if k[0] in METRICS), key=order)
  picked = [pick(records, design, *key) for key in keys]
  return picked, compare(picked)


def markdown(head: str, records, design: Design, picked, compared) -> str:
  """The results page: tables, verdicts and the figure.

  Args:
    head: :func:`examples.anchors_lib.output.header`'s table.
    records: the story's records.
    design: its seed sets and strengths.
    picked: :func:`summarise`'s picks.
    compared: its verdicts.

  Returns:
    The page, in markdown.
  """
  sets = " / ".join(
    f"{n} (seeds {s[0]}-{s[-1]})" for n, s in design.seed_sets.items()
  )
  pretrained = [r["old"] for r in records if r["part"] == "pretrained"]
  lines = [
    "# L2-SP: learning new digits without forgetting the old",
    "",
    head,
    "",
    "Cells are `set A / set B`, each the mean ± std over its seeds; the"
    f" seed sets are {sets}. Before fine-tuning, the models pretrained on"
    " classes 0-4 score"
    f" {study_report.mean_std(pretrained)}% on the old test classes.",
    "",
    "## The same 10-way head learns classes 5-9",
    "",
    "Each set picks the strength with its best mean validation accuracy"
    " on all ten classes († an end of the grid).",
    "",
    picked_table(picked, SAME_HEAD, design.strengths),
    "",
    "Differences paired by seed, in points, with their 95% intervals;"
    " verdicts as in `examples/anchors_lib/verdicts.py`, with a margin of"
    f" ±{MARGIN:g} point.",
    "",
    verdict_table(compared, SAME_HEAD),
  ]
  for labels in sorted({p.labels for p in picked if p.part == SAME_HEAD}):
    lines += [
      "",
      f"Every strength, {labels} labels per new class (test accuracy, mean"
      " over every seed of both sets):",
      "",
      grid_table(records, design, labels),
    ]
  lines += [
    "",
    "![Old- against new-class accuracy as the strength grows](l2sp.png)",
    "",
    f"## A new 5-way head, {picked[-1].labels} labels per class",
    "",
    "Test accuracy on classes 5-9; each set picks the strength on their"
    " validation examples.",
    "",
    picked_table(picked, NEW_HEAD, design.strengths),
    "",
    verdict_table(compared, NEW_HEAD),
  ]
  return "\n".join(lines)


def write(out, command, seconds, records, design: Design, settings) -> str:
  """Writes ``l2sp.md``, ``l2sp.json`` and ``l2sp.png`` into ``out``.

  Args:
    out: the directory.
    command: the command line that ran.
    seconds: its wall time up to here.
    records: the story's records.
    design: its design.
    settings: ``(property, value)`` rows for the page's header.

  Returns:
    The page, which is also printed.
  """
  picked, compared = summarise(records, design)
  head = output.header(command, seconds, settings)
  text = markdown(head, records, design, picked, compared)
  record = dict(
    command=command,
    seconds=seconds,
    design=design,
    margin=MARGIN,
    picked=picked,
    verdicts=compared,
    records=records,
  )
  paths = output.write(out, "l2sp", text, record)
  plot_tradeoff(paths["png"], records, design)
  print(text)
  return text
