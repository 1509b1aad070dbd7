"""Training many configurations of one method together.

A *sweep* is one method at one batch size on a list of configurations
(seed, learning rate, lambda_w / eta_0, weight decay). All of them train
at once: ``jax.vmap`` over the configurations, ``jax.lax.scan`` over the
steps of an epoch, one ``jax.jit`` call per epoch. Each configuration is a
plain Flax NNX model with an ``nnx.Optimizer(model, tx, wrt=nnx.Param)``;
its seed fixes the initialisation, the order of the data and the data
itself: each seed trains and is scored on its own split
(:func:`data_lib.split_of`).

An interrupted sweep resumes from an orbax checkpoint of the stacked state
(model, optimizer, data-order keys) and the history so far, and ends with
the same bits as an uninterrupted one.
"""

from collections.abc import Callable
import dataclasses
import functools
import hashlib
import os
import time
from typing import Any, NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from examples import batching
from examples.study_lib import data as data_lib
from examples.study_lib import methods as methods_lib

EVAL_CHUNK = 200
METRICS = (
  "train_loss",
  "train_accuracy",
  "val_loss",
  "val_accuracy",
  "test_loss",
  "test_accuracy",
)


class Config(NamedTuple):
  """One training run of a sweep."""

  seed: int
  learning_rate: float
  lambda_ratio: float = 0.1
  weight_decay: float = methods_lib.WEIGHT_DECAY


@dataclasses.dataclass(frozen=True)
class Plan:
  """What one sweep trains."""

  method: methods_lib.Method
  task: data_lib.Task
  configs: tuple[Config, ...]
  batch_size: int
  epochs: int
  steps_per_epoch: int
  period: int = 10

  @property
  def seeds(self) -> tuple[int, ...]:
    return tuple(sorted({c.seed for c in self.configs}))

  @property
  def slug(self) -> str:
    configs = ",".join(
      f"{c.seed}:{c.learning_rate!r}:{c.lambda_ratio!r}:{c.weight_decay!r}"
      for c in self.configs
    )
    digest = hashlib.sha256(
      (self.task.description + configs).encode()
    ).hexdigest()[:10]
    text = (
      f"{self.task.name}_{self.method.name}_b{self.batch_size}"
      f"_p{self.period}_e{self.epochs}x{self.steps_per_epoch}_{digest}"
    )
    return "".join(c if c.isalnum() else "_" for c in text)

  def tx_factory(self, learning_rate, lambda_ratio, weight_decay):
    return self.method.make(
      learning_rate,
      lambda_ratio,
      weight_decay,
      total_updates=self.epochs * self.steps_per_epoch,
      period=self.period,
    )


class Sweep(NamedTuple):
  """The trainable state of all configurations, stacked on a leading axis.

  Attributes:
    state: ``nnx.state((model, optimizer))`` of every configuration.
    data_keys: the data-order RNG key of each configuration, (configs, 2).
  """

  state: nnx.State
  data_keys: jax.Array


def loss_and_accuracy(model, x, y):
  logits = model(x)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return loss, jnp.mean(jnp.argmax(logits, axis=-1) == y)


def train_step(model, optimizer, x, y):
  """One optimizer step on a batch; returns the batch loss and accuracy."""
  grad_fn = nnx.value_and_grad(loss_and_accuracy, has_aux=True)
  (loss, accuracy), grads = grad_fn(model, x, y)
  optimizer.update(model, grads)
  return loss, accuracy


def make_optimizer(model, plan: Plan, learning_rate, lambda_ratio, decay):
  # inject_hyperparams puts the rate, the ratio and the decay in the
  # optimizer state, so that configurations with different values can be
  # vmapped together.
  tx = optax.inject_hyperparams(plan.tx_factory)(
    learning_rate=learning_rate, lambda_ratio=lambda_ratio, weight_decay=decay
  )
  return nnx.Optimizer(model, tx, wrt=nnx.Param)


def data_key(seed: int) -> jax.Array:
  return jax.random.PRNGKey(1000 + seed)


def graphdef_of(plan: Plan) -> Any:
  def build():
    model = plan.task.model(nnx.Rngs(0))
    one = jnp.float32(1)
    return model, make_optimizer(model, plan, one, one, one)

  return nnx.graphdef(nnx.eval_shape(build))


