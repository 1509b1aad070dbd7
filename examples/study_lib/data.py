"""The study's two tasks, generated locally (nothing is downloaded).

* ``mnist1d``: MNIST-1D signals (the ``mnist1d`` package) and a 1-D CNN.
* ``tabular``: a synthetic 10-class tabular problem from scikit-learn's
  ``make_classification`` (noisy, overlapping clusters, some flipped labels)
  and a two-layer perceptron: another kind of data and another model family.
"""

from collections.abc import Callable
import dataclasses
import functools
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


def hold_out_validation(
  x: np.ndarray, y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> Dataset:
  """Moves a fixed random fifth of the training set to a validation set."""
  order = np.random.default_rng(0).permutation(len(x))
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
def load_mnist1d() -> Dataset:
  """MNIST-1D: 4000 train (3200 + 800 validation) / 1000 test, length 40."""
  import mnist1d.data  # pylint: disable=g-import-not-at-top

  data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
  return hold_out_validation(
    data["x"], data["y"], data["x_test"], data["y_test"]
  )


@functools.cache
def load_tabular() -> Dataset:
  """A synthetic tabular problem: 3200 train / 800 validation / 1000 test.

  5000 points, 20 features (10 informative), 10 classes of 2 clusters each,
  5% of the labels flipped.
  """
  import sklearn.datasets  # pylint: disable=g-import-not-at-top

  x, y = sklearn.datasets.make_classification(
    n_samples=5000,
    n_features=20,
    n_informative=10,
    n_redundant=5,
    n_classes=10,
    n_clusters_per_class=2,
    flip_y=0.05,
    class_sep=1.5,
    random_state=0,
  )
  x = (x - x[:4000].mean(axis=0)) / x[:4000].std(axis=0)
  return hold_out_validation(x[:4000], y[:4000], x[4000:], y[4000:])


@dataclasses.dataclass(frozen=True)
class Task:
  """A data set and the model trained on it."""

  name: str
  description: str
  load: Callable[[], Dataset]
  model: Callable[[nnx.Rngs], nnx.Module]
  batch_sizes: tuple[int, ...] | None = None  # None: every one asked for


# The CNN has 16 channels (2.5k params), which trains 2.5x faster than 32
# on a CPU; the second task runs at four of the batch sizes, to keep the
# whole study within an hour on two cores.
TASKS = {
  "mnist1d": Task(
    "mnist1d",
    "MNIST-1D, 1-D CNN with 16 channels (2.5k params)",
    load_mnist1d,
    functools.partial(models.Cnn1d, channels=16),
  ),
  "tabular": Task(
    "tabular",
    "synthetic tabular (make_classification), MLP 20-64-64-10 (6k params)",
    load_tabular,
    models.Mlp,
    batch_sizes=(2, 8, 32, 128),
  ),
}
