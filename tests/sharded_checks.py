"""Checks on 8 simulated CPU devices: shardings, collectives, checkpoints.

XLA fixes the number of CPU devices when jax starts, so these checks run in a
process of their own. ``tests/test_sharding.py`` and
``tests/test_checkpoint.py`` start it through :func:`run_in_subprocess`, which
amounts to::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
        python -m tests.sharded_checks {sharding,checkpoint}

The script prints one line per check it passed and exits non-zero with the
reason on the first failure. Importing this module only defines functions.
"""

import argparse
import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import optax_prox

DEVICE_COUNT = 8
SIMULATED_DEVICES_FLAG = (
    f"--xla_force_host_platform_device_count={DEVICE_COUNT}")
REPO_ROOT = Path(__file__).resolve().parent.parent
MESH_SHAPE = (4, 2)
MESH_AXES = ("data", "model")
# One param per layout the issue names: both mesh axes, replicated, one axis.
LAYOUTS = {
    "both_axes": P("data", "model"),
    "replicated": P(),
    "one_axis": P(None, "model"),
}
PARAM_SHAPE = (8, 6)
PERIOD = 3
STEPS = 7  # two anchor refreshes after the first one
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all",
               "collective-permute")

Tree = Any


# ------------------------------------------------------ the subprocess ----

def run_in_subprocess(*args: str, script: Path | None = None,
                      timeout: float = 240) -> str:
  """Runs this module (or ``script``) on 8 simulated devices.

  Returns its standard output; fails the calling test with the output and
  the error stream when the process fails.
  """
  env = dict(os.environ)
  env["XLA_FLAGS"] = " ".join(
      filter(None, [env.get("XLA_FLAGS", ""), SIMULATED_DEVICES_FLAG]))
  env["JAX_PLATFORMS"] = "cpu"
  command = ([sys.executable, str(script)] if script
             else [sys.executable, "-m", "tests.sharded_checks"])
  done = subprocess.run(
      [*command, *args], cwd=REPO_ROOT, env=env, capture_output=True,
      text=True, timeout=timeout, check=False)
  assert done.returncode == 0, (
      f"{' '.join(command + list(args))} failed with exit code"
      f" {done.returncode}\n--- stdout ---\n{done.stdout}\n--- stderr ---\n"
      f"{done.stderr}")
  return done.stdout


# ------------------------------------------------------------- problem ----

def optimizers() -> dict[str, optax.GradientTransformation]:
  """The three ways in which users chain the proximal term."""
  return {
      "trsgd": optax_prox.trsgd(0.1, period=PERIOD),
      "tradam": optax_prox.tradam(0.01, period=PERIOD),
      "proximal_regularize+lion": optax.chain(
          optax_prox.proximal_regularize(0.5, PERIOD), optax.lion(0.01)),
  }


def initial_params() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return {name: rng.normal(size=PARAM_SHAPE).astype(np.float32)
          for name in LAYOUTS}


def place_on(mesh: jax.sharding.Mesh, params: Tree) -> Tree:
  return {name: jax.device_put(value, NamedSharding(mesh, LAYOUTS[name]))
          for name, value in params.items()}


def gradient(params: Tree) -> Tree:
  """A deterministic, nonlinear, elementwise stand-in for a loss gradient."""
  return jax.tree.map(lambda w: jnp.sin(3 * w) + 0.1 * w, params)


def make_train_step(
    tx: optax.GradientTransformation,
) -> Callable[[Tree, Tree], tuple[Tree, Tree]]:
  def train_step(params, state):
    updates, state = tx.update(gradient(params), state, params)
    return optax.apply_updates(params, updates), state
  return train_step


@functools.cache
def jitted_train_step(
    tx: optax.GradientTransformation,
) -> Callable[[Tree, Tree], tuple[Tree, Tree]]:
  return jax.jit(make_train_step(tx))


def train(tx: optax.GradientTransformation, params: Tree, state: Tree,
          steps: int) -> tuple[Tree, Tree]:
  train_step = jitted_train_step(tx)
  for _ in range(steps):
    params, state = train_step(params, state)
  return params, state


def anchor_of(state: Tree) -> Tree:
  return optax.tree.get(state, "anchor")


# ---------------------------------------------------------- assertions ----

def assert_sharded_alike(actual: Tree, expected: Tree, what: str) -> None:
  """Asserts each leaf of ``actual`` is laid out like that of ``expected``."""
  for (path, a), b in zip(jax.tree.leaves_with_path(actual),
                          jax.tree.leaves(expected)):
    assert a.sharding.is_equivalent_to(b.sharding, a.ndim), (
        f"{what}{jax.tree_util.keystr(path)} is laid out as {a.sharding},"
        f" expected {b.sharding}")


def assert_equal_values(actual: Tree, expected: Tree, what: str) -> None:
  for (path, a), b in zip(jax.tree.leaves_with_path(actual),
                          jax.tree.leaves(expected)):
    np.testing.assert_array_equal(
        np.asarray(a), np.asarray(b),
        err_msg=f"{what}{jax.tree_util.keystr(path)}")


def collectives_in(compiled_text: str) -> list[str]:
  return [op for op in COLLECTIVES if op in compiled_text]


