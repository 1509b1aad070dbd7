"""From the study's jobs to its record, its figures and its page.

:func:`plan` sizes each cell's confirmation from the tuning runs (before
any confirmation seed trains); :func:`analyse` turns every job's numbers
into the record's comparisons; :func:`context` gives the Results template
(``results.md.j2``) everything it writes, counts and lists included, so
that no sentence of the page is typed by hand; :func:`plot` draws the
figures.
"""

import dataclasses
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from examples import evidence  # noqa: E402
from examples.study_lib import design as design_lib  # noqa: E402

RANGE_POINTS = 2.0  # a working range: rates within 2 points of the best
CONVERGED_POINTS = 0.25  # a budget whose doubling moves less has converged
PERIOD = 10
DIVERGED_BELOW = 20.0  # final test accuracy (points) of a diverged run


def picked_val(tuning: dict) -> np.ndarray:
  """Each tuning seed's final validation accuracy at the pick."""
  return np.asarray(tuning["val"])[:, tuning["rates"].index(tuning["picked"])]


def plan(design: design_lib.Design, tunings: dict) -> dict:
  """Each cell's confirmation: seeds, margin and power, from tuning alone.

  ``tunings[cell][method]["tune"]`` is a tune job's result. The paired sd is the
  largest over the cell's declared pairs of the validation accuracies at
  the picks; the seeds are the fewest that give 80% power to call a true
  difference of 0 equivalent at the margin, with each interval at the
  Bonferroni level ``alpha / m`` (Holm's is never stricter). A control
  cell (no pairs) gets as many seeds as its net's other cells.
  """
  alpha = evidence.ALPHA / max(design.primary, 1)
  plans = {}
  for cell in design.cells:
    if not cell.pairs:
      continue
    val = {m: picked_val(tunings[cell][m]["tune"]) for m in cell.methods}
    sds = [float(np.std(val[a] - val[b], ddof=1)) for a, b in cell.pairs]
    plans[cell] = evidence.plan(
      max(sds),
      design.margin,
      alpha,
      design.most_seeds,
      design.least_seeds,
      step=0.25,
    )
  for cell in design.cells:
    if cell not in plans:
      n = max(
        [p["seeds"] for c, p in plans.items() if c.task == cell.task]
        or [design.least_seeds]
      )
      plans[cell] = {
        "sd": None,
        "seeds": n,
        "margin": design.margin,
        "power": None,
      }
  return plans


def range_ends(rates, accuracy) -> tuple[float, float]:
  """``log10`` of the least and the greatest rate within 2 points of the best.

  The run of grid rates around the best whose mean accuracy is at least
  ``best - 2``, extended on each side to where the straight line (in log
  rate) to the next rate crosses that threshold; at a grid's edge it stops
  there (the width is then a lower bound).
  """
  log_rate = np.log10(np.asarray(rates, np.float64))
  accuracy = np.asarray(accuracy, np.float64)
  best = int(np.argmax(accuracy))
  threshold = accuracy[best] - RANGE_POINTS
  ends = []
  for step in (-1, 1):
    i = best
    while 0 <= i + step < len(accuracy) and accuracy[i + step] >= threshold:
      i += step
    end = log_rate[i]
    if 0 <= i + step < len(accuracy):
      fraction = (accuracy[i] - threshold) / (accuracy[i] - accuracy[i + step])
      end += fraction * (log_rate[i + step] - log_rate[i])
    ends.append(float(end))
  return ends[0], ends[1]


def working_ranges(cell_name: str, ours: dict, theirs: dict) -> dict:
  """TR's working range against its base's, on validation accuracy.

  The widths, and the shift of the centre (decades) with a seed-bootstrap
  interval.
  """

  def measure(a, b):
    lo, hi = range_ends(ours["rates"], np.mean(a, axis=0))
    base_lo, base_hi = range_ends(theirs["rates"], np.mean(b, axis=0))
    return hi - lo, base_hi - base_lo, (lo + hi - base_lo - base_hi) / 2

  a, b = np.asarray(ours["val"]), np.asarray(theirs["val"])
  width, base_width, shift = measure(a, b)
  return {
    "cell": cell_name,
    "width": width,
    "base_width": base_width,
    "shift": shift,
    "shift_interval": evidence.bootstrap(lambda x, y: measure(x, y)[2], a, b),
  }


def predicted_shift(period: int = PERIOD) -> float:
  """The shift (decades) that equal mean steps predict.

  TR's mean step factor inside a loop is H_period / period; a rate that
  many times larger gives the same mean step.
  """
  harmonic = sum(1 / (i + 1) for i in range(period))
  return math.log10(period / harmonic)


