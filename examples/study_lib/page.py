"""The Results page and the README's summary, generated from the record.

Every figure that ``docs/results.md`` and the README quote comes from
``study.json`` and ``pilot.json`` through a template
(``results_template.md``): a field ``{{kind arguments}}`` is replaced by
what :func:`field` computes from the records, and an unknown field is an
error. ``make study`` renders the page, and copies its summary (between
:data:`SUMMARY_START` and :data:`SUMMARY_END`) into the README and the
docs' front page; a test renders them again from the committed records and
compares, so the prose cannot drift from the data.

Fields (a task is ``mnist1d``, ``digits``, ``digits-bn`` or ``digits-gn``):

* ``verdict TASK BATCH METHOD BASELINE [BASELINE_TASK]``: the replicated
  word and the pooled difference with its 95% interval; ``pooled ...`` the
  difference alone.
* ``rate TASK BATCH METHOD``: the rates picked by set A / B.
* ``paper TASK METHOD``: at the paper's settings, set A (set B);
  ``diverged TASK METHOD``: how many seeds ended below 20% there;
  ``paperverdict TASK METHOD``: its verdict against its plain optimizer.
* ``shift TASK BATCH METHOD SET``, ``gap ...``: a TR method's working-range
  shift and width gap against its plain optimizer, with intervals;
  ``rangecount width|shift WORD``: how many pairs have that word, "of" how
  many.
* ``count PART WORD [TASK]``: how many verdicts of a part (``tuned``,
  ``norm``, ``paper``, ``ablation``), or of its TASK, have that word, "of"
  how many.
* ``table PART [TASK]``: a table of the report (``tuned`` per task,
  ``accuracy`` per task, ``ranges``, ``norm``, ``paper``, ``ablation``,
  ``pilot``).
* ``epochs TASK BATCH``, ``wall``: the study's wall time in minutes.
* ``movement``: how much picks move between the seed sets; ``fragile``:
  how many picks a runner-up rate came within 0.3 points of; ``bestval``:
  the largest gap between a set's final test accuracy and its accuracy at
  the best validation epoch; ``sens METHOD PERIOD RATIO``: a cell of the
  sensitivity map.
"""

import os
import re

import numpy as np

from examples.study_lib import design as design_lib
from examples.study_lib import pilot as pilot_lib
from examples.study_lib import record
from examples.study_lib import report

TEMPLATE = os.path.join(os.path.dirname(__file__), "results_template.md")
SUMMARY_START = "<!-- study summary: generated from docs/results/study.json -->"
SUMMARY_END = "<!-- end of study summary -->"
FIELD = re.compile(r"\{\{([^{}]+)\}\}")
DIVERGED = 20.0  # final test accuracy (%) below which a run has diverged


class Records:
  """What the fields read: the header, the results and the pilot."""

  def __init__(self, header, results: design_lib.Results, pilot):
    self.header, self.results, self.pilot = header, results, pilot
    self.names = list(header.seed_sets)

  def tuning(self, task, batch, method):
    return one(
      t
      for t in self.results.tunings
      if (t.task, t.batch_size, t.method) == (task, int(batch), method)
    )

  def verdicts(self, part):
    if part == "tuned":
      return report.kept_verdicts(self.results.verdicts, self.pilot)
    return getattr(self.results, f"{part}_verdicts")

  def verdict(self, task, batch, method, baseline, baseline_task=None):
    return one(
      v
      for part in ("tuned", "norm")
      for v in self.verdicts(part)
      if (v.task, v.batch_size, v.method, v.baseline)
      == (task, int(batch), method, baseline)
      and v.baseline_task == (baseline_task or task)
    )

  def paper_verdict(self, task, method):
    return one(
      v
      for v in self.results.paper_verdicts
      if (v.task, v.method) == (task, method)
    )

  def range_of(self, task, batch, method):
    return one(
      r
      for r in self.results.ranges
      if (r.task, r.batch_size, r.method) == (task, int(batch), method)
    )


def one(items):
  found = list(items)
  if len(found) != 1:
    raise KeyError(f"{len(found)} records match, not 1")
  return found[0]


def names_of(words: list[str]) -> list[str]:
  """Arguments; a method name with spaces is written with underscores."""
  return [w.replace("_", " ") for w in words]


