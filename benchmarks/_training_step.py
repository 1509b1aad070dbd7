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
  """The measured cost of one training step with one optimizer.

  ``seconds`` and ``ratio`` time one jitted call per step;
  ``scanned_seconds`` and ``scanned_ratio`` run a call's steps in one
  ``lax.scan``; they are None for a workload not timed scanned.
  """

  model: str
  num_params: int
  optimizer: str
  baseline: str
  seconds: float
  ratio: _timing.Ratio
  scanned_seconds: float | None
  scanned_ratio: _timing.Ratio | None
  temp_bytes: int


@dataclasses.dataclass(frozen=True)
class Workload:
  """A model and the shape of one input example (the batch axis excluded).

  ``scanned``: whether to time the steps inside a ``lax.scan`` too. XLA:CPU
  runs ResNet-18's convolutions about 10x slower inside a loop, and at
  hundreds of milliseconds per step the per-call dispatch it would remove
  is noise, so only small models are timed scanned.
  """

  name: str
  make_model: Callable[[], nnx.Module]
  input_shape: tuple[int, ...]
  scanned: bool


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
    scanned: bool,
) -> _stepping.DonatedLoop:
  graphdef, params, rest = nnx.split(
      workload.make_model(), nnx.Param, nnx.Not(nnx.Param))
  tx = candidate.make()
  return _stepping.DonatedLoop(
      training_step(graphdef, tx), (params, rest, tx.init(params)), batch,
      steps_per_call=steps_per_call, scanned=scanned)


def measure_group(
    workload: Workload,
    group: Sequence[_optimizers.Candidate],
    *,
    batch_size: int,
    steps_per_call: int,
    repeats: int,
) -> list[TrainingRow]:
  """Times a group's training steps interleaved; ratios to the first.

  Every candidate runs as one call per step and, if the workload says so,
  scanned, all interleaved.
  """
  batch = random_batch(workload.input_shape, batch_size)
  modes = (False, True) if workload.scanned else (False,)
  loops = {
      (c.name, scanned): _loop(workload, c, batch, steps_per_call, scanned)
      for c in group for scanned in modes
  }
  baseline = group[0].name
  timings = _timing.compare(
      loops, lambda key: (baseline, key[1]),
      steps_per_call=steps_per_call, repeats=repeats)
  rows = []
  for c in group:
    one_call, in_scan = timings[c.name, False], timings.get((c.name, True))
    rows.append(TrainingRow(
        model=workload.name,
        num_params=_models.num_params(loops[c.name, False].carry[0]),
        optimizer=c.name,
        baseline=baseline,
        seconds=one_call.seconds,
        ratio=one_call.ratio,
        scanned_seconds=None if in_scan is None else in_scan.seconds,
        scanned_ratio=None if in_scan is None else in_scan.ratio,
        temp_bytes=loops[c.name, False].temp_bytes(),
    ))
  return rows


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
