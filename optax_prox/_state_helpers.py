r"""Helpers that read or change the anchor inside any optimizer state.

Each takes a whole optimizer state, wherever :func:`proximal_regularize`'s
:class:`ProximalRegularizeState` sits in it: a chain, ``optax.masked``,
``optax.multi_transform``, ``optax.MultiSteps``, ``optax.inject_hyperparams``,
or the ``opt_state`` of a flax ``nnx.Optimizer``. With several (one per
group of ``optax.multi_transform``), each helper acts on all of them. They
are pure functions and can be jitted: ``restart_inner_loop`` and
``set_anchor`` return a new state, which the caller assigns (``state =
restart_inner_loop(state)``; with flax.nnx, ``optimizer.opt_state = ...``);
``anchor_distance`` returns a scalar.

A stack of states, one per client (``jax.vmap(tx.init)(client_params)``
makes one), is refused: map the helper over it with ``jax.vmap``, as the
message shows, e.g. ``jax.vmap(optax_prox.set_anchor, in_axes=(0,
None))(states, server_params)`` to give every client one anchor.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optax_prox import _paths
from optax_prox import _proximal
from optax_prox import _reference_rules
from optax_prox import _validation

_State = _proximal.ProximalRegularizeState


def _is_proximal_state(node: Any) -> bool:
  return isinstance(node, _proximal.ProximalRegularizeState)


def _counter(counter: Any) -> jax.Array:
  """A counter of the state, also inside an ``nnx.Variable``."""
  (leaf,) = jax.tree.leaves(counter)
  return jnp.asarray(leaf)


def _proximal_states(opt_state: optax.OptState, vmapped: str) -> list[_State]:
  """Every :class:`ProximalRegularizeState` in ``opt_state``; at least one."""
  if hasattr(opt_state, "opt_state"):  # an nnx.Optimizer, a TrainState
    raise TypeError(
      "opt_state: pass the optimizer's state, `optimizer.opt_state`, and"
      f" assign the result back to it, not the {type(opt_state).__name__}."
    )
  found = [
    node
    for node in jax.tree.leaves(opt_state, is_leaf=_is_proximal_state)
    if _is_proximal_state(node)
  ]
  if not found:
    raise ValueError(
      "opt_state holds no ProximalRegularizeState: pass the state of an"
      " optax_prox optimizer (trsgd, tradam, trajectory_regularized, or a"
      " chain with proximal_regularize)."
    )
  for state in found:
    _validation.check_unstacked("opt_state", _counter(state.step), vmapped)
  return found


def _map_proximal_states(
  opt_state: optax.OptState, vmapped: str, replace: Callable[[_State], _State]
) -> optax.OptState:
  """``opt_state`` with ``replace`` applied to each of its proximal states."""
  _proximal_states(opt_state, vmapped)
  new_state: optax.OptState = jax.tree.map(
    lambda node: replace(node) if _is_proximal_state(node) else node,
    opt_state,
    is_leaf=_is_proximal_state,
  )
  return new_state


def _with_position(state: _State, position: Callable[[Any], Any]) -> _State:
  # jax.tree.map reaches the array inside an nnx.Variable, and keeps it.
  return state._replace(position=jax.tree.map(position, state.position))


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
      :class:`ProximalRegularizeState` (all of them, if several). For a
      stack of client states, map over it:
      ``jax.vmap(optax_prox.restart_inner_loop)(states)``.

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
    "jax.vmap(optax_prox.restart_inner_loop)(opt_state)",
    lambda state: _with_position(
      state, lambda p: jnp.full_like(p, _proximal.REFRESH_DUE)
    ),
  )


def set_anchor(
  opt_state: optax.OptState,
  anchor: optax.Params,
  importance: optax.Params | None = None,
) -> optax.OptState:
  r"""Replaces the anchor that the next updates are pulled toward.

  .. math::

    a \leftarrow \text{anchor}, \qquad F \leftarrow \text{importance}

  Each leaf is copied, cast to the dtype the anchor is stored in: the state
  never shares a buffer with ``anchor``, so params and state can be donated
  together to a jitted step. The next update pulls toward it, at the inner
  position it was due at: the anchor is not refreshed until the current
  inner loop ends (with ``period=None``, never). This sets the pretrained
  weights of L2-SP, or the server's model in a FedProx client.

  Args:
    opt_state: any optimizer state that holds a
      :class:`ProximalRegularizeState` (all of them are set, if several).
      For a stack of client states, map over it:
      ``jax.vmap(optax_prox.set_anchor, in_axes=(0, None))(states, server)``
      gives every client the server's model.
    anchor: a tree with the params' structure and shapes (leaves that
      ``optax.masked`` leaves out are ignored).
    importance: for a ``proximal_regularize(..., weighted=True)``, the
      weight :math:`F_j` of each coordinate's pull (EWC's diagonal Fisher,
      MAS's importance), a tree like ``anchor``, finite and >= 0 (checked
      unless traced); None keeps the weights the state holds.

  Returns:
    A new state with the new anchor; assign it (``state = set_anchor(state,
    anchor)``): the state passed in is unchanged.

  Raises:
    ValueError: if ``anchor``'s or ``importance``'s leaves or shapes differ
      from the params' (the message names the first path that differs), if
      ``importance`` has a negative or non-finite entry or the pull was
      built without ``weighted=True``, if ``opt_state`` holds no proximal
      state, or is a stack of them.
    TypeError: if ``opt_state`` is an ``nnx.Optimizer`` (pass its
      ``opt_state``).

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

    With ``weighted=True``, each coordinate's pull is weighted by its
    importance (EWC: a diagonal Fisher information at the anchor):

    >>> tx = optax.chain(
    ...     optax_prox.proximal_regularize(1.0, None, weighted=True),
    ...     optax.sgd(learning_rate=0.1))
    >>> params = {"w": jnp.array([3.0, 3.0])}
    >>> state = optax_prox.set_anchor(tx.init(params), {"w": jnp.ones(2)},
    ...                               importance={"w": jnp.array([1.0, 2.0])})
    >>> updates, state = tx.update({"w": jnp.zeros(2)}, state, params)
    >>> print(updates["w"])  # -0.1 * 1.0 * F * (3 - 1)
    [-0.2 -0.4]
  """

  def replace(state: _State) -> _State:
    given = _validation.like_anchor("anchor", anchor, state.anchor)

    # A copy, never the anchor's own buffer: params and state may then be
    # donated together to a jitted step.
    def copy(leaves: dict[Any, Any]) -> Any:
      return _paths.map_with_path(
        lambda path, a: jnp.array(leaves[path], a.dtype, copy=True),
        state.anchor,
      )

    if importance is not None:
      if state.importance is None:
        raise ValueError(
          "importance: this pull keeps none; build it with"
          " `optax_prox.proximal_regularize(strength, period, weighted=True)`."
        )
      weights = _validation.importance_like_anchor(importance, state.anchor)
      state = state._replace(importance=copy(weights))
    return _with_position(
      state._replace(anchor=copy(given)), lambda p: jnp.maximum(p, 0)
    )

  return _map_proximal_states(
    opt_state,
    "jax.vmap(optax_prox.set_anchor, in_axes=(0, None))(opt_state, anchor)",
    replace,
  )


def anchor_distance(
  opt_state: optax.OptState, params: optax.Params
) -> jax.Array:
  r"""How far the params went from the anchor: the drift to log.

  .. math::

    \|w - a\|_2 = \Big(\sum_{\text{anchored leaves}} \sum_j
      |w_j - a_j|^2\Big)^{1/2},

  with :math:`a` the anchor of the inner loop that the last update belonged
  to (or the one :func:`set_anchor` put there): the drift grows inside each
  inner loop and is largest at its end, where it is still measured from
  that loop's anchor; the next update then takes a new one. It is 0 before
  any update. Complex params count by modulus. It is computed in float32
  over the leaves that carry an anchor (leaves that ``optax.masked`` leaves
  out do not count); a state with several proximal states (one per group
  of ``optax.multi_transform``) counts the anchored leaves of each.

  Args:
    opt_state: an optimizer state that holds a
      :class:`ProximalRegularizeState`. For a stack of client states, map
      over it: ``jax.vmap(optax_prox.anchor_distance)(states, params)``
      gives one distance per client.
    params: the current params (for flax.nnx, ``nnx.state(model,
      nnx.Param)``), of the same leaves and shapes as the anchor.

  Returns:
    A float32 scalar.

  Raises:
    ValueError: if ``params``'s leaves or shapes differ from the anchor's
      (the message names the first path that differs), if ``opt_state``
      holds no proximal state, or is a stack of them.
    TypeError: if ``opt_state`` is an ``nnx.Optimizer`` (pass its
      ``opt_state``).

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_prox
    >>> tx = optax_prox.trsgd(learning_rate=0.1, period=2, lambda_w=0.0,
    ...                       momentum=None)  # steps of 1, then of 0.5
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> state = tx.init(params)
    >>> print(optax_prox.anchor_distance(state, params))  # no update yet
    0.0
    >>> for _ in range(2):  # one inner loop; the second ends it
    ...   updates, state = tx.update({"w": jnp.array([-6.0, -8.0])}, state,
    ...                              params)
    ...   params = optax.apply_updates(params, updates)
    ...   print(optax_prox.anchor_distance(state, params))
    1.0
    1.5

    A stack of states, one per client, gives one distance per client
    under ``jax.vmap``:

    >>> import jax
    >>> tx = optax.chain(
    ...     optax_prox.proximal_regularize(strength=0.1, period=None),
    ...     optax.sgd(learning_rate=0.1))
    >>> clients = {"w": jnp.array([[0.0, 0.0], [3.0, 4.0]])}  # 2 clients
    >>> states = jax.vmap(tx.init)(clients)
    >>> server = {"w": jnp.zeros(2)}
    >>> states = jax.vmap(optax_prox.set_anchor, in_axes=(0, None))(
    ...     states, server)
    >>> print(jax.vmap(optax_prox.anchor_distance)(states, clients))
    [0. 5.]
  """
  total = jnp.zeros([], jnp.float32)
  for state in _proximal_states(
    opt_state, "jax.vmap(optax_prox.anchor_distance)(opt_state, params)"
  ):
    given = _validation.like_anchor("params", params, state.anchor)
    squares = sum(
      map(_squared_distance, given.values(), jax.tree.leaves(state.anchor)),
      start=jnp.zeros([], jnp.float32),
    )
    no_update_yet = (_counter(state.step) == 0) & (
      _counter(state.position) == _proximal.REFRESH_DUE
    )
    total = total + jnp.where(no_update_yet, 0, squares)
  return jnp.sqrt(total)


def _squared_distance(w: jax.Array, a: jax.Array) -> jax.Array:
  """The sum of ``|w - a|**2`` in at least float32, as a float32."""
  dtype = _reference_rules.at_least_float32(jnp.result_type(w))
  diff = jnp.asarray(w, dtype) - jnp.asarray(a, dtype)
  return jnp.sum(jnp.abs(diff) ** 2).astype(jnp.float32)
