"""The FedProx story (examples/federated_fedprox.py) and its machinery.

The ``--quick`` run trains every part once, end to end; the other tests
check the pieces on small cases: the synthetic generator, the schedule of
stragglers, the picks (validation only) and one round against a NumPy
restatement of FedProx's client update.
"""

import dataclasses
import itertools
import json
import pathlib

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples import evidence
from examples import federated_fedprox as story
from examples.anchors_lib import fedprox
from examples.anchors_lib import synthetic


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  out = tmp_path_factory.mktemp("fedprox")
  page = out / "page.md"
  page.write_text(
    "a\n<!-- fedprox summary -->\nold\n<!-- end of fedprox summary -->\nb\n"
  )
  record = story.main(["--quick", "--out", str(out), "--summary", str(page)])
  return record, out


def test_the_quick_story_writes_a_verdict_for_every_setting_and_fraction(quick):
  record, out = quick
  design = fedprox.QUICK
  cells = {(r["setting"], r["fraction"]) for r in record["rows"]}
  assert cells == {
    (s.name, f) for s in design.settings for f in design.fractions
  }
  primary = [
    r["ours"] for r in record["rows"] if r["ours"]["family"] == "primary"
  ]
  assert len(primary) == record["family"] == len(design.fractions)
  for row in record["rows"]:
    assert row["ours"]["word"] in ("win", "loss", "equivalent", "inconclusive")
    assert row["ours"]["n"] == record["plans"][row["setting"]]["seeds"]
    assert (
      row["ours"]["margin"]
      == fedprox.planned(record["plans"], row["setting"], row["fraction"])[
        "margin"
      ]
    )
  assert (
    json.loads((out / "fedprox.json").read_text())["rows"] == record["rows"]
  )
  text = (out / "fedprox.md").read_text()
  assert "`python -m examples.federated_fedprox --quick --out" in text
  assert text.count("| synthetic(1, 1) | 90% |") == 5  # one row per table
  assert text.count("| synthetic(1, 1) | μ=1 − μ=0 |") == 1  # and the pull's
  summary = (out / "page.md").read_text()
  assert summary.startswith("a\n<!-- fedprox summary -->\nThe 2 declared")
  assert "old" not in summary and summary.endswith(
    "<!-- end of fedprox summary -->\nb\n"
  )
  for name in ("fedprox.png", "fedprox_accuracy.png"):
    assert (out / name).stat().st_size > 10_000


def tuned_values(design, val_of, test_of) -> dict:
  """A tuning record: each run's val and test per tuning seed."""
  return {
    (s.name, f, a, r): {
      "val": [val_of(a, r, seed) for seed in design.tuning_seeds],
      "test": [test_of(a, r, seed) for seed in design.tuning_seeds],
    }
    for s in design.settings
    for f in design.fractions
    for a, _, _ in fedprox.arms(design)
    for r in s.rates
  }


def test_the_picks_read_validation_only():
  design = dataclasses.replace(
    fedprox.QUICK,
    settings=(
      dataclasses.replace(fedprox.QUICK.settings[0], rates=(0.1, 1.0)),
    ),
  )
  val = lambda a, r, seed: (
    80.0
    + seed
    + (r if a == fedprox.FEDAVG else 2 * r if a.endswith("=1") else -r)
  )
  rng = np.random.default_rng(0)
  noise = lambda a, r, seed: float(rng.uniform(0, 100))
  picked = fedprox.picks(design, tuned_values(design, val, noise))
  again = fedprox.picks(design, tuned_values(design, val, lambda *a: -1.0))
  assert picked == again  # test accuracies moved, picks did not
  for p in picked:
    assert p["mu"] == fedprox.arm(1.0) and p["edges"] == list(p["rates"])
    assert p["rates"] == {
      fedprox.FEDAVG: 1.0,
      fedprox.arm(0.0): 0.1,
      fedprox.arm(1.0): 1.0,
    }
  flipped = lambda a, r, seed: (
    val(a, r, seed) + (5 if a == fedprox.arm(0.0) else 0)
  )
  changed = fedprox.picks(design, tuned_values(design, flipped, noise))
  assert {p["mu"] for p in changed} == {fedprox.arm(0.0)}


