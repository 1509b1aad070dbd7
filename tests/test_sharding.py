"""Sharding under JAX's SPMD partitioner, on 8 simulated CPU devices.

``tests/conftest.py`` gives every test process 8 CPU devices. For TRSGD,
TRAdam and ``chain(proximal_regularize, lion)``, on a 4x2 mesh with auto and
with explicit axis types, and params sharded along both axes, replicated and
along one axis: ``jax.jit(tx.init)`` shards the anchor like each param, the
compiled update has no collectives, shardings stay put over the updates,
the results equal a one-device run bit for bit, and an orbax checkpoint
restores every shard where it was.
"""

from pathlib import Path
from typing import Any

import chex
import jax
import jax.numpy as jnp
from jax.sharding import AxisType
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax
import pytest

from examples import sharded_training
import optax_prox
from tests import conftest
from tests import helpers

MESH_SHAPE = (4, 2)
MESH_AXES = ("data", "model")
# One param per layout: both mesh axes, replicated, one axis.
LAYOUTS = {
  "both_axes": P("data", "model"),
  "replicated": P(),
  "one_axis": P(None, "model"),
}
PARAM_SHAPE = (8, 6)
PERIOD = 3
STEPS = 7  # two anchor refreshes after the first one
COLLECTIVES = (
  "all-gather",
  "all-reduce",
  "reduce-scatter",
  "all-to-all",
  "collective-permute",
)
OPTIMIZERS = {
  "trsgd": lambda: optax_prox.trsgd(0.1, period=PERIOD),
  "tradam": lambda: optax_prox.tradam(0.01, period=PERIOD),
  "proximal_regularize+lion": lambda: optax.chain(
    optax_prox.proximal_regularize(0.5, PERIOD), optax.lion(0.01)
  ),
}
AXIS_TYPES = pytest.mark.parametrize(
  "axis_type", [AxisType.Auto, AxisType.Explicit], ids=["auto", "explicit"]
)


@pytest.fixture(autouse=True)
def _eight_devices():
  assert jax.device_count() == conftest.DEVICE_COUNT, (
    f"found {jax.device_count()} devices: XLA_FLAGS in the environment"
    " sets another --xla_force_host_platform_device_count"
  )


def make_mesh(axis_type: AxisType) -> jax.sharding.Mesh:
  return jax.make_mesh(MESH_SHAPE, MESH_AXES, axis_types=(axis_type,) * 2)


def initial_params() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return {
    name: rng.normal(size=PARAM_SHAPE).astype(np.float32) for name in LAYOUTS
  }


def place_on(mesh: jax.sharding.Mesh, params: Any) -> Any:
  return {
    name: jax.device_put(value, NamedSharding(mesh, LAYOUTS[name]))
    for name, value in params.items()
  }


def anchor_of(state: Any) -> Any:
  return optax.tree.get(state, "anchor")


def collectives_in(compiled_text: str) -> list[str]:
  return [op for op in COLLECTIVES if op in compiled_text]


def test_the_collective_scan_finds_the_all_reduce_of_a_sharded_sum():
  x = place_on(make_mesh(AxisType.Auto), initial_params())["both_axes"]
  assert collectives_in(jax.jit(jnp.sum).lower(x).compile().as_text())


@AXIS_TYPES
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_sharded_updates_need_no_collectives_and_match_one_device(
  name: str, axis_type: AxisType
):
  tx = OPTIMIZERS[name]()
  one_device, one_device_state = helpers.run(
    tx,
    helpers.tree_grad,
    jax.device_put(initial_params(), jax.devices()[0]),
    STEPS,
  )

  mesh = make_mesh(axis_type)
  with jax.set_mesh(mesh):
    params = place_on(mesh, initial_params())
    state = jax.jit(tx.init)(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(anchor_of(state), params)
    helpers.assert_trees_all_equal_shardings(anchor_of(state), params)

    step = helpers.train_step(tx)
    grads = helpers.tree_grad(params, 0)
    found = collectives_in(step.lower(params, state, grads).compile().as_text())
    assert not found, f"the compiled update contains {found}"

    trajectory, state = helpers.run(
      tx, helpers.tree_grad, params, 1, state=state
    )
    after_one_step = state
    trajectory, state = helpers.run(
      tx, helpers.tree_grad, trajectory[-1], STEPS - 1, state=state, start=1
    )
  layouts = (
    (trajectory[-1], anchor_of(state), state),
    (params, params, after_one_step),
  )
  chex.assert_trees_all_equal_shapes_and_dtypes(*layouts)
  helpers.assert_trees_all_equal_shardings(*layouts)
  chex.assert_trees_all_equal(
    (trajectory[-1], anchor_of(state)),
    (one_device[-1], anchor_of(one_device_state)),
  )


@AXIS_TYPES
def test_checkpoint_restores_the_shardings_and_the_trajectory(
  axis_type: AxisType, tmp_path: Path
):
  tx = OPTIMIZERS["trsgd"]()
  stop, steps = PERIOD + 2, STEPS + 2  # stops inside an inner loop
  mesh = make_mesh(axis_type)
  with jax.set_mesh(mesh):
    params = place_on(mesh, initial_params())
    uninterrupted, state = helpers.run(
      tx, helpers.tree_grad, params, steps, state=jax.jit(tx.init)(params)
    )
    stopped, stopped_state = helpers.run(
      tx, helpers.tree_grad, params, stop, state=jax.jit(tx.init)(params)
    )
    saved = (stopped[-1], stopped_state)
    restored = helpers.save_and_restore(tmp_path / "checkpoint", saved)
    chex.assert_trees_all_equal_shapes_and_dtypes(restored, saved)
    helpers.assert_trees_all_equal_shardings(restored, saved)
    chex.assert_trees_all_equal(restored, saved)
    resumed, resumed_state = helpers.run(
      tx,
      helpers.tree_grad,
      restored[0],
      steps - stop,
      state=restored[1],
      start=stop,
    )
  chex.assert_trees_all_equal(
    (resumed[-1], resumed_state), (uninterrupted[-1], state)
  )


def test_sharded_training_example_runs_and_learns(
  capsys: pytest.CaptureFixture[str],
):
  sharded_training.main(["--steps", "30"])
  report = capsys.readouterr().out
  assert "devices: 8 in 1 process(es)" in report, report
  assert report.count("anchor sharded like params: True") == 2, report
  assert "loss fell" in report, report
