"""Argument checks shared by the public factories.

Every check raises at construction time with a message that names the
argument, says what was wrong, and says how to fix it. Values that are traced
(for instance hyper-parameters injected by ``optax.inject_hyperparams`` inside
``jax.jit``) cannot be inspected and are let through.
"""

import math
import sys
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


def check_nonnegative(name: str, value: Any) -> None:
  """Checks that a scalar hyper-parameter is finite and >= 0.

  Schedules are checked at step 0; traced values are not checked.
  """
  at_zero = value(0) if callable(value) else value
  try:
    number = concrete_float(at_zero)
  except TypeError as error:
    raise TypeError(f"{name}: {error}.") from None
  if number is None:
    return
  where = " at step 0" if callable(value) else ""
  if math.isnan(number) or math.isinf(number) or number < 0:
    raise ValueError(
      f"{name} must be a finite number >= 0, got {number}{where}."
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


def _nnx_hint(tree: Any) -> str:
  """Advice for a tree that holds flax.nnx variables other than ``Param``."""
  nnx = sys.modules.get("flax.nnx")  # flax is not a dependency of ours
  if nnx is None:
    return ""
  variables = jax.tree.leaves(
    tree, is_leaf=lambda node: isinstance(node, nnx.Variable)
  )
  others = sorted(
    {
      type(v).__name__
      for v in variables
      if isinstance(v, nnx.Variable) and not isinstance(v, nnx.Param)
    }
  )
  if not others:
    return ""
  return (
    f" It holds flax.nnx variables that are not parameters"
    f" ({', '.join(others)}): pass `nnx.state(model, nnx.Param)`."
  )


def check_not_nnx_object(name: str, tree: Any, instead: str) -> None:
  """Refuses a flax.nnx module or optimizer where a tree of arrays is due.

  Args:
    name: the argument's name, as the message shows it.
    tree: the argument.
    instead: what to pass, the end of the message's last sentence.
  """
  nnx = sys.modules.get("flax.nnx")  # flax is not a dependency of ours
  if nnx is None:
    return
  kinds = tuple(
    kind
    for kind in (
      getattr(nnx, n, None) for n in ("Pytree", "Module", "Optimizer")
    )
    if isinstance(kind, type)
  )
  if isinstance(tree, kinds):
    raise TypeError(
      f"{name} is a flax.nnx {type(tree).__name__}, not a tree of arrays:"
      f" pass {instead}."
    )


def check_same_leaves(
  name: str,
  tree: Any,
  reference: Any,
  *,
  fix: str,
  extra_leaves_ok: bool = False,
) -> dict[str, Any]:
  """Checks that ``tree`` has the leaves and leaf shapes of ``reference``.

  Leaves are matched by path (:func:`leaves_by_path`), and ``reference`` is
  what the optimizer state holds: the anchor, of the params' tree.

  Args:
    name: the argument's name, as the message shows it.
    tree: the argument.
    reference: the tree it must match.
    fix: what to do instead, the message's last sentence.
    extra_leaves_ok: accept leaves of ``tree`` that ``reference`` lacks
      (those that ``optax.masked`` leaves out of the state).

  Returns:
    The leaves of ``tree`` by path.
  """
  given, wanted = leaves_by_path(tree), leaves_by_path(reference)
  missing = set(wanted) - set(given)
  unexpected = set() if extra_leaves_ok else set(given) - set(wanted)
  if missing or unexpected:
    raise ValueError(
      f"{name} has a different tree from the params the optimizer state was"
      f" initialized with (missing {describe_paths(missing)}; unexpected"
      f" {describe_paths(unexpected)}).{_nnx_hint(tree)} {fix}"
    )
  for path, leaf in wanted.items():
    if np.shape(given[path]) != np.shape(leaf):
      raise ValueError(
        f"{name}{path} has shape {np.shape(given[path])}, but the optimizer"
        f" state was initialized with shape {np.shape(leaf)} there. {fix}"
      )
  return given


def check_like_anchor(name: str, tree: Any, anchor: Any) -> None:
  """Checks that ``tree`` has the anchor's structure and leaf shapes.

  Raises a message that names ``name`` and the first leaves that differ,
  instead of the JAX-internal error that a mismatch would otherwise give
  deep inside the update.
  """
  structure: Any = jax.tree.structure(tree)  # PyTreeDef is untyped
  if structure == jax.tree.structure(anchor) and all(
    np.shape(leaf) == np.shape(anchored)
    for leaf, anchored in zip(jax.tree.leaves(tree), jax.tree.leaves(anchor))
  ):
    return
  fix = (
    f"Pass {name} with the tree and shapes given to `init` (with flax.nnx,"
    " the same `wrt` filter), or call `init` again."
  )
  check_same_leaves(name, tree, anchor, fix=fix)
  if structure != jax.tree.structure(anchor):
    raise ValueError(
      f"{name} has a different tree from the params the optimizer state was"
      f" initialized with: the same leaves in other containers, {structure}"
      f" against {jax.tree.structure(anchor)}. {fix}"
    )
