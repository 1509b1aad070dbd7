"""The checks of the public arguments, each made once, at the boundary.

A message names the argument and says what to pass. A traced value (a
hyper-parameter that ``optax.inject_hyperparams`` injects inside
``jax.jit``) cannot be inspected and passes unchecked.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_prox import _paths

INT32_MAX = int(np.iinfo(np.int32).max)


def concrete_float(name: str, value: Any) -> float | None:
  """``value`` as a Python float, or None when it is traced."""
  if isinstance(value, jax.core.Tracer):
    return None
  array = None if callable(value) else np.asarray(value)
  if array is None or array.ndim or array.dtype.kind not in "iufV":
    raise TypeError(
      f"{name} must be a real scalar (to vary it, use"
      f" optax.inject_hyperparams), got {value!r}."
    )
  return float(array)


def check_nonnegative(name: str, value: Any, schedule_ok: bool = True) -> None:
  """Refuses a negative or non-finite value; a schedule's at step 0."""
  scheduled = schedule_ok and callable(value)
  number = concrete_float(name, value(0) if scheduled else value)
  if number is not None and not 0 <= number < np.inf:
    at = " at step 0" if scheduled else ""
    raise ValueError(f"{name} must be finite and >= 0, got {number}{at}.")


def check_fraction(name: str, value: Any) -> None:
  """Refuses a decay rate outside ``[0, 1)``."""
  number = concrete_float(name, value)
  if number is not None and not 0 <= number < 1:
    raise ValueError(f"{name} must lie in [0, 1), got {number}.")


def check_period(period: Any) -> int:
  """``period`` as an int in ``[1, 2**31 - 1]``."""
  if isinstance(period, bool) or not isinstance(period, (int, np.integer)):
    raise TypeError(
      "period must be a Python int (with optax.inject_hyperparams, pass"
      f" static_args=('period',)), got {period!r}."
    )
  if not 1 <= period <= INT32_MAX:
    raise ValueError(f"period must lie in [1, 2**31 - 1], got {period}.")
  return int(period)


def check_anchor_dtype(anchor_dtype: Any) -> Any:
  """Refuses an ``anchor_dtype`` that is not None or a floating dtype."""
  try:
    floating = anchor_dtype is None or jnp.issubdtype(anchor_dtype, jnp.inexact)
  except TypeError:  # not a dtype at all
    floating = False
  if not floating:
    raise TypeError(f"anchor_dtype must be a floating dtype: {anchor_dtype!r}")
  return anchor_dtype


def check_optimizer(optimizer: Any) -> None:
  """Refuses what ``optimizer(learning_rate=...)`` cannot build anew."""
  if not callable(optimizer):
    kind = type(optimizer).__name__
    raise TypeError(f"optimizer must be a factory like optax.adam, not {kind}")
  if "learning_rate" in getattr(optimizer, "keywords", {}):
    raise TypeError("optimizer: its partial must leave learning_rate unset.")


def require_params(params: optax.Params | None) -> optax.Params:
  """``params``, or the error that says how to pass them."""
  if params is None:
    raise ValueError("params are needed: `tx.update(grads, state, params)`.")
  return params


def check_unstacked(name: str, counter: Any, vmapped: str) -> None:
  """Refuses a stack of states, as ``jax.vmap(tx.init)`` makes them."""
  if np.ndim(counter):
    raise ValueError(
      f"{name} is a stack of states of shape {np.shape(counter)}, as"
      f" jax.vmap(tx.init) makes: map over it, `{vmapped}`."
    )


def like_anchor(name: str, tree: Any, anchor: Any) -> dict[_paths.Path, Any]:
  """The leaves of ``tree`` by path, in the anchor's order, checked.

  The one comparison of a tree against the stored anchor: the same paths
  (those below a ``MaskedNode`` of the anchor are not anchored and left
  out) and the same shapes, else an error naming the first path that
  differs. Containers may differ: an ``nnx.State`` matches a dict.
  """
  wanted = _paths.leaves_by_path(anchor)
  masked = [path for path, a in wanted.items() if _paths.is_masked(a)]
  given = {
    path: leaf
    for path, leaf in _paths.leaves_by_path(tree).items()
    if not any(path[: len(m)] == m for m in masked)
  }
  for path in [*(p for p in wanted if p not in masked), *given]:
    where = _where(path)
    if path not in given:
      problem = f"lacks the leaf at {where}"
    elif path not in wanted:
      problem = f"has a leaf at {where}, which they lack"
    elif (shape := np.shape(given[path])) != np.shape(wanted[path]):
      problem = f"has shape {shape} at {where}, not {np.shape(wanted[path])}"
    else:
      continue
    raise ValueError(
      f"{name} differs from the params given to init: it {problem}. Pass"
      " a tree like them (flax.nnx: `nnx.state(model, nnx.Param)`)."
    )
  return {path: given[path] for path in wanted if path not in masked}


def importance_like_anchor(importance: Any, anchor: Any) -> dict[Any, Any]:
  """``importance``'s leaves by path, as :func:`like_anchor`, each >= 0.

  A leaf that is negative or not finite is refused, naming its path; a
  traced one (inside ``jax.jit`` or ``jax.vmap``) cannot be inspected and
  passes unchecked.
  """
  given = like_anchor("importance", importance, anchor)
  for path, leaf in given.items():
    if not isinstance(leaf, jax.core.Tracer) and not np.all(
      np.isfinite(leaf) & (np.asarray(leaf) >= 0)
    ):
      raise ValueError(
        f"importance must be finite and >= 0, and is not at {_where(path)}."
      )
  return given


def _where(path: _paths.Path) -> str:
  """A path as the user indexes it, e.g. ``['head']['kernel']``."""
  return "".join(f"[{key!r}]" for key in path) or "its root"
