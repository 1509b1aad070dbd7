"""Argument checks for the public factories and helpers.

Every check raises, at construction or at the first call, a message that
names the argument, says what was wrong and how to fix it. Values that are
traced (for instance hyper-parameters injected by ``optax.inject_hyperparams``
inside ``jax.jit``) cannot be inspected and are let through.
"""

from collections.abc import Mapping
import inspect
import math
import re
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

_INT32_MAX = np.iinfo(np.int32).max
PARAMS_OF_A_MODEL = "its parameters, `nnx.state(model, nnx.Param)`"
# What optax and hand-written factories call the learning rate.
LEARNING_RATE_NAMES = ("learning_rate", "lr", "step_size")


def concrete_float(name: str, value: Any) -> float | None:
  """``value`` as a Python float, or None when it is traced.

  Args:
    name: the argument's name, as a message shows it.
    value: a real scalar or a tracer.

  Returns:
    The float, or None for a tracer.
  """
  if isinstance(value, jax.core.Tracer):
    return None
  if callable(value):
    raise TypeError(
      f"{name} must be a real scalar, not a schedule: got {value!r}. To"
      " change it during training, wrap the optimizer in"
      " optax.inject_hyperparams."
    )
  array = np.asarray(value)
  if array.ndim != 0 or not np.issubdtype(array.dtype, np.number):
    raise TypeError(f"{name} must be a real scalar, got {value!r}.")
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


def check_nonnegative(
  name: str, value: Any, *, schedule_ok: bool = True
) -> None:
  """Checks that a hyper-parameter is finite and >= 0.

  Schedules (where ``schedule_ok``) are checked at step 0; traced values
  are not checked.
  """
  schedule = callable(value) and schedule_ok
  at_zero = value(0) if schedule else value
  number = concrete_float(f"{name}(0)" if schedule else name, at_zero)
  if number is None:
    return
  where = " at step 0" if schedule else ""
  if math.isnan(number) or math.isinf(number) or number < 0:
    raise ValueError(
      f"{name} must be a finite number >= 0, got {number}{where}."
    )


def check_fraction(name: str, value: Any) -> None:
  """Checks that a decay rate such as a momentum is a float in ``[0, 1)``."""
  number = concrete_float(name, value)
  if number is not None and not 0 <= number < 1:
    raise ValueError(f"{name} must lie in [0, 1), got {number}.")


def check_anchor_dtype(anchor_dtype: Any) -> np.dtype[Any] | None:
  """``anchor_dtype`` as a floating dtype, or None for each param's own."""
  if anchor_dtype is None:
    return None
  try:
    dtype: np.dtype[Any] = jnp.dtype(anchor_dtype)
  except TypeError:
    raise TypeError(
      f"anchor_dtype must be a floating dtype such as jnp.bfloat16, got"
      f" {anchor_dtype!r}."
    ) from None
  if not jnp.issubdtype(dtype, jnp.inexact):
    raise TypeError(
      f"anchor_dtype must be a floating dtype such as jnp.bfloat16, got"
      f" {dtype}."
    )
  return dtype


def check_optimizer_factory(
  optimizer: Any, optimizer_kwargs: Mapping[str, Any]
) -> None:
  """Checks a factory that is called as ``optimizer(step_size, **kwargs)``.

  Refuses an optimizer already built, a factory whose first parameter is
  not the learning rate (``optax.scale_by_adam`` would get the step size as
  ``b1``), and keyword arguments the factory does not take. A factory whose
  signature Python cannot read is let through.
  """
  if isinstance(optimizer, optax.GradientTransformation):
    raise TypeError(
      "optimizer must be an optax optimizer factory, which"
      " trajectory_regularized calls with the step size on every update;"
      " got an optimizer already built. Pass `optax.adam`, not"
      " `optax.adam(1e-3)` (and set its other arguments as keywords:"
      " `trajectory_regularized(optax.adam, 1e-3, b1=0.95)`)."
    )
  if not callable(optimizer):
    raise TypeError(
      "optimizer must be an optax optimizer factory such as optax.adam,"
      f" got {optimizer!r} of type {type(optimizer).__name__}."
    )
  try:
    parameters = inspect.signature(optimizer).parameters.values()
  except (TypeError, ValueError):  # a builtin, say
    return
  name = getattr(optimizer, "__name__", repr(optimizer))
  _check_learning_rate_first(name, list(parameters))
  takes = {p.name for p in parameters}
  if any(p.kind is p.VAR_KEYWORD for p in parameters):
    return
  unknown = sorted(set(optimizer_kwargs) - takes)
  if unknown:
    raise TypeError(
      f"trajectory_regularized passes {', '.join(unknown)} on to the"
      f" optimizer, but {name} takes no such argument (it takes"
      f" {', '.join(sorted(takes))}). Check the spelling, or pass the"
      " optimizer's own arguments only."
    )


def _check_learning_rate_first(
  name: str, parameters: list[inspect.Parameter]
) -> None:
  """Checks that the factory's first positional parameter is the rate."""
  positional = [
    p
    for p in parameters
    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
  ]
  if not positional:
    raise TypeError(
      f"optimizer: {name} takes no positional argument, but"
      " trajectory_regularized passes it the step size as its first"
      " argument. If functools.partial fixed the learning rate, leave it"
      " out: pass `optax.adam` and set the others as keywords,"
      " `trajectory_regularized(optax.adam, 1e-3, b1=0.95)`."
    )
  first = positional[0]
  if first.kind is first.VAR_POSITIONAL or first.name in LEARNING_RATE_NAMES:
    return
  raise TypeError(
    f"optimizer: the first parameter of {name} is {first.name!r}, not the"
    " learning rate, but trajectory_regularized passes the step size as"
    " the first argument. Pass a factory that takes the learning rate"
    " first, such as optax.adam instead of optax.scale_by_adam; if"
    f" {first.name!r} is your factory's learning rate, wrap it:"
    f" `lambda learning_rate: {name}(learning_rate)`."
  )


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


