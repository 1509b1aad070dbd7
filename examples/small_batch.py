r"""Does the Trajectory Regularized Algorithm help at small batch sizes?

An honest comparison on real data that needs no download: MNIST-1D,
generated locally by the ``mnist1d`` package (or scikit-learn's bundled 8x8
digits with ``--dataset digits``), at batch size 8.

Six optimizers, all with weight decay 1e-4 and the paper's step schedule
(x0.1 at 50% and again at 75% of training):

* SGD (momentum 0.9) and TRSGD;
* Adam and TRAdam;
* two things a user would try instead of TR: Lookahead around SGD, and SGD
  with gradients accumulated to an effective batch of 64 (``MultiSteps``).

Every method gets the same tuning: its learning rate is picked by final
validation accuracy from a grid of the same width (7 rates, 3x apart)
centred on its usual value (1e-2 for SGD at batch 8, 1e-3 for Adam, 3e-2 for
SGD on accumulated batches), and the test accuracy of the picked rate is
reported over 3 seeds. The grid is wide (729x) so that no method's pick
sits at its edge; the report flags it if one does. All configurations of one
method (seeds x learning rates) train together: ``jax.vmap`` over
configurations, ``jax.lax.scan`` over the steps of an epoch.

  python examples/small_batch.py                # the default run (make demo)
  python examples/small_batch.py --quick        # a smoke run, < 90 s
  python examples/small_batch.py --batch-sizes 2,8,32,128

Run ``python examples/small_batch.py --help`` for the options.
"""

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import sys
import time
from typing import Any, Callable, NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

import optax_prox

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # pylint: disable=g-import-not-at-top,wrong-import-position

WEIGHT_DECAY = 1e-4
LOOKAHEAD_SYNC_PERIOD = 5
LOOKAHEAD_SLOW_STEP_SIZE = 0.5
ACCUMULATED_BATCH = 64
VALIDATION_FRACTION = 0.2
EVAL_CHUNK = 200
METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy",
           "test_loss", "test_accuracy")


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


class Dataset(NamedTuple):
  """Train, validation and test splits, as float32 inputs and int32 labels."""

  train_x: np.ndarray
  train_y: np.ndarray
  val_x: np.ndarray
  val_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray


def hold_out_validation(x: np.ndarray, y: np.ndarray, test_x: np.ndarray,
                        test_y: np.ndarray) -> Dataset:
  """Moves a fixed random fifth of the training set to a validation set."""
  order = np.random.default_rng(0).permutation(len(x))
  num_val = int(round(VALIDATION_FRACTION * len(x)))
  val, train = order[:num_val], order[num_val:]
  as_inputs = lambda a: np.asarray(a, np.float32)
  as_labels = lambda a: np.asarray(a, np.int32)
  return Dataset(as_inputs(x[train]), as_labels(y[train]),
                 as_inputs(x[val]), as_labels(y[val]),
                 as_inputs(test_x), as_labels(test_y))


@functools.lru_cache(maxsize=None)
def load_mnist1d() -> Dataset:
  """MNIST-1D generated locally: 4000 train / 1000 test signals of length 40."""
  import mnist1d.data  # pylint: disable=g-import-not-at-top
  data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
  return hold_out_validation(data["x"], data["y"], data["x_test"],
                             data["y_test"])


def load_digits() -> Dataset:
  """scikit-learn's bundled 8x8 digits (1797 images), 25% kept for test."""
  import sklearn.datasets  # pylint: disable=g-import-not-at-top
  digits = sklearn.datasets.load_digits()
  images = digits.images / 16.0
  order = np.random.default_rng(1).permutation(len(images))
  num_test = len(images) // 4
  test, train = order[:num_test], order[num_test:]
  return hold_out_validation(images[train], digits.target[train],
                             images[test], digits.target[test])


DATASETS = {"mnist1d": (load_mnist1d, models.Cnn1d),
            "digits": (load_digits, models.DigitsCnn)}


# --------------------------------------------------------------------------
# Optimizers: each method maps a base learning rate to a transformation.
# --------------------------------------------------------------------------


def step_decay(learning_rate: Any, total_updates: int) -> optax.Schedule:
  """The paper's schedule: x0.1 at 50% and again at 75% of training."""
  first, second = total_updates // 2, (3 * total_updates) // 4

  def schedule(count: Any) -> Any:
    factor = jnp.where(count >= second, 0.01,
                       jnp.where(count >= first, 0.1, 1.0))
    return learning_rate * factor

  return schedule


