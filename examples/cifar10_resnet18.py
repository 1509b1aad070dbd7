r"""The paper's own experiment: ResNet-18 on CIFAR-10/100 at batch size 8.

Zhang, Qu, Chen and Metaxas (IJCAI 2019) train a CIFAR ResNet-18 for 200
epochs at batch size 8 with TRSGD (lr 0.1) or TRAdam (lr 1e-3), weight decay
1e-4, inner loop S = 10, lambda_w = 0.1 * lr, the learning rate x0.1 after
50% and again after 75% of the epochs, random 32x32 crops of the 4-pixel
zero-padded image and horizontal flips, normalised by the mean
(0.4914, 0.4822, 0.4465) and std (0.2023, 0.1994, 0.2010) of their code.
As their ``train.py`` does, every epoch of TRSGD or TRAdam starts a new
inner loop (``optax_prox.restart_inner_loop``): its first step takes the
params as the new anchor and the full step size, wherever in its inner loop
the last epoch ended (at batch 8 and S = 10 an epoch's 6250 steps are whole
inner loops anyway; at most other batch sizes an epoch ends inside one).

This script needs the data on disk in the standard binary format (it never
downloads anything)::

  DATA_DIR/cifar-10-batches-bin/data_batch_{1..5}.bin, test_batch.bin
  DATA_DIR/cifar-100-binary/train.bin, test.bin

and, for 200 epochs, an accelerator. Example::

  python -m examples.cifar10_resnet18 --data-dir ~/data --optimizer trsgd
"""

import argparse
from collections.abc import Callable
import functools
import json
import os
import time
from typing import Any, NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from examples import batching
from examples import models
from examples.schedules import step_decay
import optax_prox

IMAGE_BYTES = 32 * 32 * 3
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 1, 1, 3)
STD = np.array([0.2023, 0.1994, 0.2010], np.float32).reshape(1, 1, 1, 3)
PADDING = 4
STEPS_PER_CALL = 250
EVAL_BATCH = 500


# --------------------------------------------------------------------------
# Data: the standard CIFAR binary format.
# --------------------------------------------------------------------------


class BinaryLayout(NamedTuple):
  """Where a CIFAR variant keeps its files and its label in each record."""

  folder: str
  train_files: tuple[str, ...]
  test_files: tuple[str, ...]
  label_bytes: int  # bytes before the image in each record
  label_index: int  # which of them is the class label
  num_classes: int


LAYOUTS = {
  "cifar10": BinaryLayout(
    "cifar-10-batches-bin",
    tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    ("test_batch.bin",),
    label_bytes=1,
    label_index=0,
    num_classes=10,
  ),
  "cifar100": BinaryLayout(
    "cifar-100-binary",
    ("train.bin",),
    ("test.bin",),
    label_bytes=2,
    label_index=1,
    num_classes=100,
  ),  # (coarse, fine)
}


class Cifar(NamedTuple):
  """Images as uint8 ``(n, 32, 32, 3)`` (HWC) and labels as int32 ``(n,)``."""

  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int


def read_records(path: str, layout: BinaryLayout) -> tuple[np.ndarray, ...]:
  """Reads one binary file: each record is label byte(s) then 3072 pixels.

  The pixels are stored channel by channel (1024 red, 1024 green, 1024 blue),
  each channel row by row.
  """
  record = layout.label_bytes + IMAGE_BYTES
  raw = np.fromfile(path, dtype=np.uint8)
  if raw.size == 0 or raw.size % record:
    raise ValueError(
      f"{path} has {raw.size} bytes, not a multiple of the {record}-byte"
      f" records of {layout.folder}; is it the binary version of the data?"
    )
  raw = raw.reshape(-1, record)
  labels = raw[:, layout.label_index].astype(np.int32)
  images = raw[:, layout.label_bytes :].reshape(-1, 3, 32, 32)
  return images.transpose(0, 2, 3, 1), labels


def load_cifar(data_dir: str, dataset: str = "cifar10") -> Cifar:
  """Loads CIFAR-10 or CIFAR-100 from ``data_dir`` (binary version).

  Raises:
    FileNotFoundError: naming every expected file that is missing.
  """
  layout = LAYOUTS[dataset]
  folder = os.path.join(data_dir, layout.folder)
  expected = layout.train_files + layout.test_files
  missing = [f for f in expected if not os.path.isfile(os.path.join(folder, f))]
  if missing:
    raise FileNotFoundError(
      f"{dataset} is not in {folder}: missing {', '.join(missing)}. This"
      f" script reads the binary version ({layout.folder}/ with"
      f" {', '.join(expected)}) and never downloads it; get it from"
      " https://www.cs.toronto.edu/~kriz/cifar.html, unpack it under a"
      " directory and pass that directory as --data-dir."
    )

  def read_all(files):
    parts = [read_records(os.path.join(folder, f), layout) for f in files]
    return (
      np.concatenate([images for images, _ in parts]),
      np.concatenate([labels for _, labels in parts]),
    )

  train_images, train_labels = read_all(layout.train_files)
  test_images, test_labels = read_all(layout.test_files)
  return Cifar(
    train_images, train_labels, test_images, test_labels, layout.num_classes
  )