@functools.cache
def initial_models(task: data_lib.Task, seeds: tuple[int, ...]):
  """One freshly initialised model per seed, stacked.

  Built once per process and task: initialisers compile slowly on a CPU.
  """
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: task.model(nnx.Rngs(0))))
  init = jax.vmap(
    lambda seed: nnx.state(task.model(nnx.Rngs(jax.random.key(seed))))
  )
  return graphdef, jax.jit(init)(jnp.array(seeds, jnp.uint32))


def seed_index(plan: Plan) -> jax.Array:
  """For each configuration, the position of its seed in ``plan.seeds``."""
  return jnp.array([plan.seeds.index(c.seed) for c in plan.configs])


def init_sweep(plan: Plan) -> Sweep:
  model_graphdef, by_seed = initial_models(plan.task, plan.seeds)
  per_config = jax.tree.map(lambda a: a[seed_index(plan)], by_seed)

  def init_one(model_state, learning_rate, lambda_ratio, decay):
    model = nnx.merge(model_graphdef, model_state)
    optimizer = make_optimizer(model, plan, learning_rate, lambda_ratio, decay)
    return nnx.state((model, optimizer))

  column = lambda name: jnp.array(
    [getattr(c, name) for c in plan.configs], jnp.float32
  )
  names = ("learning_rate", "lambda_ratio", "weight_decay")
  state = jax.jit(jax.vmap(init_one))(per_config, *map(column, names))
  keys = jnp.stack([data_key(c.seed) for c in plan.configs])
  return Sweep(state, keys)


@functools.cache
def compiled_for(plan: Plan) -> Callable[..., Any]:
  """The epoch function of a plan, built (and compiled) once per process."""
  return make_epoch_fn(plan, graphdef_of(plan))


def make_epoch_fn(plan: Plan, graphdef: Any) -> Callable[..., Any]:
  """``epoch(sweep, index, train, held_out, val_chunks) -> (sweep, metrics)``.

  ``train`` and ``held_out`` hold each seed's split, stacked; ``index``
  says which seed's each configuration trains on. Trains every
  configuration for one epoch (in training mode: a BatchNorm
  normalises with each batch's statistics and updates its running
  averages), then evaluates each on ``held_out`` (the validation chunks,
  then the test chunks) in evaluation mode (running averages, nothing
  updated).
  """

  def train_one(state, key, index, x, y):
    x, y = x[index], y[index]
    key, order_key = jax.random.split(key)
    batches = batching.epoch_batches(order_key, x.shape[0], plan.batch_size)

    def step(state, batch):
      model, optimizer = nnx.merge(graphdef, state)
      loss, accuracy = train_step(model, optimizer, x[batch], y[batch])
      return nnx.state((model, optimizer)), (loss, accuracy)

    state, (losses, accuracies) = jax.lax.scan(step, state, batches)
    return state, key, losses.mean(), accuracies.mean()

  def evaluate_one(state, index, split):
    model, _ = nnx.merge(graphdef, state)
    model.eval()  # BatchNorm: the running averages, not the batch's
    return batching.summed_loss_and_correct(
      model, tuple(a[index] for a in split)
    )

  @functools.partial(jax.jit, static_argnames="val_chunks", donate_argnums=0)
  def epoch(sweep: Sweep, index, train, held_out, val_chunks: int):
    state, keys, train_loss, train_accuracy = jax.vmap(
      train_one, in_axes=(0, 0, 0, None, None)
    )(sweep.state, sweep.data_keys, index, *train)
    sums = jax.vmap(evaluate_one, in_axes=(0, 0, None))(state, index, held_out)
    weight = held_out[2][0].sum(axis=1)
    mean_of = lambda part: (
      jnp.sum(sums[0][:, part], axis=1) / jnp.sum(weight[part]),
      jnp.sum(sums[1][:, part], axis=1) / jnp.sum(weight[part]),
    )
    val_loss, val_accuracy = mean_of(slice(None, val_chunks))
    test_loss, test_accuracy = mean_of(slice(val_chunks, None))
    measured = (train_loss, train_accuracy, val_loss, val_accuracy)
    metrics = dict(zip(METRICS, (*measured, test_loss, test_accuracy)))
    return Sweep(state, keys), metrics

  return epoch