class LookaheadState(NamedTuple):
  """State of :func:`lookahead_keeping_slow_weights`.

  Attributes:
    inner: the state of ``optax.lookahead``.
    slow: the slow weights, a copy of the params tree.
  """

  inner: optax.LookaheadState
  slow: optax.Params


def lookahead_keeping_slow_weights(
    fast_optimizer: optax.GradientTransformation,
) -> optax.GradientTransformation:
  """``optax.lookahead`` for a model that holds only the fast weights.

  ``optax.lookahead`` expects ``LookaheadParams(fast, slow)`` as the params;
  ``nnx.Optimizer`` passes the model's params. This wrapper keeps the slow
  weights in the optimizer state instead and returns the fast updates.
  """
  lookahead = optax.lookahead(fast_optimizer, LOOKAHEAD_SYNC_PERIOD,
                              LOOKAHEAD_SLOW_STEP_SIZE)

  def init_fn(params: optax.Params) -> LookaheadState:
    slow = jax.tree.map(jnp.copy, params)
    return LookaheadState(lookahead.init(optax.LookaheadParams(params, slow)),
                          slow)

  def update_fn(updates, state, params=None):
    pair = optax.LookaheadParams(params, state.slow)
    pair_updates, inner = lookahead.update(updates, state.inner, pair)
    slow = optax.apply_updates(state.slow, pair_updates.slow)
    return pair_updates.fast, LookaheadState(inner, slow)

  return optax.GradientTransformation(init_fn, update_fn)


@dataclasses.dataclass(frozen=True)
class Method:
  """An optimizer under test: a name, its usual learning rate, a factory.

  ``make(learning_rate, total_updates, batch_size, anchor_dtype)`` returns
  the transformation for a base learning rate (traced when swept).
  """

  name: str
  usual_learning_rate: float
  make: "Factory"


# Each factory maps (base learning rate, total updates, batch size, anchor
# dtype) to a transformation; the base rate is traced when a sweep is vmapped.
Factory = Callable[[Any, int, int, Any], optax.GradientTransformation]


def sgd(learning_rate, total_updates, batch_size, anchor_dtype):
  """SGD with momentum 0.9 and coupled L2 weight decay."""
  del batch_size, anchor_dtype
  return optax.chain(
      optax.add_decayed_weights(WEIGHT_DECAY),
      optax.sgd(step_decay(learning_rate, total_updates), momentum=0.9))


def trsgd(learning_rate, total_updates, batch_size, anchor_dtype):
  """TRSGD as in the paper's code.

  lambda_w is fixed at 0.1 x the base rate, so the proximal strength
  mu_k = 2 lambda_w / eta_k grows tenfold at each decay of the schedule.
  """
  del batch_size
  return optax_prox.trsgd(
      step_decay(learning_rate, total_updates), lambda_w=0.1 * learning_rate,
      momentum=0.9, weight_decay=WEIGHT_DECAY, anchor_dtype=anchor_dtype)


def adam(learning_rate, total_updates, batch_size, anchor_dtype):
  """Adam with coupled L2 weight decay (like PyTorch's and like TRAdam)."""
  del batch_size, anchor_dtype
  return optax.chain(
      optax.add_decayed_weights(WEIGHT_DECAY),
      optax.adam(step_decay(learning_rate, total_updates)))


def tradam(learning_rate, total_updates, batch_size, anchor_dtype):
  """TRAdam, lambda_w fixed at 0.1 x the base rate (see :func:`trsgd`)."""
  del batch_size
  return optax_prox.tradam(
      step_decay(learning_rate, total_updates), lambda_w=0.1 * learning_rate,
      weight_decay=WEIGHT_DECAY, anchor_dtype=anchor_dtype)


def sgd_lookahead(learning_rate, total_updates, batch_size, anchor_dtype):
  """Lookahead (k = 5, alpha = 0.5) around :func:`sgd`."""
  return lookahead_keeping_slow_weights(
      sgd(learning_rate, total_updates, batch_size, anchor_dtype))


