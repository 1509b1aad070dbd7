"""The FedProx story's design, picks, verdicts and page.

``examples/federated_fedprox.py`` trains jobs (a setting, a seed, its
runs); here they are made and their results become evidence, as the
shared protocol does it (``examples/evidence.py``): **tune** every
method's rate and FedProx's mu on validation over the tuning seeds;
**plan** each setting's confirmation seeds by power from the tuning
seeds' paired sd, up to a cap; **confirm** on fresh seeds, each with its
own data; **compare**: the declared family (FedProx at its picked mu
minus FedAvg, per synthetic data set and straggler fraction) with Holm,
the rest secondary, and divergence counted as an outcome of its own.
"""

import dataclasses
import json
import os
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from examples import evidence  # noqa: E402
from examples import machine  # noqa: E402
from examples.anchors_lib import synthetic  # noqa: E402

TEMPLATE = os.path.join(os.path.dirname(__file__), "fedprox.md.j2")
CONFIRMATION_OFFSET = 1000  # the study's: confirmation seed i is 1000 + i
LAST_ROUNDS = 3  # a "final" value: the mean over the last rounds
LOSS_MARGIN = 0.05  # nats of final training loss, for the sign test
MARGIN_STEP = 0.5  # points: a margin the seeds cannot reach widens by these
FEDAVG = "FedAvg"


@dataclasses.dataclass(frozen=True)
class Setting:
  """A federation and how it trains (``model``: "linear" or "cnn")."""

  name: str
  model: str
  alpha: float = 0.0  # the synthetic data's (alpha, beta) or IID
  beta: float = 0.0
  iid: bool = False
  clients: int = 10  # sampled per round
  local: int = 20  # epochs of a client that finishes (the digits: steps)
  rounds: int = 200  # the paper's
  tuning_rounds: int = 100  # the rounds the picks are made after
  rates: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03)  # the grid tuned

  @property
  def paper(self) -> bool:
    return self.model == "linear"


@dataclasses.dataclass(frozen=True)
class Design:
  """Everything the story trains, and the protocol's constants."""

  settings: tuple[Setting, ...]
  fractions: tuple[float, ...]  # of the sampled clients that straggle
  mus: tuple[float, ...]  # FedProx's, 0 included
  tuning_seeds: tuple[int, ...]
  most_seeds: int  # the cap on confirmation seeds
  least_seeds: int
  margin: float = 1.0  # points of test accuracy, fixed before the run


FULL = Design(
  (
    Setting("synthetic(0, 0)", "linear"),
    Setting("synthetic(0.5, 0.5)", "linear", 0.5, 0.5),
    Setting("synthetic(1, 1)", "linear", 1.0, 1.0),
    Setting("IID", "linear", iid=True, rates=(0.1, 0.3, 1.0, 3.0)),
    Setting(
      "digits CNN",
      "cnn",
      local=10,
      rounds=10,
      tuning_rounds=10,
      rates=(0.2, 0.4, 0.8),
    ),
  ),
  (0.0, 0.5, 0.9),
  (0.0, 0.001, 0.01, 0.1, 1.0),
  (0, 1, 2),
  most_seeds=6,
  least_seeds=3,
)
QUICK = Design(
  (
    Setting(
      "synthetic(1, 1)",
      "linear",
      1.0,
      1.0,
      clients=4,
      local=2,
      rounds=3,
      tuning_rounds=3,
    ),
    Setting(
      "digits CNN",
      "cnn",
      clients=4,
      local=2,
      rounds=2,
      tuning_rounds=2,
      rates=(0.2,),
    ),
  ),
  (0.0, 0.9),
  (0.0, 1.0),
  (0, 1),
  most_seeds=2,
  least_seeds=2,
)


class Config(NamedTuple):
  """One run: FedAvg drops the stragglers, FedProx keeps their work."""

  fraction: float
  arm: str  # FEDAVG, or :func:`arm`
  mu: float
  drop: bool
  rate: float