def field(records: Records, text: str) -> str:
  """The value of one field ``{{text}}`` (see the module docstring)."""
  kind, *args = text.split()
  args = names_of(args)
  r = records
  if kind in ("verdict", "pooled"):
    v = r.verdict(*args)
    pooled = report.interval(v.pooled)
    return f"{v.word}, {pooled}" if kind == "verdict" else pooled
  if kind == "paperverdict":
    v = r.paper_verdict(*args)
    return f"{v.word}, {report.interval(v.pooled)}"
  if kind == "rate":
    t = r.tuning(*args)
    return " / ".join(f"{t.picked_rate(n):.3g}" for n in r.names)
  if kind in ("paper", "diverged"):
    task, method = args
    t = one(p for p in r.results.paper if (p.task, p.method) == (task, method))
    if kind == "diverged":  # seeds that end below 20%, chance being 10%
      tests = [x for n in r.names for x in t.sets[n].picked_test]
      return f"{sum(x < DIVERGED for x in tests)} of {len(tests)}"
    a, b = (np.mean(t.sets[n].picked_test) for n in r.names)
    return f"{a:.1f}% ({b:.1f}%)"
  if kind in ("gap", "shift"):
    task, batch, method, name = args
    ours = r.range_of(task, batch, method).sets[name][0]
    if kind == "gap":
      return report.signed(ours.width_gap, *ours.width_gap_interval)
    return report.signed(ours.shift, *ours.shift_interval)
  if kind == "rangecount":
    which, word = args
    words = [getattr(rc, f"{which}_word") for rc in r.results.ranges]
    return f"{words.count(word)} of {len(words)}"
  if kind == "count":
    part, word, *task = args
    verdicts = [v for v in r.verdicts(part) if v.task in task or not task]
    return f"{sum(v.word == word for v in verdicts)} of {len(verdicts)}"
  if kind == "epochs":
    task, batch = args
    return str(r.header.epochs[task][int(batch)])
  if kind == "wall":
    return f"{r.header.study_wall_minutes:.0f}"
  if kind == "table":
    return table(r, *args)
  return summary_field(r, kind, args)


def summary_field(r: Records, kind: str, args: list[str]) -> str:
  """Fields over the whole study: how much figures move, the sensitivity."""
  if kind == "movement":
    return report.movement(r.results.tunings, r.names)
  if kind == "fragile":
    return report.fragile_picks(r.results.tunings)
  if kind == "bestval":
    gaps = [
      abs(np.mean(s.picked_test) - np.mean(s.test_at_best_val))
      for t in r.results.tunings
      for s in t.sets.values()
    ]
    return f"{max(gaps):.2f}"
  if kind == "sens":
    method, period, ratio = args
    m = one(x for x in r.results.sensitivity if x.method == method)
    i, j = m.periods.index(int(period)), m.ratios.index(float(ratio))
    return f"{m.mean[i][j]:.1f}"
  raise KeyError(f"unknown field kind {kind!r}")


def table(r: Records, part: str, task: str | None = None) -> str:
  if part == "tuned":
    return report.verdict_grid(
      [v for v in r.verdicts("tuned") if v.task == task]
    )
  if part == "accuracy":
    return report.accuracy_table(
      [t for t in r.results.tunings if t.task == task], r.names
    )
  if part == "ranges":
    return report.range_table(r.results.ranges, r.names)
  if part == "norm":
    return report.verdict_grid(r.results.norm_verdicts)
  if part == "paper":
    return report.verdict_grid(r.results.paper_verdicts)
  if part == "ablation":
    return report.verdict_grid(r.results.ablation_verdicts)
  if part == "pilot":
    return report.pilot_table(r.pilot)
  raise KeyError(f"unknown table {part!r}")


def render(template: str, records: Records) -> str:
  """``template`` with every field replaced; raises on an unknown one."""

  def replace(match: re.Match) -> str:
    try:
      return field(records, match.group(1))
    except (KeyError, ValueError, TypeError) as error:
      raise ValueError(f"field {{{{{match.group(1)}}}}}: {error}") from None

  return FIELD.sub(replace, template)


def summary(page: str) -> str:
  """The text between the summary markers, markers included."""
  start = page.index(SUMMARY_START)
  end = page.index(SUMMARY_END) + len(SUMMARY_END)
  return page[start:end]


def with_summary(text: str, block: str) -> str:
  """``text`` with its marked summary replaced by ``block``."""
  start = text.index(SUMMARY_START)
  end = text.index(SUMMARY_END) + len(SUMMARY_END)
  return text[:start] + block + text[end:]


def load_template() -> str:
  with open(TEMPLATE) as f:
    return f.read()


def records_from(study_json: str, pilot_json: str) -> Records:
  header, results = record.load(study_json)
  return Records(header, results, pilot_lib.load(pilot_json))