def sgd_accumulated(learning_rate, total_updates, batch_size, anchor_dtype):
  """:func:`sgd` on gradients averaged over batches up to 64 examples."""
  every_k = max(1, ACCUMULATED_BATCH // batch_size)
  inner = sgd(learning_rate, total_updates // every_k, batch_size,
              anchor_dtype)
  return optax.MultiSteps(inner, every_k_schedule=every_k
                          ).gradient_transformation()


# The grid centres: 1e-2 for SGD with momentum at batch 8 (0.1 diverges on
# this model), 1e-3 for Adam, and one grid step (3x) higher for SGD whose
# updates average 8 batches.
METHODS = (
    Method("SGD", 1e-2, sgd),
    Method("TRSGD", 1e-2, trsgd),
    Method("Adam", 1e-3, adam),
    Method("TRAdam", 1e-3, tradam),
    Method("SGD+Lookahead", 1e-2, sgd_lookahead),
    Method(f"SGD, accumulated to {ACCUMULATED_BATCH}", 3e-2, sgd_accumulated),
)


def learning_rate_grid(method: Method, size: int, factor: float) -> list[float]:
  """``size`` rates ``factor`` apart, centred on the method's usual rate."""
  offsets = np.arange(size) - (size - 1) / 2
  return [float(method.usual_learning_rate * factor**o) for o in offsets]


# --------------------------------------------------------------------------
# Training one configuration: a plain Flax NNX step.
# --------------------------------------------------------------------------


def loss_and_accuracy(model: nnx.Module, x: jax.Array,
                      y: jax.Array) -> tuple[jax.Array, jax.Array]:
  logits = model(x)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == y)
  return loss, accuracy