# --------------------------------------------------------------------------
# Augmentation and normalisation, on the device.
# --------------------------------------------------------------------------


def random_crop_and_flip(key: jax.Array, images: jax.Array) -> jax.Array:
  """A random 32x32 crop of each zero-padded image, flipped half the time."""
  crop_key, flip_key = jax.random.split(key)
  size = images.shape[1]
  padded = jnp.pad(
    images, ((0, 0), (PADDING, PADDING), (PADDING, PADDING), (0, 0))
  )
  corners = jax.random.randint(
    crop_key, (images.shape[0], 2), 0, 2 * PADDING + 1
  )
  crop = lambda image, corner: jax.lax.dynamic_slice(
    image, (corner[0], corner[1], 0), (size, size, image.shape[-1])
  )
  crops = jax.vmap(crop)(padded, corners)
  flip = jax.random.bernoulli(flip_key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, crops[:, :, ::-1], crops)


def normalize(images: jax.Array) -> jax.Array:
  """uint8 pixels to the float32 inputs the paper's code feeds the network."""
  return (images.astype(jnp.float32) / 255 - MEAN) / STD


# --------------------------------------------------------------------------
# Optimizers: the paper's TRSGD and TRAdam, and their baselines.
# --------------------------------------------------------------------------


# (the learning-rate schedule, the command line) -> the optimizer
Factory = Callable[
  [optax.Schedule, argparse.Namespace], optax.GradientTransformation
]


class Optimizer(NamedTuple):
  """An optimizer of the paper's comparison."""

  learning_rate: float  # the paper's
  make: Factory
  restarts: bool  # TR: its inner loop restarts at the start of every epoch


OPTIMIZERS = {
  "trsgd": Optimizer(
    0.1,
    lambda lr, a: optax_prox.trsgd(
      lr,
      period=a.period,
      lambda_w=0.1 * a.learning_rate,
      momentum=0.9,
      weight_decay=a.weight_decay,
    ),
    restarts=True,
  ),
  "tradam": Optimizer(
    1e-3,
    lambda lr, a: optax_prox.tradam(
      lr,
      period=a.period,
      lambda_w=0.1 * a.learning_rate,
      weight_decay=a.weight_decay,
    ),
    restarts=True,
  ),
  "sgd": Optimizer(
    0.1,
    lambda lr, a: optax.chain(
      optax.add_decayed_weights(a.weight_decay), optax.sgd(lr, momentum=0.9)
    ),
    restarts=False,
  ),
  "adam": Optimizer(
    1e-3,
    lambda lr, a: optax.chain(
      optax.add_decayed_weights(a.weight_decay), optax.adam(lr)
    ),
    restarts=False,
  ),
}


def make_optimizer(
  args: argparse.Namespace, total_steps: int
) -> optax.GradientTransformation:
  make = OPTIMIZERS[args.optimizer].make
  return make(step_decay(args.learning_rate, total_steps), args)


# --------------------------------------------------------------------------
# Training and evaluation steps (functional NNX: split once, merge inside).
# --------------------------------------------------------------------------


def make_train_steps(graphdef: Any) -> Callable[..., Any]:
  """Returns ``train(state, images, labels, batches, key)``.

  It runs one step per row of ``batches`` (indices into the images kept on
  the device) under ``jax.lax.scan`` and returns the new state and the mean
  loss and accuracy of those batches.
  """

  def one_step(state, batch_and_key, images, labels):
    batch, key = batch_and_key
    model, optimizer = nnx.merge(graphdef, state)
    model.train()
    inputs = normalize(random_crop_and_flip(key, images[batch]))

    def loss_fn(model):
      logits = model(inputs)
      losses = optax.softmax_cross_entropy_with_integer_labels(
        logits, labels[batch]
      )
      return losses.mean(), logits

    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels[batch])
    return nnx.state((model, optimizer)), (loss, accuracy)

  @functools.partial(jax.jit, donate_argnums=0)
  def train(state, images, labels, batches, key):
    keys = jax.random.split(key, batches.shape[0])
    step = functools.partial(one_step, images=images, labels=labels)
    state, (losses, accuracies) = jax.lax.scan(step, state, (batches, keys))
    return state, losses.mean(), accuracies.mean()

  return train


