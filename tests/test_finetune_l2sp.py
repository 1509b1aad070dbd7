"""The L2-SP and EWC story (examples/finetune_l2sp.py), on ``--quick``.

The quick run trains both parts on tuning and confirmation seeds once; the
other tests check its pieces on inputs with known answers.
"""

import copy
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples import evidence
from examples import finetune_l2sp as story
from examples.anchors_lib import l2sp
from examples.study_lib import data as data_lib

pytestmark = pytest.mark.optax_not_strict  # optax's Adam
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  out = tmp_path_factory.mktemp("l2sp")
  with jax.numpy_rank_promotion("allow"):
    return story.main(["--quick", "--out", str(out)]), out


def test_the_quick_story_measures_every_run_of_every_seed(quick):
  record, _ = quick
  design = l2sp.QUICK
  runs = record["runs"]["tuning"] + record["runs"]["confirmation"]
  seeds = {r["seed"] for r in runs}
  assert seeds == set(design.tuning_seeds) | set(record["analysis"]["seeds"])
  assert not seeds & set(design.tuning_seeds) & set(record["analysis"]["seeds"])
  per_seed = 1 + 1  # the pretrained model and the Fisher's spread
  for part in (l2sp.SAME_HEAD, l2sp.NEW_HEAD):
    for c in l2sp.grid(design, part):
      per_seed += design.checkpoints if c.arm in l2sp.UNPULLED else 1
  assert len(runs) == len(seeds) * per_seed
  for r in runs:
    keys = set(
      l2sp.splits(
        data_lib.load_mnist_digits(), 5 if r["part"] == l2sp.NEW_HEAD else 10
      )
    )
    assert r["part"] == "fisher" or keys <= set(r)
    assert all(0 <= r[k] <= 100 for k in keys if k in r)
  pretrained = [r["old"] for r in runs if r["part"] == "pretrained"]
  assert min(pretrained) > 50  # it learned the old classes: chance is 20


def test_the_quick_story_writes_its_page_record_and_figure(quick):
  record, out = quick
  text = (out / "l2sp.md").read_text()
  assert "`python -m examples.finetune_l2sp --quick --out" in text
  assert "| arm | pick | all ten (%) | old 0-4 (%) | new 5-9 (%) |" in text
  assert json.loads((out / "l2sp.json").read_text()) == record
  assert len(record["analysis"]["primary"]) == len(l2sp.PRIMARY)
  assert (out / "l2sp.png").stat().st_size > 10_000


def test_every_pick_and_the_plan_read_validation_only(quick):
  """Test accuracies scrambled, every pick and the plan stay the same."""
  record, _ = quick
  tuning = record["runs"]["tuning"]
  scrambled = copy.deepcopy(tuning)
  rng = np.random.default_rng(0)
  for r in scrambled:
    for key in ("old", "new", "all"):
      if key in r:
        r[key] = float(rng.uniform(0, 100))
  seeds = l2sp.QUICK.tuning_seeds
  for part, rule in l2sp.PICKS:
    for arm in l2sp.ARMS[part]:
      assert l2sp.pick(tuning, seeds, part, arm, rule) == l2sp.pick(
        scrambled, seeds, part, arm, rule
      )
  assert l2sp.plan(tuning, l2sp.QUICK) == l2sp.plan(scrambled, l2sp.QUICK)


def records_of(arm: str, knob: str, val_new: list, val_all: list) -> list:
  """One seed's records of an arm, one per knob value, as measure makes."""
  knobs = [25, 50, 75] if knob == "steps" else [0.1, 1.0, 10.0]
  return [
    {
      "seed": 0,
      "part": l2sp.SAME_HEAD,
      "arm": arm,
      "strength": 0.0,
      "steps": 75,
      knob: k,
      "val_new": n,
      "val_all": a,
    }
    for k, n, a in zip(knobs, val_new, val_all)
  ]