def best(cell_results: dict, names) -> str:
  """The method among ``names`` with the best mean confirmation validation."""
  present = [m for m in names if m in cell_results]
  return max(present, key=lambda m: np.mean(cell_results[m]["confirm"]["val"]))


def first(values, n: int) -> list:
  return list(values)[:n]


def analyse(design: design_lib.Design, cells: dict, plans: dict) -> dict:
  """The record's comparisons from every job's numbers.

  ``cells[cell][method]`` holds ``tune``, ``check`` and ``confirm``.
  """
  by_name = {c.name: c for c in design.cells}
  primary, secondary, paper, ranges, budgets = [], [], [], [], []
  for cell in design.cells:
    results, p = cells[cell], plans[cell]
    for m, r in results.items():
      move = np.mean(r["check"]["val"]) - np.mean(picked_val(r["tune"]))
      budgets.append(
        {
          "cell": cell.name,
          "method": m,
          "move": float(move),
          "converged": bool(move <= CONVERGED_POINTS),
        }
      )
    test = {m: r["confirm"]["test"] for m, r in results.items()}
    for a, b in cell.pairs:
      primary.append(
        evidence.compare(
          test[a],
          test[b],
          names=(a, b, cell.name),
          margin=p["margin"],
          family="primary",
          power=p["power"],
        )
      )
      ranges.append(
        working_ranges(cell.name, results[a]["tune"], results[b]["tune"])
        | {"a": a, "b": b}
      )
      if cell.has_paper_settings:
        paper.append(paper_comparison(cell, results, a, b, p["margin"]))
    for a, b in (("TRSGD", "Adam"), ("TRAdam", "SGD")):
      if a in test and b in test:
        secondary.append(
          evidence.compare(
            test[a], test[b], names=(a, b, cell.name), margin=p["margin"]
          )
        )
  return {
    "primary": [dataclasses.asdict(c) for c in evidence.holm(primary)],
    "secondary": [dataclasses.asdict(c) for c in secondary],
    "cross": [dataclasses.asdict(c) for c in cross_net(design, cells, plans)],
    "paper": paper,
    "ranges": ranges,
    "budgets": budgets,
    "gaps": [
      gap(cell, by_name[f"{cell.task} b{design_lib.LARGE_BATCH}"], cells, plans)
      for cell in design.cells
      if cell.pairs and f"{cell.task} b{design_lib.LARGE_BATCH}" in by_name
    ],
    "predicted_shift": predicted_shift(),
  }


def cross_net(design: design_lib.Design, cells: dict, plans: dict) -> list:
  """TR on the BatchNorm net against each base on the GroupNorm net."""
  by_name = {c.name: c for c in design.cells}
  cross = []
  for batch in sorted({c.batch_size for c in design.cells}):
    bn, gn = (
      by_name.get(f"digits-bn b{batch}"),
      by_name.get(f"digits-gn b{batch}"),
    )
    if bn and gn and bn.pairs:
      n = min(plans[bn]["seeds"], plans[gn]["seeds"])
      for a, _ in bn.pairs:
        for b in design_lib.BASELINES:
          if b in cells[gn]:
            cross.append(
              evidence.compare(
                first(cells[bn][a]["confirm"]["test"], n),
                first(cells[gn][b]["confirm"]["test"], n),
                names=(f"{a} (BN)", f"{b} (GN)", f"b{batch}"),
                margin=plans[bn]["margin"],
              )
            )
  return cross


def paper_comparison(cell, results, a: str, b: str, margin: float) -> dict:
  """At the paper's settings: divergences and the median difference.

  The median comes with the sign test's interval; beside it, the mean over
  the seeds where neither run diverged.
  """
  ours, theirs = (
    np.asarray(results[m]["confirm"]["paper"]["test"]) for m in (a, b)
  )
  fine = (ours >= DIVERGED_BELOW) & (theirs >= DIVERGED_BELOW)
  names = (a, b, cell.name)
  return {
    "cell": cell.name,
    "a": a,
    "b": b,
    "rates": [results[m]["confirm"]["paper"]["rate"] for m in (a, b)],
    "diverged": [int((x < DIVERGED_BELOW).sum()) for x in (ours, theirs)],
    "means": [float(ours.mean()), float(theirs.mean())],
    "median": dataclasses.asdict(
      evidence.median_comparison(ours, theirs, names=names, margin=margin)
    ),
    "not_diverged": dataclasses.asdict(
      evidence.compare(ours[fine], theirs[fine], names=names, margin=margin)
    )
    if fine.sum() > 1
    else None,
  }


