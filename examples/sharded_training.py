r"""Data-parallel and parameter-sharded (FSDP-style) training with TRSGD.

A small Flax NNX network learns a synthetic classification task on a 2-D
device mesh with axes ``data`` and ``fsdp``. Each batch is split over all
devices; each weight matrix is split over the ``fsdp`` axis (and replicated
over ``data``), so a device holds only its slice of every weight, of the
momentum and of TRSGD's anchor. The training step is single-device code:
``jax.jit`` partitions it, and the optimizer adds no communication.

Read it top to bottom: mesh, data, model, sharded model and optimizer, one
step, the loop, the report. Without accelerators it simulates 8 CPU devices::

    python -m examples.sharded_training
    python -m examples.sharded_training --steps 600 --fsdp 2

On several hosts, start the same script once per host with
``--multi-host``: it calls ``jax.distributed.initialize()`` first, and each
process then feeds only its own share of every batch. Two processes of 4
simulated CPU devices each stand in for two hosts::

    for i in 0 1; do
      XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      python -m examples.sharded_training --multi-host --num-processes 2 \
          --process-id $i --coordinator-address localhost:12355 &
    done; wait

``tests/test_multihost.py`` runs this with ``--fsdp 8``, so that every
kernel is split over the devices of both processes, and checks that the
losses (``--losses-to``) match a one-process run on 8 devices.
"""

import os

# Simulate 8 CPU devices; this has to happen before jax is imported.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import argparse  # noqa: E402
from collections.abc import Sequence  # noqa: E402
import json  # noqa: E402
from typing import NamedTuple  # noqa: E402

from flax import nnx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from examples import models  # noqa: E402
import optax_prox  # noqa: E402

FEATURES = 32
HIDDEN = 128
CLASSES = 8
BATCH_AXES = ("data", "fsdp")  # a batch is split over every device


# ----------------------------------------------------------------- mesh ----


