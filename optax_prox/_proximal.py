r"""The proximal pull toward a periodically refreshed anchor."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optax_prox import _validation

NO_PARAMS_MESSAGE = (
    "proximal_regularize needs the current parameters: call"
    " `tx.update(grads, state, params)` (with flax.nnx, use"
    " `nnx.Optimizer(model, tx, wrt=nnx.Param)`, which passes them)."
)


class ProximalRegularizeState(NamedTuple):
  """State of :func:`proximal_regularize`.

  Attributes:
    anchor: the parameters at the start of the current inner loop; same tree
      as the params, each leaf of the param's shape and of ``anchor_dtype``
      (default: the param's dtype).
    inner_step: the position ``i = k mod period`` in the inner loop; it cycles
      forever and never overflows. shape=(), dtype=int32.
    prox_count: the number of updates ``k`` applied so far, saturating at
      ``2**31 - 1``; it is the step a ``strength`` schedule is evaluated at.
      shape=(), dtype=int32.
  """

  anchor: optax.Params
  inner_step: jax.Array
  prox_count: jax.Array


def proximal_regularize(
    strength: optax.ScalarOrSchedule,
    period: int,
    *,
    anchor_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Adds the gradient of a proximal term around a periodic anchor.

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

  Args:
    strength: the proximal strength :math:`\mu_k \ge 0`, a float or a
      schedule of :math:`k`. 0 leaves the updates unchanged.
    period: the inner-loop length :math:`S \ge 1`, a static Python int. 1
      refreshes the anchor every step, which leaves the updates unchanged.
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
  """
  period = _validation.check_period(period)
  _validation.check_nonnegative("strength", strength)
  if anchor_dtype is not None:
    anchor_dtype = jnp.dtype(anchor_dtype)
    if not jnp.issubdtype(anchor_dtype, jnp.inexact):
      raise TypeError(
          f"anchor_dtype must be a floating dtype such as jnp.bfloat16, got"
          f" {anchor_dtype}."
      )

  def init_fn(params: optax.Params) -> ProximalRegularizeState:

    def zeros_placed_like(p):
      zeros = jnp.zeros_like(p, dtype=anchor_dtype or p.dtype)
      if isinstance(p, jax.core.Tracer):
        # Under jit with automatic sharding a constant has no sharding of
        # its own and comes out replicated; selecting it against the param
        # makes XLA shard it like the param.
        zeros = jnp.where(True, zeros, p.astype(zeros.dtype))
      return zeros

    anchor = jax.tree.map(zeros_placed_like, params)
    return ProximalRegularizeState(
        anchor,
        inner_step=jnp.zeros([], jnp.int32),
        prox_count=jnp.zeros([], jnp.int32),  # separate buffers: donatable
    )

  def update_fn(
      updates: optax.Updates,
      state: ProximalRegularizeState,
      params: optax.Params | None = None,
      **extra_args: Any,
  ) -> tuple[optax.Updates, ProximalRegularizeState]:
    del extra_args  # accepted, like every optax transformation, and unused
    if params is None:
      raise ValueError(NO_PARAMS_MESSAGE)
    mu = strength(state.prox_count) if callable(strength) else strength
    refresh = state.inner_step == 0

    # A cond, not a select: the anchor is written on 1 step of `period`. The
    # pull reads the cond's result, not the old anchor: a read of the old
    # anchor beside a cond that may overwrite it made XLA copy the anchor and
    # the params on every step; this way a donated anchor is updated in place.
    anchor = jax.lax.cond(
        refresh,
        lambda p, a: jax.tree.map(lambda p, a: p.astype(a.dtype), p, a),
        lambda p, a: a,
        params, state.anchor,
    )

    def pull(g, p, a):
      # On a refresh step the difference is exactly 0, even when the anchor
      # is stored in a narrower dtype than p.
      diff = p - jnp.where(refresh, p, a.astype(p.dtype))
      return g + (jnp.asarray(mu, p.dtype) * diff).astype(g.dtype)

    updates = jax.tree.map(pull, updates, params, anchor)
    next_step = state.inner_step + 1
    inner_step = jnp.where(next_step == period, 0, next_step)
    prox_count = optax.safe_increment(state.prox_count)
    return updates, ProximalRegularizeState(anchor, inner_step, prox_count)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