def test_the_rules_pick_the_best_or_the_most_conservative_within_budget():
  plain = records_of("plain", "steps", [70.0, 86.0, 90.0], [60.0, 50.0, 45.0])
  ewc = records_of("EWC", "strength", [89.0, 86.0, 70.0], [50.0, 70.0, 60.0])
  records = plain + ewc
  pick = lambda arm, rule: l2sp.pick(records, [0], l2sp.SAME_HEAD, arm, rule)
  # Knobs run from the least conservative: 75, 50, 25 steps; 0.1, 1, 10.
  assert pick("plain", "ten") == 2  # 25 steps: the best on all ten
  assert pick("plain", "new") == 1  # 50 steps: 86 is within 5 of 90
  assert pick("EWC", "new") == 1  # strength 1: 86 >= 90 - 5
  assert pick("EWC", "ten") == 1


def test_a_curve_is_read_where_it_first_reaches_the_level():
  old, new = (
    np.array([10.0, 40.0, 80.0, 95.0]),
    np.array([80.0, 70.0, 50.0, 0.0]),
  )
  assert l2sp.new_at_old(old, new, 60.0) == pytest.approx(60.0)
  assert l2sp.new_at_old(old, new, 5.0) == 80.0
  assert np.isnan(l2sp.new_at_old(old, new, 99.0))


def test_the_fisher_of_a_linear_classifier_is_p_1_minus_p_x_squared():
  """For logits ``x W + b``, F(W_jk) = mean over x of x_j^2 p_k (1 - p_k)."""
  x = jnp.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]])
  params = {
    "w": jnp.array([[0.2, -0.1, 0.4], [0.3, 0.0, -0.5]]),
    "b": jnp.array([0.1, 0.0, -0.2]),
  }
  logits = lambda p, x: x @ p["w"] + p["b"][None]
  fisher = story.fisher_diagonal(logits, params, x)
  p = np.asarray(jax.nn.softmax(logits(params, x)))
  variance = p * (1 - p)
  np.testing.assert_allclose(
    fisher["w"],
    np.einsum("nj,nk->jk", np.asarray(x) ** 2, variance) / 3,
    rtol=1e-5,
  )
  np.testing.assert_allclose(fisher["b"], variance.mean(0), rtol=1e-5)


def test_importances_are_ones_or_the_fisher_over_its_mean_head_free_in_body():
  params = story.init_params(0, 10)
  fisher = jax.tree.map(lambda a: np.full(a.shape, 2.0, np.float32), params)
  fisher["head"]["bias"][...] = 8.0
  ewc = story.importance("EWC", params, fisher, head_free=False)
  flat = np.concatenate([np.ravel(f) for f in jax.tree.leaves(ewc)])
  assert flat.mean() == pytest.approx(1.0)
  body = story.importance("EWC (body)", params, fisher, head_free=False)
  assert not np.any(body["head"]["kernel"][...])
  ones = story.importance("L2-SP", params, fisher, head_free=True)
  assert not np.any(ones["head"]["bias"][...])
  assert np.all(ones["convs"][0]["kernel"][...] == 1)


def test_labels_are_drawn_per_seed_from_the_new_classes():
  y = data_lib.load_mnist_digits().train_y
  drawn = story.draw_labels(y, 10, seed=3)
  counts = np.bincount(y[drawn], minlength=10)
  np.testing.assert_array_equal(counts, [0] * 5 + [10] * 5)
  np.testing.assert_array_equal(drawn, story.draw_labels(y, 10, 3))
  assert set(drawn) != set(story.draw_labels(y, 10, 4))


def test_a_new_head_keeps_the_pretrained_body():
  pretrained, fresh = story.init_params(1, 10), story.init_params(2, 5)
  both = story.with_new_head(pretrained, fresh)
  np.testing.assert_array_equal(
    both["convs"][1]["kernel"][...], pretrained["convs"][1]["kernel"][...]
  )
  np.testing.assert_array_equal(
    both["head"]["kernel"][...], fresh["head"]["kernel"][...]
  )


def test_the_page_and_the_anchors_summary_are_what_the_record_renders():
  record = json.loads((DOCS / "results" / "l2sp.json").read_text())
  context = l2sp.context(record)
  page = (DOCS / "results" / "l2sp.md").read_text()
  assert page == evidence.render(l2sp.TEMPLATE, context), "make l2sp"
  summary = evidence.render(l2sp.SUMMARY, context).strip()
  assert summary in (DOCS / "anchors.md").read_text(), "make l2sp"
