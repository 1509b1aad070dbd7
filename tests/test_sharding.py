"""Sharding under JAX's SPMD partitioner, on 8 simulated CPU devices.

The checks live in ``tests/sharded_checks.py`` and run in a process of their
own, because the number of CPU devices is fixed when jax starts. For TRSGD,
TRAdam and ``chain(proximal_regularize, lion)``, on a 4x2 mesh with auto and
with explicit axis types, and params sharded along both axes, replicated and
along one axis, they assert that ``jax.jit(tx.init)`` shards the anchor like
each param, that the compiled update has no collectives, that shardings stay
put over 7 updates, and that the results equal a one-device run bit for bit.
"""

from tests import sharded_checks

EXAMPLE = sharded_checks.REPO_ROOT / "examples" / "sharded_training.py"


def test_sharded_updates_match_one_device_without_collectives():
  report = sharded_checks.run_in_subprocess("sharding")
  checked = [line for line in report.splitlines() if line.startswith("ok")]
  assert len(checked) == 1 + 3 * 2, report  # the scan's control + 3 x 2


def test_sharded_training_example_runs_and_learns():
  report = sharded_checks.run_in_subprocess("--steps", "30", script=EXAMPLE)
  assert "devices: 8" in report, report
  assert report.count("anchor sharded like params: True") == 2, report
  assert "loss fell" in report, report
