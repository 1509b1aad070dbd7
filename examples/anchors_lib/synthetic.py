r"""FedProx's synthetic(α, β) federations, drawn from a seed.

As in Li et al. (MLSys 2020, §5.1 and their ``data/synthetic_*``
generators): 30 devices with lognormal sizes, inputs in
:math:`\mathbb{R}^{60}`, 10 classes, labels from a multinomial logistic
model. Device :math:`k` draws

.. math::
  u_k \sim N(0, \alpha^2),\ W_k \sim N(u_k, 1),\ b_k \sim N(u_k, 1),\quad
  B_k \sim N(0, \beta^2),\ v_k \sim N(B_k, 1),\quad
  x \sim N(v_k, \Sigma),\ \Sigma_{jj} = j^{-1.2},

and labels :math:`y = \arg\max(W_k^\top x + b_k)`; ``α`` and ``β`` are
standard deviations, as in the reference code. The IID set gives every
device one :math:`(W, b) \sim N(0, 1)` and :math:`v_k = 0`. Sizes are
``lognormal(4, 2) + 50`` as the reference draws them, cut at
:data:`MOST` so that a round fits the story's time budget. Each device's
examples are split 80/10/10 into training, validation and test; the
pooled training arrays are padded to a fixed length (labels -1), so that
every draw has the same shapes and the story compiles its round once.
"""

from typing import NamedTuple

import numpy as np

from examples.study_lib import data as data_lib

DEVICES, DIMENSION, CLASSES = 30, 60, 10
MOST = 300  # the most examples a device holds (the reference has no cap)


class Shards(NamedTuple):
  """A federation's data: pooled splits, and who holds which example.

  Attributes:
    data: training, validation and test examples, pooled over devices.
    held: ``(devices, MOST)``: each device's training examples, as indices
      into ``data.train_x``, padded by repetition.
    counts: ``(devices,)``: how many of them are real.
  """

  data: data_lib.Dataset
  held: np.ndarray
  counts: np.ndarray


def sizes(rng: np.random.Generator, most: int = MOST) -> np.ndarray:
  """Each device's number of examples: ``lognormal(4, 2) + 50``, cut."""
  drawn = rng.lognormal(4, 2, DEVICES).astype(np.int64) + 50
  return np.minimum(drawn, most)


def shards(parts: list[tuple[np.ndarray, np.ndarray]], seed: int) -> Shards:
  """Splits each device's ``(x, y)`` 80/10/10, then pools each split."""
  rng = np.random.default_rng([seed, 1])
  splits, held, start = [], [], 0
  for x, y in parts:
    order = rng.permutation(len(y))
    tenth = len(y) // 10
    rows = (order[2 * tenth :], order[tenth : 2 * tenth], order[:tenth])
    splits.append([(x[r], y[r]) for r in rows])  # train, val, test
    held.append(start + np.arange(len(rows[0])))
    start += len(rows[0])
  pooled = [
    np.concatenate([device[i][j] for device in splits]).astype(dtype)
    for i in range(3)
    for j, dtype in enumerate((np.float32, np.int32))
  ]
  pooled[:2] = [
    np.resize(a, (DEVICES * MOST, *a.shape[1:])) for a in pooled[:2]
  ]
  pooled[1][start:] = -1  # padding: never drawn, never evaluated
  return Shards(
    data_lib.Dataset(*pooled),
    np.stack([np.resize(h, MOST) for h in held]),
    np.array([len(h) for h in held]),
  )


def generate(alpha: float, beta: float, iid: bool, seed: int) -> Shards:
  """Synthetic(``alpha``, ``beta``), or the IID set, drawn by ``seed``."""
  rng = np.random.default_rng([seed, 0])
  counts = sizes(rng)
  scale = np.arange(1, DIMENSION + 1) ** -0.6  # sqrt of j^-1.2
  shared = rng.normal(0, 1, (DIMENSION + 1, CLASSES))
  centre = rng.normal(0, alpha, DEVICES)
  means = rng.normal(
    rng.normal(0, beta, DEVICES)[:, None], 1, (DEVICES, DIMENSION)
  )
  parts = []
  for k, n in enumerate(counts):
    model = shared if iid else rng.normal(centre[k], 1, shared.shape)
    x = (0 if iid else means[k]) + scale * rng.standard_normal((n, DIMENSION))
    y = np.argmax(x @ model[:-1] + model[-1], axis=1)
    parts.append((x, y))
  return shards(parts, seed)
