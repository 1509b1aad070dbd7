r"""Helpers that read or change the anchor inside any optimizer state.

Each takes a whole optimizer state, wherever :func:`proximal_regularize`'s
:class:`ProximalRegularizeState` sits in it: a chain, ``optax.masked``,
``optax.MultiSteps``, ``optax.inject_hyperparams``, or the ``opt_state`` of a
flax ``nnx.Optimizer``. They are pure functions and can be jitted: each
returns a new state, which the caller assigns (``state = restart_inner_loop(
state)``; with flax.nnx, ``optimizer.opt_state = ...``).

They also take a stack of states, one per client, with leading axes on every
leaf (``jax.vmap(tx.init)(client_params)`` makes one): each client is then
restarted, set or measured on its own, as inside ``jax.vmap``.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optax_prox import _proximal
from optax_prox import _validation

_State = _proximal.ProximalRegularizeState


def _is_proximal_state(node: Any) -> bool:
  return isinstance(node, _proximal.ProximalRegularizeState)


def _proximal_states(opt_state: optax.OptState, caller: str) -> list[_State]:
  """Every :class:`ProximalRegularizeState` in ``opt_state``; at least one."""
  _validation.check_not_nnx_object(
    "opt_state",
    opt_state,
    "the optimizer's state, `optimizer.opt_state`, and assign the result"
    " back to it",
  )
  found = [
    node
    for node in jax.tree.leaves(opt_state, is_leaf=_is_proximal_state)
    if _is_proximal_state(node)
  ]
  if not found:
    raise ValueError(
      f"{caller}: opt_state holds no ProximalRegularizeState. Pass the"
      " state of an optimizer built with optax_prox (trsgd, tradam,"
      " trajectory_regularized, or a chain with proximal_regularize)."
    )
  return found


def _map_proximal_states(
  opt_state: optax.OptState, caller: str, replace: Callable[[_State], _State]
) -> optax.OptState:
  """``opt_state`` with ``replace`` applied to each of its proximal states."""
  _proximal_states(opt_state, caller)
  new_state: optax.OptState = jax.tree.map(
    lambda node: replace(node) if _is_proximal_state(node) else node,
    opt_state,
    is_leaf=_is_proximal_state,
  )
  return new_state


def _with_position(state: _State, position: Callable[[Any], Any]) -> _State:
  # jax.tree.map reaches the array inside an nnx.Variable, and keeps it.
  return state._replace(position=jax.tree.map(position, state.position))


def _position(state: _State) -> jax.Array:
  """The inner position; its shape is that of the stack (``()``: none)."""
  (position,) = jax.tree.leaves(state.position)  # also inside nnx.Variable
  return jnp.asarray(position)


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
    A new state, every inner loop restarted; the one passed in is unchanged,
    so assign the result: ``state = restart_inner_loop(state)`` (with
    flax.nnx, ``optimizer.opt_state = restart_inner_loop(
    optimizer.opt_state)``).

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
  return _map_proximal_states(
    opt_state,
    "restart_inner_loop",
    lambda state: _with_position(
      state, lambda p: jnp.full_like(p, _proximal.REFRESH_DUE)
    ),
  )


def _leaves_like_anchor(
  name: str, tree: Any, state: _State, fix: str
) -> dict[str, Any]:
  """``tree``'s leaves by path, checked against ``state``'s anchor.

  A stack of states (counters with leading axes) takes a tree stacked alike
  or one for every client.
  """
  return _validation.check_like_anchor(
    name, tree, state.anchor, fix=fix, batch_ndim=_position(state).ndim
  )


def _new_anchor(anchor: Any, state: _State) -> Any:
  """``anchor`` cast onto the tree, dtypes and stack of the stored one."""
  given = _leaves_like_anchor(
    "anchor",
    anchor,
    state,
    "Pass a tree with the params' structure and shapes (for flax.nnx,"
    " `nnx.state(model, nnx.Param)`).",
  )

  def cast(path: Any, leaf: jax.Array) -> jax.Array:
    new = jnp.asarray(given[_validation.path_key(path)], leaf.dtype)
    return jnp.broadcast_to(new, leaf.shape)  # one anchor for every client

  return jax.tree_util.tree_map_with_path(cast, state.anchor)


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
      :class:`ProximalRegularizeState` (all of them are set, if several),
      or a stack of such states, one per client.
    anchor: a tree with the params' structure and shapes (leaves that
      ``optax.masked`` leaves out are ignored). For a stack of states,
      either one anchor per client (stacked like the states) or a single
      one, which every client gets: the server's model in FedProx.

  Returns:
    A new state with the new anchor; assign it (``state = set_anchor(state,
    anchor)``): the state passed in is unchanged.

  Raises:
    ValueError: if ``anchor`` lacks a leaf of the params (the message says
      when it lacks whole top-level entries), has a leaf they do not have,
      or a leaf of another shape.
    TypeError: if ``anchor`` is a flax.nnx module.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_prox
    >>> tx = optax.chain(
    ...     optax_prox.proximal_regularize(strength=1.0, period=None),
    ...     optax.sgd(learning_rate=0.1))
    >>> params = {"w": jnp.array([3.0])}
    >>> state = optax_prox.set_anchor(tx.init(params),
    ...                               {"w": jnp.array([1.0])})
    >>> updates, state = tx.update({"w": jnp.zeros(1)}, state, params)
    >>> print(updates["w"])  # -0.1 * 1.0 * (3 - 1)
    [-0.2]
  """

  def replace(state: _State) -> _State:
    new = state._replace(anchor=_new_anchor(anchor, state))
    return _with_position(new, lambda p: jnp.maximum(p, 0))

  return _map_proximal_states(opt_state, "set_anchor", replace)