def _nnx_variable_types(tree: Any) -> list[str]:
  """The flax.nnx variable types in ``tree`` other than ``nnx.Param``."""
  nnx = sys.modules.get("flax.nnx")  # flax is not a dependency of ours
  if nnx is None:
    return []
  variables = jax.tree.leaves(
    tree, is_leaf=lambda node: isinstance(node, nnx.Variable)
  )
  return sorted(
    {
      type(v).__name__
      for v in variables
      if isinstance(v, nnx.Variable) and not isinstance(v, nnx.Param)
    }
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


def _top_level(paths: Any) -> dict[str, set[str]]:
  """Paths grouped by their first key: ``{"['body']": {"['w']", ...}}``."""
  groups: dict[str, set[str]] = {}
  for path in paths:
    match = re.match(r"\[[^\]]*\]|\.[^.\[]+", path)
    first = match.group(0) if match else path
    groups.setdefault(first, set()).add(path[len(first) :])
  return groups


def _whole_entries(given: Any, wanted: Any) -> str:
  """What a mismatch says about whole top-level entries, or ``""``."""
  have, want = _top_level(given), _top_level(wanted)
  lacking = sorted(set(want) - set(have))
  if not lacking:
    return ""
  for key in lacking:
    if want[key] == set(given):
      return (
        f" It looks like the params' {key} subtree alone: pass the whole"
        " tree, whose top-level entries are"
        f" {describe_paths(want, limit=5)}."
      )
  extra = sorted(set(have) - set(want))
  return f" It lacks the whole top-level entries {describe_paths(lacking)}" + (
    f" and has top-level entries the params lack, {describe_paths(extra)}."
    if extra
    else "."
  )


def _has_masked_node(tree: Any) -> bool:
  def is_masked(node: Any) -> bool:
    return isinstance(node, optax.MaskedNode)

  return any(map(is_masked, jax.tree.leaves(tree, is_leaf=is_masked)))


def check_like_anchor(
  name: str,
  tree: Any,
  anchor: Any,
  *,
  fix: str,
  batch_ndim: int = 0,
  same_containers: bool = False,
) -> dict[str, Any]:
  """Checks ``tree`` against a stored anchor, leaf by leaf.

  The one check of a params-like tree against the state: by
  :func:`path_key`, so an ``nnx.State`` matches a dict of the same params.
  Leaves the anchor lacks are refused too, unless ``optax.masked`` left them
  out (a ``MaskedNode`` in the anchor). Instead of the JAX-internal error
  that a mismatch would give deep inside an update, the message names
  ``name``, the first leaves that differ, whole top-level entries missing,
  and ``fix``.

  Args:
    name: the argument's name, as the message shows it.
    tree: the argument.
    anchor: the stored anchor it must match.
    fix: what to do instead, the message's last sentence.
    batch_ndim: how many leading axes of the anchor's leaves stack several
      states (one per client, say); ``tree``'s leaves may have either the
      stacked shape or the shape of one state.
    same_containers: also require the anchor's containers (a tuple is not
      a list), which ``jax.tree.map`` over both needs.

  Returns:
    The leaves of ``tree`` by path.
  """
  check_not_nnx_object(name, tree, PARAMS_OF_A_MODEL)
  given, wanted = leaves_by_path(tree), leaves_by_path(anchor)
  missing = set(wanted) - set(given)
  unexpected = set() if _has_masked_node(anchor) else set(given) - set(wanted)
  if missing or unexpected:
    variables = _nnx_variable_types(tree)
    raise ValueError(
      f"{name} has a different tree from the params the optimizer state was"
      f" initialized with (missing {describe_paths(missing)}; unexpected"
      f" {describe_paths(unexpected)}).{_whole_entries(given, wanted)}"
      + (
        " It holds flax.nnx variables that are not parameters"
        f" ({', '.join(variables)}): pass `nnx.state(model, nnx.Param)`."
        if variables
        else ""
      )
      + f" {fix}"
    )
  for path, stored in wanted.items():
    shape, want = np.shape(given[path]), np.shape(stored)
    if shape not in (want, want[batch_ndim:]):
      one = f" (or {want[batch_ndim:]}, one state's)" if batch_ndim else ""
      raise ValueError(
        f"{name}{path} has shape {shape}, but the optimizer state was"
        f" initialized with shape {want}{one} there. {fix}"
      )
  structure: Any = jax.tree.structure(tree)  # PyTreeDef is untyped
  if same_containers and structure != jax.tree.structure(anchor):
    raise ValueError(
      f"{name} has a different tree from the params the optimizer state was"
      f" initialized with: the same leaves in other containers, {structure}"
      f" against {jax.tree.structure(anchor)}. {fix}"
    )
  return given


def check_unstacked(counter: jax.Array, caller: str) -> None:
  """Refuses a state stacked along leading axes, which ``caller`` can't take.

  ``jax.vmap(tx.init)`` stacks one state per client; its counters then have
  the client axes, and the update must run inside ``jax.vmap``.
  """
  if np.ndim(counter) != 0:
    raise ValueError(
      f"{caller} got a stack of states (its counters have shape"
      f" {np.shape(counter)}, one per client, as jax.vmap(tx.init) makes"
      f" them): call it inside jax.vmap, e.g."
      f" `jax.vmap(tx.update)(grads, state, params)`."
    )