class Job(NamedTuple):
  """Runs trained together: one seed's data sets of one model.

  The synthetic sets one seed draws have the same device sizes, so the
  same clients are sampled and straggle and draw minibatches at the same
  positions; only their examples differ. A job trains them side by side:
  ``configs[i]`` are the runs on ``settings[i]``, the same methods at its
  rates. ``curves``: evaluate every split after every round
  (confirmation), or only validation after the last :data:`LAST_ROUNDS`
  (tuning reads nothing else).
  """

  settings: tuple[Setting, ...]
  seed: int
  configs: tuple[tuple[Config, ...], ...]
  curves: bool = True


def arm(mu: float) -> str:
  return f"FedProx μ={mu:g}"


def arms(design: Design) -> list[tuple[str, float, bool]]:
  return [(FEDAVG, 0.0, True), *((arm(mu), mu, False) for mu in design.mus)]


def jobs(design: Design, seeds, rates, tuning: bool = False) -> list[Job]:
  """Every seed's jobs, the synthetic sets' first (they take longest).

  A job per model and seed, with each setting of that model whose
  ``seeds(setting)`` holds the seed. In it, every fraction and method at
  each rate of ``rates(setting, fraction, arm)``, but FedAvg without
  stragglers: that is FedProx at mu = 0 (:func:`collect` copies it). A
  ``tuning`` job trains for the settings' tuning rounds, without curves;
  with several data sets, it takes one straggler fraction: their whole
  grids together run slower than apart (too many runs' parameters for the
  cache), and a fraction's stragglers all stop early
  (:func:`examples.federated_fedprox.local_training`).

  Raises:
    ValueError: if one model's settings differ in how they train
      (clients, local work, rounds) or in how many rates they try.
  """
  runs = lambda s, fractions: tuple(
    Config(f, *a, rate)
    for f in fractions
    for a in arms(design)
    if f or a[0] != FEDAVG
    for rate in rates(s, f, a[0])
  )
  shared = lambda s: (s.clients, s.local, s.rounds, s.tuning_rounds)
  out = []
  by_paper = sorted(design.settings, key=lambda s: not s.paper)
  for model in dict.fromkeys(s.model for s in by_paper):
    group = [s for s in design.settings if s.model == model]
    if len({(*shared(s), len(runs(s, design.fractions))) for s in group}) > 1:
      raise ValueError(
        f"design.settings: the {model} settings {[s.name for s in group]}"
        " train together, so they need the same clients, local, rounds and"
        " number of rates; give them equal values, or another model."
      )
    for seed in sorted(set().union(*(seeds(s) for s in group))):
      here = tuple(s for s in group if seed in seeds(s))
      if tuning:
        short = lambda s: dataclasses.replace(s, rounds=s.tuning_rounds)
        here = tuple(map(short, here))
      split = tuning and len(here) > 1
      parts = [(f,) for f in design.fractions] if split else [design.fractions]
      out += [
        Job(here, seed, tuple(runs(s, p) for s in here), curves=not tuning)
        for p in parts
      ]
  return out


def tuning_jobs(design: Design) -> list[Job]:
  """Each setting's whole grid on the tuning seeds (:func:`jobs`)."""
  return jobs(
    design, lambda s: design.tuning_seeds, lambda s, f, a: s.rates, True
  )


def confirmation_jobs(design: Design, picked: list, plans: dict) -> list[Job]:
  """Each setting's picks on its fresh confirmation seeds."""
  rates = {(p["setting"], p["fraction"]): p["rates"] for p in picked}
  return jobs(
    design,
    lambda s: range(
      CONFIRMATION_OFFSET, CONFIRMATION_OFFSET + plans[s.name]["seeds"]
    ),
    lambda s, f, a: [rates[(s.name, f)][a]],
  )