def assert_collective_scan_works(mesh: jax.sharding.Mesh) -> None:
  """A sum over a sharded array needs an all-reduce: the scan must see it."""
  x = jax.device_put(jnp.ones(PARAM_SHAPE),
                     NamedSharding(mesh, LAYOUTS["both_axes"]))
  text = jax.jit(jnp.sum).lower(x).compile().as_text()
  assert collectives_in(text), "the collective scan misses an all-reduce"


# -------------------------------------------------------------- checks ----

def check_sharding(name: str, tx: optax.GradientTransformation,
                   axis_type: AxisType, single_device: Tree) -> None:
  """Init, compile and train on a 2-D mesh; compare to one device."""
  mesh = jax.make_mesh(MESH_SHAPE, MESH_AXES, axis_types=(axis_type,) * 2)
  with jax.set_mesh(mesh):
    params = place_on(mesh, initial_params())
    state = jax.jit(tx.init)(params)
    assert_sharded_alike(anchor_of(state), params, "jit(init) anchor")

    compiled = jitted_train_step(tx).lower(params, state).compile()
    found = collectives_in(compiled.as_text())
    assert not found, f"the compiled update contains {found}"

    params, state = compiled(params, state)
    after_one_step = state
    params, state = train(tx, params, state, STEPS - 1)
  assert_sharded_alike(params, place_on(mesh, initial_params()), "params")
  assert_sharded_alike(anchor_of(state), params, "anchor")
  assert_sharded_alike(state, after_one_step, "state")
  assert_equal_values((params, anchor_of(state)), single_device,
                      "sharded vs one device: ")
  print(f"ok  {name:26s} {axis_type.name:8s} anchor sharded like params"
        f" {[str(LAYOUTS[k]) for k in LAYOUTS]}, no collectives, {STEPS}"
        " steps equal to one device")


def run_sharding_checks() -> None:
  assert_collective_scan_works(
      jax.make_mesh(MESH_SHAPE, MESH_AXES, axis_types=(AxisType.Auto,) * 2))
  print("ok  the collective scan finds the all-reduce of a sharded sum")
  for name, tx in optimizers().items():
    params = jax.device_put(initial_params(), jax.devices()[0])
    params, state = train(tx, params, jax.jit(tx.init)(params), STEPS)
    single_device = (params, anchor_of(state))
    for axis_type in (AxisType.Auto, AxisType.Explicit):
      check_sharding(name, tx, axis_type, single_device)


def save_and_restore(directory: Path, tree: Tree) -> Tree:
  """Saves ``tree`` with orbax and restores it with the same shardings."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory, tree)
    checkpointer.wait_until_finished()
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
    return checkpointer.restore(directory, target)


def check_checkpoint(axis_type: AxisType, directory: Path) -> None:
  """Stops mid inner loop, restores onto the mesh and carries on."""
  tx = optimizers()["trsgd"]
  stop_at = PERIOD + 2  # inner_step is 2 of 3 there
  mesh = jax.make_mesh(MESH_SHAPE, MESH_AXES, axis_types=(axis_type,) * 2)
  with jax.set_mesh(mesh):
    params = place_on(mesh, initial_params())
    uninterrupted = train(tx, params, jax.jit(tx.init)(params), STEPS + 2)
    stopped = train(tx, params, jax.jit(tx.init)(params), stop_at)
    assert int(optax.tree.get(stopped[1], "inner_step")) == 2
    restored = save_and_restore(directory / axis_type.name, stopped)
    assert jax.tree.structure(restored) == jax.tree.structure(stopped)
    for (path, a), b in zip(jax.tree.leaves_with_path(restored),
                            jax.tree.leaves(stopped)):
      assert a.sharding == b.sharding, (
          f"restored{jax.tree_util.keystr(path)} is laid out as"
          f" {a.sharding}, saved as {b.sharding}")
    assert_equal_values(restored, stopped, "restored: ")
    resumed = train(tx, *restored, STEPS + 2 - stop_at)
  assert_equal_values(resumed, uninterrupted, "resumed vs uninterrupted: ")
  print(f"ok  checkpoint {axis_type.name:8s} params and TRSGD state restored"
        f" onto the mesh with the saved shardings at inner_step 2; resuming"
        f" equals {STEPS + 2} uninterrupted steps")


def run_checkpoint_checks() -> None:
  with tempfile.TemporaryDirectory() as directory:
    for axis_type in (AxisType.Auto, AxisType.Explicit):
      check_checkpoint(axis_type, Path(directory))


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("group", choices=("sharding", "checkpoint"))
  group = parser.parse_args(argv).group
  assert jax.device_count() == DEVICE_COUNT, (
      f"found {jax.device_count()} devices; run with"
      f" XLA_FLAGS={SIMULATED_DEVICES_FLAG} set before jax starts")
  print(f"{jax.device_count()} {jax.devices()[0].platform} devices,"
        f" jax {jax.__version__}, mesh {dict(zip(MESH_AXES, MESH_SHAPE))}")
  {"sharding": run_sharding_checks,
   "checkpoint": run_checkpoint_checks}[group]()


if __name__ == "__main__":
  main()