def train_step(model: nnx.Module, optimizer: nnx.Optimizer, x: jax.Array,
               y: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One optimizer step on a batch; returns the batch loss and accuracy."""
  grad_fn = nnx.value_and_grad(loss_and_accuracy, has_aux=True)
  (loss, accuracy), grads = grad_fn(model, x, y)
  optimizer.update(model, grads)
  return loss, accuracy


def make_optimizer(
    model: nnx.Module, learning_rate: Any,
    tx_factory: Callable[[Any], optax.GradientTransformation],
) -> nnx.Optimizer:
  # inject_hyperparams makes the base learning rate a leaf of the optimizer
  # state, so configurations with different rates can be vmapped together.
  tx = optax.inject_hyperparams(tx_factory)(learning_rate=learning_rate)
  return nnx.Optimizer(model, tx, wrt=nnx.Param)


def make_model(model_class: type[nnx.Module], seed: Any) -> nnx.Module:
  return model_class(nnx.Rngs(jax.random.key(seed)))


def epoch_batches(key: jax.Array, num_examples: int,
                  batch_size: int) -> jax.Array:
  """A fresh random order of the examples, cut into full batches."""
  steps = num_examples // batch_size
  order = jax.random.permutation(key, num_examples)[: steps * batch_size]
  return order.reshape(steps, batch_size)


# --------------------------------------------------------------------------
# Training a sweep: all (seed, learning rate) configurations of one method.
# --------------------------------------------------------------------------


class Sweep(NamedTuple):
  """The trainable state of all configurations of one method, stacked.

  Attributes:
    state: ``nnx.state((model, optimizer))`` with a leading config axis.
    data_keys: the data-order RNG key of each config, shape=(configs, 2).
  """

  state: nnx.State
  data_keys: jax.Array


@dataclasses.dataclass(frozen=True)
class SweepPlan:
  """What one sweep trains: a method on a grid of seeds x learning rates."""

  method: Method
  model_class: type[nnx.Module]
  seeds: tuple[int, ...]
  learning_rates: tuple[float, ...]
  batch_size: int
  epochs: int
  steps_per_epoch: int
  anchor_dtype: Any = None

  @property
  def configs(self) -> list[tuple[int, float]]:
    return [(s, lr) for s in self.seeds for lr in self.learning_rates]

  def tx_factory(self, learning_rate: Any) -> optax.GradientTransformation:
    return self.method.make(learning_rate, self.epochs * self.steps_per_epoch,
                            self.batch_size, self.anchor_dtype)


def graphdef_of(plan: SweepPlan) -> Any:
  """The static structure of (model, optimizer), shared by every config."""
  def build():
    model = make_model(plan.model_class, 0)
    return model, make_optimizer(model, jnp.float32(1), plan.tx_factory)
  return nnx.graphdef(nnx.eval_shape(build))


@functools.lru_cache(maxsize=None)
def initial_models(model_class: type[nnx.Module],
                   seeds: tuple[int, ...]) -> tuple[Any, nnx.State]:
  """One freshly initialised model per seed, stacked; built once per process
  (initialisers compile slowly on a CPU) and shared by every method."""
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: make_model(model_class, 0)))
  init = jax.vmap(lambda seed: nnx.state(make_model(model_class, seed)))
  return graphdef, jax.jit(init)(jnp.array(seeds, jnp.uint32))


def init_sweep(plan: SweepPlan) -> Sweep:
  """Initialises every config; its seed fixes the init and the data order."""
  model_graphdef, by_seed = initial_models(plan.model_class, plan.seeds)
  per_config = jax.tree.map(  # configs are seed-major, like plan.configs
      lambda a: jnp.repeat(a, len(plan.learning_rates), axis=0), by_seed)

  def init_one(model_state, learning_rate):
    model = nnx.merge(model_graphdef, model_state)
    optimizer = make_optimizer(model, learning_rate, plan.tx_factory)
    return nnx.state((model, optimizer))

  rates = jnp.array([lr for _, lr in plan.configs], jnp.float32)
  state = jax.jit(jax.vmap(init_one))(per_config, rates)
  seeds = jnp.array([s for s, _ in plan.configs], jnp.uint32)
  data_keys = jax.vmap(lambda s: jax.random.PRNGKey(1000 + s))(seeds)
  return Sweep(state, data_keys)


def make_epoch_fn(plan: SweepPlan, graphdef: Any) -> Callable[..., Any]:
  """Returns ``epoch(sweep, train, held_out, val_chunks) -> (sweep, metrics)``.

  It trains every config for one epoch (``jax.lax.scan`` over the batches,
  ``jax.vmap`` over the configs), then evaluates each on ``held_out``: the
  validation chunks followed by the test chunks (see :func:`in_chunks`), so
  that one evaluation compiles for both. ``metrics`` maps each name of
  ``METRICS`` to a per-config array; the train numbers average the epoch's
  batches.
  """

  def train_one(state, data_key, x, y):
    data_key, order_key = jax.random.split(data_key)
    batches = epoch_batches(order_key, x.shape[0], plan.batch_size)

    def step(state, batch):
      model, optimizer = nnx.merge(graphdef, state)
      loss, accuracy = train_step(model, optimizer, x[batch], y[batch])
      return nnx.state((model, optimizer)), (loss, accuracy)

    state, (losses, accuracies) = jax.lax.scan(step, state, batches)
    return state, data_key, losses.mean(), accuracies.mean()

  def evaluate_one(state, split):
    model, _ = nnx.merge(graphdef, state)

    def on_chunk(chunk):
      x, y, weight = chunk
      logits = model(x)
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
      correct = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
      return jnp.sum(weight * losses), jnp.sum(weight * correct)

    return jax.lax.map(on_chunk, split)  # per-chunk sums

  @functools.partial(jax.jit, static_argnames="val_chunks")
  def epoch(sweep: Sweep, train, held_out, val_chunks: int):
    state, data_keys, train_loss, train_accuracy = jax.vmap(
        train_one, in_axes=(0, 0, None, None))(sweep.state, sweep.data_keys,
                                               *train)
    sums = jax.vmap(evaluate_one, in_axes=(0, None))(state, held_out)
    weight = held_out[2].sum(axis=1)
    mean_of = lambda part: (jnp.sum(sums[0][:, part], axis=1)
                            / jnp.sum(weight[part]),
                            jnp.sum(sums[1][:, part], axis=1)
                            / jnp.sum(weight[part]))
    val_loss, val_accuracy = mean_of(slice(None, val_chunks))
    test_loss, test_accuracy = mean_of(slice(val_chunks, None))
    metrics = dict(zip(METRICS, (train_loss, train_accuracy, val_loss,
                                 val_accuracy, test_loss, test_accuracy)))
    return Sweep(state, data_keys), metrics

  return epoch


@functools.lru_cache(maxsize=None)
def compiled_for(plan: SweepPlan) -> Callable[..., Any]:
  """The epoch function of a plan, built (and compiled) once per process."""
  return make_epoch_fn(plan, graphdef_of(plan))


def in_chunks(x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, ...]:
  """Cuts a split into chunks of ``EVAL_CHUNK``; padding has weight 0."""
  chunks = -(-len(x) // EVAL_CHUNK)
  pad = chunks * EVAL_CHUNK - len(x)
  weight = np.concatenate([np.ones(len(x)), np.zeros(pad)]).astype(np.float32)
  x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
  y = np.concatenate([y, np.zeros(pad, y.dtype)])
  return (jnp.asarray(x.reshape(chunks, EVAL_CHUNK, *x.shape[1:])),
          jnp.asarray(y.reshape(chunks, EVAL_CHUNK)),
          jnp.asarray(weight.reshape(chunks, EVAL_CHUNK)))


# --------------------------------------------------------------------------
# Checkpointing with orbax: model, optimizer state, data-order RNG, history.
# --------------------------------------------------------------------------

def empty_history(plan: SweepPlan) -> dict[str, np.ndarray]:
  shape = (plan.epochs, len(plan.configs))
  return {name: np.full(shape, np.nan, np.float32) for name in METRICS}


def checkpoint_manager(directory: str, plan: SweepPlan) -> Any:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  slug = "".join(c if c.isalnum() else "_" for c in plan.method.name)
  path = os.path.abspath(os.path.join(directory, f"{slug}_bs{plan.batch_size}"))
  return ocp.CheckpointManager(
      path, options=ocp.CheckpointManagerOptions(max_to_keep=2))


def save_checkpoint(manager: Any, epoch: int, sweep: Sweep,
                    history: dict[str, np.ndarray]) -> None:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  tree = {"leaves": jax.tree.leaves(sweep), "history": history}
  manager.save(epoch, args=ocp.args.StandardSave(tree))
  manager.wait_until_finished()


def restore_checkpoint(manager: Any, template: Sweep,
                       history: dict[str, np.ndarray]) -> tuple[Any, ...]:
  """Returns ``(epochs done, sweep, history)`` of the latest checkpoint."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  epoch = manager.latest_step()
  if epoch is None:
    return 0, template, history
  target = {"leaves": jax.tree.leaves(template), "history": history}
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  restored = manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
  sweep = jax.tree.unflatten(jax.tree.structure(template), restored["leaves"])
  return epoch, sweep, {k: np.asarray(v) for k, v in
                        restored["history"].items()}


# --------------------------------------------------------------------------
# The sweep loop.
# --------------------------------------------------------------------------


def train_sweep(
    plan: SweepPlan,
    data: Dataset,
    *,
    checkpoint_dir: str | None = None,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    progress: Any = None,
) -> tuple[Sweep, dict[str, np.ndarray]]:
  """Trains all configs of ``plan``; returns the final sweep and history.

  ``history[metric]`` has shape ``(epochs, configs)``; the train numbers are
  averages over the epoch's batches, the others are measured at its end.
  ``stop_after_epoch`` ends early (it simulates an interrupted run).
  """
  epoch_fn = compiled_for(plan)
  train = (jnp.asarray(data.train_x), jnp.asarray(data.train_y))
  val, test = in_chunks(data.val_x, data.val_y), in_chunks(data.test_x,
                                                           data.test_y)
  held_out = tuple(jnp.concatenate(pair) for pair in zip(val, test))
  sweep, history, start = init_sweep(plan), empty_history(plan), 0
  manager = checkpoint_dir and checkpoint_manager(checkpoint_dir, plan)
  if manager and resume:
    start, sweep, history = restore_checkpoint(manager, sweep, history)
  if progress is not None:
    progress.update(start)
  for epoch in range(start, plan.epochs):
    if stop_after_epoch is not None and epoch >= stop_after_epoch:
      break
    sweep, metrics = epoch_fn(sweep, train, held_out,
                              val_chunks=val[0].shape[0])
    for name, values in metrics.items():
      history[name][epoch] = np.asarray(values)
    if manager:
      save_checkpoint(manager, epoch + 1, sweep, history)
    if progress is not None:
      progress.update(1)
  if manager:
    manager.close()
  return sweep, history


# --------------------------------------------------------------------------
# Picking each method's rate by validation accuracy, and comparing.
# --------------------------------------------------------------------------


def summarize(plan: SweepPlan, history: dict[str, np.ndarray]) -> dict:
  """Final-epoch numbers per rate, and the rate validation accuracy picks."""
  final = {name: values[-1].reshape(len(plan.seeds), -1)
           for name, values in history.items()}  # (seeds, rates)
  val_mean = final["val_accuracy"].mean(axis=0)
  picked = int(np.argmax(val_mean))
  test = final["test_accuracy"]
  best_test = test.mean(axis=0).max()
  return {
      "method": plan.method.name,
      "batch_size": plan.batch_size,
      "learning_rates": list(plan.learning_rates),
      "val_accuracy_mean": val_mean.tolist(),
      "test_accuracy_mean": test.mean(axis=0).tolist(),
      "test_accuracy_std": test.std(axis=0).tolist(),
      "picked": picked,
      "picked_learning_rate": plan.learning_rates[picked],
      "picked_at_grid_edge": picked in (0, len(plan.learning_rates) - 1),
      "test_accuracy_per_seed": test[:, picked].tolist(),
      "test_loss_mean": float(final["test_loss"][:, picked].mean()),
      "rates_within_2_points": int(np.sum(test.mean(axis=0)
                                          >= best_test - 0.02)),
  }


def verdict(ours: dict, theirs: dict) -> str:
  """TR minus a baseline, paired by seed (same init and data order)."""
  diff = (np.array(ours["test_accuracy_per_seed"])
          - np.array(theirs["test_accuracy_per_seed"]))
  if len(diff) < 2:
    return f"{100 * diff.mean():+.1f} (1 seed)"
  error = diff.std(ddof=1) / math.sqrt(len(diff))
  word = ("win" if diff.mean() > 2 * error else
          "loss" if diff.mean() < -2 * error else "tie")
  return f"{100 * diff.mean():+.1f} ± {100 * error:.1f}: {word}"


def percent(mean: float, std: float) -> str:
  return f"{100 * mean:.1f} ± {100 * std:.1f}"


def results_table(summaries: list[dict]) -> str:
  """The markdown table of one batch size."""
  lines = ["| Method | picked lr | test acc. (%) | val acc. (%) | test loss |"
           " rates within 2 pts |",
           "|---|---|---|---|---|---|"]
  for s in summaries:
    i = s["picked"]
    edge = " (grid edge)" if s["picked_at_grid_edge"] else ""
    lines.append(
        f"| {s['method']} | {s['picked_learning_rate']:.3g}{edge} |"
        f" {percent(s['test_accuracy_mean'][i], s['test_accuracy_std'][i])} |"
        f" {100 * s['val_accuracy_mean'][i]:.1f} |"
        f" {s['test_loss_mean']:.3f} |"
        f" {s['rates_within_2_points']}/{len(s['learning_rates'])} |")
  return "\n".join(lines)


def sensitivity_table(summaries: list[dict]) -> str:
  """Test accuracy at every rate of the grid (offsets from the centre)."""
  size = len(summaries[0]["learning_rates"])
  header = " | ".join(f"grid {j + 1}" for j in range(size))
  lines = [f"| Method | {header} |", "|---" * (size + 1) + "|"]
  for s in summaries:
    cells = " | ".join(
        f"{100 * m:.1f} @ {lr:.2g}"
        for m, lr in zip(s["test_accuracy_mean"], s["learning_rates"]))
    lines.append(f"| {s['method']} | {cells} |")
  return "\n".join(lines)


def comparison_table(summaries: list[dict]) -> str:
  """Paired test-accuracy differences, TR method minus each baseline."""
  by_name = {s["method"]: s for s in summaries}
  ours = [n for n in ("TRSGD", "TRAdam") if n in by_name]
  theirs = [n for n in by_name if n not in ours]
  if not ours or not theirs:
    return ""
  lines = ["| TR method minus | " + " | ".join(theirs) + " |",
           "|---" * (len(theirs) + 1) + "|"]
  for name in ours:
    cells = " | ".join(verdict(by_name[name], by_name[t]) for t in theirs)
    lines.append(f"| {name} | {cells} |")
  return "\n".join(lines)


# --------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------


def pyplot() -> Any:
  """matplotlib's pyplot, drawing to files only."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save(plt: Any, figure: Any, path: str) -> None:
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def plot_curves(path: str, runs: list[dict], summaries: list[dict]) -> None:
  """Train/test loss and accuracy per epoch at each method's picked rate."""
  plt = pyplot()
  figure, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
  panels = (("train_loss", "train loss"), ("test_loss", "test loss"),
            ("train_accuracy", "train accuracy"),
            ("test_accuracy", "test accuracy"))
  for s in summaries:
    picked = [r for r in runs if r["method"] == s["method"]
              and r["batch_size"] == s["batch_size"]
              and r["learning_rate"] == s["picked_learning_rate"]]
    for ax, (metric, title) in zip(axes.flat, panels):
      values = np.array([r["history"][metric] for r in picked], float)
      epochs = np.arange(1, values.shape[1] + 1)
      ax.plot(epochs, values.mean(axis=0),
              label=f"{s['method']} (lr {s['picked_learning_rate']:.2g})")
      ax.set_title(title)
  for ax in axes[0]:
    ax.set_yscale("log")
  for ax in axes[1]:
    ax.set_xlabel("epoch")
  axes[1][1].legend(fontsize=8)
  figure.suptitle(f"Each method at its validation-picked rate, batch"
                  f" {summaries[0]['batch_size']}, mean over seeds")
  save(plt, figure, path)


def plot_lr_sensitivity(path: str, summaries: list[dict]) -> None:
  """Final test accuracy against the learning rate, one line per method."""
  plt = pyplot()
  families = (("SGD family", lambda n: "Adam" not in n),
              ("Adam family", lambda n: "Adam" in n))
  figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
  for ax, (title, member) in zip(axes, families):
    for s in summaries:
      if member(s["method"]):
        ax.errorbar(s["learning_rates"], 100 * np.array(
            s["test_accuracy_mean"]), yerr=100 * np.array(
                s["test_accuracy_std"]), marker="o", capsize=3,
                    label=s["method"])
    ax.set_xscale("log")
    ax.set_xlabel("base learning rate")
    ax.set_title(title)
    ax.legend(fontsize=8)
  axes[0].set_ylabel("final test accuracy (%)")
  figure.suptitle(f"Learning-rate sensitivity, batch"
                  f" {summaries[0]['batch_size']} (mean ± std over seeds)")
  save(plt, figure, path)


def plot_batch_sizes(path: str, summaries: list[dict]) -> None:
  """Test accuracy at the picked rate against the batch size."""
  plt = pyplot()
  figure, ax = plt.subplots(figsize=(6.5, 4.5))
  for name in dict.fromkeys(s["method"] for s in summaries):
    rows = sorted((s for s in summaries if s["method"] == name),
                  key=lambda s: s["batch_size"])
    means = [100 * s["test_accuracy_mean"][s["picked"]] for s in rows]
    stds = [100 * s["test_accuracy_std"][s["picked"]] for s in rows]
    ax.errorbar([s["batch_size"] for s in rows], means, yerr=stds,
                marker="o", capsize=3, label=name)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("batch size")
  ax.set_ylabel("test accuracy at the picked rate (%)")
  ax.legend(fontsize=8)
  save(plt, figure, path)


# --------------------------------------------------------------------------
# The command line.
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--dataset", choices=sorted(DATASETS),
                      default="mnist1d")
  parser.add_argument("--batch-size", type=int, default=8)
  parser.add_argument("--batch-sizes", default=None,
                      help="comma-separated batch sizes to sweep, e.g."
                      " 2,8,32,128 (overrides --batch-size)")
  parser.add_argument("--epochs", type=int, default=None,
                      help="default 16 (--quick: 2)")
  parser.add_argument("--seeds", type=int, default=None,
                      help="number of seeds; default 3 (--quick: 1)")
  parser.add_argument("--grid", type=int, default=None,
                      help="learning rates per method; default 7 (--quick: 3)")
  parser.add_argument("--grid-factor", type=float, default=3.0,
                      help="ratio between neighbouring rates of the grid")
  parser.add_argument("--methods", default=None,
                      help="comma-separated subset of: "
                      + ", ".join(m.name for m in METHODS))
  parser.add_argument("--anchor-dtype", choices=("float32", "bfloat16"),
                      default="float32", help="dtype of TR's anchor")
  parser.add_argument("--quick", action="store_true",
                      help="a smoke run: 2 epochs, 1 seed, 3 rates")
  parser.add_argument("--out", default="results")
  parser.add_argument("--checkpoint-dir", default=None,
                      help="save every sweep's state there after each epoch")
  parser.add_argument("--resume", action="store_true",
                      help="continue from the checkpoints in --checkpoint-dir")
  parser.add_argument("--stop-after-epoch", type=int, default=None,
                      help=argparse.SUPPRESS)  # simulates an interruption
  args = parser.parse_args(argv)
  defaults = (2, 1, 3) if args.quick else (16, 3, 7)
  for name, default in zip(("epochs", "seeds", "grid"), defaults):
    if getattr(args, name) is None:
      setattr(args, name, default)
  if args.resume and not args.checkpoint_dir:
    parser.error("--resume needs --checkpoint-dir")
  return args


