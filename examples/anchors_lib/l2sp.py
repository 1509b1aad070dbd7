"""The design and the evidence of ``examples/finetune_l2sp.py``.

The story trains; :func:`measure` turns its trained models into one record
per run and checkpoint (accuracies in points). Here those records become
each arm's pick on the tuning seeds (validation only, :func:`pick`), the
confirmation plan (:func:`plan`), the comparisons on the confirmation
seeds (:func:`analyse`), the trade-off figure and the page
(``l2sp.md.j2``): every number, list and verdict on it is the record's.
"""

from collections.abc import Sequence
import dataclasses
import itertools
import json
import math
import os
from typing import NamedTuple

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from examples import evidence  # noqa: E402
from examples import machine  # noqa: E402
from examples.anchors_lib import evaluation  # noqa: E402

HERE = os.path.dirname(__file__)
TEMPLATE, SUMMARY = (
  os.path.join(HERE, f) for f in ("l2sp.md.j2", "l2sp_summary.md.j2")
)
SAME_HEAD, NEW_HEAD, BODY = "same head", "new head", "(body)"
ARMS = {
  SAME_HEAD: ("plain", "L2-SP", "L2-SP (body)", "EWC", "EWC (body)"),
  NEW_HEAD: ("scratch", "fine-tuned", "L2-SP"),
}
UNPULLED = ("pretrained", "plain", "scratch", "fine-tuned")  # knob: steps
BASELINE = {SAME_HEAD: "plain", NEW_HEAD: "fine-tuned"}
RULES = {  # how a user picks each arm's knob, on validation only
  "new": "new-class validation only",
  "ten": "validation on all ten classes",
  "best": "new-class validation",
}
BUDGET = 5.0  # "new": the new-class validation points a pull may cost
MARGIN = 1.0  # points, the equivalence margin before the plan widens it
LEVELS = (50.0, 80.0)  # old-class test accuracy where the curves are read
CONFIRMATION = 1000  # the first confirmation seed
PRIMARY = (  # (part, rule, metric, a, b): a - b, declared, with Holm
  (SAME_HEAD, "new", "all", "EWC", "plain"),
  (SAME_HEAD, "new", "all", "L2-SP", "plain"),
  (SAME_HEAD, "new", "all", "EWC", "L2-SP"),
  (NEW_HEAD, "best", "new", "fine-tuned", "scratch"),
  (NEW_HEAD, "best", "new", "L2-SP", "fine-tuned"),
)
SECONDARY = (
  (SAME_HEAD, "ten", "all", "EWC", "plain"),
  (SAME_HEAD, "ten", "all", "L2-SP", "plain"),
  (SAME_HEAD, "ten", "all", "EWC", "L2-SP"),
  *(
    (SAME_HEAD, rule, "all", arm, f"{arm} {BODY}")
    for arm in ("L2-SP", "EWC")
    for rule in ("new", "ten")
  ),
  (NEW_HEAD, "best", "new", "L2-SP", "scratch"),
)
AT_EQUAL_OLD = (("EWC", "L2-SP"), ("L2-SP", "plain"), ("EWC", "plain"))


@dataclasses.dataclass(frozen=True)
class Design:
  """How much the story trains: the full run, or ``--quick``.

  A fine-tuning run is kept ``checkpoints`` times, ``every`` steps apart
  (the unpulled arms' knob); the pulled arms' knob runs over
  ``strengths``. Confirmation seeds count from :data:`CONFIRMATION`.
  """

  strengths: tuple[float, ...]
  checkpoints: int
  every: int
  pretrain_steps: int
  tuning_seeds: tuple[int, ...]
  most_seeds: int
  least_seeds: int

  @property
  def confirmation_seeds(self) -> tuple[int, ...]:
    """The seeds a confirmation may use, the first ``plan`` says."""
    return tuple(range(CONFIRMATION, CONFIRMATION + self.most_seeds))


FULL = Design(
  (0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0),  # half a decade apart
  checkpoints=10,
  every=25,
  pretrain_steps=1000,
  tuning_seeds=tuple(range(6)),
  most_seeds=24,
  least_seeds=8,
)
QUICK = Design((0.1, 10.0), 2, 25, 100, (0, 1), 2, 2)


class Config(NamedTuple):
  """One training run: an arm of a part at a strength."""

  part: str  # SAME_HEAD, NEW_HEAD or "pretrained"
  arm: str  # of ARMS, or "pretrained"
  strength: float


PRETRAINED = Config("pretrained", "pretrained", 0.0)