def test_the_plan_shares_seeds_across_fractions_and_widens_each_margin():
  s = fedprox.FULL.settings[0]
  design = dataclasses.replace(fedprox.FULL, settings=(s,), most_seeds=8)
  spread = {0.0: 0.2, 0.5: 1.0, 0.9: 6.0}  # the paired sd at each fraction
  picked = [
    {
      "setting": s.name,
      "fraction": f,
      "mu": fedprox.arm(0.1),
      "val": {
        fedprox.FEDAVG: [50.0, 50.0, 50.0],
        fedprox.arm(0.1): [50.0 - sd, 50.0, 50.0 + sd],
      },
    }
    for f, sd in spread.items()
  ]
  plans = fedprox.plan(design, picked)
  plan = plans[s.name]
  alpha = evidence.ALPHA / fedprox.family_size(design)
  assert plan["seeds"] == 8  # the 90% fraction's sd needs more than the cap
  for c in plan["cells"]:
    assert c["sd"] == pytest.approx(spread[c["fraction"]])
    assert (
      c["margin"]
      == evidence.plan(
        c["sd"], design.margin, alpha, 8, 8, fedprox.MARGIN_STEP
      )["margin"]
    )
  margins = [fedprox.planned(plans, s.name, f)["margin"] for f in spread]
  assert margins[0] == design.margin and margins[2] > margins[1] > 1


def test_one_seeds_data_sets_of_a_model_train_in_one_job():
  design = fedprox.FULL
  tuning = fedprox.tuning_jobs(design)
  synthetic_names = [s.name for s in design.settings if s.paper]
  fractions = lambda job: {c.fraction for c in job.configs[0]}
  apart = [  # several data sets: a job per straggler fraction
    (synthetic_names, seed, {f})
    for seed in design.tuning_seeds
    for f in design.fractions
  ]
  every = set(design.fractions)
  together = [(["digits CNN"], s, every) for s in design.tuning_seeds]
  assert [
    ([s.name for s in j.settings], j.seed, fractions(j)) for j in tuning
  ] == apart + together  # the longest jobs first
  for job in tuning:
    assert not job.curves
    assert {s.rounds for s in job.settings} == {job.settings[0].tuning_rounds}
    assert len({len(c) for c in job.configs}) == 1
    for s, configs in zip(job.settings, job.configs):
      assert {c.rate for c in configs} == set(s.rates)
  seeds = {name: 6 for name in synthetic_names} | {"IID": 4, "digits CNN": 3}
  plans = {name: {"seeds": n} for name, n in seeds.items()}
  rates = {a: 0.01 for a, _, _ in fedprox.arms(design)}
  picked = [
    {"setting": s.name, "fraction": f, "rates": rates}
    for s in design.settings
    for f in design.fractions
  ]
  confirmation = fedprox.confirmation_jobs(design, picked, plans)
  held = [(j.seed, len(j.settings)) for j in confirmation]
  offset = fedprox.CONFIRMATION_OFFSET
  assert held == [(offset + i, 4 if i < 4 else 3) for i in range(6)] + [
    (offset + i, 1) for i in range(3)
  ]
  assert all(j.curves and len(j.configs[0]) == 17 for j in confirmation)
  unequal = dataclasses.replace(design.settings[3], local=10)
  with pytest.raises(ValueError, match=r"design.settings: the linear"):
    fedprox.tuning_jobs(
      dataclasses.replace(design, settings=(design.settings[0], unequal))
    )


def test_tuning_evaluates_validation_only_and_after_its_last_rounds():
  job = fedprox.tuning_jobs(fedprox.QUICK)[0]
  result = story.train(job)
  assert list(result) == ["val"]  # tuning computes no test accuracy
  runs = (len(job.settings), len(job.configs[0]), fedprox.LAST_ROUNDS)
  assert result["val"].shape == runs
  assert np.all((0 <= result["val"]) & (result["val"] <= 100))


