"""A whole training step: forward, backward and update, on random data."""

import dataclasses
from typing import Any, Callable, Sequence

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import _models
from benchmarks import _optimizers
from benchmarks import _stepping
from benchmarks import _timing

NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class TrainingRow:
  """The measured cost of one training step with one optimizer."""

  model: str
  num_params: int
  optimizer: str
  baseline: str
  seconds: float
  ratio: float
  temp_bytes: int


@dataclasses.dataclass(frozen=True)
class Workload:
  """A model and the shape of one input example (the batch axis excluded)."""

  name: str
  make_model: Callable[[], nnx.Module]
  input_shape: tuple[int, ...]


def training_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation):
  """``(params, rest, opt_state, inputs, labels) -> (params, rest, opt_state)``.

  ``rest`` holds the non-trainable state (batch-norm statistics).
  """

  def step(params, rest, opt_state, inputs, labels):
    def loss(params):
      model = nnx.merge(graphdef, params, rest, copy=True)
      logits = model(inputs)
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      return jnp.mean(losses), nnx.state(model, nnx.Not(nnx.Param))

    grads, new_rest = jax.grad(loss, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_rest, opt_state

  return step


def random_batch(
    input_shape: Sequence[int], batch_size: int
) -> tuple[jax.Array, jax.Array]:
  """Normal inputs and uniform labels, fixed by a seed."""
  rng = np.random.default_rng(0)
  inputs = rng.standard_normal((batch_size, *input_shape), np.float32)
  labels = rng.integers(0, NUM_CLASSES, batch_size, np.int32)
  return jnp.asarray(inputs), jnp.asarray(labels)


def _loop(
    workload: Workload,
    candidate: _optimizers.Candidate,
    batch: tuple[jax.Array, jax.Array],
    steps_per_call: int,
) -> _stepping.DonatedLoop:
  graphdef, params, rest = nnx.split(
      workload.make_model(), nnx.Param, nnx.Not(nnx.Param))
  tx = candidate.make()
  return _stepping.DonatedLoop(
      training_step(graphdef, tx), (params, rest, tx.init(params)), batch,
      steps_per_call=steps_per_call)


def measure_group(
    workload: Workload,
    group: Sequence[_optimizers.Candidate],
    *,
    batch_size: int,
    steps_per_call: int,
    repeats: int,
) -> list[TrainingRow]:
  """Times a group's training steps interleaved; ratios to the first."""
  batch = random_batch(workload.input_shape, batch_size)
  loops = {c.name: _loop(workload, c, batch, steps_per_call) for c in group}
  seconds = _timing.median_seconds_per_step(
      loops, steps_per_call=steps_per_call, repeats=repeats)
  baseline_seconds = seconds[group[0].name]
  return [
      TrainingRow(
          model=workload.name,
          num_params=_models.num_params(loop.carry[0]),
          optimizer=name,
          baseline=group[0].name,
          seconds=seconds[name],
          ratio=seconds[name] / baseline_seconds,
          temp_bytes=loop.temp_bytes(),
      )
      for name, loop in loops.items()
  ]


def measure(
    workload: Workload,
    groups: Sequence[Sequence[_optimizers.Candidate]],
    *,
    batch_size: int,
    steps_per_call: int,
    repeats: int,
) -> list[TrainingRow]:
  """The training step of a workload with each group's optimizers."""
  return [
      row
      for group in groups
      for row in measure_group(
          workload, group, batch_size=batch_size,
          steps_per_call=steps_per_call, repeats=repeats)
  ]