def grid(design: Design, part: str) -> list[Config]:
  """Every run of one seed in one part: each pulled arm at each strength."""
  return [
    Config(part, arm, strength)
    for arm in ARMS[part]
    for strength in ((0.0,) if arm in UNPULLED else design.strengths)
  ]


def splits(data, head: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The held-out splits a model with a ``head``-way head is measured on.

  Validation: all ten classes (``val_all``) and the new ones (``val_new``);
  test: the old classes, the new ones and all ten. A 5-way head sees the
  new classes only, labelled 0-4.
  """
  new_val, new_test = data.val_y >= 5, data.test_y >= 5
  if head == 5:
    return {
      "val_new": (data.val_x[new_val], data.val_y[new_val] - 5),
      "new": (data.test_x[new_test], data.test_y[new_test] - 5),
    }
  return {
    "val_all": (data.val_x, data.val_y),
    "val_new": (data.val_x[new_val], data.val_y[new_val]),
    "old": (data.test_x[~new_test], data.test_y[~new_test]),
    "new": (data.test_x[new_test], data.test_y[new_test]),
    "all": (data.test_x, data.test_y),
  }


def measure(configs, kept, *, data, seed, graphdefs, every) -> list[dict]:
  """One record per run and checkpoint: its config and accuracies (%).

  ``kept`` holds the runs' parameters, ``(runs, checkpoints, ...)``, kept
  ``every`` steps; ``graphdefs(classes)`` is the model's structure. An
  unpulled arm is measured at every checkpoint (its knob is when to stop),
  a pulled one at the last. A record holds the seed, the
  :class:`Config`'s fields, the ``steps`` and an accuracy per split of
  :func:`splits`.
  """
  last = jax.tree.leaves(kept)[0].shape[1] - 1
  chosen = [
    (i, j)
    for i, c in enumerate(configs)
    for j in (range(last + 1) if c.arm in UNPULLED else (last,))
  ]
  rows, columns = np.array(chosen).T
  params = jax.tree.map(lambda a: a[rows, columns], kept)
  head = kept["head"]["bias"].shape[-1]
  chunks, parts = evaluation.held_out(splits(data, head))
  measured = evaluation.evaluate_models(params, graphdefs(head), parts, chunks)
  accuracy = {k: np.asarray(a) for k, (_, a) in measured.items()}
  return [
    {"seed": seed, **configs[i]._asdict()}
    | {"steps": 0 if configs[i] == PRETRAINED else every * (j + 1)}
    | {k: round(100 * float(a[n]), 2) for k, a in accuracy.items()}
    for n, (i, j) in enumerate(chosen)
  ]


def spread(seed: int, fisher) -> dict:
  """How heavy-tailed a Fisher is: its largest entry over its mean."""
  flat = np.concatenate([np.ravel(f) for f in jax.tree.leaves(fisher)])
  return {"seed": seed, "part": "fisher", "ratio": flat.max() / flat.mean()}


def table(records, seeds, part: str, arm: str, key: str):
  """``key`` as a ``(seeds, knobs)`` array, and the knobs.

  The knobs run from the least conservative (the most steps, the weakest
  pull) to the most.
  """
  chosen = [r for r in records if r["part"] == part and r["arm"] == arm]
  knob = "steps" if arm in UNPULLED else "strength"
  knobs = sorted({r[knob] for r in chosen}, reverse=knob == "steps")
  value = {(r["seed"], r[knob]): r[key] for r in chosen}
  return np.array([[value[s, k] for k in knobs] for s in seeds]), knobs


def pick(records, seeds, part: str, arm: str, rule: str) -> int:
  """The knob's index an arm picks by ``rule``, reading validation only.

  "ten": the best mean validation accuracy on all ten classes. "best":
  the best on the new classes. "new": the most conservative knob whose
  mean new-class validation accuracy is within :data:`BUDGET` points of
  the unpulled baseline's best (the weakest, if none is).
  """
  if rule == "ten":
    return int(table(records, seeds, part, arm, "val_all")[0].mean(0).argmax())
  val = table(records, seeds, part, arm, "val_new")[0].mean(0)
  if rule == "best":
    return int(val.argmax())
  baseline = table(records, seeds, part, BASELINE[part], "val_new")[0]
  within = np.flatnonzero(val >= baseline.mean(0).max() - BUDGET)
  return int(within[-1]) if len(within) else 0


PICKS = ((SAME_HEAD, "new"), (SAME_HEAD, "ten"), (NEW_HEAD, "best"))


def at_pick(tuning, records, part, arm, rule, key) -> np.ndarray:
  """``key`` of each seed of ``records`` at the knob the tuning picked."""
  seeds = lambda runs: sorted({r["seed"] for r in runs})
  index = pick(tuning, seeds(tuning), part, arm, rule)
  return table(records, seeds(records), part, arm, key)[0][:, index]


def plan(tuning: Sequence[dict], design: Design) -> dict:
  """The confirmation's seeds, margin and power, from the tuning alone.

  The paired sd is the largest of the declared comparisons', on
  validation at the picks; the seeds are the fewest that give 80% power
  to call a true difference of 0 equivalent within :data:`MARGIN`, each
  interval at the Bonferroni level (Holm's is never stricter), capped at
  ``design.most_seeds``, where the margin becomes the smallest that power
  reaches, rounded up to a quarter point.
  """
  sds = []
  for part, rule, _, a, b in PRIMARY:
    key = "val_all" if part == SAME_HEAD else "val_new"
    pair = [at_pick(tuning, tuning, part, m, rule, key) for m in (a, b)]
    sds.append(float(np.std(pair[0] - pair[1], ddof=1)))
  alpha = evidence.ALPHA / len(PRIMARY)
  return evidence.plan(
    max(sds), MARGIN, alpha, design.most_seeds, design.least_seeds, step=0.25
  )


def curve(records, arm: str) -> tuple[np.ndarray, np.ndarray]:
  """An arm's old- and new-class test accuracy along its knob, per seed.

  Every curve runs from plain fine-tuning's last step to the pretrained
  model: plain fine-tuning along its steps, a pull along its strengths.
  """
  seeds = sorted({r["seed"] for r in records})
  of = lambda part, arm, key: table(records, seeds, part, arm, key)[0]
  start = lambda key: [] if arm == "plain" else [of(SAME_HEAD, "plain", key)]
  return tuple(
    np.hstack(
      [s[:, :1] for s in start(key)]
      + [of(SAME_HEAD, arm, key), of("pretrained", "pretrained", key)]
    )
    for key in ("old", "new")
  )


def new_at_old(old: np.ndarray, new: np.ndarray, level: float) -> float:
  """New-class accuracy where a curve first reaches ``level`` old-class.

  Linear between the two points around the crossing; NaN if it never
  does.
  """
  above = np.flatnonzero(old >= level)
  if not len(above):
    return math.nan
  i = above[0]
  if i == 0:
    return float(new[0])
  share = (level - old[i - 1]) / (old[i] - old[i - 1])
  return float(new[i - 1] + share * (new[i] - new[i - 1]))


def compared(declared, tuning, records, margin: float) -> list[dict]:
  """The declared ``(part, rule, metric, a, b)``: ``a - b`` on ``records``."""
  found = [
    evidence.compare(
      *(at_pick(tuning, records, part, m, rule, metric) for m in (a, b)),
      names=(a, b, part),
      margin=margin,
      family="primary" if declared == PRIMARY else "secondary",
    )
    for part, rule, metric, a, b in declared
  ]
  found = evidence.holm(found) if declared == PRIMARY else found
  return [
    dataclasses.asdict(c) | {"rule": rule, "metric": metric, "part": part}
    for c, (part, rule, metric, _, _) in zip(found, declared)
  ]


def arms(tuning, confirmation) -> list[dict]:
  """Each arm's pick by each rule, and its test accuracies (mean, sd)."""
  rows = []
  for part, rule in PICKS:
    for arm in ARMS[part]:
      seeds = sorted({r["seed"] for r in tuning})
      knobs = table(tuning, seeds, part, arm, "val_new")[1]
      i = pick(tuning, seeds, part, arm, rule)
      metrics = ("all", "old", "new") if part == SAME_HEAD else ("new",)
      test = [
        at_pick(tuning, confirmation, part, arm, rule, m) for m in metrics
      ]
      rows.append(
        {"part": part, "rule": rule, "arm": arm, "knob": knobs[i]}
        | {"edge": arm not in UNPULLED and i in (0, len(knobs) - 1)}
        | {m: [v.mean(), v.std(ddof=1)] for m, v in zip(metrics, test)}
      )
  return rows


def analyse(tuning, confirmation, margin: float) -> dict:
  """The record's picks, comparisons and curves, from the runs."""
  fisher = [r["ratio"] for r in confirmation if r["part"] == "fisher"]
  confirmation = [r for r in confirmation if r["part"] != "fisher"]
  tuning = [r for r in tuning if r["part"] != "fisher"]
  curves = {arm: curve(confirmation, arm) for arm in ARMS[SAME_HEAD]}
  equal_old = []
  for level, (a, b) in itertools.product(LEVELS, AT_EQUAL_OLD):
    at = [
      [new_at_old(*seed, level) for seed in zip(*curves[m])] for m in (a, b)
    ]
    c = evidence.compare(*at, names=(a, b, SAME_HEAD), margin=margin)
    equal_old.append(dataclasses.asdict(c) | {"level": level})
  pretrained = curves["plain"][0][:, -1]
  return {
    "seeds": sorted({r["seed"] for r in confirmation}),
    "pretrained": [pretrained.mean(), pretrained.std(ddof=1)],
    "arms": arms(tuning, confirmation),
    "primary": compared(PRIMARY, tuning, confirmation, margin),
    "secondary": compared(SECONDARY, tuning, confirmation, margin),
    "equal_old": equal_old,
    "curves": {
      arm: {"old": o.mean(0).tolist(), "new": n.mean(0).tolist()}
      for arm, (o, n) in curves.items()
    },
    "fisher": {"median": np.median(fisher), "max": np.max(fisher)},
  }


STYLES = {  # colour, marker, line: the body-only pulls dashed and hollow
  "plain": ("0.2", "o", ":"),
  "L2-SP": ("C0", "s", "-"),
  "L2-SP (body)": ("C0", "s", "--"),
  "EWC": ("C3", "^", "-"),
  "EWC (body)": ("C3", "^", "--"),
}


def plot(path: str, record: dict) -> None:
  """Old- against new-class test accuracy along each arm's knob.

  Means over the confirmation seeds; the pulls' curves start at plain
  fine-tuning's last step, and every curve ends at the pretrained model.
  """
  figure, ax = plt.subplots(figsize=(7.6, 4.2))
  for arm, (colour, marker, line) in STYLES.items():
    c = record["analysis"]["curves"][arm]
    hollow = {"mfc": "white"} if BODY in arm else {}
    ax.plot(
      c["new"], c["old"], line, marker=marker, color=colour, label=arm, **hollow
    )
  ax.plot(c["new"][-1], c["old"][-1], "X", color="k", ms=9, label="pretrained")
  for level in LEVELS:
    ax.axhline(level, color="0.8", lw=0.8, zorder=0)
  ax.set(
    xlabel="new classes 5-9, test accuracy (%)",
    ylabel="old classes 0-4, test accuracy (%)",
    xlim=(-3, 103),
    ylim=(-3, 103),
  )
  ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def context(record: dict) -> dict:
  """Everything the template writes, from the record alone."""
  a = record["analysis"]
  where = lambda items, **k: [c for c in items if c.items() >= k.items()]
  return record | {
    "a": a,
    "rules": RULES,
    "budget": BUDGET,
    "where": where,
    "one": lambda items, **k: where(items, **k)[0],
    "words": evidence.words,
  }


def render(out: str, pages: Sequence[str] = ()) -> dict:
  """The figure, the page and the ``pages``' summaries from the record."""
  with open(os.path.join(out, "l2sp.json")) as f:
    record = json.load(f)
  plot(os.path.join(out, "l2sp.png"), record)
  with open(os.path.join(out, "l2sp.md"), "w") as f:
    f.write(evidence.render(TEMPLATE, context(record)))
  summary = evidence.render(SUMMARY, context(record))
  for path in pages:
    with open(path) as f:
      page = f.read()
    with open(path, "w") as f:
      f.write(evidence.replace_block(page, "l2sp summary", summary))
  return record


def write(out, settings, design, planned, tuning, confirmation, pages) -> dict:
  """Writes the record, ``l2sp.json``, into ``out``; then :func:`render`."""
  record = {
    "settings": settings,
    "machine": machine.describe(),
    "design": dataclasses.asdict(design)
    | {"budget": BUDGET, "levels": LEVELS, "alpha": evidence.ALPHA},
    "plan": planned,
    "analysis": analyse(tuning, confirmation, planned["margin"]),
    "runs": {"tuning": tuning, "confirmation": confirmation},
  }
  os.makedirs(out, exist_ok=True)
  # The runs on one line: a record of thousands of runs, not of pages.
  runs = json.dumps(record["runs"], separators=(",", ":"), default=float)
  text = json.dumps(record | {"runs": "@"}, indent=1, default=float)
  with open(os.path.join(out, "l2sp.json"), "w") as f:
    f.write(text.replace('"runs": "@"', f'"runs": {runs}') + "\n")
  return render(out, pages)