def make_mesh(fsdp: int, axis_type: str) -> jax.sharding.Mesh:
  """A ``(data, fsdp)`` mesh over all devices of all processes.

  With ``explicit`` axes shardings are part of the array types; with
  ``auto`` XLA propagates them. The optimizer works the same either way.
  """
  devices = jax.device_count()
  if devices % fsdp:
    raise ValueError(f"--fsdp {fsdp} does not divide {devices} devices")
  axis_types = (jax.sharding.AxisType[axis_type.capitalize()],) * 2
  return jax.make_mesh(
    (devices // fsdp, fsdp), ("data", "fsdp"), axis_types=axis_types
  )


# ----------------------------------------------------------------- data ----


class Data(NamedTuple):
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray


def make_data(seed: int = 0, train: int = 4096, test: int = 1024) -> Data:
  """Gaussian inputs labelled by a random two-layer teacher network."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(train + test, FEATURES)).astype(np.float32)
  hidden = np.tanh(x @ rng.normal(size=(FEATURES, 64)))
  y = np.argmax(hidden @ rng.normal(size=(64, CLASSES)), axis=1)
  y = y.astype(np.int32)
  return Data(x[:train], y[:train], x[train:], y[train:])


def global_batch(
  mesh: jax.sharding.Mesh, x: np.ndarray, y: np.ndarray
) -> tuple[jax.Array, jax.Array]:
  """Assembles a batch split over all devices from this process's rows.

  With one process it holds the whole batch; with several, each process
  passes only its own contiguous share of the rows.
  """
  share = len(x) // jax.process_count()
  mine = slice(jax.process_index() * share, (jax.process_index() + 1) * share)
  sharding = NamedSharding(mesh, P(BATCH_AXES))
  return tuple(
    jax.make_array_from_process_local_data(sharding, a[mine]) for a in (x, y)
  )


# ---------------------------------------------------------------- model ----


def sharded_mlp(rngs: nnx.Rngs) -> models.Mlp:
  """Two hidden layers; every kernel is sharded, the biases replicated.

  Each kernel's input dimension is split over ``fsdp``.
  """
  kernel_init = nnx.with_partitioning(
    nnx.initializers.lecun_normal(), ("fsdp", None)
  )
  return models.Mlp(
    rngs,
    features=FEATURES,
    hidden=HIDDEN,
    num_classes=CLASSES,
    kernel_init=kernel_init,
  )


# ------------------------------------------------------- training step ----


def loss_and_accuracy(
  model: models.Mlp, x: jax.Array, y: jax.Array
) -> tuple[jax.Array, jax.Array]:
  logits = model(x)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return loss, jnp.mean(jnp.argmax(logits, axis=-1) == y)


@nnx.jit
def train_step(
  model: models.Mlp, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array
) -> jax.Array:
  grad_fn = nnx.value_and_grad(loss_and_accuracy, has_aux=True)
  (loss, _), grads = grad_fn(model, x, y)
  optimizer.update(model, grads)
  return loss


evaluate = nnx.jit(loss_and_accuracy)


# -------------------------------------------------------------- report ----


def local_kib(tree: nnx.State) -> float:
  """KiB this process's first device holds of a tree of arrays."""
  return (
    sum(
      leaf.addressable_shards[0].data.nbytes for leaf in jax.tree.leaves(tree)
    )
    / 1024
  )


def total_kib(tree: nnx.State) -> float:
  return sum(leaf.nbytes for leaf in jax.tree.leaves(tree)) / 1024


def params_and_anchor(
  model: models.Mlp, optimizer: nnx.Optimizer
) -> tuple[nnx.State, nnx.State]:
  anchor = optax.tree.get(
    nnx.state(optimizer, nnx.optimizer.OptState), "anchor"
  )
  return nnx.state(model, nnx.Param), anchor


def anchor_sharded_like_params(params: nnx.State, anchor: nnx.State) -> bool:
  return all(
    a.sharding.is_equivalent_to(p.sharding, p.ndim)
    for p, a in zip(jax.tree.leaves(params), jax.tree.leaves(anchor))
  )


# ------------------------------------------------------------------ main ----


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument(
    "--batch-size",
    type=int,
    default=64,
    help="global batch, split over all devices",
  )
  parser.add_argument("--learning-rate", type=float, default=0.05)
  parser.add_argument("--period", type=int, default=10)
  parser.add_argument(
    "--fsdp",
    type=int,
    default=4,
    help="devices along the parameter-sharding axis",
  )
  parser.add_argument(
    "--axis-types", choices=("explicit", "auto"), default="explicit"
  )
  parser.add_argument(
    "--anchor-dtype", choices=("float32", "bfloat16"), default="float32"
  )
  parser.add_argument(
    "--multi-host",
    action="store_true",
    help="call jax.distributed.initialize() first; on"
    " SLURM, Open MPI, Kubernetes or Cloud TPU it finds the"
    " other processes by itself",
  )
  parser.add_argument(
    "--coordinator-address",
    default=None,
    help="host:port of process 0, where not found by itself",
  )
  parser.add_argument("--num-processes", type=int, default=None)
  parser.add_argument("--process-id", type=int, default=None)
  parser.add_argument(
    "--losses-to",
    default=None,
    metavar="PATH",
    help="write every step's train loss and the final test"
    " loss to this JSON file (from process 0)",
  )
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
  args = parse_args(argv)
  if args.multi_host:
    jax.distributed.initialize(
      args.coordinator_address, args.num_processes, args.process_id
    )
  say = print if jax.process_index() == 0 else (lambda *_: None)
  mesh = make_mesh(args.fsdp, args.axis_types)
  say(
    f"devices: {jax.device_count()} in {jax.process_count()} process(es),"
    f" mesh {dict(mesh.shape)}, {args.axis_types} axes"
  )
  data = make_data()

  with jax.set_mesh(mesh):
    # Under a mesh, annotated variables are created sharded, and the
    # optimizer state (momentum and anchor) comes out sharded like them.
    model = sharded_mlp(nnx.Rngs(0))
    tx = optax_prox.trsgd(
      args.learning_rate,
      period=args.period,
      anchor_dtype=jnp.dtype(args.anchor_dtype),
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    params, anchor = params_and_anchor(model, optimizer)
    say(
      f"kernel of hidden2: {params['hidden2']['kernel'].sharding.spec},"
      f" its anchor: {anchor['hidden2']['kernel'].sharding.spec}"
    )
    say(
      "anchor sharded like params:"
      f" {anchor_sharded_like_params(params, anchor)}"
    )
    say(
      f"per device: params {local_kib(params):.1f} of"
      f" {total_kib(params):.1f} KiB, anchor {local_kib(anchor):.1f} of"
      f" {total_kib(anchor):.1f} KiB"
    )

    test_x, test_y = global_batch(mesh, data.x_test, data.y_test)
    first_loss, _ = evaluate(model, test_x, test_y)
    rng = np.random.default_rng(1)
    losses = []
    for step in range(1, args.steps + 1):
      rows = rng.choice(len(data.x_train), args.batch_size, replace=False)
      x, y = global_batch(mesh, data.x_train[rows], data.y_train[rows])
      losses.append(train_step(model, optimizer, x, y))
      if step % max(1, args.steps // 5) == 0:
        say(f"step {step:5d}  train loss {float(losses[-1]):.3f}")
    test_loss, test_accuracy = evaluate(model, test_x, test_y)
    say(
      "after training, anchor sharded like params:"
      f" {anchor_sharded_like_params(*params_and_anchor(model, optimizer))}"
    )

  say(
    f"test loss {float(first_loss):.3f} -> {float(test_loss):.3f},"
    f" test accuracy {float(test_accuracy):.3f}"
  )
  if test_loss < first_loss:
    say("loss fell")
  if args.losses_to and jax.process_index() == 0:
    with open(args.losses_to, "w") as file:
      json.dump(
        {"train": [float(loss) for loss in losses], "test": float(test_loss)},
        file,
      )


if __name__ == "__main__":
  main()
