"""The design and the report of ``examples/federated_fedprox.py``.

The story trains; it hands back one record per run (a :class:`Config` and
its server's metrics after every round). Here those records become the
final-round tables, FedProx's picked ``mu`` (by validation accuracy, per
seed set), the replicated verdicts that split FedProx's gain into the
partial work and the pull, and the figure of accuracy and loss by round.
"""

from collections.abc import Sequence
import dataclasses
import functools
from typing import Any, NamedTuple

import numpy as np

from examples.anchors_lib import output
from examples.anchors_lib import verdicts
from examples.study_lib import report as study_report
from examples.study_lib import stats

MARGIN = 1.0  # points of test accuracy
LAST_ROUNDS = 3  # "final": the mean over the last rounds, which oscillate
DROP, AVERAGE = "FedAvg, drop", "FedAvg"
BEST = "FedProx, best mu"

Record = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Design:
  """How much the story trains: the full run, or ``--quick``."""

  seed_sets: dict[str, tuple[int, ...]]
  local_steps: tuple[int, ...]
  rounds: int
  mus: tuple[float, ...]


FULL = Design(
  {"A": (0, 1, 2), "B": (3, 4, 5)}, (10, 40), 15, (0.001, 0.01, 0.1, 1.0)
)
QUICK = Design({"A": (0,), "B": (1,)}, (4,), 2, (0.01, 1.0))


class Config(NamedTuple):
  """One federated run."""

  seed: int
  local_steps: int
  method: str
  mu: float
  drop: bool  # whether clients that do not finish are left out


def method_name(mu: float) -> str:
  """The name of FedProx at ``mu`` in the records and tables.

  Args:
    mu: the pull's strength.

  Returns:
    For instance ``"FedProx, mu=0.01"``.
  """
  return f"FedProx, mu={mu:g}"


def grid(design: Design, local_steps: int) -> list[Config]:
  """Every run at one number of local steps: FedAvg twice, FedProx per mu.

  Args:
    design: the seeds and the mus.
    local_steps: the number of local steps per round.

  Returns:
    For each seed: FedAvg dropping the clients that do not finish, FedAvg
    averaging their partial work, and FedProx (partial work) at each mu.
  """
  methods = [(DROP, 0.0, True), (AVERAGE, 0.0, False)]
  methods += [(method_name(mu), mu, False) for mu in design.mus]
  seeds = [s for seeds in design.seed_sets.values() for s in seeds]
  return [Config(s, local_steps, *m) for s in seeds for m in methods]


def records(configs: Sequence[Config], history) -> list[Record]:
  """One record per run: its config and its metrics after every round.

  Args:
    configs: the runs, in the order they were stacked.
    history: per round, ``(evaluation, drift)``: split -> ``(loss,
      accuracy)`` arrays over runs, and each run's clients' anchor distance.

  Returns:
    Dicts with the config's fields and, per round, ``test``, ``val``
    (accuracy, %), ``train_loss`` and ``drift`` (the mean over clients).
  """
  series = {
    "test": [100 * h[0]["test"][1] for h in history],
    "val": [100 * h[0]["val"][1] for h in history],
    "train_loss": [h[0]["train"][0] for h in history],
    "drift": [np.mean(h[1], axis=-1) for h in history],
  }
  return [
    {
      **c._asdict(),
      **{k: [float(v[i]) for v in rounds] for k, rounds in series.items()},
    }
    for i, c in enumerate(configs)
  ]


def final(records, seeds, steps: int, method: str, metric: str) -> list[float]:
  """``metric``'s mean over the last rounds, for each seed of ``seeds``.

  Args:
    records: the story's records.
    seeds: the seeds, in the order of the result.
    steps: the number of local steps.
    method: the method's name.
    metric: ``"test"``, ``"val"``, ``"train_loss"`` or ``"drift"``.

  Returns:
    One value per seed.
  """
  found = {
    r["seed"]: float(np.mean(r[metric][-LAST_ROUNDS:]))
    for r in records
    if r["local_steps"] == steps and r["method"] == method
  }
  return [found[s] for s in seeds]