def collect(jobs, results) -> dict:
  """``{(setting, fraction, arm, rate): {metric: one value per seed}}``.

  ``val`` is a final value (the mean over the last :data:`LAST_ROUNDS`),
  and a tuning job's only one. With curves, so are ``test`` and ``loss``
  (training); a run ``diverged`` when its last training loss is above its
  first (or not finite); ``curve_*`` are its whole series. Without
  stragglers, FedProx at mu = 0 is FedAvg too.
  """
  out = {}
  for job, result in zip(jobs, results):
    for d, (setting, configs) in enumerate(zip(job.settings, job.configs)):
      for i, c in enumerate(configs):
        values = {"val": np.mean(result["val"][d, i][-LAST_ROUNDS:])}
        if job.curves:
          loss, test = result["train_loss"][d, i], result["test"][d, i]
          values |= {
            "test": np.mean(test[-LAST_ROUNDS:]),
            "loss": np.mean(loss[-LAST_ROUNDS:]),
            "diverged": not np.isfinite(loss[-1]) or loss[-1] > loss[0],
            "curve_loss": loss.tolist(),
            "curve_test": test.tolist(),
          }
        also = [FEDAVG] if c.arm == arm(0.0) and not c.fraction else []
        for name in (c.arm, *also):
          key = (setting.name, c.fraction, name, c.rate)
          for metric, value in values.items():
            if not isinstance(value, list):
              value = np.asarray(value).item()
            out.setdefault(key, {}).setdefault(metric, []).append(value)
  return out


def picks(design: Design, tuned: dict) -> list[dict]:
  """Each method's rate, then FedProx's mu, on validation only.

  Per setting and straggler fraction: the best mean final validation
  accuracy over the tuning seeds (``tuned`` is :func:`collect`'s; only
  ``val`` is read). ``val`` keeps each pick's per seed, for the plan;
  ``edges`` names the methods whose rate is an end of the grid.
  """
  out = []
  for s in design.settings:
    for f in design.fractions:
      val = {
        (a, r): tuned[(s.name, f, a, r)]["val"]
        for a, _, _ in arms(design)
        for r in s.rates
      }
      mean = {k: float(np.mean(v)) for k, v in val.items()}
      rates = {
        a: max((mean[(a, r)], r) for r in s.rates)[1]
        for a, _, _ in arms(design)
      }
      mu = max((mean[(arm(m), rates[arm(m)])], arm(m)) for m in design.mus)
      ends = (s.rates[0], s.rates[-1]) if len(s.rates) > 1 else ()
      out.append(
        {
          "setting": s.name,
          "paper": s.paper,
          "fraction": f,
          "mu": mu[1],
          "rates": rates,
          "val": {a: val[(a, r)] for a, r in rates.items()},
          "edges": [a for a, r in rates.items() if r in ends],
        }
      )
  return out


def family_size(design: Design) -> int:
  """The declared family: each synthetic set at each straggler fraction."""
  return sum(s.paper for s in design.settings) * len(design.fractions)


def plan(design: Design, picked: list[dict]) -> dict:
  """Each setting's confirmation seeds, and each fraction's margin.

  From the tuning seeds' paired sd of FedProx's pick minus FedAvg in
  validation accuracy. A setting's fractions share their seeds: the fewest
  that give 80% power at the declared margin at the largest of their sds,
  up to the cap. Where those seeds fall short at a fraction, its margin
  widens to the smallest :data:`MARGIN_STEP` they reach
  (:func:`evidence.plan`). The declared family's intervals are at the
  Bonferroni level (Holm's is never stricter).

  Returns:
    setting -> ``seeds``, ``alpha`` and ``cells``: per fraction, its
    ``sd``, ``margin`` and ``power``.
  """
  plans = {}
  for s in design.settings:
    alpha = evidence.ALPHA / (family_size(design) if s.paper else 1)
    sds = {
      p["fraction"]: float(
        np.std(np.subtract(p["val"][p["mu"]], p["val"][FEDAVG]), ddof=1)
      )
      for p in picked
      if p["setting"] == s.name
    }
    n = evidence.seeds_for(
      max(sds.values()),
      design.margin,
      alpha,
      design.most_seeds,
      design.least_seeds,
    )
    cells = [
      {"fraction": f}
      | evidence.plan(sd, design.margin, alpha, n, n, MARGIN_STEP)
      for f, sd in sds.items()
    ]
    plans[s.name] = {"seeds": n, "alpha": alpha, "cells": cells}
  return plans