def test_a_job_refuses_data_sets_that_hold_different_devices(monkeypatch):
  setting = fedprox.QUICK.settings[0]
  other = dataclasses.replace(setting, name="other")
  load = story.load
  fewer = lambda s, seed: load(s, seed)._replace(
    counts=load(s, seed).counts - (s.name == "other")
  )
  monkeypatch.setattr(story, "load", fewer)
  job = fedprox.Job((setting, other), 0, ((), ()))
  with pytest.raises(ValueError, match="job: other and synthetic"):
    story.train(job)


# ---------------------------------------------------------- the data -----


def test_the_synthetic_devices_have_the_papers_shapes_and_lognormal_sizes():
  shards = synthetic.generate(1.0, 1.0, False, seed=0)
  data = shards.data
  assert shards.held.shape == (synthetic.DEVICES, synthetic.MOST)
  assert data.train_x.shape == (
    synthetic.DEVICES * synthetic.MOST,
    synthetic.DIMENSION,
  )
  real = shards.counts.sum()
  assert np.all(data.train_y[real:] == -1) and np.all(data.train_y[:real] >= 0)
  assert set(np.unique(data.test_y)) <= set(range(synthetic.CLASSES))
  for held, count in zip(shards.held, shards.counts):
    np.testing.assert_array_equal(np.sort(held[:count]), held[:count])
  drawn = np.concatenate(
    [synthetic.sizes(np.random.default_rng(s), most=10**9) for s in range(100)]
  )
  logs = np.log(drawn - 50 + 0.5)  # lognormal(4, 2), truncated to integers
  assert abs(logs.mean() - 4) < 0.15 and abs(logs.std() - 2) < 0.15
  assert (
    drawn.min() >= 50
    and synthetic.sizes(np.random.default_rng(0)).max() <= synthetic.MOST
  )
  again = synthetic.generate(1.0, 1.0, False, seed=0)
  np.testing.assert_array_equal(again.data.val_x, data.val_x)
  other = synthetic.generate(1.0, 1.0, False, seed=1)
  assert not np.array_equal(other.counts, shards.counts)


def label_spread(shards) -> float:
  """The mean total-variation distance of each device's labels to all."""
  data, held, counts = shards
  pooled = (
    np.bincount(data.train_y[: counts.sum()], minlength=10) / counts.sum()
  )
  each = [
    np.bincount(data.train_y[h[:c]], minlength=10) / c
    for h, c in zip(held, counts)
  ]
  return float(np.mean([np.abs(e - pooled).sum() / 2 for e in each]))


def test_zero_alpha_and_beta_still_differ_by_device_and_iid_does_not():
  for seed in range(3):
    iid = synthetic.generate(0.0, 0.0, True, seed)
    zero = synthetic.generate(0.0, 0.0, False, seed)
    assert label_spread(iid) < 0.2 < label_spread(zero)
    means = lambda s: [
      s.data.train_x[h[:c]].mean(axis=0) for h, c in zip(s.held, s.counts)
    ]
    assert np.abs(means(iid)).mean() < 0.2 < np.abs(means(zero)).mean()


def test_the_schedule_shares_clients_and_nests_stragglers():
  setting = fedprox.FULL.settings[0]
  counts = np.arange(50, 50 + synthetic.DEVICES)
  per_epoch = -(-counts // story.BATCH_SIZE)
  configs = [
    fedprox.Config(f, name, 0.0, drop, 0.1)
    for f in (0.0, 0.5, 0.9)
    for name, drop in ((fedprox.FEDAVG, True), ("FedProx", False))
  ]
  selected, steps = story.schedule(setting, configs, 0, counts)
  assert selected.shape == (setting.rounds, setting.clients)
  assert steps.shape == (setting.rounds, len(configs), setting.clients)
  assert all(len(set(s)) == setting.clients for s in selected)
  epochs = steps / per_epoch[selected][:, None]
  np.testing.assert_array_equal(epochs, np.round(epochs))
  late = epochs < setting.local
  for run, stragglers in enumerate([0, 0, 5, 5, 9, 9]):
    np.testing.assert_array_equal(late[:, run].sum(axis=1), stragglers)
  assert np.all(late[:, 3] <= late[:, 5])  # the 50%'s are among the 90%'s
  np.testing.assert_array_equal(
    steps[:, 4], np.where(late[:, 5], 0, steps[:, 5])
  )
  partial = epochs[:, 5][late[:, 5]]
  assert partial.min() >= 1 and partial.max() <= setting.local - 1


# ---------------------------------------------------------- the round -----


def numpy_client(w, b, x, y, batches, mu, rate):
  """FedProx's client update, restated: SGD on the loss plus the pull."""
  w0, b0 = w.copy(), b.copy()
  for batch in batches:
    logits = x[batch] @ w + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(batch)), y[batch]] -= 1
    grad_w, grad_b = x[batch].T @ p / len(batch), p.mean(axis=0)
    w = w - rate * (grad_w + mu * (w - w0))
    b = b - rate * (grad_b + mu * (b - b0))
  return w, b


