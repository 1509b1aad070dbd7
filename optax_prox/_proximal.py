r"""The proximal pull toward an anchor, refreshed every ``period`` steps."""

from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

from optax_prox import _paths
from optax_prox import _schedules
from optax_prox import _validation

# The position before an update that takes a new anchor: at init, after
# `restart_inner_loop`, and after the last update of each inner loop.
REFRESH_DUE = -1


class ProximalRegularizeState(NamedTuple):
  r"""State of :func:`proximal_regularize`.

  Attributes:
    anchor: the point the updates are pulled toward: the params at the start
      of the current inner loop (or what :func:`optax_prox.set_anchor` put
      there; at init, a copy of the params given to ``init``). Same tree as
      the params, each leaf of the param's shape and of ``anchor_dtype``
      (default: the param's dtype). It never shares a buffer with the
      params, so both may be donated to a jitted step.
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
    importance: with ``weighted=True``, the weight :math:`F_j \ge 0` of
      each coordinate's pull, a tree like the anchor (ones at init, or what
      :func:`optax_prox.set_anchor` put there); otherwise None, which holds
      no memory and costs no time.
  """

  anchor: optax.Params
  step: jax.Array
  position: jax.Array
  importance: Any = None  # a tree like the anchor, or None


def step_and_position(state: ProximalRegularizeState) -> tuple[Any, Any]:
  """The step ``k`` and inner position ``i`` of the next update."""
  return state.step, jnp.maximum(state.position, 0)


def proximal_regularize(
  strength: optax.ScalarOrSchedule,
  period: int | None,
  *,
  anchor_dtype: jax.typing.DTypeLike | None = None,
  weighted: bool = False,
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

  With ``weighted=True`` each coordinate's pull has its own weight
  :math:`F_j \ge 0`, set beside the anchor by
  ``optax_prox.set_anchor(state, anchor, importance=F)`` (ones until then):

  .. math::

    g \leftarrow g + \mu_k \, F \odot (w_k - a),

  the gradient of :math:`\tfrac{\mu_k}{2}\sum_j F_j (w_j - a_j)^2`: with
  :math:`F` a diagonal Fisher information at the anchor, EWC (Kirkpatrick
  et al.); with MAS's importances, MAS. Importances are heavy-tailed, and
  under plain SGD at rate :math:`\eta` the pull alone diverges once
  :math:`\eta\,\mu_k \max_j F_j > 2`: keep the strength below
  :math:`2 / (\eta \max_j F_j)`, or chain the pull before an adaptive
  optimizer such as Adam, whose steps stay near its rate.

  Args:
    strength: the proximal strength :math:`\mu_k \ge 0`, a float or a
      schedule of :math:`k` (checked at :math:`k = 0`). 0 leaves the
      updates unchanged. A traced strength (one that
      ``optax.inject_hyperparams`` injects) cannot be checked: a negative
      one pushes the params away from the anchor.
    period: the inner-loop length :math:`S`, a static Python int in
      :math:`[1, 2^{31} - 1]` (1 refreshes the anchor every step, which
      leaves the updates unchanged), or None, spelled out, for an anchor
      that is never refreshed.
    anchor_dtype: dtype to store the anchor in (e.g. ``jnp.bfloat16`` halves
      its memory); default: each param's own dtype.
    weighted: whether the state keeps an importance per coordinate (stored
      like the anchor); False keeps none, at no cost.

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

    Kirkpatrick et al., `Overcoming Catastrophic Forgetting in Neural
    Networks <https://arxiv.org/abs/1612.00796>`_, PNAS 2017 (EWC).
  """
  if period is not None:
    period = _validation.check_period(period)
  _validation.check_nonnegative("strength", strength)
  return pull_toward_anchor(
    strength, period, _validation.check_anchor_dtype(anchor_dtype), weighted
  )


def pull_toward_anchor(
  strength: optax.ScalarOrSchedule,
  period: int | None,
  anchor_dtype: Any,
  weighted: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """:func:`proximal_regularize` from checked arguments."""

  def init_fn(params: optax.Params) -> ProximalRegularizeState:
    anchor = jax.tree.map(
      lambda p: jnp.array(p, anchor_dtype or p.dtype, copy=True), params
    )
    return ProximalRegularizeState(
      anchor=anchor,
      step=jnp.zeros([], jnp.int32),
      position=jnp.full([], REFRESH_DUE, jnp.int32),
      importance=jax.tree.map(jnp.ones_like, anchor) if weighted else None,
    )

  def update_fn(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, optax.OptState]:
    del extra_args  # accepted, like every optax transformation, and unused
    state = cast(ProximalRegularizeState, state)
    params = _validation.require_params(params)
    _validation.check_unstacked(
      "state", state.position, "jax.vmap(tx.update)(updates, state, params)"
    )
    given = _validation.like_anchor("params", params, state.anchor)
    grads = _validation.like_anchor("updates", updates, state.anchor)
    anchor, anchor_tree = jax.tree.flatten(state.anchor)
    refresh = state.position == REFRESH_DUE
    # Writes the anchor once per inner loop. The pull reads the cond's
    # result, not the old anchor: a read of the old anchor beside a cond
    # that may overwrite it made XLA copy the anchor and the params on
    # every step; this way a donated anchor is updated in place.
    anchor = jax.lax.cond(
      refresh,
      lambda w, a: [x.astype(y.dtype) for x, y in zip(w, a)],
      lambda w, a: a,
      list(given.values()),
      anchor,
    )
    mu = _schedules.value_at(strength, state.step)
    # Unweighted, each leaf's weight is None: no importance, no product.
    weights = jax.tree.leaves(state.importance) or [None] * len(anchor)

    def pull(g: jax.Array, w: jax.Array, a: jax.Array, f: Any) -> jax.Array:
      # On a refresh step the difference is exactly 0, even when the anchor
      # is stored in a narrower dtype than w.
      diff = w - jnp.where(refresh, w, a.astype(w.dtype))
      if f is not None:
        diff = f.astype(w.dtype) * diff
      return g + (jnp.asarray(mu, w.dtype) * diff).astype(g.dtype)

    pulled = dict(
      zip(given, map(pull, grads.values(), given.values(), anchor, weights))
    )
    updates = _paths.map_with_path(lambda p, u: pulled.get(p, u), updates)
    position = optax.safe_increment(jnp.maximum(state.position, 0))
    if period is not None:
      position = jnp.where(position == period, REFRESH_DUE, position)
    return updates, ProximalRegularizeState(
      jax.tree.unflatten(anchor_tree, anchor),
      jnp.asarray(optax.safe_increment(state.step)),
      jnp.asarray(position),
      state.importance,
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