def make_epoch(graphdef: Any, restarts: bool) -> Callable[..., Any]:
  """Returns ``epoch(state, images, labels, batches, key, desc)``.

  One epoch as the paper's ``train.py`` runs it: with ``restarts`` (TR),
  the inner loop restarts first, so the epoch's first step takes a new
  anchor and the full step size; then one step per row of ``batches``, in
  jitted calls of ``STEPS_PER_CALL`` steps. It returns the new state and
  the mean loss and accuracy of the epoch's batches.
  """
  train = make_train_steps(graphdef)

  def epoch(state, images, labels, batches, key, desc=""):
    if restarts:
      model, optimizer = nnx.merge(graphdef, state)
      optimizer.opt_state = optax_prox.restart_inner_loop(optimizer.opt_state)
      state = nnx.state((model, optimizer))
    calls = range(0, len(batches), STEPS_PER_CALL)
    keys = jax.random.split(key, len(calls))
    loss, accuracy = 0.0, 0.0
    for begin, call_key in zip(tqdm.tqdm(calls, desc, leave=False), keys):
      chunk = batches[begin : begin + STEPS_PER_CALL]
      state, chunk_loss, chunk_accuracy = train(
        state, images, labels, chunk, call_key
      )
      loss += float(chunk_loss) * len(chunk) / len(batches)
      accuracy += float(chunk_accuracy) * len(chunk) / len(batches)
    return state, loss, accuracy

  return epoch


def make_evaluate(graphdef: Any) -> Callable[..., Any]:
  """Returns ``evaluate(state, chunks) -> (loss, accuracy)``.

  ``chunks`` is the test set cut by :func:`batching.padded_chunks`.
  """

  @jax.jit
  def evaluate(state, chunks):
    model, _ = nnx.merge(graphdef, state)
    model.eval()  # batch norm uses its running averages
    losses, correct = batching.summed_loss_and_correct(
      lambda images: model(normalize(images)), chunks
    )
    count = chunks[2].sum()
    return losses.sum() / count, correct.sum() / count

  return evaluate


# --------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--data-dir",
    default="data",
    help="directory holding cifar-10-batches-bin/ or cifar-100-binary/",
  )
  parser.add_argument("--dataset", choices=sorted(LAYOUTS), default="cifar10")
  parser.add_argument(
    "--optimizer", choices=sorted(OPTIMIZERS), default="trsgd"
  )
  parser.add_argument(
    "--learning-rate",
    type=float,
    default=None,
    help="default: the paper's (0.1 SGD, 1e-3 Adam)",
  )
  parser.add_argument("--batch-size", type=int, default=8)
  parser.add_argument("--epochs", type=int, default=200)
  parser.add_argument(
    "--period", type=int, default=10, help="TR's inner-loop length S"
  )
  parser.add_argument("--weight-decay", type=float, default=1e-4)
  parser.add_argument(
    "--width", type=int, default=64, help="channels of ResNet-18's first stage"
  )
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--out", default="results/cifar", help="directory for history.json"
  )
  args = parser.parse_args(argv)
  if args.learning_rate is None:
    args.learning_rate = OPTIMIZERS[args.optimizer].learning_rate
  return args


def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  data = load_cifar(args.data_dir, args.dataset)
  steps_per_epoch = len(data.train_images) // args.batch_size
  model = models.ResNet18(
    data.num_classes, nnx.Rngs(args.seed), width=args.width
  )
  tx = make_optimizer(args, args.epochs * steps_per_epoch)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  graphdef, state = nnx.split((model, optimizer))
  train_epoch = make_epoch(graphdef, OPTIMIZERS[args.optimizer].restarts)
  evaluate = make_evaluate(graphdef)
  train_images, train_labels = (
    jnp.asarray(data.train_images),
    jnp.asarray(data.train_labels),
  )
  test_chunks = tuple(
    jnp.asarray(a)
    for a in batching.padded_chunks(
      data.test_images, data.test_labels, EVAL_BATCH
    )
  )
  key = jax.random.PRNGKey(args.seed)
  os.makedirs(args.out, exist_ok=True)
  history, start = [], time.perf_counter()
  print(
    f"{args.optimizer} lr {args.learning_rate} on {args.dataset},"
    f" batch {args.batch_size}, {args.epochs} epochs of"
    f" {steps_per_epoch} steps, on {jax.devices()[0].platform}"
  )
  for epoch in range(1, args.epochs + 1):
    key, order_key, epoch_key = jax.random.split(key, 3)
    batches = batching.epoch_batches(
      order_key, len(data.train_images), args.batch_size
    )
    state, train_loss, train_accuracy = train_epoch(
      state, train_images, train_labels, batches, epoch_key, f"epoch {epoch}"
    )
    test_loss, test_accuracy = evaluate(state, test_chunks)
    history.append(
      {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "wall_seconds": time.perf_counter() - start,
      }
    )
    print(" ".join(f"{k} {v:.4g}" for k, v in history[-1].items()))
    with open(os.path.join(args.out, "history.json"), "w") as f:
      json.dump({"config": vars(args), "history": history}, f, indent=1)


if __name__ == "__main__":
  main()
