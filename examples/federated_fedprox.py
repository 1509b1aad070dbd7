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

A round is one jitted computation: ``jax.vmap`` over the runs (stragglers
x methods x rates) and the sampled clients, a ``jax.lax.fori_loop`` over
the local steps, in which each client stops at its own step budget.
"""

import functools
import json
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
  """The mean cross-entropy of the model on a batch."""
  logits = nnx.merge(graphdef(model), params)(x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


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


# A client's round: `budget` SGD steps from the server's model, pulled to it.
def local_training(model, server, mu, rate, budget, client, length, x, y):
  """One client's parameters after ``budget`` of the round's ``length`` steps.

  Each step is SGD on a minibatch of the client's examples with FedProx's
  pull ``mu (w - server)`` added to the gradient.
  """
  tx = optax.chain(
    optax_prox.proximal_regularize(mu, period=None), optax.sgd(rate)
  )
  opt_state = optax_prox.set_anchor(tx.init(server), server)

  def step(t, carry):
    params, opt_state = carry
    key = jax.random.fold_in(client.keys, t)
    batch = client.held[
      jax.random.randint(key, (BATCH_SIZE,), 0, client.counts)
    ]
    grads = jax.grad(loss_fn, argnums=1)(model, params, x[batch], y[batch])
    updates, new_state = tx.update(grads, opt_state, params)
    stepped = (optax.apply_updates(params, updates), new_state)
    keep = lambda new, old: jnp.where(t < budget, new, old)
    return jax.tree.map(keep, stepped, carry)

  return jax.lax.fori_loop(0, length, step, (server, opt_state))[0]


def aggregate(server, params, budgets, counts):
  """The average of the clients that trained, weighted by their examples."""
  weights = jnp.where(budgets > 0, counts, 0).astype(jnp.float32)
  total = jnp.sum(weights)
  average = lambda p, s: jnp.where(
    total > 0, jnp.tensordot(weights, p, 1) / jnp.maximum(total, 1), s
  )
  return jax.tree.map(average, params, server)


# A round: the sampled clients train, the server averages; vmapped over runs.
@functools.partial(jax.jit, static_argnums=0)
def federated_round(model, runs: Runs, budgets, clients: Clients, length, x, y):
  """Every run's round: its sampled clients train, its server averages.

  ``budgets`` is ``(runs, clients)`` local steps (0: the client is
  dropped), ``length`` their most, ``x`` and ``y`` the pooled data.
  """

  def one_run(server, mu, rate, budget):
    train = functools.partial(local_training, model, server, mu, rate)
    every_client = jax.vmap(train, in_axes=(0, 0, None, None, None))
    params = every_client(budget, clients, length, x, y)
    return aggregate(server, params, budget, clients.counts)

  servers = jax.vmap(one_run)(*runs, budgets)
  return runs._replace(servers=servers)


def train(job: report.Job) -> dict[str, np.ndarray]:
  """Trains a job's runs together on its seed's federation.

  Returns:
    ``val``, ``test`` (accuracy, %) and ``train_loss``, each ``(runs,
    rounds + 1)``: before the first round and after each.
  """
  setting, configs = job.setting, job.configs
  shards = load(setting, job.seed)
  data = shards.data
  selected, steps = schedule(setting, configs, job.seed, shards.counts)
  init = nnx.state(MODELS[setting.model](nnx.Rngs(job.seed)))
  runs = Runs(
    jax.tree.map(lambda w: jnp.stack([w] * len(configs)), init),
    jnp.array([c.mu for c in configs], jnp.float32),
    jnp.array([c.rate for c in configs], jnp.float32),
  )
  real = shards.counts.sum()  # the rest pads the synthetic pool
  chunks, parts = evaluation.held_out(
    {
      "val": (data.val_x, data.val_y),
      "test": (data.test_x, data.test_y),
      "train": (data.train_x[:real], data.train_y[:real]),
    }
  )
  structure = graphdef(setting.model)
  history = [evaluation.evaluate_models(runs.servers, structure, parts, chunks)]
  for r, chosen in enumerate(selected):
    key = jax.random.fold_in(jax.random.key(job.seed), r)
    clients = Clients(
      shards.held[chosen],
      shards.counts[chosen],
      jax.random.split(key, setting.clients),
    )
    runs = federated_round(
      setting.model, runs, steps[r], clients, steps[r].max(), *data[:2]
    )
    history.append(
      evaluation.evaluate_models(runs.servers, structure, parts, chunks)
    )
  history = jax.device_get(history)
  return {
    "val": np.array([100 * h["val"][1] for h in history]).T,
    "test": np.array([100 * h["test"][1] for h in history]).T,
    "train_loss": np.array([h["train"][0] for h in history]).T,
  }


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
