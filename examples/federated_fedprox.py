r"""FedProx against FedAvg with stragglers, in the paper's regime.

FedProx (Li et al., MLSys 2020) trains each sampled client on its loss
plus ``mu/2 ||w - w_server||^2``, here

  optax.chain(optax_prox.proximal_regularize(mu, period=None),
              optax.sgd(learning_rate))

anchored at the server's model each round (``optax_prox.set_anchor``).
Each round the server samples 10 clients, of whom 0%, 50% or 90% straggle:
they manage only 1 to E - 1 of their E = 20 local epochs. FedAvg drops
them; FedProx (mu = 0 included) averages their partial work. The data are
the paper's synthetic(alpha, beta) sets (``anchors_lib/synthetic.py``)
and, not the paper's, digits dealt two classes a client to a small CNN.
Rates and mu are picked on validation, verdicts come from fresh seeds
(``anchors_lib/fedprox.py``, ``examples/evidence.py``).

  python -m examples.federated_fedprox --out docs/results   # make fedprox
  python -m examples.federated_fedprox --quick --out /tmp/fedprox

A round is one jitted computation: ``jax.vmap`` over the data sets, the
runs (stragglers x methods x rates) and the sampled clients,
``jax.lax.fori_loop`` over the local steps. The synthetic sets one seed
draws share their devices' sizes, hence who is sampled, who straggles and
which minibatch positions each client draws, so they train in one job;
the runs share each client's minibatches; the clients, longest budget
first, train in phases of halving width, so that finished clients cost
little.
"""

import functools
import json
import operator
import os
import sys
import time
from typing import NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from examples import evidence
from examples import models
from examples.anchors_lib import evaluation
from examples.anchors_lib import fedprox as report
from examples.anchors_lib import synthetic
from examples.study_lib import data as data_lib
import optax_prox

BATCH_SIZE = 10
DIGIT_CLIENTS = 20


# Data: the paper's synthetic devices, or digits dealt two classes a client.
def partition(y: np.ndarray, seed: int) -> list[np.ndarray]:
  """Each client's examples (indices into ``y``), two classes each.

  Client ``c`` holds class ``c % 10`` and a random other one; each class
  is cut at random points among the clients that hold it.
  """
  rng = np.random.default_rng(seed)
  first = np.arange(DIGIT_CLIENTS) % 10
  second = (first + rng.integers(1, 10, DIGIT_CLIENTS)) % 10
  shares = [[] for _ in range(DIGIT_CLIENTS)]
  for c in range(10):
    holders = np.flatnonzero((first == c) | (second == c))
    examples = rng.permutation(np.flatnonzero(y == c))
    cuts = rng.choice(np.arange(1, len(examples)), len(holders) - 1, False)
    for holder, part in zip(holders, np.split(examples, np.sort(cuts))):
      shares[holder].append(part)
  return [np.concatenate(share) for share in shares]


def load(setting: report.Setting, seed: int) -> synthetic.Shards:
  """The seed's own federation: its synthetic draw, or its digits split."""
  if setting.paper:
    return synthetic.generate(setting.alpha, setting.beta, setting.iid, seed)
  data = data_lib.load_mnist_digits(data_lib.split_of(seed))
  shares = partition(data.train_y, seed)
  held = np.stack([np.resize(s, len(data.train_y)) for s in shares])
  return synthetic.Shards(data, held, np.array([len(s) for s in shares]))