def best_mu(records, design: Design, steps: int) -> dict[str, str]:
  """Per seed set, the FedProx mu with the best final validation accuracy.

  Args:
    records: the story's records.
    design: its seed sets and mus.
    steps: the number of local steps.

  Returns:
    Seed set -> the picked method's name (:func:`method_name`).
  """
  names = [method_name(mu) for mu in design.mus]
  picks = {}
  for set_name, seeds in design.seed_sets.items():
    val = [final(records, seeds, steps, name, "val") for name in names]
    picks[set_name] = names[stats.pick(np.array(val).T)]
  return picks


def per_set(records, design: Design, steps: int, method: str, metric: str):
  """:func:`final` for every seed set.

  Args:
    records: the story's records.
    design: its seed sets.
    steps: the number of local steps.
    method: the method's name, or :data:`BEST`: each set's picked mu
      (:func:`best_mu`).
    metric: as in :func:`final`.

  Returns:
    Seed set -> one value per seed.
  """
  picks = best_mu(records, design, steps) if method == BEST else {}
  return {
    name: final(records, seeds, steps, picks.get(name, method), metric)
    for name, seeds in design.seed_sets.items()
  }


def comparisons(design: Design) -> list[tuple[str, str, str]]:
  """What :func:`compare` compares: (a), its two parts, then (b).

  Args:
    design: its mus.

  Returns:
    ``(what it measures, ours, baseline)`` tuples of method names.
  """
  pairs = [
    ("(a) FedProx as published against FedAvg as published", BEST, DROP),
    ("the partial work alone", AVERAGE, DROP),
    ("the pull alone, at its best mu", BEST, AVERAGE),
  ]
  pairs += [("(b) the pull", method_name(mu), AVERAGE) for mu in design.mus]
  return pairs


def compare(records, design: Design) -> list[tuple[int, str, verdicts.Verdict]]:
  """The replicated verdicts on the final test accuracy.

  Args:
    records: the story's records.
    design: its design.

  Returns:
    ``(local steps, what it measures, Verdict)`` tuples.
  """
  results = []
  for steps in design.local_steps:
    for label, ours, theirs in comparisons(design):
      verdict = verdicts.replicated(
        (ours, theirs),
        per_set(records, design, steps, ours, "test"),
        per_set(records, design, steps, theirs, "test"),
        MARGIN,
      )
      results.append((steps, label, verdict))
  return results


def final_table(records, design: Design, steps: int) -> str:
  """Markdown: each method's final test accuracy, loss and client drift.

  Args:
    records: the story's records.
    design: its seed sets and mus.
    steps: the number of local steps.

  Returns:
    The table, ending with FedProx at each set's best mu.
  """
  picks = best_mu(records, design, steps)
  methods = [DROP, AVERAGE, *(method_name(mu) for mu in design.mus), BEST]
  rows = []
  for method in methods:
    name = method
    if method == BEST:
      name += " (" + " / ".join(p.split("=")[1] for p in picks.values()) + ")"
    values = functools.partial(per_set, records, design, steps, method)
    rows.append(
      [
        name,
        output.cell(values("test")),
        output.cell(values("train_loss"), 3),
        output.cell(values("drift"), 2),
      ]
    )
  head = ["method", "test accuracy (%)", "training loss", "client drift"]
  return study_report.table(head, rows)


def verdict_table(compared, steps: int) -> str:
  """Markdown: each comparison at one number of local steps, and verdict.

  Args:
    compared: :func:`compare`'s verdicts.
    steps: the number of local steps.

  Returns:
    The table.
  """
  rows = [
    ([label, f"{v.a} − {v.b}"], v) for s, label, v in compared if s == steps
  ]
  return output.verdict_table(["what it measures", "difference"], rows)


