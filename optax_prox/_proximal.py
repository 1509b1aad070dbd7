r"""The proximal pull toward an anchor, refreshed every ``period`` steps."""

from typing import Any, Literal, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_prox import _schedules
from optax_prox import _validation

NO_PARAMS_MESSAGE = (
  "this optax_prox transformation needs the current parameters: call"
  " `tx.update(grads, state, params)` (with flax.nnx, use"
  " `nnx.Optimizer(model, tx, wrt=nnx.Param)`, which passes them)."
)
UPDATE_FIX = (
  "Pass {name} with the tree and shapes given to `init` (with flax.nnx,"
  " the same `wrt` filter), or call `init` again."
)

# The position before an update that takes a new anchor: at init, after
# `restart_inner_loop`, and after the last update of each inner loop.
REFRESH_DUE = -1

# How the anchor is refreshed; both give the same results (tested).
# "cond" writes it once per inner loop inside a lax.cond; "select" writes it
# on every step with a branch-free jnp.where, as optax's lookahead syncs its
# slow weights, and needs no predicate on the host (XLA:GPU copies a cond's
# predicate there). The library uses "cond"; the benchmark compares both.
Refresh = Literal["cond", "select"]


class ProximalRegularizeState(NamedTuple):
  """State of :func:`proximal_regularize`.

  Attributes:
    anchor: the point the updates are pulled toward: the params at the start
      of the current inner loop (or what :func:`optax_prox.set_anchor` put
      there). Same tree as the params, each leaf of the param's shape and of
      ``anchor_dtype`` (default: the param's dtype).
    step: an ``int32`` scalar, the number of updates applied so far,
      :math:`k`, saturating at ``2**31 - 1``: the step at which schedules
      are evaluated.
    position: an ``int32`` scalar, the inner position :math:`i` of the
      *next* update, or ``-1`` when the next update takes a new anchor and
      counts as :math:`i = 0` (at init, after the last update of each inner
      loop, and after :func:`optax_prox.restart_inner_loop`). The anchor
      refresh and the :math:`1/(i+1)` step size of
      :func:`optax_prox.trajectory_regularized` both read it, so they cannot
      drift apart.
  """

  anchor: optax.Params
  step: jax.Array
  position: jax.Array


def require_params(params: optax.Params | None) -> optax.Params:
  """``params``, or the error that says how to pass them."""
  if params is None:
    raise ValueError(NO_PARAMS_MESSAGE)
  return params


def step_and_position(state: ProximalRegularizeState) -> tuple[Any, Any]:
  """The step ``k`` and inner position ``i`` of the next update."""
  return state.step, jnp.maximum(state.position, 0)


