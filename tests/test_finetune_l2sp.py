"""The L2-SP story (examples/finetune_l2sp.py), on its ``--quick`` design.

The quick run trains every part once; the other tests reuse its compiled
training step (same shapes), so the module stays fast.
"""

import json

import jax
import numpy as np
import optax
import pytest

from examples import finetune_l2sp as story
from examples.anchors_lib import l2sp
from examples.study_lib import data as data_lib
import optax_prox

pytestmark = pytest.mark.optax_not_strict  # optax's Adam


@pytest.fixture(scope="module")
def data():
  return data_lib.load_mnist_digits()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  out = tmp_path_factory.mktemp("l2sp")
  return story.main(["--quick", "--out", str(out)]), out


def test_the_quick_story_measures_every_run_of_every_part(quick):
  records, _ = quick
  design = l2sp.QUICK
  per_seed = 1 + len(
    l2sp.grid(design, l2sp.SAME_HEAD, 0, story.LABELS_PER_CLASS)
  )
  per_seed += len(l2sp.grid(design, l2sp.NEW_HEAD, 0, (10,)))
  assert len(records) == len(design.seeds) * per_seed
  for r in records:
    metrics = (
      ("val", "new")
      if r["part"] == l2sp.NEW_HEAD
      else l2sp.METRICS[l2sp.SAME_HEAD] + ("val",)
    )
    assert set(metrics) <= set(r)
    assert all(0 <= r[m] <= 100 for m in metrics)
  pretrained = [r["old"] for r in records if r["part"] == "pretrained"]
  assert len(pretrained) == len(design.seeds)
  assert min(pretrained) > 50  # it learned the old classes: chance is 20


def test_the_quick_story_writes_its_page_record_and_figure(quick):
  records, out = quick
  text = (out / "l2sp.md").read_text()
  assert "`python -m examples.finetune_l2sp --quick --out" in text
  assert "| labels per class | method | strength |" in text
  saved = json.loads((out / "l2sp.json").read_text())
  assert saved["records"] == records and saved["seconds"] > 0
  assert (out / "l2sp.png").stat().st_size > 10_000


def test_labels_are_drawn_per_seed_from_the_new_classes(data):
  drawn = story.draw_labels(data.train_y, 10, seed=3)
  counts = np.bincount(data.train_y[drawn], minlength=10)
  np.testing.assert_array_equal(counts, [0] * 5 + [10] * 5)
  assert len(set(drawn.tolist())) == 50
  np.testing.assert_array_equal(drawn, story.draw_labels(data.train_y, 10, 3))
  assert set(drawn) != set(story.draw_labels(data.train_y, 10, 4))


@pytest.mark.parametrize(
  ("method", "expected"),
  [("plain", (0, 0)), ("scratch", (0, 0)), ("L2", (3, 0)), ("L2-SP", (0, 3))],
)
def test_each_method_is_the_same_chain_with_its_own_pull(method, expected):
  assert story.pulls(method, 3.0) == expected


def test_l2sp_is_anchored_at_the_start_and_leaves_a_new_head_free():
  params = story.init_params(0, 5)
  tx = story.make_optimizer(0.0, 1.0, story.all_but_the_head)
  state = optax_prox.set_anchor(tx.init(params), params)
  anchor = optax.tree.get(state, "anchor")
  assert not jax.tree.leaves(anchor["head"])  # masked: no anchor
  np.testing.assert_array_equal(
    anchor["convs"][0]["kernel"][...], params["convs"][0]["kernel"][...]
  )


def test_a_new_head_keeps_the_pretrained_body():
  pretrained, fresh = story.init_params(1, 10), story.init_params(2, 5)
  both = story.with_new_head(pretrained, fresh)
  np.testing.assert_array_equal(
    both["convs"][1]["kernel"][...], pretrained["convs"][1]["kernel"][...]
  )
  np.testing.assert_array_equal(
    both["head"]["kernel"][...], fresh["head"]["kernel"][...]
  )


def test_l2sp_holds_the_body_near_its_start_and_l2_shrinks_it(quick, data):
  """Six runs from one start, in the shapes of the quick new-head part.

  The quick run, traced outside the tests' strict rank promotion, compiled
  ``train`` for them; the same promotion here reuses that compilation.
  """
  start = story.init_params(0, 5)
  labelled = story.draw_labels(data.train_y, 10, 0)
  padded = np.resize(labelled, 250)
  pulls = [(0.0, 0.0), (0.0, 10.0), (10.0, 0.0)] * 2
  runs = [
    story.Run(start, l2, sp, padded, len(labelled), 0, 10) for l2, sp in pulls
  ]
  with jax.numpy_rank_promotion("allow"):  # as in the quick run
    trained = story.train(
      story.stack(runs),
      story.graphdef_of(5),
      story.all_but_the_head,
      l2sp.QUICK.fine_tune_steps,
      data.train_x,
      data.train_y - 5,
    )
  body = lambda tree: np.concatenate(
    [np.ravel(leaf) for leaf in jax.tree.leaves(tree["convs"])]
  )
  begin = body(start)
  ends = [body(jax.tree.map(lambda a, i=i: a[i], trained)) for i in range(3)]
  moved = [np.linalg.norm(end - begin) for end in ends]
  assert moved[0] > 0  # plain fine-tuning moves the body
  assert moved[1] < 0.5 * moved[0]  # L2-SP holds it near the anchor
  assert np.linalg.norm(ends[2]) < np.linalg.norm(ends[0])  # L2: to zero