def mean_by_round(records, steps: int, method: str, metric: str):
  """``metric`` after each round, averaged over every seed.

  Args:
    records: the story's records.
    steps: the number of local steps.
    method: the method's name.
    metric: as in :func:`final`.

  Returns:
    One value per round.
  """
  series = [
    r[metric]
    for r in records
    if r["local_steps"] == steps and r["method"] == method
  ]
  return np.mean(np.array(series), axis=0)


def plot_rounds(path: str, records, design: Design) -> None:
  """Test accuracy and training loss against the round, per local steps.

  One row per number of local steps; one curve per method (means over
  every seed of both sets), FedAvg dropping stragglers dashed.

  Args:
    path: the PNG file to write.
    records: the story's records.
    design: its local steps, rounds and mus.
  """
  plt = study_report.pyplot()
  rows = len(design.local_steps)
  figure, axes = plt.subplots(
    rows,
    2,
    figsize=(7.2, 2.7 * rows + 0.7),
    squeeze=False,
    layout="constrained",
  )  # constrained: room for the legend below the panels
  methods = [DROP, AVERAGE, *(method_name(mu) for mu in design.mus)]
  rounds = np.arange(1, design.rounds + 1)
  for row, steps in zip(axes, design.local_steps):
    for method in methods:
      style = "--" if method == DROP else "-"
      for ax, metric in zip(row, ("test", "train_loss")):
        curve = mean_by_round(records, steps, method, metric)
        ax.plot(rounds, curve, style, label=method)
    row[0].set(ylabel="test accuracy (%)", title=f"{steps} local steps")
    row[1].set(ylabel="training loss", title=f"{steps} local steps")
    for ax in row:
      ax.set(xlabel="round", xticks=rounds[:: max(1, len(rounds) // 5)])
  handles, labels = axes[0][0].get_legend_handles_labels()
  figure.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=9)
  figure.savefig(path, dpi=110)
  plt.close(figure)


def markdown(head: str, records, design: Design, compared) -> str:
  """The results page: per number of local steps, tables and verdicts.

  Args:
    head: :func:`examples.anchors_lib.output.header`'s table.
    records: the story's records.
    design: its design.
    compared: :func:`compare`'s verdicts.

  Returns:
    The page, in markdown.
  """
  sets = " / ".join(
    f"{n} (seeds {s[0]}-{s[-1]})" for n, s in design.seed_sets.items()
  )
  lines = [
    "# FedProx against FedAvg: non-IID clients and stragglers",
    "",
    head,
    "",
    f"{design.rounds} rounds; every number is the mean over the last"
    f" {LAST_ROUNDS} rounds. Cells are `set A / set B`, each the mean ± std"
    f" over its seeds; the seed sets are {sets}. Client drift: the mean"
    " over clients of ‖w − w_server‖ at the end of their local training."
    " FedProx's best mu is picked per seed set by validation accuracy."
    " Differences are paired by seed, in points of test accuracy, with"
    " 95% intervals; verdicts as in `examples/anchors_lib/verdicts.py`,"
    f" with a margin of ±{MARGIN:g} point.",
  ]
  for steps in design.local_steps:
    lines += [
      "",
      f"## {steps} local steps per round",
      "",
      final_table(records, design, steps),
      "",
      verdict_table(compared, steps),
    ]
  lines += ["", "![Test accuracy and training loss by round](fedprox.png)"]
  return "\n".join(lines)


def write(out, command, seconds, records, design: Design, settings) -> str:
  """Writes ``fedprox.md``, ``fedprox.json`` and ``fedprox.png``.

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
  compared = compare(records, design)
  head = output.header(command, seconds, settings)
  text = markdown(head, records, design, compared)
  record = dict(
    command=command,
    seconds=seconds,
    design=design,
    margin=MARGIN,
    verdicts=compared,
    records=records,
  )
  paths = output.write(out, "fedprox", text, record)
  plot_rounds(paths["png"], records, design)
  print(text)
  return text
