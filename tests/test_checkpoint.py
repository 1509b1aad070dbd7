"""Orbax checkpoints of params and optimizer state, resumed mid inner loop.

Stopping, saving, restoring and carrying on must give the trajectory of not
stopping at all, bit for bit: the anchor and both counters are in the state.
"""

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers
from tests import sharded_checks

PERIOD = 3
STEPS = 10


def train(tx: optax.GradientTransformation, params: jax.Array, state: Any,
          steps: range) -> tuple[jax.Array, Any]:
  update = jax.jit(tx.update)
  for k in steps:
    updates, state = update(helpers.jax_grad(params, k), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


OPTIMIZERS = [
    pytest.param(lambda: optax_prox.trsgd(0.05, period=PERIOD), id="trsgd"),
    pytest.param(lambda: optax_prox.trsgd(0.05, period=PERIOD,
                                          anchor_dtype=jnp.bfloat16),
                 id="trsgd-bf16-anchor"),
    pytest.param(lambda: optax_prox.tradam(0.05, period=PERIOD), id="tradam",
                 marks=pytest.mark.optax_not_strict),
]


@pytest.mark.parametrize("make_tx", OPTIMIZERS)
@pytest.mark.parametrize("stop_at", [PERIOD + 1, 2 * PERIOD])
def test_resuming_from_a_checkpoint_matches_not_stopping(
    make_tx, stop_at: int, tmp_path: Path):
  tx = make_tx()
  params = jnp.asarray(helpers.W0, jnp.float32)
  uninterrupted = train(tx, params, tx.init(params), range(STEPS))

  stopped = train(tx, params, tx.init(params), range(stop_at))
  restored = sharded_checks.save_and_restore(tmp_path / "checkpoint",
                                             stopped)
  helpers.assert_same_structure_shapes_dtypes(restored, stopped)
  assert int(optax.tree.get(restored[1], "inner_step")) == stop_at % PERIOD
  resumed = train(tx, *restored, range(stop_at, STEPS))

  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sharded_checkpoint_restores_shardings_and_trajectory():
  """On a 4x2 mesh of simulated devices, auto and explicit axis types."""
  report = sharded_checks.run_in_subprocess("checkpoint")
  assert report.count("ok  checkpoint") == 2, report
