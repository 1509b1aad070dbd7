"""The small-batch demo (examples/small_batch.py).

* TR as the demo builds it (injected base rate, step schedule) follows the
  published rule: lambda_w stays 0.1 * the base rate and mu grows as the
  schedule decays, also when the base rate is vmapped.
* One vmapped config of a sweep matches a plain, un-vmapped NNX run, and a
  sweep interrupted after an epoch and resumed from its orbax checkpoint
  ends bit-identical to an uninterrupted one (anchor and inner-loop position
  included).
* ``--quick`` writes every output, with a row for each of the six methods.
"""

import functools
import json
import os
import sys

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests import helpers
from tests import reference

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import small_batch as demo  # pylint: disable=g-import-not-at-top,wrong-import-position

TRSGD = next(m for m in demo.METHODS if m.name == "TRSGD")
# 13 steps an epoch: the interruption falls inside an inner loop (S = 10).
TRAIN_SIZE, BATCH = 104, 8


def test_injected_trsgd_follows_the_published_rule_with_vmapped_rates():
  total_updates, steps = 12, 16  # decays after 6 and 9 updates
  bases = (0.05, 0.02)
  factory = functools.partial(TRSGD.make, total_updates=total_updates,
                              batch_size=BATCH, anchor_dtype=None)
  tx = optax.inject_hyperparams(factory)(learning_rate=1.0)  # rate: in state
  w0 = jnp.asarray(np.stack([helpers.W0] * len(bases)), jnp.float32)
  state = jax.vmap(
      lambda lr, w: optax.inject_hyperparams(factory)(learning_rate=lr)
      .init(w))(jnp.asarray(bases, jnp.float32), w0)
  update = jax.jit(jax.vmap(tx.update))
  params = w0
  for k in range(steps):
    grads = jax.vmap(lambda w, k=k: helpers.jax_grad(w, k))(params)
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)

  for base, got in zip(bases, params):
    factor = lambda k: 1.0 if k < 6 else 0.1 if k < 9 else 0.01
    expected = reference.trsgd(
        helpers.numpy_grad, helpers.W0, lambda k, b=base: b * factor(k),
        steps, period=10, lambda_w=0.1 * base, momentum=0.9,
        weight_decay=demo.WEIGHT_DECAY)[-1]
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)


def tiny_data() -> demo.Dataset:
  """Random signals: these tests check mechanics, not accuracy."""
  rng = np.random.default_rng(0)
  split = lambda n: (rng.normal(size=(n, 40)).astype(np.float32),
                     rng.integers(0, 10, n).astype(np.int32))
  return demo.Dataset(*split(TRAIN_SIZE), *split(200), *split(200))


def tiny_plan(epochs: int = 2) -> demo.SweepPlan:
  return demo.SweepPlan(TRSGD, demo.models.Cnn1d, seeds=(0,),
                        learning_rates=(0.01, 0.03), batch_size=BATCH,
                        epochs=epochs, steps_per_epoch=TRAIN_SIZE // BATCH)


def config(tree, index):
  return jax.tree.map(lambda a: np.asarray(a[index]), tree)


def plain_nnx_run(plan, data, seed, rate):
  """The same config trained the way a reader would: no vmap, no scan."""
  model = demo.make_model(plan.model_class, seed)
  optimizer = demo.make_optimizer(model, rate, plan.tx_factory)
  step = nnx.jit(demo.train_step)
  data_key = jax.random.PRNGKey(1000 + seed)
  for _ in range(plan.epochs):
    data_key, order_key = jax.random.split(data_key)
    for batch in demo.epoch_batches(order_key, TRAIN_SIZE, BATCH):
      step(model, optimizer, data.train_x[batch], data.train_y[batch])
  return nnx.state((model, optimizer))


# One test for both, so that the sweep compiles once (CPU budget).
def test_sweep_matches_a_plain_run_and_resumes_bit_identically(tmp_path):
  plan, data = tiny_plan(), tiny_data()
  expected_sweep, expected_history = demo.train_sweep(plan, data)

  # A vmapped config is the same as a plain, un-vmapped run of it.
  plain = jax.tree.leaves(plain_nnx_run(plan, data, *plan.configs[1]))
  vmapped = jax.tree.leaves(config(expected_sweep.state, 1))
  assert len(plain) == len(vmapped)
  for a, b in zip(plain, vmapped):
    np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-5)

  # Interrupted after epoch 1, resumed from the orbax checkpoint: the same
  # bits as the uninterrupted run.
  demo.train_sweep(plan, data, checkpoint_dir=str(tmp_path),
                   stop_after_epoch=1)
  (saved,) = os.listdir(tmp_path)
  assert os.listdir(tmp_path / saved) == ["1"]  # epochs done, nothing more
  sweep, history = demo.train_sweep(plan, data, checkpoint_dir=str(tmp_path),
                                    resume=True)
  assert jax.tree.structure(sweep) == jax.tree.structure(expected_sweep)
  for got, want in zip(jax.tree.leaves(sweep),
                       jax.tree.leaves(expected_sweep)):
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  for name in demo.METRICS:
    np.testing.assert_array_equal(history[name], expected_history[name])
  # The interruption fell inside an inner loop (13 steps an epoch, S = 10):
  # the anchor and the position came back from the checkpoint.
  inner_steps = [np.asarray(x).tolist() for path, x in
                 jax.tree_util.tree_leaves_with_path(sweep.state)
                 if "inner_step" in jax.tree_util.keystr(path)]
  assert inner_steps == [[6, 6]]


@pytest.mark.optax_not_strict  # runs optax's Adam
def test_quick_run_writes_every_output_for_six_methods(tmp_path):
  demo.main(["--quick", "--out", str(tmp_path)])
  for name in ("results.md", "results.json", "curves.png",
               "lr_sensitivity.png"):
    assert (tmp_path / name).stat().st_size > 0, name
  markdown = (tmp_path / "results.md").read_text()
  results = json.loads((tmp_path / "results.json").read_text())
  names = [m.name for m in demo.METHODS]
  assert len(names) == 6
  assert [s["method"] for s in results["summaries"]] == names
  for name in names:
    assert f"| {name} |" in markdown
  assert len(results["runs"]) == 6 * 3  # 1 seed x 3 rates each
  for run in results["runs"]:
    assert set(run) >= {"method", "seed", "learning_rate", "history"}
    for metric in demo.METRICS:
      values = run["history"][metric]
      assert len(values) == 2 and all(np.isfinite(values)), (run, metric)
  for summary in results["summaries"]:
    picked = summary["test_accuracy_mean"][summary["picked"]]
    assert picked > 0.15, summary  # chance is 0.10
