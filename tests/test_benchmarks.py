"""A smoke test of `make bench` on tiny sizes: rows, names, finite numbers.

Nothing here checks a timing: the figures are only required to be finite
and positive, and every optimizer to have its row.
"""

import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
  sys.path.insert(0, str(_ROOT))

from benchmarks import _models  # pylint: disable=g-import-not-at-top
from benchmarks import _optimizers  # pylint: disable=g-import-not-at-top
from benchmarks import _timing  # pylint: disable=g-import-not-at-top
from benchmarks import run  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="module")
def measured() -> run.Measurements:
  return run.measure(run.QUICK)


def _positive(value: float) -> bool:
  return math.isfinite(value) and value > 0


@pytest.mark.optax_not_strict  # optax's adam and lion
def test_update_table_has_a_row_per_optimizer(measured):
  names = [row.optimizer for row in measured.update_rows]
  expected = [c.name for group in _optimizers.UPDATE_GROUPS for c in group]
  assert names == expected
  for row in measured.update_rows:
    assert all(_positive(value) for value in (
        row.seconds, row.ratio.median, row.scanned_seconds,
        row.scanned_ratio.median, row.ideal_ratio, row.hlo_streams,
        row.bytes_per_second, row.state_bytes)), row
    for ratio in (row.ratio, row.scanned_ratio):
      assert ratio.low <= ratio.median <= ratio.high, row
    assert row.temp_bytes >= 0


@pytest.mark.optax_not_strict
def test_baselines_have_ratio_one_and_ours_add_one_anchor(measured):
  rows = {row.optimizer: row for row in measured.update_rows}
  for group in _optimizers.UPDATE_GROUPS:
    assert rows[group[0].name].ratio.median == 1.0
    assert rows[group[0].name].scanned_ratio.median == 1.0
  # The anchor is one more param-sized buffer (plus int32 counters).
  extra_bytes = (rows[_optimizers.TRSGD.name].state_bytes
                 - rows[_optimizers.SGD.name].state_bytes)
  param_bytes = 4 * rows[_optimizers.SGD.name].num_params
  assert param_bytes <= extra_bytes <= param_bytes + 16


@pytest.mark.optax_not_strict
def test_arrays_count_what_each_call_donates(measured):
  rows = {row.optimizer: row for row in measured.update_rows}
  num_leaves = len(jax.tree.leaves(_models.param_shapes(_models.cnn1d)))
  # Bare SGD: params and momentum. TRSGD adds the anchor, its two counters
  # and the step count of the inner-loop learning-rate schedule.
  assert rows[_optimizers.SGD.name].num_arrays == 2 * num_leaves
  assert rows[_optimizers.TRSGD.name].num_arrays == 3 * num_leaves + 3
  # The diagnostics add the anchor alone.
  assert rows[_optimizers.SGD_CARRY.name].num_arrays == 3 * num_leaves
  assert rows[_optimizers.SGD_READ.name].num_arrays == 3 * num_leaves


def test_fixed_anchor_pulls_toward_zeros_only_when_asked():
  params = {"w": jnp.array([2.0, -1.0])}
  grads = {"w": jnp.array([1.0, 1.0])}
  for pull, expected in ((False, [1.0, 1.0]),
                         (True, [1.0 + 0.2 * 2.0, 1.0 - 0.2 * 1.0])):
    tx = _optimizers.fixed_anchor(pull=pull)
    state = tx.init(params)
    updates, new_state = tx.update(grads, state, params)
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-6)
    np.testing.assert_array_equal(new_state["w"], state["w"])


@pytest.mark.optax_not_strict
def test_training_table_has_a_row_per_optimizer(measured):
  names = [row.optimizer for row in measured.training_rows]
  expected = [c.name for group in run.QUICK.training_groups for c in group]
  assert names == expected * len(run.QUICK.training_repeats)
  for row in measured.training_rows:
    assert all(_positive(value) for value in (
        row.seconds, row.ratio.median, row.scanned_seconds,
        row.scanned_ratio.median)), row


@pytest.mark.optax_not_strict
def test_report_names_every_optimizer_and_section(measured):
  report = run.render(measured, run.QUICK)
  for heading in ("## Update step", "## Whole training step", "## Memory",
                  "## Targets", "copy bandwidth",
                  "dispatch per donated array"):
    assert heading in report
  for row in measured.update_rows:
    assert f"| {row.optimizer} |" in report
  assert _positive(measured.copy_bandwidth)


def test_paired_ratio_divides_within_rounds():
  # A load spike in round 2 hits both candidates and cancels.
  ratio = _timing.paired_ratio([2.0, 20.0, 2.0], [1.0, 10.0, 1.0])
  assert (ratio.low, ratio.median, ratio.high) == (2.0, 2.0, 2.0)
  ratio = _timing.paired_ratio([1.0, 2.0, 3.0, 4.0, 5.0], [1.0] * 5)
  assert (ratio.low, ratio.median, ratio.high) == (2.0, 3.0, 4.0)
  assert str(ratio) == "3.00x (2.00-4.00)"