def anchor_distance(
  opt_state: optax.OptState, params: optax.Params
) -> jax.Array:
  r"""The distance from the params to the anchor the next update pulls toward.

  .. math::

    \|w - a\|_2 = \Big(\sum_{\text{anchored leaves}} \sum_j
      (w_j - a_j)^2\Big)^{1/2},

  computed in float32 over the leaves that carry an anchor (leaves that
  ``optax.masked`` leaves out do not count). When the next update takes a
  new anchor (at init, after the last update of an inner loop, after
  :func:`restart_inner_loop`), that anchor is :math:`w` itself and the
  distance is 0; it grows inside each inner loop. This is the quantity to
  log to see how far the proximal term lets the params stray.

  Args:
    opt_state: an optimizer state that holds exactly one
      :class:`ProximalRegularizeState`, or a stack of such states, one per
      client (``jax.vmap(tx.init)(client_params)``).
    params: the current params (for flax.nnx, ``nnx.state(model,
      nnx.Param)``); for a stack of states, stacked alike, or a single
      tree that every client is measured from.

  Returns:
    A float32 scalar; for a stack of states, one distance per client, of
    the stack's shape (never a norm pooled over the clients).

  Raises:
    ValueError: if ``opt_state`` holds no proximal state or several, or if
      ``params`` lacks an anchored leaf, has a leaf the params do not have,
      or a leaf of another shape.
    TypeError: if ``params`` is a flax.nnx module.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_prox
    >>> tx = optax_prox.trsgd(learning_rate=0.1, momentum=None)
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> state = tx.init(params)
    >>> print(optax_prox.anchor_distance(state, params))  # a new anchor next
    0.0
    >>> updates, state = tx.update({"w": jnp.array([-6.0, -8.0])}, state,
    ...                            params)
    >>> params = optax.apply_updates(params, updates)  # one step from it
    >>> print(optax_prox.anchor_distance(state, params))
    1.0

    A stack of states, one per client, gives one distance per client:

    >>> import jax
    >>> tx = optax.chain(
    ...     optax_prox.proximal_regularize(strength=0.1, period=None),
    ...     optax.sgd(learning_rate=0.1))
    >>> clients = {"w": jnp.array([[0.0, 0.0], [3.0, 4.0]])}  # 2 clients
    >>> states = jax.vmap(tx.init)(clients)
    >>> states = optax_prox.set_anchor(states, {"w": jnp.zeros(2)})
    >>> print(optax_prox.anchor_distance(states, clients))
    [0. 5.]
  """
  found = _proximal_states(opt_state, "anchor_distance")
  if len(found) > 1:
    raise ValueError(
      f"anchor_distance: opt_state holds {len(found)}"
      " ProximalRegularizeStates; pass the part of the state that holds"
      " the one you mean."
    )
  (state,) = found
  position = _position(state)
  current = _leaves_like_anchor(
    "params", params, state, "Pass the params the optimizer updates."
  )
  total = jnp.zeros(position.shape, jnp.float32)
  for path, anchor in _validation.leaves_by_path(state.anchor).items():
    # One params tree for a stack of states measures every client from it.
    here = jnp.broadcast_to(
      jnp.asarray(current[path], jnp.float32), anchor.shape
    )
    diff = here - jnp.asarray(anchor, jnp.float32)
    total = total + jnp.sum(diff * diff, tuple(range(position.ndim, diff.ndim)))
  refresh_due = position == _proximal.REFRESH_DUE
  return jnp.where(refresh_due, jnp.zeros_like(total), jnp.sqrt(total))