def schedule(setting, configs, seed: int, counts: np.ndarray) -> tuple:
  """Who trains each round, and how many local steps each run gives them.

  As in the reference, every method sees the same sampled clients and
  stragglers; a straggler manages 1 to E - 1 of its E epochs (FedAvg gives
  it none: it is dropped), and the stragglers of a smaller fraction are
  among those of a larger one.

  Returns:
    ``(rounds, clients)`` sampled devices, ``(rounds, runs, clients)``
    local steps.
  """
  rng = np.random.default_rng([seed, 2])
  shape = (setting.rounds, setting.clients)
  selected = np.stack(
    [rng.choice(len(counts), shape[1], False) for _ in range(shape[0])]
  )
  order = rng.permuted(np.tile(np.arange(shape[1]), (shape[0], 1)), axis=1)
  partial = rng.integers(1, setting.local, shape)
  per_epoch = -(-counts // BATCH_SIZE)  # a digits "epoch" is one step:
  per_epoch = per_epoch if setting.paper else np.ones_like(counts)
  steps = []
  for c in configs:
    late = order < round(c.fraction * shape[1])
    epochs = np.where(late, 0 if c.drop else partial, setting.local)
    steps.append(epochs * per_epoch[selected])
  return selected, np.stack(steps, axis=1).astype(np.int32)


# Models: multinomial logistic regression, or the digits CNN.
MODELS = {
  "linear": lambda rngs: nnx.Linear(
    synthetic.DIMENSION, synthetic.CLASSES, rngs=rngs
  ),
  "cnn": models.Cnn2d,
}


@functools.cache
def graphdef(model: str) -> nnx.GraphDef:
  """The structure of ``model``."""
  return nnx.graphdef(nnx.eval_shape(lambda: MODELS[model](nnx.Rngs(0))))


def loss_fn(model: str, params, x: jax.Array, y: jax.Array) -> jax.Array:
  """The mean cross-entropy of the model on a batch.

  With one-hot labels: the gradient of an integer-label lookup is a
  scatter, slower in a vmapped step on CPU than this dense product.
  """
  logits = nnx.merge(graphdef(model), params)(x)
  labels = jax.nn.one_hot(y, logits.shape[-1])
  return optax.softmax_cross_entropy(logits, labels).mean()


class Runs(NamedTuple):
  """A job's runs, stacked: their servers' models and hyper-parameters."""

  servers: nnx.State
  mu: jax.Array  # the pull's strength; 0: FedAvg's local solver
  rate: jax.Array  # the SGD learning rate


class Clients(NamedTuple):
  """A round's sampled clients, the same in every run; stacked."""

  held: jax.Array  # (clients, most): their examples, indices into x, padded
  counts: jax.Array  # how many of them are real
  keys: jax.Array  # their minibatches, drawn with replacement


# A round: the sampled clients train, every run's at once; servers average.
def optimizer(mu, rate) -> optax.GradientTransformation:
  """A client's solver: SGD on its loss plus FedProx's pull ``mu (w - a)``."""
  return optax.chain(
    optax_prox.proximal_regularize(mu, period=None), optax.sgd(rate)
  )


def phases(width: int) -> list[int]:
  """How many clients each phase trains: all, then half, ..., one."""
  sizes = [width]
  while sizes[-1] > 1:
    sizes.append((sizes[-1] + 1) // 2)
  return sizes


def local_training(model, runs: Runs, budgets, clients: Clients, x, y):
  """Every run's clients, each after its local steps.

  Client ``c`` of run ``r`` starts from the run's server model ``a`` and
  takes ``budgets[r, c]`` SGD steps with FedProx's pull ``mu (w - a)``
  added to the gradient, on minibatches of its examples: the same ones in
  every run, so that the runs share each step's inputs. The clients step
  together (``jax.vmap``), and a step costs as much for a client that is
  done as for one that is not; so they are sorted by their longest budget
  and train in phases of halving width, each phase ending once every
  client it leaves out is done.

  Returns:
    The clients' parameters, stacked ``(runs, clients)``.
  """
  order = jnp.argsort(-budgets.max(axis=0))
  budgets = budgets[:, order].T  # (clients, runs), longest first
  clients = jax.tree.map(lambda a: a[order], clients)
  start = lambda w, mu, rate: optax_prox.set_anchor(
    optimizer(mu, rate).init(w), w
  )
  carry = jax.tree.map(
    lambda a: jnp.broadcast_to(a, (len(order), *a.shape)),
    (runs.servers, jax.vmap(start)(*runs)),
  )

  def step(t, carry, held, count, key, budget):
    batch = held[
      jax.random.randint(jax.random.fold_in(key, t), (BATCH_SIZE,), 0, count)
    ]
    inputs, labels = x[batch], y[batch]  # every run's

    def one_run(params, opt_state, mu, rate, budget):
      grads = jax.grad(loss_fn, argnums=1)(model, params, inputs, labels)
      updates, opt_state = optimizer(mu, rate).update(grads, opt_state, params)
      stepped = optax.apply_updates(params, updates)
      keep = lambda new, old: jnp.where(t < budget, new, old)
      return jax.tree.map(keep, stepped, params), opt_state

    return jax.vmap(one_run)(*carry, runs.mu, runs.rate, budget)

  def phase(carry, n, begin, end):  # the first n clients' steps begin..end
    head = lambda tree: jax.tree.map(lambda a: a[:n], tree)
    fixed = head((*clients, budgets))
    every = lambda t, c: jax.vmap(step, (None, 0, 0, 0, 0, 0))(t, c, *fixed)
    trained = jax.lax.fori_loop(begin, end, every, head(carry))
    return jax.tree.map(lambda a, b: a.at[:n].set(b), carry, trained)

  longest, sizes = budgets.max(axis=1), phases(len(order))
  ends = [*(longest[n] for n in sizes[1:]), longest[0]]
  for n, begin, end in zip(sizes, [0, *ends[:-1]], ends):
    carry = phase(carry, n, begin, end)
  unsorted = jnp.argsort(order)
  return jax.tree.map(lambda a: jnp.swapaxes(a[unsorted], 0, 1), carry[0])


def aggregate(server, params, budgets, counts):
  """The average of the clients that trained, weighted by their examples."""
  weights = jnp.where(budgets > 0, counts, 0).astype(jnp.float32)
  total = jnp.sum(weights)
  average = lambda p, s: jnp.where(
    total > 0, jnp.tensordot(weights, p, 1) / jnp.maximum(total, 1), s
  )
  return jax.tree.map(average, params, server)


@functools.partial(jax.jit, static_argnums=0)
def federated_round(model, runs: Runs, budgets, clients: Clients, x, y):
  """Every run's round on every data set: clients train, servers average.

  ``runs`` and the pooled data ``x``, ``y`` have a leading axis of data
  sets, which share ``budgets``, ``(runs, clients)`` local steps (0: the
  client is dropped), and ``clients``.
  """

  def on(runs, x, y):
    params = local_training(model, runs, budgets, clients, x, y)
    servers = jax.vmap(aggregate, (0, 0, 0, None))(
      runs.servers, params, budgets, clients.counts
    )
    return runs._replace(servers=servers)

  return jax.vmap(on)(runs, x, y)


def train(job: report.Job) -> dict[str, np.ndarray]:
  """Trains a job's runs together on its seed's federations.

  Returns:
    ``val``, ``test`` (accuracy, %) and ``train_loss``, each ``(data sets,
    runs, evaluations)``: before the first round and after each. Without
    ``job.curves`` (tuning), only ``val``, after the last
    :data:`report.LAST_ROUNDS` rounds: tuning computes no test accuracy.

  Raises:
    ValueError: if the job's data sets hold different devices.
  """
  first, configs = job.settings[0], job.configs[0]
  shards = [load(s, job.seed) for s in job.settings]
  devices = lambda shard: (shard.held.tobytes(), shard.counts.tobytes())
  for s, other in zip(job.settings[1:], shards[1:]):
    if devices(other) != devices(shards[0]):
      raise ValueError(
        f"job: {s.name} and {first.name} drawn by seed {job.seed} hold"
        " different devices; train them in separate jobs."
      )
  selected, steps = schedule(first, configs, job.seed, shards[0].counts)
  init = nnx.state(MODELS[first.model](nnx.Rngs(job.seed)))
  shape = (len(job.settings), len(configs))
  each = lambda field: jnp.array(
    [[getattr(c, field) for c in runs] for runs in job.configs], jnp.float32
  )
  runs = Runs(
    jax.tree.map(lambda w: jnp.broadcast_to(w, (*shape, *w.shape)), init),
    each("mu"),
    each("rate"),
  )
  x, y = (jnp.stack([s.data[i] for s in shards]) for i in (0, 1))
  real = shards[0].counts.sum()  # the rest pads the synthetic pool
  held_out = [
    evaluation.held_out(
      {"val": (s.data.val_x, s.data.val_y)}
      | (
        {
          "test": (s.data.test_x, s.data.test_y),
          "train": (s.data.train_x[:real], s.data.train_y[:real]),
        }
        if job.curves
        else {}
      )
    )
    for s in shards
  ]
  structure = graphdef(first.model)
  evaluate = lambda: [
    evaluation.evaluate_models(
      jax.tree.map(operator.itemgetter(d), runs.servers),
      structure,
      parts,
      chunks,
    )
    for d, (chunks, parts) in enumerate(held_out)
  ]
  first_kept = 0 if job.curves else first.rounds + 1 - report.LAST_ROUNDS
  history = [evaluate()] if first_kept == 0 else []
  for r, chosen in enumerate(selected):
    key = jax.random.fold_in(jax.random.key(job.seed), r)
    clients = Clients(
      shards[0].held[chosen],
      shards[0].counts[chosen],
      jax.random.split(key, first.clients),
    )
    runs = federated_round(first.model, runs, steps[r], clients, x, y)
    if r + 1 >= first_kept:
      history.append(evaluate())
  history = jax.device_get(history)  # [evaluation][data set][split]
  series = lambda split, i, scale: np.moveaxis(
    [[scale * d[split][i] for d in h] for h in history], 0, -1
  )
  out = {"val": series("val", 1, 100)}
  if job.curves:
    out |= {"test": series("test", 1, 100), "train_loss": series("train", 0, 1)}
  return out


def main(argv: list[str] | None = None) -> dict:
  """Tunes, plans, confirms; writes ``fedprox.json``, ``.md`` and figures.

  Args:
    argv: the command-line arguments; default ``sys.argv[1:]``.

  Returns:
    The record.
  """
  args = evidence.story_arguments(
    argv, __doc__.split("\n")[0], "results/fedprox", "FedProx block"
  )
  if args.render:
    with open(os.path.join(args.out, "fedprox.json")) as f:
      record = json.load(f)
    report.write(args.out, record, args.summary)
    return record
  design = report.QUICK if args.quick else report.FULL
  started = time.perf_counter()
  run = lambda jobs: evidence.run_jobs(train, jobs, args.workers)
  tuning = report.tuning_jobs(design)
  picked = report.picks(design, report.collect(tuning, run(tuning)))
  plans = report.plan(design, picked)
  confirmation = report.confirmation_jobs(design, picked, plans)
  results = run(confirmation)
  argv = sys.argv[1:] if argv is None else argv
  command = " ".join(["python -m examples.federated_fedprox", *argv])
  record = report.record(
    design,
    picked,
    plans,
    confirmation,
    results,
    command=command,
    seconds=time.perf_counter() - started,
  )
  report.write(args.out, record, args.summary)
  return record


if __name__ == "__main__":
  main()
