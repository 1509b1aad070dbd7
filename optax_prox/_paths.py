"""The leaves of a tree by path, the same in a dict and an ``nnx.State``."""

from collections.abc import Callable
from typing import Any

import jax
import optax

Path = tuple[Any, ...]


def _path(keys: Any) -> Path:
  # A flax Variable adds `.value`; without it, nnx.State matches a dict.
  return tuple(
    getattr(key, "key", getattr(key, "name", getattr(key, "idx", key)))
    for key in keys
    if not (isinstance(key, jax.tree_util.GetAttrKey) and key.name == "value")
  )


def is_masked(node: Any) -> bool:
  """Whether ``node`` is where ``optax.masked`` left a leaf out."""
  return isinstance(node, optax.MaskedNode)


def leaves_by_path(tree: Any) -> dict[Path, Any]:
  """The leaves of ``tree``, ``MaskedNode`` included, by path, in order."""
  flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_masked)[0]
  return {_path(keys): leaf for keys, leaf in flat}


def map_with_path(f: Callable[[Path, Any], Any], tree: Any) -> Any:
  """``jax.tree.map(f)`` over ``tree``, ``f`` given each leaf's path too."""
  return jax.tree_util.tree_map_with_path(
    lambda keys, leaf: f(_path(keys), leaf), tree
  )
