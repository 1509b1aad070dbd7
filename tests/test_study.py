"""The replicated study (examples/study.py) and its machinery.

* The confidence interval on fixed inputs with known answers, and the
  grid-edge rule.
* TR as the study builds it (injected base rate, step schedule) follows the
  published rule, also with vmapped rates.
* A tiny study end to end: every file and key, two batch sizes, every part
  (comparison, ablation, sensitivity, longer budget); part of the same
  study, interrupted twice inside a sweep and resumed, gives the same runs,
  bit for bit.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from examples import study
from examples.study_lib import methods
from examples.study_lib import stats
from tests import helpers
from tests import reference


def test_t_interval_on_fixed_inputs():
  # Differences 1..5: mean 3, sd sqrt(2.5), t_0.975(4) = 2.776.
  c = stats.paired_difference([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
  half = 2.776 * np.sqrt(2.5) / np.sqrt(5)
  assert (c.mean, c.n, c.verdict) == (3.0, 5, "win")
  np.testing.assert_allclose([c.low, c.high], [3 - half, 3 + half])
  assert stats.paired_difference([0, 0, 0, 0], [2, 3, 2, 3]).verdict == "loss"
  # Mean 0.5, sd 1: the interval [-0.69, 1.69] holds 0.
  tie = stats.paired_difference([1.5, -0.5, 1.5, -0.5], [0, 0, 0, 0])
  assert tie.verdict == "tie" and tie.low < 0 < tie.high
  assert stats.paired_difference([0.7], [0.6]).verdict == "tie"  # one pair
  assert stats.t_975(7) == 2.365
  assert abs(stats.t_975(60) - 2.000) < 1e-3


def test_a_pick_at_a_grid_edge_widens_the_grid_by_two_rates():
  rates = methods.grid(0.01, 5, 3.0)
  assert rates == [0.00111, 0.00333, 0.01, 0.03, 0.09]
  assert methods.widened(rates, 2, 3.0) == []
  assert methods.widened(rates, 4, 3.0) == [0.27, 0.81]
  assert methods.widened(rates, 0, 3.0) == [0.00037, 0.000123]
  assert stats.at_edge(0, 5) and stats.at_edge(4, 5)
  assert not stats.at_edge(1, 5)
  assert stats.pick([[0.5, 0.7, np.nan], [0.6, 0.6, 0.9]]) == 1  # NaN is 0


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

  for base, got in zip(bases, params):
    factor = lambda k: 1.0 if k < 6 else 0.1 if k < 9 else 0.01
    expected = reference.trsgd(
      helpers.numpy_grad,
      helpers.W0,
      lambda k, b=base, f=factor: b * f(k),
      steps,
      period=10,
      lambda_w=0.1 * base,
      momentum=0.9,
      weight_decay=methods.WEIGHT_DECAY,
    )[-1]
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)


# The tabular task compiles fastest; SGD and TRSGD are enough for every part
# (comparison at batch 8 and 128; ablation, sensitivity and the longer
# budget at batch 8 only). Each sweep compiles anew (a few seconds): the
# test trains 10 of them, and resumes two.
TINY = [
  "--dataset",
  "tabular",
  "--methods",
  "SGD,TRSGD",
  "--batch-sizes",
  "8,128",
  "--epochs",
  "2",
  "--seeds",
  "2",
  "--grid",
  "3",
  "--max-widen",
  "0",
  "--quick",
]


@pytest.mark.optax_not_strict  # optax's built-in schedules
def test_a_tiny_study_writes_everything_and_resumes_identically(tmp_path):
  out, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
  results = study.main(
    TINY + ["--out", str(out), "--checkpoint-dir", str(checkpoints)]
  )
  for name in (
    "study.md",
    "study.json",
    "batch_sizes.png",
    "ablation.png",
    "sensitivity.png",
  ):
    assert (out / name).stat().st_size > 0, name
  saved = json.loads((out / "study.json").read_text())
  assert set(saved) >= {
    "config",
    "summaries",
    "comparisons",
    "ablation",
    "ablation_comparisons",
    "sensitivity",
    "longer",
    "longer_comparisons",
    "runs",
  }
  assert {s["batch_size"] for s in saved["summaries"]} == {8, 128}
  assert {s["batch_size"] for s in saved["ablation"]} == {8}
  assert {r["seed_set"] for r in saved["runs"]} == {"A", "B"}
  for run in saved["runs"]:
    assert set(run) >= {
      "method",
      "batch_size",
      "seed",
      "learning_rate",
      "history",
      "config",
    }
    assert set(run["config"]) >= {"period", "lambda_w_over_eta0", "epochs"}
    epochs = 8 if run["part"] == "longer" else 2  # 4x in the longer part
    assert run["config"]["epochs"] == epochs
    assert len(run["history"]["test_accuracy"]) == epochs
  for c in saved["comparisons"]:
    assert set(c["sets"]) == {"A", "B"} and isinstance(c["replicated"], bool)
  text = (out / "study.md").read_text()
  assert "replicated?" in text and "TRSGD − SGD" in text
  assert "SGD, pull only − SGD" in text and "period \\ λw/η0" in text
  assert "A longer budget (tabular, batch 8, 8 epochs instead of 2)" in text

  # The comparison of SGD alone (two sweeps of 2 epochs, compiled above),
  # interrupted twice, inside the first sweep and inside the second, and
  # resumed each time from the checkpoints (an orbax state, a finished
  # sweep's history): the same runs and tunings as above, bit for bit.
  resumed_out, resumed_checkpoints = tmp_path / "resumed", tmp_path / "ck2"
  again = TINY + [
    "--methods",
    "SGD",
    "--out",
    str(resumed_out),
    "--checkpoint-dir",
    str(resumed_checkpoints),
  ]
  assert study.main(again + ["--stop-after-epochs", "1"]) == {}
  assert any(p.is_dir() for p in resumed_checkpoints.iterdir())  # orbax
  assert study.main(again + ["--stop-after-epochs", "2"]) == {}
  resumed = study.main(again)
  sgd_runs = [
    r for r in results["runs"] if (r["method"], r["part"]) == ("SGD", "compare")
  ]
  assert {r["batch_size"] for r in sgd_runs} == {8, 128}
  assert resumed["runs"] == sgd_runs
  assert resumed["summaries"] == [
    s for s in results["summaries"] if s["method"] == "SGD"
  ]
