"""Argument checks shared by the public factories.

Every check raises at construction time with a message that names the
argument, says what was wrong, and says how to fix it. Values that are traced
(for instance hyper-parameters injected by ``optax.inject_hyperparams`` inside
``jax.jit``) cannot be inspected and are let through.
"""

import math
from typing import Any

import jax
import numpy as np

_INT32_MAX = np.iinfo(np.int32).max


def concrete_float(value: Any) -> float | None:
  """Returns ``value`` as a Python float, or None when it is traced."""
  if isinstance(value, jax.core.Tracer):
    return None
  array = np.asarray(value)
  if array.ndim != 0 or not np.issubdtype(array.dtype, np.number):
    raise TypeError(f"expected a real scalar, got {value!r}")
  return float(array)


def check_period(period: Any) -> int:
  """Checks that ``period`` is a static integer in ``[1, 2**31 - 1]``."""
  if isinstance(period, jax.Array):
    raise TypeError(
      "period must be a static Python int, but it is a JAX array. With"
      " optax.inject_hyperparams pass static_args=('period',)."
    )
  if isinstance(period, bool) or not isinstance(period, (int, np.integer)):
    raise TypeError(
      f"period must be a Python int (the inner-loop length S), got"
      f" {period!r} of type {type(period).__name__}."
    )
  if period < 1:
    raise ValueError(
      f"period must be >= 1 (1 disables the proximal term), got {period}."
    )
  if period > _INT32_MAX:
    raise ValueError(
      f"period must be at most 2**31 - 1 = {_INT32_MAX} (the inner"
      f" position is an int32), got {period}. For an anchor that is never"
      " refreshed, use proximal_regularize(strength, period=None)."
    )
  return int(period)


def check_nonnegative(name: str, value: Any, hint: str = "") -> None:
  """Checks that a scalar hyper-parameter is finite and >= 0.

  Schedules are checked at step 0; traced values are not checked.
  """
  at_zero = value(0) if callable(value) else value
  try:
    number = concrete_float(at_zero)
  except TypeError as error:
    raise TypeError(f"{name}: {error}. {hint}".rstrip()) from None
  if number is None:
    return
  where = " at step 0" if callable(value) else ""
  if math.isnan(number) or math.isinf(number) or number < 0:
    raise ValueError(
      f"{name} must be a finite number >= 0, got {number}{where}."
      f" {hint}".rstrip()
    )


def check_fraction(name: str, value: Any) -> None:
  """Checks that a decay rate such as a momentum lies in ``[0, 1)``."""
  number = concrete_float(value)
  if number is not None and not 0 <= number < 1:
    raise ValueError(f"{name} must lie in [0, 1), got {number}.")


def path_key(path: Any) -> str:
  """A leaf's path as a string, e.g. ``"['layer']['w']"``.

  A flax ``nnx.Variable`` adds ``.value`` to the path of the array it holds;
  it is dropped, so the params of an ``nnx.Optimizer``, its state and a pure
  dict of the same params give the same keys.
  """
  return jax.tree_util.keystr(
    tuple(
      key
      for key in path
      if not (isinstance(key, jax.tree_util.GetAttrKey) and key.name == "value")
    )
  )


def leaves_by_path(tree: Any) -> dict[str, Any]:
  """The leaves of ``tree`` keyed by :func:`path_key`."""
  return {
    path_key(path): leaf
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


def describe_paths(paths: Any, limit: int = 3) -> str:
  """The first ``limit`` paths, sorted, and how many more there are."""
  paths = sorted(paths)
  shown = ", ".join(paths[:limit]) or "none"
  return shown + (
    f" and {len(paths) - limit} more" if len(paths) > limit else ""
  )


def check_like_anchor(name: str, tree: Any, anchor: Any) -> None:
  """Checks that ``tree`` has the anchor's structure and leaf shapes.

  Raises a message that names ``name`` and the first leaves that differ,
  instead of the JAX-internal error that a mismatch would otherwise give
  deep inside the update.
  """
  structure: Any = jax.tree.structure(tree)  # PyTreeDef is untyped
  if structure == jax.tree.structure(anchor):
    pairs = zip(
      jax.tree_util.tree_flatten_with_path(tree)[0], jax.tree.leaves(anchor)
    )
    for (path, leaf), anchored in pairs:
      if np.shape(leaf) != np.shape(anchored):
        raise ValueError(
          f"{name}{jax.tree_util.keystr(path)} has shape"
          f" {np.shape(leaf)}, but the optimizer state was initialized"
          f" with shape {np.shape(anchored)} there. Pass {name} of the"
          " shapes given to `init`, or call `init` again."
        )
    return
  ours, theirs = set(leaves_by_path(tree)), set(leaves_by_path(anchor))
  detail = (
    f"missing {describe_paths(theirs - ours)}; unexpected"
    f" {describe_paths(ours - theirs)}"
    if ours != theirs
    else f"the same leaves in other containers: {jax.tree.structure(tree)}"
    f" against {jax.tree.structure(anchor)}"
  )
  raise ValueError(
    f"{name} has a different tree from the params the optimizer state was"
    f" initialized with ({detail}). Pass {name} with the tree given to"
    " `init` (with flax.nnx, the same `wrt` filter), or call `init` again."
  )