# --------------------------------------------------------------------------
# Checkpoints: orbax for the state of a sweep in progress.
# --------------------------------------------------------------------------


def empty_history(plan: Plan) -> dict[str, np.ndarray]:
  shape = (plan.epochs, len(plan.configs))
  return {name: np.full(shape, np.nan, np.float32) for name in METRICS}


def checkpoint_manager(directory: str, plan: Plan) -> Any:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  path = os.path.abspath(os.path.join(directory, plan.slug))
  return ocp.CheckpointManager(
    path, options=ocp.CheckpointManagerOptions(max_to_keep=1)
  )


def save_checkpoint(manager, epoch: int, sweep: Sweep, history) -> None:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  tree = {"leaves": jax.tree.leaves(sweep), "history": history}
  manager.save(epoch, args=ocp.args.StandardSave(tree))
  manager.wait_until_finished()


def restore_checkpoint(manager, template: Sweep, history):
  """Returns ``(epochs done, sweep, history)`` of the latest checkpoint."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  epoch = manager.latest_step()
  if epoch is None:
    return 0, template, history
  target = {"leaves": jax.tree.leaves(template), "history": history}
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  restored = manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
  sweep = jax.tree.unflatten(jax.tree.structure(template), restored["leaves"])
  return (
    epoch,
    sweep,
    {k: np.asarray(v) for k, v in restored["history"].items()},
  )


def stacked_splits(plan: Plan):
  """Each seed's training split and held-out chunks, stacked by seed."""
  splits = [plan.task.load(data_lib.split_of(s)) for s in plan.seeds]
  train = [
    jnp.asarray(np.stack([getattr(d, name) for d in splits]))
    for name in ("train_x", "train_y")
  ]
  held_out = []
  for d in splits:
    val = batching.padded_chunks(d.val_x, d.val_y, EVAL_CHUNK)
    test = batching.padded_chunks(d.test_x, d.test_y, EVAL_CHUNK)
    held_out.append([np.concatenate(pair) for pair in zip(val, test)])
  held_out = tuple(jnp.asarray(np.stack(a)) for a in zip(*held_out))
  return tuple(train), held_out, val[0].shape[0]


def train(
  plan: Plan,
  *,
  checkpoint_dir: str | None = None,
  checkpoint_every_s: float = 60.0,
  max_new_epochs: int | None = None,
  on_epoch: Callable[[], None] = lambda: None,
) -> tuple[dict[str, np.ndarray], bool]:
  """Trains every configuration of ``plan``; returns ``(history, done)``.

  ``history[metric]`` has shape ``(epochs, configs)``: train numbers average
  the epoch's batches, the others are measured at its end. With a
  ``checkpoint_dir`` a saved state is resumed from, and the state is saved
  there at most every ``checkpoint_every_s`` seconds, and when
  ``max_new_epochs`` (which simulates an interruption) stops the sweep
  before its end; ``done`` says whether it reached its end.
  """
  epoch_fn = compiled_for(plan)
  train_split, held_out, val_chunks = stacked_splits(plan)
  index = seed_index(plan)
  sweep, history, start = init_sweep(plan), empty_history(plan), 0
  path = checkpoint_dir and os.path.join(checkpoint_dir, plan.slug)
  manager = None  # opened only when there is something to restore or save
  if path and os.path.isdir(path):
    manager = checkpoint_manager(checkpoint_dir, plan)
    start, sweep, history = restore_checkpoint(manager, sweep, history)
  last_save = time.monotonic()
  stop = (
    plan.epochs
    if max_new_epochs is None
    else min(plan.epochs, start + max_new_epochs)
  )
  for epoch in range(start, stop):
    sweep, metrics = epoch_fn(
      sweep, index, train_split, held_out, val_chunks=val_chunks
    )
    for name, values in metrics.items():
      history[name][epoch] = np.asarray(values)
    if (
      path
      and epoch + 1 < plan.epochs
      and (
        epoch + 1 == stop or time.monotonic() - last_save >= checkpoint_every_s
      )
    ):
      manager = manager or checkpoint_manager(checkpoint_dir, plan)
      save_checkpoint(manager, epoch + 1, sweep, history)
      last_save = time.monotonic()
    on_epoch()
  if manager:
    manager.close()
  return history, stop == plan.epochs
