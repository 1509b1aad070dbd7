"""The study (examples/study.py) and its machinery.

* TR as the study builds it (injected base rate, ratio and decay, step
  schedule) follows the published rule, also with vmapped rates.
* The rate lattice, the coarse grid and its refinement.
* The tuning picks by validation alone: test accuracy cannot move a pick.
* The confirmation is sized by power from the tuning runs' spread, and a
  cap that cannot reach it widens the margin instead.
* Each seed draws its own split; the digits are real MNIST; BatchNorm
  trains on batch statistics and is scored on running ones.
* ``--quick --workers 2`` end to end; run again, it trains nothing and
  writes the same record.
* The committed record: its comparisons recompute from its per-seed
  numbers, the Results page and the summaries are what it renders, and its
  wall time agrees with its training time over its workers.
"""

import copy
import json
import os

import chex
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from examples import evidence
from examples import models
from examples import small_batch
from examples import study
from examples.study_lib import data as data_lib
from examples.study_lib import design as design_lib
from examples.study_lib import methods
from examples.study_lib import protocol
from examples.study_lib import report
from tests import helpers
from tests import reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = os.path.join(ROOT, "docs", "results", "study.json")


def committed_record() -> dict:
  with open(RECORD) as f:
    return json.load(f)


def test_injected_trsgd_follows_the_published_rule_with_vmapped_rates():
  total_updates, steps = 12, 16  # decays after 6 and 9 updates
  bases = (0.05, 0.02)

  def factory(learning_rate, lambda_ratio, weight_decay):  # as sweep_lib's
    return methods.BY_NAME["TRSGD"].make(
      learning_rate, lambda_ratio, weight_decay,
      total_updates=total_updates, period=10,
    )  # fmt: skip

  injected = lambda lr: optax.inject_hyperparams(factory)(
    learning_rate=lr,
    lambda_ratio=jnp.float32(0.1),
    weight_decay=jnp.float32(methods.PAPER_WEIGHT_DECAY),
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
      helpers.numpy_grad, helpers.W0, lambda k, base=base: base * factor(k),
      steps, period=10, lambda_w=0.1 * base, momentum=0.9,
      weight_decay=methods.PAPER_WEIGHT_DECAY,
    )[-1]
    for base in bases
  ]  # fmt: skip
  chex.assert_trees_all_close(list(params), expected, rtol=2e-5, atol=2e-6)


def test_rates_start_half_a_decade_apart_and_refine_to_a_quarter():
  assert methods.coarse_grid(0.015, 5) == [0.001, 0.00316, 0.01, 0.0316, 0.1]
  assert methods.refined([0.001, 0.01, 0.1], 0.01) == [0.00562, 0.0178]
  # At an edge the refinement also steps half a decade beyond it.
  assert methods.refined([0.001, 0.01, 0.1], 0.1) == [0.0562, 0.178, 0.316]


def test_a_pick_reads_validation_only(monkeypatch, tmp_path):
  """Test accuracy that disagrees with validation does not move the pick."""

  def fake_sweep(job, configs, epochs):
    del job, epochs
    val = [90 - abs(np.log10(c.learning_rate) + 2) for c in configs]
    test = [90 - abs(np.log10(c.learning_rate) + 1) for c in configs]
    return {"val_accuracy": val, "test_accuracy": test}, 1.0

  monkeypatch.setattr(protocol, "sweep", fake_sweep)
  job = protocol.Job(
    "tune", design_lib.Cell("digits", 8, 1), "SGD", (0, 1), str(tmp_path)
  )
  tuned = protocol.tune(job)
  assert tuned["picked"] == 0.01  # validation's best, not test's 0.1
  assert len(tuned["rates"]) == 5 + 2  # refined around it


def tuning(val_by_seed: list[float]) -> dict:
  return {"tune": {"rates": [0.1], "val": [[v] for v in val_by_seed],
                   "picked": 0.1}}  # fmt: skip


def test_the_confirmation_is_sized_by_power_and_a_cap_widens_the_margin():
  cell = design_lib.Cell("digits", 8, 1)
  design = design_lib.QUICK.__class__(
    cells=(cell,), tuning_seeds=4, coarse=1, refine=False, margin=0.5,
    most_seeds=40, least_seeds=3,
  )  # fmt: skip
  rng = np.random.default_rng(0)
  base = rng.normal(95, 1, 6)
  tunings = {cell: {
    "SGD": tuning(base), "Adam": tuning(base + 0.1),
    "TRSGD": tuning(base + rng.normal(0, 0.4, 6)),
    "TRAdam": tuning(base + 0.1 + rng.normal(0, 0.6, 6)),
  }}  # fmt: skip
  plan = report.plan(design, tunings)[cell]
  alpha = evidence.ALPHA / design.primary
  val = {
    m: np.asarray(t["tune"]["val"])[:, 0] for m, t in tunings[cell].items()
  }
  sd = max(  # the larger of the two pairs' spreads
    np.std(val["TRSGD"] - val["SGD"], ddof=1),
    np.std(val["TRAdam"] - val["Adam"], ddof=1),
  )
  assert plan["sd"] == pytest.approx(sd)
  assert plan["seeds"] == evidence.seeds_for(sd, 0.5, alpha, 40, 3)
  assert plan["power"] >= 0.8 and plan["margin"] == 0.5
  capped = report.plan(
    design.__class__(**{**design.__dict__, "most_seeds": 5}), tunings
  )[cell]
  assert capped["seeds"] == 5 and capped["margin"] > 0.5
  assert capped["margin"] % 0.25 == 0 and capped["power"] >= 0.8