def planned(plans: dict, setting: str, fraction: float) -> dict:
  """The plan of a setting at a straggler fraction: its margin and power."""
  cells = plans[setting]["cells"]
  return next(c for c in cells if c["fraction"] == fraction)


def outcomes(a: dict, b: dict, names: tuple, margin: float) -> dict:
  """Beside the mean: diverged runs, and the sign test's medians.

  Of the final test accuracy, and of the final training loss (with the
  margin :data:`LOSS_MARGIN`).
  """
  median = lambda key, m: dataclasses.asdict(
    evidence.median_comparison(a[key], b[key], names=names, margin=m)
  )
  return {
    "n": len(a["test"]),
    "diverged": [sum(a["diverged"]), sum(b["diverged"])],
    "test": median("test", margin),
    "loss": median("loss", LOSS_MARGIN),
  }


def cell(design: Design, p: dict, plans: dict, confirmed: dict) -> dict:
  """Every comparison at one setting and fraction (``p``, its picks).

  ``ours``: FedProx at its picked mu minus FedAvg (a Comparison, for
  Holm); ``outcomes``: its divergences and sign tests; ``partial``: mu = 0
  minus FedAvg; ``pull``: each mu > 0 minus mu = 0; ``converge``: the
  largest mu against FedAvg (the paper's Figure 1).
  """
  get = lambda a: confirmed[(p["setting"], p["fraction"], a, p["rates"][a])]
  where = f"{p['setting']} at {p['fraction']:.0%}"
  here = planned(plans, p["setting"], p["fraction"])
  margin = here["margin"]
  cmp = lambda a, b, **kw: evidence.compare(
    get(a)["test"], get(b)["test"], names=(a, b, where), margin=margin, **kw
  )
  family = "primary" if p["paper"] else "secondary"
  top = arm(max(design.mus))
  return {
    "setting": p["setting"],
    "fraction": p["fraction"],
    "ours": cmp(p["mu"], FEDAVG, power=here["power"], family=family),
    "outcomes": outcomes(
      get(p["mu"]), get(FEDAVG), (p["mu"], FEDAVG, where), margin
    ),
    "partial": dataclasses.asdict(cmp(arm(0.0), FEDAVG)),
    "pull": [
      dataclasses.asdict(cmp(arm(m), arm(0.0))) for m in design.mus if m
    ],
    "converge": outcomes(get(top), get(FEDAVG), (top, FEDAVG, where), margin),
  }


def record(design, picked, plans, jobs, results, **run) -> dict:
  """Everything the page says; the declared family Holm-corrected."""
  confirmed = collect(jobs, results)
  rows = [cell(design, p, plans, confirmed) for p in picked]
  corrected = iter(
    evidence.holm([r["ours"] for r in rows if r["ours"].family == "primary"])
  )
  for r in rows:
    primary = r["ours"].family == "primary"
    r["ours"] = dataclasses.asdict(next(corrected) if primary else r["ours"])
  curves = [
    {
      "setting": p["setting"],
      "fraction": p["fraction"],
      "arm": a,
      "loss": np.mean(seeds["curve_loss"], axis=0).tolist(),
      "test": np.mean(seeds["curve_test"], axis=0).tolist(),
    }
    for p in picked
    for a, r in p["rates"].items()
    for seeds in [confirmed[(p["setting"], p["fraction"], a, r)]]
  ]
  return run | {
    "machine": machine.describe(),
    "design": dataclasses.asdict(design),
    "family": family_size(design),
    "last_rounds": LAST_ROUNDS,
    "loss_margin": LOSS_MARGIN,
    "margin_step": MARGIN_STEP,
    "confirmation_offset": CONFIRMATION_OFFSET,
    "most_examples": synthetic.MOST,
    "plans": plans,
    "picks": picked,
    "rows": rows,
    "curves": curves,
  }


