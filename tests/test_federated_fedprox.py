"""The FedProx story (examples/federated_fedprox.py), on its ``--quick`` design.

The quick run trains every part once; the round tests reuse its compiled
round (the same runs, clients and local steps), so the module stays fast.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples import federated_fedprox as story
from examples.anchors_lib import fedprox
from examples.study_lib import data as data_lib

STEPS = fedprox.QUICK.local_steps[0]


@pytest.fixture(scope="module")
def data():
  return data_lib.load_mnist_digits()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  out = tmp_path_factory.mktemp("fedprox")
  return story.main(["--quick", "--out", str(out)]), out


def test_the_quick_story_records_every_run_round_by_round(quick):
  records, _ = quick
  design = fedprox.QUICK
  runs = [fedprox.grid(design, steps) for steps in design.local_steps]
  assert len(records) == sum(len(r) for r in runs)
  for r in records:
    for metric in ("test", "val", "train_loss", "drift"):
      assert len(r[metric]) == design.rounds
    assert all(0 <= a <= 100 for a in r["test"] + r["val"])
    assert all(np.isfinite(r["train_loss"])) and min(r["drift"]) > 0


def test_the_quick_story_writes_its_page_record_and_figure(quick):
  records, out = quick
  text = (out / "fedprox.md").read_text()
  assert "`python -m examples.federated_fedprox --quick --out" in text
  assert text.count("| method | test accuracy (%) |") == len(
    fedprox.QUICK.local_steps
  )
  saved = json.loads((out / "fedprox.json").read_text())
  assert saved["records"] == records and saved["seconds"] > 0
  assert (out / "fedprox.png").stat().st_size > 10_000


def test_each_client_holds_two_classes_and_every_example_is_held(data):
  shares = story.partition(data.train_y, seed=0)
  assert len(shares) == story.NUM_CLIENTS
  assert all(len(np.unique(data.train_y[s])) == 2 for s in shares)
  held = np.concatenate(shares)
  np.testing.assert_array_equal(np.sort(held), np.arange(len(data.train_y)))
  assert len({len(s) for s in shares}) > 1  # uneven
  again = story.partition(data.train_y, seed=0)
  assert all(np.array_equal(a, b) for a, b in zip(shares, again))
  other = story.partition(data.train_y, seed=1)
  assert not all(np.array_equal(a, b) for a, b in zip(shares, other))


def test_a_third_of_the_clients_straggle_each_round():
  budgets = story.step_budgets(seed=0, rounds=5, steps=10)
  assert budgets.shape == (5, story.NUM_CLIENTS)
  late = budgets < 10
  np.testing.assert_array_equal(late.sum(axis=1), [7] * 5)  # round(20 / 3)
  assert budgets[late].min() >= 1 and budgets.max() == 10
  assert not np.array_equal(late[0], late[1])  # new stragglers each round


@pytest.fixture(scope="module")
def one_round(quick, data):
  """A round of the quick design's runs with chosen step budgets.

  Run 0 (FedAvg, dropping) and run 1 (FedAvg, partial work): only client
  0 finishes, the others take no step. Run 4 (seed 1, dropping): nobody
  finishes. Run 2: client ``c`` takes ``c % (STEPS + 1)`` steps.
  """
  configs = fedprox.grid(fedprox.QUICK, STEPS)
  fed = jax.tree.map(
    lambda *a: jnp.stack(a), *[story.start(data, c) for c in configs]
  )
  budgets = np.zeros((len(configs), story.NUM_CLIENTS), np.int64)
  budgets[:2, 0] = STEPS
  budgets[2] = np.arange(story.NUM_CLIENTS) % (STEPS + 1)
  seeds = jnp.array([c.seed for c in configs], jnp.uint32)
  keys = jax.vmap(story.round_keys, in_axes=(0, None))(seeds, 0)
  with jax.numpy_rank_promotion("allow"):  # as in the quick run
    after, drift = story.federated_round(
      fed, budgets, keys, data.train_x, data.train_y, STEPS
    )
  return configs, fed, after, drift


def leaves(tree, run):
  return np.concatenate([np.ravel(a[run]) for a in jax.tree.leaves(tree)])


def test_the_round_gives_one_result_per_client(one_round):
  configs, _, after, drift = one_round
  assert drift.shape == (len(configs), story.NUM_CLIENTS)
  steps_taken = np.asarray(after.clients[0].step)  # the proximal state's k
  assert steps_taken.shape == (len(configs), story.NUM_CLIENTS)


def test_the_step_mask_stops_each_client_at_its_budget(one_round):
  _, _, after, drift = one_round
  budgets = np.arange(story.NUM_CLIENTS) % (STEPS + 1)
  np.testing.assert_array_equal(after.clients[0].step[2], budgets)
  drift = np.asarray(drift[2])
  assert np.all(drift[budgets == 0] == 0)  # still at the server's model
  assert np.all(drift[budgets > 0] > 0)


def test_dropping_averages_only_the_clients_that_finished(one_round):
  configs, before, after, _ = one_round
  assert configs[0].drop and not configs[1].drop and configs[4].drop
  server = leaves(before.server, 0)
  finisher = leaves(after.server, 0)  # run 0 keeps client 0's model only
  assert np.abs(finisher - server).max() > 0
  counts = np.asarray(before.counts[1], np.float64)
  expected = (counts[0] * finisher + (counts.sum() - counts[0]) * server) / (
    counts.sum()
  )  # run 1 also averages the 19 clients that stayed at the server
  np.testing.assert_allclose(leaves(after.server, 1), expected, atol=1e-6)
  np.testing.assert_array_equal(  # nobody finished: the server stays
    leaves(after.server, 4), leaves(before.server, 4)
  )