def selected_methods(names: str | None) -> list[Method]:
  if not names:
    return list(METHODS)
  by_name = {m.name: m for m in METHODS}
  unknown = [n for n in names.split(",") if n not in by_name]
  if unknown:
    raise SystemExit(f"unknown method(s) {unknown}; choose from"
                     f" {list(by_name)}")
  return [by_name[n] for n in names.split(",")]


def machine() -> str:
  return (f"{platform.processor() or platform.machine()}, {os.cpu_count()}"
          f" CPU cores, jax {jax.__version__} on {jax.devices()[0].platform}")


def runs_of(plan: SweepPlan, history: dict[str, np.ndarray]) -> list[dict]:
  """One record per (seed, rate) config, with its per-epoch history."""
  as_list = lambda a: [None if math.isnan(v) else float(v) for v in a]
  return [{"method": plan.method.name, "batch_size": plan.batch_size,
           "seed": seed, "learning_rate": lr,
           "history": {name: as_list(values[:, index])
                       for name, values in history.items()}}
          for index, (seed, lr) in enumerate(plan.configs)]


def main(argv: list[str] | None = None) -> dict:
  args = parse_args(argv)
  load_data, model_class = DATASETS[args.dataset]
  data = load_data()
  batch_sizes = ([int(b) for b in args.batch_sizes.split(",")]
                 if args.batch_sizes else [args.batch_size])
  methods = selected_methods(args.methods)
  anchor_dtype = jnp.bfloat16 if args.anchor_dtype == "bfloat16" else None
  plans = [
      SweepPlan(method, model_class, tuple(range(args.seeds)),
                tuple(learning_rate_grid(method, args.grid,
                                         args.grid_factor)),
                batch_size, args.epochs, len(data.train_x) // batch_size,
                anchor_dtype)
      for batch_size in batch_sizes for method in methods]
  start = time.perf_counter()
  runs, summaries = [], []
  with tqdm.tqdm(total=len(plans) * args.epochs, unit="epoch",
                 desc="training") as progress:
    for plan in plans:
      progress.set_postfix_str(f"{plan.method.name}, batch {plan.batch_size}")
      _, history = train_sweep(plan, data, checkpoint_dir=args.checkpoint_dir,
                               resume=args.resume,
                               stop_after_epoch=args.stop_after_epoch,
                               progress=progress)
      runs.extend(runs_of(plan, history))
      summaries.append(summarize(plan, history))
  wall = time.perf_counter() - start
  if args.stop_after_epoch is not None:
    print(f"stopped after epoch {args.stop_after_epoch}; continue with"
          " --resume")
    return {}

  command = "python examples/small_batch.py " + " ".join(
      sys.argv[1:] if argv is None else argv)
  header = (
      f"Command: `{command.strip()}`  \n"
      f"Data: {args.dataset} ({len(data.train_x)} train / {len(data.val_x)}"
      f" validation / {len(data.test_x)} test), model {model_class.__name__}"
      f"  \nTraining: {args.epochs} epochs, weight decay {WEIGHT_DECAY}, lr"
      " x0.1 at 50% and 75%; each method's rate picked from"
      f" {args.grid} values {args.grid_factor:g}x apart by final validation"
      f" accuracy; test accuracy mean ± std over {args.seeds} seed(s);"
      f" TR anchor dtype {args.anchor_dtype}  \n"
      f"Machine: {machine()}; wall time {wall:.0f} s")
  sections = [f"# Small-batch comparison\n\n{header}"]
  for batch_size in batch_sizes:
    rows = [s for s in summaries if s["batch_size"] == batch_size]
    sections.append(f"## Batch size {batch_size}\n\n{results_table(rows)}")
    sections.append("Test accuracy (%) at each learning rate of the grid:"
                    f"\n\n{sensitivity_table(rows)}")
    comparison = comparison_table(rows)
    if comparison:
      sections.append(
          "TR minus each tuned baseline, test accuracy points, paired by"
          " seed (mean ± standard error; win/loss when beyond 2 standard"
          f" errors, else tie):\n\n{comparison}")
  markdown = "\n\n".join(sections) + "\n"

  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write(markdown)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump({"config": {**vars(args), "machine": machine(),
                          "wall_seconds": wall,
                          "weight_decay": WEIGHT_DECAY},
               "summaries": summaries, "runs": runs}, f, indent=1)
  main_rows = [s for s in summaries if s["batch_size"] == batch_sizes[0]]
  plot_curves(os.path.join(args.out, "curves.png"), runs, main_rows)
  plot_lr_sensitivity(os.path.join(args.out, "lr_sensitivity.png"),
                      main_rows)
  if len(batch_sizes) > 1:
    plot_batch_sizes(os.path.join(args.out, "batch_sizes.png"), summaries)
  print(markdown)
  print(f"wall time: {wall:.1f} s; outputs in {args.out}/")
  return {"summaries": summaries, "runs": runs, "wall_seconds": wall}


if __name__ == "__main__":
  main()
