r"""Helpers that read or change the anchor inside any optimizer state.

Each takes a whole optimizer state, wherever :func:`proximal_regularize`'s
:class:`ProximalRegularizeState` sits in it: a chain, ``optax.masked``,
``optax.MultiSteps``, ``optax.inject_hyperparams``, or the ``opt_state`` of a
flax ``nnx.Optimizer``. They are pure functions and can be jitted.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_prox import _proximal
from optax_prox import _validation

_State = _proximal.ProximalRegularizeState


def _is_ours(node: Any) -> bool:
  return isinstance(node, _proximal.ProximalRegularizeState)


def _ours(opt_state: optax.OptState, caller: str) -> list[_State]:
  found = [
    node
    for node in jax.tree.leaves(opt_state, is_leaf=_is_ours)
    if _is_ours(node)
  ]
  if not found:
    raise ValueError(
      f"{caller}: opt_state holds no ProximalRegularizeState. Pass the"
      " state of an optimizer built with optax_prox (trsgd, tradam,"
      " trajectory_regularized, or a chain with proximal_regularize)."
    )
  return found


def _replace_ours(
  opt_state: optax.OptState, caller: str, replace: Callable[[_State], _State]
) -> optax.OptState:
  _ours(opt_state, caller)
  new_state: optax.OptState = jax.tree.map(
    lambda node: replace(node) if _is_ours(node) else node,
    opt_state,
    is_leaf=_is_ours,
  )
  return new_state


def _with_position(state: _State, position: Callable[[Any], Any]) -> _State:
  # jax.tree.map reaches the array inside an nnx.Variable, and keeps it.
  counts = jax.tree.map(lambda c: c.at[1].set(position(c[1])), state.counts)
  return state._replace(counts=counts)


def restart_inner_loop(opt_state: optax.OptState) -> optax.OptState:
  r"""Makes the next update start a new inner loop.

  The next update takes the params it is given as the new anchor,
  :math:`a \leftarrow w_k`, and counts as position :math:`i = 0`, so
  :func:`trajectory_regularized` takes the full step :math:`\eta_k`; the
  step :math:`k` of the outer schedule is untouched. Called at the start of
  every epoch, it reproduces the reference training script, which restarts
  the inner loop each epoch. In a FedProx client, called when the server's
  model arrives, it makes that model the anchor.

  Args:
    opt_state: any optimizer state that holds a
      :class:`ProximalRegularizeState` (all of them, if several).

  Returns:
    The same state with every inner loop restarted.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_prox
    >>> tx = optax_prox.trsgd(learning_rate=0.1, period=4, momentum=0.0)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update(jnp.array([1.0]), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> updates, _ = tx.update(jnp.array([1.0]), state, params)
    >>> print(updates)  # position 2: a third of the step, pulled back
    [-0.04]
    >>> state = optax_prox.restart_inner_loop(state)
    >>> updates, _ = tx.update(jnp.array([1.0]), state, params)
    >>> print(updates)  # position 0: the full step, a new anchor
    [-0.1]
  """
  return _replace_ours(
    opt_state,
    "restart_inner_loop",
    lambda state: _with_position(
      state, lambda p: jnp.full_like(p, _proximal.REFRESH_DUE)
    ),
  )


def _new_anchor(anchor: Any, stored: Any) -> Any:
  """``anchor`` cast leaf by leaf onto the tree and dtypes of ``stored``."""
  given = _validation.leaves_by_path(anchor)
  wanted = _validation.leaves_by_path(stored)
  missing = sorted(set(wanted) - set(given))
  if missing:
    raise ValueError(
      f"anchor has no leaf at {_validation.describe_paths(missing)}: pass a"
      " tree with the params' structure (for flax.nnx,"
      " `nnx.state(model, nnx.Param)`)."
    )
  has_masked_leaves = any(
    isinstance(node, optax.MaskedNode)
    for node in jax.tree.leaves(
      stored, is_leaf=lambda n: isinstance(n, optax.MaskedNode)
    )
  )
  unexpected = sorted(set(given) - set(wanted))
  if unexpected and not has_masked_leaves:
    raise ValueError(
      "anchor has leaves that the params do not have:"
      f" {_validation.describe_paths(unexpected)}. Pass a tree with the"
      " params' structure."
    )
  for path, leaf in wanted.items():
    if np.shape(given[path]) != np.shape(leaf):
      raise ValueError(
        f"anchor{path} has shape {np.shape(given[path])}, but the param"
        f" there has shape {np.shape(leaf)}."
      )

  def cast(path: Any, leaf: jax.Array) -> jax.Array:
    return jnp.asarray(given[_validation.path_key(path)], leaf.dtype)

  return jax.tree_util.tree_map_with_path(cast, stored)


def set_anchor(
  opt_state: optax.OptState, anchor: optax.Params
) -> optax.OptState:
  r"""Replaces the anchor that the next updates are pulled toward.

  .. math::

    a \leftarrow \text{anchor}

  Each leaf is cast to the dtype the anchor is stored in. The next update
  pulls toward it, at the inner position it was due at: the anchor is not
  refreshed until the current inner loop ends (with ``period=None``,
  never). This sets the pretrained weights of L2-SP, or the server's model
  in a FedProx client.

  Args:
    opt_state: any optimizer state that holds a
      :class:`ProximalRegularizeState` (all of them are set, if several).
    anchor: a tree with the params' structure and shapes (leaves that
      ``optax.masked`` leaves out are ignored).

  Returns:
    The same state with the new anchor.

  Raises:
    ValueError: if ``anchor`` lacks a leaf of the params, has a leaf they do
      not have, or a leaf of another shape.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_prox
    >>> tx = optax.chain(optax_prox.proximal_regularize(strength=1.0),
    ...                  optax.sgd(learning_rate=0.1))
    >>> params = {"w": jnp.array([3.0])}
    >>> state = optax_prox.set_anchor(tx.init(params), {"w": jnp.array([1.0])})
    >>> updates, state = tx.update({"w": jnp.zeros(1)}, state, params)
    >>> print(updates["w"])  # -0.1 * 1.0 * (3 - 1)
    [-0.2]
  """

  def replace(state: _State) -> _State:
    new = state._replace(anchor=_new_anchor(anchor, state.anchor))
    return _with_position(new, lambda p: jnp.maximum(p, 0))

  return _replace_ours(opt_state, "set_anchor", replace)


def anchor_distance(
  opt_state: optax.OptState, params: optax.Params
) -> jax.Array:
  r"""The distance from the params to the anchor, the thing to log.

  .. math::

    \|w - a\|_2 = \Big(\sum_{\text{anchored leaves}} \sum_j
      (w_j - a_j)^2\Big)^{1/2},

  computed in float32 over the leaves that carry an anchor (leaves that
  ``optax.masked`` leaves out do not count). Right after the anchor is
  refreshed it is 0, and it grows inside each inner loop.

  Args:
    opt_state: an optimizer state that holds exactly one
      :class:`ProximalRegularizeState`.
    params: the current params (for flax.nnx, ``nnx.state(model,
      nnx.Param)``).

  Returns:
    A float32 scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax_prox
    >>> tx = optax_prox.trsgd(learning_rate=0.1)
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> state = optax_prox.set_anchor(tx.init(params),
    ...                               {"w": jnp.zeros(2)})
    >>> print(optax_prox.anchor_distance(state, params))
    5.0
  """
  found = _ours(opt_state, "anchor_distance")
  if len(found) > 1:
    raise ValueError(
      f"anchor_distance: opt_state holds {len(found)}"
      " ProximalRegularizeStates; pass the part of the state that holds"
      " the one you mean."
    )
  anchored = _validation.leaves_by_path(found[0].anchor)
  current = _validation.leaves_by_path(params)
  missing = sorted(set(anchored) - set(current))
  if missing:
    raise ValueError(
      f"params has no leaf at {_validation.describe_paths(missing)}, where"
      " the state holds an anchor: pass the params the optimizer updates."
    )
  total = jnp.zeros([], jnp.float32)
  for path, anchor in anchored.items():
    if np.shape(current[path]) != np.shape(anchor):
      raise ValueError(
        f"params{path} has shape {np.shape(current[path])}, but its anchor"
        f" has shape {np.shape(anchor)}."
      )
    diff = jnp.asarray(current[path], jnp.float32) - jnp.asarray(
      anchor, jnp.float32
    )
    total = total + jnp.sum(diff * diff)
  return jnp.sqrt(total)