def test_each_seed_draws_its_own_split_reproducibly(parsed_digits):
  del parsed_digits
  for load in (data_lib.load_mnist_digits, data_lib.load_mnist1d):
    first, second = (load(data_lib.split_of(s)) for s in (0, 1))
    assert data_lib.fingerprint(first) != data_lib.fingerprint(second)
    assert [len(a) for a in first] == [len(a) for a in second]
    load.cache_clear()  # drawn again from scratch: the same split
    again = load(data_lib.split_of(1))
    assert data_lib.fingerprint(again) == data_lib.fingerprint(second)
  # The digits' splits deal the same 5000 digits differently.
  a, b = data_lib.load_mnist_digits(1), data_lib.load_mnist_digits(2)
  pool = lambda d: np.sort(
    np.concatenate([d.train_x, d.val_x, d.test_x]).reshape(5000, -1), axis=0
  )
  chex.assert_trees_all_equal(pool(a), pool(b))


def test_the_digits_are_real_mnist_split_as_the_demo_splits(parsed_digits):
  del parsed_digits
  data_lib.mnist_digits.cache_clear()
  data_lib.load_mnist_digits.cache_clear()
  data = data_lib.load_mnist_digits(0)
  assert data.train_x.shape == (3200, 14, 14)
  assert data.train_x.dtype == np.float32
  labels = np.concatenate([data.train_y, data.val_y, data.test_y])
  chex.assert_trees_all_equal(np.bincount(labels), np.full(10, 500))
  mean_image = data.train_x.mean(axis=0)  # ink in the middle, not the border
  assert mean_image[5:9, 5:9].mean() > 5 * mean_image[0, :].mean()
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
  together = model(x)  # training mode: the batch's statistics
  assert not np.allclose(model(x[:2]), together[:2], atol=1e-4)
  moved = stats_now()
  assert not np.allclose(jax.tree.leaves(before)[0], jax.tree.leaves(moved)[0])
  model.eval()  # the running averages; nothing moves
  first = model(x)
  chex.assert_trees_all_close(model(x[:2]), first[:2], atol=1e-5)
  chex.assert_trees_all_equal(stats_now(), moved)


@pytest.mark.runs_long
def test_a_quick_study_on_two_workers_writes_its_record_and_resumes(tmp_path):
  args = ["--quick", "--workers", "2", "--out", str(tmp_path / "out"),
          "--checkpoint-dir", str(tmp_path / "ck"),
          "--page", str(tmp_path / "results.md")]  # fmt: skip
  record = study.main(args)
  for name in ("study.json", "primary.png", "rates.png"):
    assert (tmp_path / "out" / name).stat().st_size > 0, name
  assert [c["name"] for c in record["cells"]] == [
    c.name for c in design_lib.QUICK.cells
  ]
  design = record["design"]
  assert not set(design["tuning_seeds"]) & set(design["confirmation_seeds"])
  for cell in record["cells"]:
    for r in cell["methods"].values():
      assert len(r["confirm"]["test"]) == cell["plan"]["seeds"]
      assert len(r["check"]["val"]) == len(design["tuning_seeds"])
  analysis = record["analysis"]
  assert [(c["a"], c["where"]) for c in analysis["primary"]] == [
    ("TRSGD", "mnist1d b8"), ("TRSGD", "digits-bn b8")
  ]  # fmt: skip
  assert {p["cell"] for p in analysis["paper"]} == {
    "mnist1d b8",
    "digits-bn b8",
  }
  page = (tmp_path / "results.md").read_text()
  assert "## The declared comparisons" in page and "TRSGD − SGD" in page
  again = study.main(args)  # every sweep is cached: nothing trains
  assert again["cells"] == record["cells"]
  assert again["analysis"] == record["analysis"]
  assert again["time"]["runs"] == 2
  assert again["time"]["training_minutes"] == record["time"]["training_minutes"]


def cells_of(record: dict) -> tuple[dict, dict]:
  by_name = {c.name: c for c in design_lib.FULL.cells}
  cells = {by_name[c["name"]]: c["methods"] for c in record["cells"]}
  plans = {by_name[c["name"]]: c["plan"] for c in record["cells"]}
  return cells, plans


def test_the_committed_comparisons_recompute_from_their_per_seed_numbers():
  record = committed_record()
  cells, plans = cells_of(record)
  analysis = report.analyse(design_lib.FULL, cells, plans)
  assert json.loads(json.dumps(analysis, default=float)) == record["analysis"]
  # And each cell's plan from its tuning alone.
  tunings = {cell: {m: {"tune": r["tune"]} for m, r in results.items()}
             for cell, results in cells.items()}  # fmt: skip
  assert report.plan(design_lib.FULL, tunings) == plans


def test_the_results_page_and_the_summaries_are_what_the_record_renders():
  context = report.context(committed_record())
  with open(os.path.join(ROOT, "docs", "results.md")) as f:
    assert f.read() == evidence.render(study.TEMPLATE, context), "make study"
  summary = evidence.render(study.SUMMARY, context).strip()
  for path in ("README.md", os.path.join("docs", "index.md")):
    with open(os.path.join(ROOT, path)) as f:
      assert summary in f.read(), path


def test_the_recorded_time_agrees_with_the_training_over_the_workers():
  time = committed_record()["time"]
  # Workers train side by side: the wall time is at least the training
  # time shared out, and at most all of it plus compiling and loading.
  assert time["training_minutes"] / time["workers"] <= time["wall_minutes"]
  assert time["wall_minutes"] <= time["training_minutes"] * 1.1
  assert time["wall_minutes"] <= 100


def test_a_changed_number_changes_the_page():
  record = copy.deepcopy(committed_record())
  record["analysis"]["primary"][0]["mean"] += 1.0
  page = evidence.render(study.TEMPLATE, report.context(record))
  with open(os.path.join(ROOT, "docs", "results.md")) as f:
    assert page != f.read()