def proximal_regularize(
  strength: optax.ScalarOrSchedule,
  period: int | None,
  *,
  anchor_dtype: jax.typing.DTypeLike | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Adds the gradient of a proximal term around an anchor.

  Let :math:`k` count updates from 0, :math:`i = k \bmod S` with
  :math:`S` the ``period``, :math:`w_k` the params passed to the update and
  :math:`\mu_k` the ``strength``. Then

  .. math::

    a &\leftarrow w_k \quad \text{if } i = 0, \\
    g &\leftarrow g + \mu_k \, (w_k - a),

  which is the gradient of :math:`\tfrac{\mu_k}{2}\|w - a\|^2`: inside
  each inner loop of :math:`S` steps the objective becomes
  :math:`\mu_k`-strongly convex around the anchor :math:`a` (the Trajectory
  Regularized Algorithm of Zhang et al.). On a step with :math:`i = 0` the
  term is exactly zero. Chain it before any optimizer.

  This is the pull alone. :func:`optax_prox.trsgd` adds the same pull with
  ``strength = 2 * lambda_w / learning_rate`` and ``period=10`` by default,
  and also divides the step size by :math:`i + 1`, which a chain with this
  transformation does not (see :func:`optax_prox.inner_loop_schedule`).

  With ``period=None`` the anchor is taken on the first update only (or is
  the one given by :func:`optax_prox.set_anchor`) and never refreshed: the
  pull toward fixed weights of L2-SP fine-tuning, or of a FedProx client.
  :func:`optax_prox.restart_inner_loop` makes the next update take a new
  anchor in either case.

  Args:
    strength: the proximal strength :math:`\mu_k \ge 0`, a float or a
      schedule of :math:`k`. 0 leaves the updates unchanged.
    period: the inner-loop length :math:`S`, a static Python int in
      :math:`[1, 2^{31} - 1]` (1 refreshes the anchor every step, which
      leaves the updates unchanged), or None, spelled out, for an anchor
      that is never refreshed.
    anchor_dtype: dtype to store the anchor in (e.g. ``jnp.bfloat16`` halves
      its memory); default: each param's own dtype.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs` whose ``update``
    requires ``params``; its state is a :class:`ProximalRegularizeState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_prox
    >>> tx = optax.chain(
    ...     optax_prox.proximal_regularize(strength=1.0, period=2),
    ...     optax.sgd(learning_rate=0.5))
    >>> params = jnp.array([4.0])
    >>> state = tx.init(params)
    >>> for _ in range(4):
    ...   grads = jnp.array([2.0])  # a constant gradient
    ...   updates, state = tx.update(grads, state, params)
    ...   params = optax.apply_updates(params, updates)
    ...   print(params)
    [3.]
    [2.5]
    [1.5]
    [1.]

    The second step of each inner loop (gradient 2 + (3 - 4) = 1) is pulled
    back toward the anchor set on the first.

  References:
    Zhang, Qu, Chen and Metaxas, `Taming the Noisy Gradient: Train Deep
    Neural Networks with Small Batch Sizes
    <https://www.ijcai.org/proceedings/2019/0604.pdf>`_, IJCAI 2019.

    Li, Grandvalet and Davoine, `Explicit Inductive Bias for Transfer
    Learning with Convolutional Networks
    <https://arxiv.org/abs/1802.01483>`_, ICML 2018 (L2-SP).
  """
  if period is not None:
    period = _validation.check_period(period)
  _validation.check_nonnegative("strength", strength)
  return build(
    strength, period, _validation.check_anchor_dtype(anchor_dtype), "cond"
  )


def build(
  strength: optax.ScalarOrSchedule,
  period: int | None,
  anchor_dtype: np.dtype[Any] | None,
  refresh: Refresh,
) -> optax.GradientTransformationExtraArgs:
  """:func:`proximal_regularize` from checked arguments.

  Args:
    strength: the proximal strength, checked.
    period: the inner-loop length, checked, or None.
    anchor_dtype: a floating dtype, or None for each param's own.
    refresh: how the anchor is refreshed (see ``Refresh``).

  Returns:
    The transformation.
  """
  refresh_anchor = _REFRESHES[refresh]

  def init_fn(params: optax.Params) -> ProximalRegularizeState:

    def zeros_placed_like(p: jax.Array) -> jax.Array:
      zeros = jnp.zeros_like(p, dtype=anchor_dtype or p.dtype)
      if isinstance(p, jax.core.Tracer):
        # Under jit with automatic sharding a constant has no sharding of
        # its own and comes out replicated; selecting it against the param
        # makes XLA shard it like the param.
        zeros = jnp.where(True, zeros, p.astype(zeros.dtype))
      return zeros

    return ProximalRegularizeState(
      anchor=jax.tree.map(zeros_placed_like, params),
      step=jnp.zeros([], jnp.int32),
      position=jnp.full([], REFRESH_DUE, jnp.int32),
    )

  def update_fn(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, optax.OptState]:
    del extra_args  # accepted, like every optax transformation, and unused
    state = cast(ProximalRegularizeState, state)
    params = require_params(params)
    _validation.check_unstacked(state.position, "tx.update")
    for name, tree in (("params", params), ("updates", updates)):
      _validation.check_like_anchor(
        name,
        tree,
        state.anchor,
        fix=UPDATE_FIX.format(name=name),
        same_containers=True,
      )
    step, position = step_and_position(state)
    mu = _schedules.value_at(strength, step)
    refresh = state.position == REFRESH_DUE
    anchor = refresh_anchor(refresh, params, state.anchor)

    def pull(g: jax.Array, p: jax.Array, a: jax.Array) -> jax.Array:
      # On a refresh step the difference is exactly 0, even when the anchor
      # is stored in a narrower dtype than p.
      diff = p - jnp.where(refresh, p, a.astype(p.dtype))
      return g + (jnp.asarray(mu, p.dtype) * diff).astype(g.dtype)

    updates = jax.tree.map(pull, updates, params, anchor)
    next_position = position + 1
    if period is not None:
      next_position = jnp.where(
        next_position == period, REFRESH_DUE, next_position
      )
    else:  # never refreshed: count on, saturating
      next_position = jnp.where(
        position == np.iinfo(np.int32).max, position, next_position
      )
    next_step = jnp.asarray(optax.safe_increment(step))
    return updates, ProximalRegularizeState(anchor, next_step, next_position)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _cast_like(params: optax.Params, anchor: optax.Params) -> optax.Params:
  cast_params: optax.Params = jax.tree.map(
    lambda p, a: p.astype(a.dtype), params, anchor
  )
  return cast_params


def _refresh_by_cond(
  refresh: jax.Array, params: optax.Params, anchor: optax.Params
) -> optax.Params:
  # Writes the anchor once per inner loop. The pull reads this result, not
  # the old anchor: a read of the old anchor beside a cond that may
  # overwrite it made XLA copy the anchor and the params on every step; this
  # way a donated anchor is updated in place.
  new_anchor: optax.Params = jax.lax.cond(
    refresh, _cast_like, lambda p, a: a, params, anchor
  )
  return new_anchor


def _refresh_by_select(
  refresh: jax.Array, params: optax.Params, anchor: optax.Params
) -> optax.Params:
  # Branch-free: reads the params and writes the anchor on every step, but
  # needs no predicate on the host (XLA:GPU copies a cond's predicate there).
  new_anchor: optax.Params = jax.tree.map(
    lambda p, a: jnp.where(refresh, p, a), _cast_like(params, anchor), anchor
  )
  return new_anchor


_REFRESHES = {"cond": _refresh_by_cond, "select": _refresh_by_select}