STYLES = ("--", "-", ":", "-.", (0, (8, 2, 1, 2)), (0, (1, 1)))
MARKERS = ("o", "s", "^", "v", "D", "x")


def plot(record: dict, metric: str, path: str) -> None:
  """``metric`` ("loss" or "test") by round, per setting and fraction.

  FedAvg is black, dashed and drawn last; each method has its own colour,
  line style and staggered markers, so that coinciding curves (at 0%
  stragglers FedAvg is FedProx at mu = 0) stay visible.
  """
  settings = [s["name"] for s in record["design"]["settings"]]
  fractions = record["design"]["fractions"]
  figure, axes = plt.subplots(
    len(fractions),
    len(settings),
    squeeze=False,
    layout="constrained",
    figsize=(2.6 * len(settings), 2.1 * len(fractions) + 0.8),
  )
  names = list(dict.fromkeys(c["arm"] for c in record["curves"]))
  for c in record["curves"]:
    ax = axes[fractions.index(c["fraction"])][settings.index(c["setting"])]
    i, every = names.index(c["arm"]), max(1, len(c[metric]) // 5)
    ax.plot(
      c[metric],
      ls=STYLES[i % 6],
      marker=MARKERS[i % 6],
      ms=4,
      lw=1.2,
      color="black" if i == 0 else f"C{i - 1}",
      zorder=3 if i == 0 else 2,
      markevery=(i * every // len(names), every),
      label=c["arm"],
    )
    ax.set_title(f"{c['setting']}, {c['fraction']:.0%} stragglers", size=8)
    ax.tick_params(labelsize=7)
  figure.supylabel("training loss" if metric == "loss" else "test accuracy (%)")
  figure.supxlabel("round")
  handles, labels = axes[0][0].get_legend_handles_labels()
  figure.legend(handles, labels, loc="outside upper center", ncol=len(labels))
  figure.savefig(path, dpi=100)
  plt.close(figure)


def write(out: str, record: dict, summaries=()) -> str:
  """Writes ``fedprox.json``, then the figures and ``fedprox.md`` from it.

  Each page of ``summaries`` gets its ``fedprox summary`` block replaced.
  """
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "fedprox.json"), "w") as f:
    json.dump(record, f, indent=1)
  with open(os.path.join(out, "fedprox.json")) as f:
    saved = json.load(f)
  plot(saved, "loss", os.path.join(out, "fedprox.png"))
  plot(saved, "test", os.path.join(out, "fedprox_accuracy.png"))
  text = render(saved)
  with open(os.path.join(out, "fedprox.md"), "w") as f:
    f.write(text)
  for path in summaries:
    with open(path) as f:
      page = f.read()
    block = render(saved, only_summary=True)
    with open(path, "w") as f:
      f.write(evidence.replace_block(page, "fedprox summary", block))
  return text


def render(record: dict, only_summary: bool = False) -> str:
  """The page (or its summary block) from the record, and format helpers."""
  rows = record["rows"]
  return evidence.render(
    TEMPLATE,
    record
    | {
      "only_summary": only_summary,
      "primary": [r["ours"] for r in rows if r["ours"]["family"] == "primary"],
      "mus": [arm(mu) for mu in record["design"]["mus"] if mu],
      "fractions": [f"{f:.0%}" for f in record["design"]["fractions"]],
      "values": [f"{mu:g}" for mu in record["design"]["mus"]],
      "words": evidence.words,
      "percent": lambda f: f"{100 * f:.0f}%",
    },
  )
