"""The examples' models (imported from ``examples/models.py``), as trees."""

import pathlib
import sys
from typing import Any, Callable

from flax import nnx
import jax
import numpy as np

_EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
if str(_EXAMPLES) not in sys.path:
  sys.path.insert(0, str(_EXAMPLES))

import models  # pylint: disable=g-import-not-at-top,wrong-import-position


def resnet18(width: int = 64) -> nnx.Module:
  """The CIFAR ResNet-18 of the examples, ``width`` channels in stage 1."""
  return models.ResNet18(10, nnx.Rngs(0), width=width)


def cnn1d() -> nnx.Module:
  """The demo's 1-D CNN for MNIST-1D signals of length 40."""
  return models.Cnn1d(nnx.Rngs(0))


def param_shapes(make_model: Callable[[], nnx.Module]) -> dict[str, Any]:
  """The param shapes of a model, without allocating them."""
  abstract = nnx.eval_shape(make_model)
  return nnx.to_pure_dict(nnx.state(abstract, nnx.Param))


def resnet18_param_shapes(width: int) -> dict[str, Any]:
  """The param shapes of ResNet-18 at ``width``.

  ``width=64`` is the real network (11.2M params); the param count grows as
  ``width**2``, so 19 gives 1.0M and 135 gives 49.7M with the same 62
  leaves.
  """
  return param_shapes(lambda: resnet18(width))


def random_tree(shapes: Any, seed: int, scale: float) -> Any:
  """Normal random float32 arrays of the given shapes."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda shape: jax.numpy.asarray(
          scale * rng.standard_normal(shape.shape, np.float32)),
      shapes)


def num_params(tree: Any) -> int:
  """The number of scalars in a tree."""
  return sum(leaf.size for leaf in jax.tree.leaves(tree))