def gap(cell, large, cells: dict, plans: dict) -> dict:
  """What the small batch costs the net, and what TR recovers of it.

  The best baseline at the large batch minus the best at the small one,
  and the best TR method minus that small-batch baseline, each best picked
  by confirmation validation accuracy.
  """
  n = min(plans[cell]["seeds"], plans[large]["seeds"])
  small, big = cells[cell], cells[large]
  base, tr = (
    best(small, design_lib.BASELINES),
    best(small, [a for a, _ in cell.pairs]),
  )
  big_base = best(big, design_lib.BASELINES)
  test = lambda results, m: first(results[m]["confirm"]["test"], n)
  cost = evidence.compare(
    test(big, big_base),
    test(small, base),
    names=(big_base, base, cell.name),
    margin=0.5,
  )
  gain = evidence.compare(
    test(small, tr), test(small, base), names=(tr, base, cell.name), margin=0.5
  )
  return {
    "cell": cell.name,
    "large": large.name,
    "cost": dataclasses.asdict(cost),
    "gain": dataclasses.asdict(gain),
    # A share of a cost only where the cost was measured (a "win").
    "recovered": gain.mean / cost.mean if cost.word == "win" else None,
  }


def counts(comparisons, word: str) -> list:
  return [c for c in comparisons if c["word"] == word]


def context(record: dict) -> dict:
  """Everything the Results template writes, from the record alone."""
  analysis, design = record["analysis"], record["design"]
  moves = {(b["cell"], b["method"]): b for b in analysis["budgets"]}
  alpha = design["alpha"] / design["primary"]
  return record | {
    "by_word": counts,
    "cells_of": lambda items: evidence.words(
      [f"{c['a']} − {c['b']} on {c['where']}" for c in items]
    ),
    "and_list": evidence.words,
    "converged": [b for b in analysis["budgets"] if b["converged"]],
    "settled": lambda c: all(
      moves[c["where"], m]["converged"] for m in (c["a"], c["b"])
    ),
    "power_at": lambda c, margin: evidence.power(
      c["n"], c["sd"], margin, alpha
    ),
    "move": lambda cell, m: moves.get((cell, m)),
    "stdev": lambda values: float(np.std(values, ddof=1)),
    "mean": lambda values: float(np.mean(values)),
    "primary_count": len(analysis["primary"]),
    "all_methods": list(
      dict.fromkeys(m for c in record["cells"] for m in c["methods"])
    ),
    "controls": [c for c in record["cells"] if c["plan"]["power"] is None],
    "margins": sorted(
      {
        c["plan"]["margin"]
        for c in record["cells"]
        if c["plan"]["power"] is not None
      }
    ),
  }


def plot(record: dict, out: str) -> list[str]:
  """The figures: the primary comparisons, and accuracy against the rate."""
  primary = record["analysis"]["primary"]
  fig, ax = plt.subplots(figsize=(7, 0.35 * len(primary) + 1.2))
  for i, c in enumerate(primary):
    colour = {"win": "C2", "loss": "C3", "equivalent": "C0"}.get(
      c["word"], "0.4"
    )
    ax.plot([c["low"], c["high"]], [i, i], color=colour, lw=2)
    ax.plot(c["mean"], i, "o", color=colour)
    ax.plot([-c["margin"], c["margin"]], [i, i], "|", color="0.6", ms=10)
  ax.axvline(0, color="0.3", lw=0.8)
  ax.set_yticks(
    range(len(primary)), [f"{c['a']} − {c['b']}, {c['where']}" for c in primary]
  )
  ax.invert_yaxis()
  ax.set_xlabel(
    "difference in test accuracy (points), Holm-adjusted interval;"
    " | marks the margin"
  )
  fig.tight_layout()
  paths = [f"{out}/primary.png"]
  fig.savefig(paths[0], dpi=110)
  plt.close(fig)
  cells = record["cells"]
  columns = 4
  rows = -(-len(cells) // columns)
  fig, axes = plt.subplots(
    rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False
  )
  for ax, cell in zip(axes.flat, cells):
    for m, r in cell["methods"].items():
      val = np.mean(r["tune"]["val"], axis=0)
      ax.plot(r["tune"]["rates"], val, "o-", ms=3, label=m)
    ax.set_xscale("log")
    ax.set_title(cell["name"], fontsize=9)
    top = max(
      np.max(np.mean(r["tune"]["val"], axis=0))
      for r in cell["methods"].values()
    )
    ax.set_ylim(top - 12, top + 1)
  for ax in axes.flat[len(cells) :]:
    ax.axis("off")
  handles, labels = axes.flat[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
  fig.supxlabel(
    "learning rate (tuning seeds' mean validation accuracy, %)",
    y=0.06,
    fontsize=9,
  )
  fig.tight_layout(rect=(0, 0.08, 1, 1))
  paths.append(f"{out}/rates.png")
  fig.savefig(paths[1], dpi=110)
  plt.close(fig)
  return paths