def linear(params, d: int, run: int) -> tuple[np.ndarray, np.ndarray]:
  """Run ``run``'s kernel and bias on data set ``d``, from stacked ones."""
  model = nnx.merge(
    story.graphdef("linear"), jax.tree.map(lambda a: a[d, run], params)
  )
  return np.asarray(model.kernel[...]), np.asarray(model.bias[...])


def draws(key, steps: int, count: int) -> list[np.ndarray]:
  """The minibatches a client draws (the restatement reuses them)."""
  return [
    np.asarray(
      jax.random.randint(
        jax.random.fold_in(key, t), (story.BATCH_SIZE,), 0, count
      )
    )
    for t in range(steps)
  ]


def test_a_round_matches_a_numpy_restatement_of_fedprox_on_each_data_set():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 12, synthetic.DIMENSION)).astype(np.float32)
  y = rng.integers(0, synthetic.CLASSES, (2, 12)).astype(np.int32)
  held = np.array(
    [[0, 1, 2, 3, 4, 0], [5, 6, 7, 8, 9, 10], [11, 10, 9, 8, 11, 10]],
    np.int32,
  )
  counts = np.array([5, 6, 4], np.int32)
  # Run 0 drops client 1; client 2 trains longest, so the phases reorder.
  budgets = np.array([[3, 0, 5], [3, 2, 1]], np.int32)
  mu = np.array([[0.0, 0.5], [1.0, 0.0]], np.float32)  # per data set, run
  rate = np.array([[0.1, 0.2], [0.05, 0.3]], np.float32)
  server = nnx.state(story.MODELS["linear"](nnx.Rngs(0)))
  servers = jax.tree.map(
    lambda w: jnp.stack([jnp.stack([w, w + 0.1]), jnp.stack([w - 0.1, w])]),
    server,
  )
  keys = jax.random.split(jax.random.key(3), 3)
  runs = story.Runs(servers, jnp.asarray(mu), jnp.asarray(rate))
  clients = story.Clients(jnp.asarray(held), jnp.asarray(counts), keys)
  after = story.federated_round("linear", runs, budgets, clients, x, y).servers
  for d, run in itertools.product(range(2), range(2)):
    w, b = linear(servers, d, run)
    expected_w, expected_b, total = 0.0, 0.0, 0
    for c in range(3):
      if budgets[run, c] == 0:
        continue  # dropped
      batches = [held[c][i] for i in draws(keys[c], budgets[run, c], counts[c])]
      client_w, client_b = numpy_client(
        w, b, x[d], y[d], batches, mu[d, run], rate[d, run]
      )
      expected_w = expected_w + counts[c] * client_w
      expected_b = expected_b + counts[c] * client_b
      total += counts[c]
    got_w, got_b = linear(after, d, run)
    np.testing.assert_allclose(got_w, expected_w / total, atol=2e-5)
    np.testing.assert_allclose(got_b, expected_b / total, atol=2e-5)


def test_the_committed_page_and_summary_are_rendered_from_the_record():
  docs = pathlib.Path(__file__).parents[1] / "docs"
  record = json.loads((docs / "results" / "fedprox.json").read_text())
  page = (docs / "results" / "fedprox.md").read_text()
  assert page == fedprox.render(record)
  anchors = (docs / "anchors.md").read_text()
  block = fedprox.render(record, only_summary=True)
  assert evidence.replace_block(anchors, "fedprox summary", block) == anchors
