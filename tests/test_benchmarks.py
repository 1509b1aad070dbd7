"""A smoke test of `make bench` on one tiny layer: structure and invariants.

Nothing here checks a timing: times are only required to be finite and
positive, and ratios to be consistent with their quartiles.
"""

import math

from flax import nnx
import jax
import pytest

from benchmarks import _report
from benchmarks import _timing
from benchmarks import run


def _check_timing(timing: _timing.Timing, is_baseline: bool) -> None:
  assert math.isfinite(timing.seconds) and timing.seconds > 0
  ratio = timing.ratio
  assert 0 < ratio.low <= ratio.median <= ratio.high < math.inf
  if is_baseline:
    assert (ratio.low, ratio.median, ratio.high) == (1.0, 1.0, 1.0)


@pytest.mark.optax_not_strict  # optax's adam and lion
def test_quick_run_has_every_row_and_consistent_numbers():
  measured = run.measure(run.QUICK, copy_floats=10**6)
  expected = [
    (workload.kind, candidate.name)
    for workload in run.QUICK
    for group in workload.groups
    for candidate in group
  ]
  assert [(row.kind, row.optimizer) for row in measured.rows] == expected
  assert measured.copy_bandwidth > 0

  candidates = {c.name: c for group in run.UPDATE_GROUPS for c in group}
  params = nnx.state(nnx.eval_shape(run.linear), nnx.Param)
  param_bytes = _timing.tree_bytes(params)
  state_bytes = {}
  for row in measured.rows:
    is_baseline = row.optimizer == row.baseline
    _check_timing(row.per_call, is_baseline)
    _check_timing(row.scanned, is_baseline)
    assert 4 * row.num_params == param_bytes  # float32
    # The state the bench carries is the one the optimizer builds.
    init = candidates[row.optimizer].make().init
    assert row.state_bytes == _timing.tree_bytes(jax.eval_shape(init, params))
    assert row.temp_bytes >= 0 and row.xla_streams > 0
    state_bytes[row.optimizer] = row.state_bytes

  # Ours keep the bare optimizer's state, one anchor and a few counter bytes.
  for bare, ours in run.UPDATE_GROUPS:
    extra = state_bytes[ours.name] - state_bytes[bare.name] - param_bytes
    assert 0 <= extra <= 16, (ours.name, extra)

  report = _report.render(measured, period=run.PERIOD)
  for heading in (
    "## Update step",
    "## Whole training step",
    "| copy bandwidth |",
    "target: met",
    "state / params",
  ):
    assert heading in report
  for row in measured.rows:
    assert f"| {row.optimizer} |" in report


def test_paired_ratio_divides_within_rounds():
  # A load spike in round 2 hits both candidates and cancels.
  ratio = _timing.paired_ratio([2.0, 20.0, 2.0], [1.0, 10.0, 1.0])
  assert (ratio.low, ratio.median, ratio.high) == (2.0, 2.0, 2.0)
  ratio = _timing.paired_ratio([1.0, 2.0, 3.0, 4.0, 5.0], [1.0] * 5)
  assert (ratio.low, ratio.median, ratio.high) == (2.0, 3.0, 4.0)
  assert str(ratio) == "3.00x (2.00-4.00)"
