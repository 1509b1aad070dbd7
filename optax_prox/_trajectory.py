r"""The Trajectory Regularized Algorithm around any optax optimizer."""

from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

from optax_prox import _proximal
from optax_prox import _reference_rules
from optax_prox import _schedules
from optax_prox import _validation

# Builds the wrapped optimizer from its step size (a scalar of the default
# float dtype: float32, or float64 with jax_enable_x64) and the
# params (for the dtype the step size is cast to).
OptimizerFactory = Callable[[Any, optax.Params], optax.GradientTransformation]


class TrajectoryRegularizedState(NamedTuple):
  r"""State of :func:`trajectory_regularized`, :func:`trsgd` and :func:`tradam`.

  Attributes:
    proximal: the :class:`ProximalRegularizeState`: the anchor, the step
      :math:`k` and the inner position :math:`i` of the next update.
    optimizer: the wrapped optimizer's state. The optimizer is given its
      step size :math:`\eta_k / (i + 1)` as a scalar on every update, so its
      state holds no schedule counter of its own.
  """

  proximal: _proximal.ProximalRegularizeState
  optimizer: optax.OptState


def _default_lambda_w(learning_rate: optax.ScalarOrSchedule) -> Any:
  """The reference default ``lambda_w = 0.1 * eta_0``."""
  eta_0 = _schedules.value_at(learning_rate, 0)
  if (
    callable(learning_rate)
    and _validation.concrete_float("learning_rate", eta_0) == 0
  ):
    raise ValueError(
      "lambda_w: its default, 0.1 * learning_rate(0), is 0 here, which"
      " switches the pull off; pass it, e.g. 0.1 * the peak learning rate."
    )
  return 0.1 * eta_0


def _build(
  make_optimizer: OptimizerFactory,
  learning_rate: optax.ScalarOrSchedule,
  period: int,
  lambda_w: optax.ScalarOrSchedule | None,
  weight_decay: optax.ScalarOrSchedule,
  anchor_dtype: jax.typing.DTypeLike | None,
) -> optax.GradientTransformationExtraArgs:
  """The public factories' one boundary for the arguments they share."""
  period = _validation.check_period(period)
  _validation.check_nonnegative("learning_rate", learning_rate)
  if lambda_w is None:
    lambda_w = _default_lambda_w(learning_rate)
  _validation.check_nonnegative("lambda_w", lambda_w)
  _validation.check_nonnegative("weight_decay", weight_decay)
  no_decay = isinstance(weight_decay, (int, float)) and weight_decay == 0
  proximal = _proximal.pull_toward_anchor(
    _schedules.coupled_strength(learning_rate, lambda_w),
    period,
    _validation.check_anchor_dtype(anchor_dtype),
  )

  def init_fn(params: optax.Params) -> TrajectoryRegularizedState:
    step_size = _schedules.inner_step_size(learning_rate, 0, 0)
    optimizer = make_optimizer(step_size, params)
    proximal_state = cast(
      _proximal.ProximalRegularizeState, proximal.init(params)
    )
    return TrajectoryRegularizedState(proximal_state, optimizer.init(params))

  def update_fn(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, optax.OptState]:
    state = cast(TrajectoryRegularizedState, state)
    params = _validation.require_params(params)
    step, position = _proximal.step_and_position(state.proximal)
    updates, proximal_state = proximal.update(updates, state.proximal, params)
    if not no_decay:
      decay = _schedules.value_at(weight_decay, step)
      updates = jax.tree.map(
        lambda g, p: g + (jnp.asarray(decay, p.dtype) * p).astype(g.dtype),
        updates,
        params,
      )
    step_size = _schedules.inner_step_size(learning_rate, step, position)
    # Re-exported by optax without an __all__ entry, which mypy asks for.
    optimizer = optax.with_extra_args_support(  # type: ignore[attr-defined]
      make_optimizer(step_size, params)
    )
    updates, optimizer_state = optimizer.update(
      updates, state.optimizer, params, **extra_args
    )
    return updates, TrajectoryRegularizedState(
      cast(_proximal.ProximalRegularizeState, proximal_state), optimizer_state
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _descending(direction: optax.GradientTransformation) -> OptimizerFactory:
  """The optimizer of trsgd and tradam: a direction, then the step size."""
  return lambda step_size, params: optax.chain(
    direction, _reference_rules.descend(step_size)
  )


def trajectory_regularized(
  optimizer: Callable[..., optax.GradientTransformation],
  learning_rate: optax.ScalarOrSchedule,
  *,
  period: int = 10,
  lambda_w: optax.ScalarOrSchedule | None = None,
  weight_decay: optax.ScalarOrSchedule = 0.0,
  anchor_dtype: jax.typing.DTypeLike | None = None,
  **optimizer_kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
  r"""Wraps an optimizer in the Trajectory Regularized Algorithm.

  With :math:`k` the step, :math:`i = k \bmod S`, :math:`w_k` the params
  and :math:`\eta_k` the outer learning rate, each update computes

  .. math::

    a &\leftarrow w_k \quad \text{if } i = 0, \\
    g &\leftarrow \nabla f(w_k) + \mu_k (w_k - a) + \mathrm{wd}\, w_k,
    \qquad \mu_k = 2 \lambda_w(k) / \eta_k, \\
    w &\leftarrow \text{optimizer step on } g \text{ with step size }
    \eta_k / (i + 1),

  that is, :func:`proximal_regularize` with :math:`\mu_k`, then L2 weight
  decay, then the optimizer built with the step size
  :math:`\eta_k / (i + 1)`. Because :math:`\mu_k \eta_k = 2 \lambda_w`, the
  proximal pull per step does not change when the outer schedule decays
  (unless :math:`\lambda_w` is itself a schedule).
  Where :math:`\eta_k = 0` the pull is switched off (:math:`\mu_k = 0`): the
  step is zero there anyway.

  The anchor refresh and the step size read one inner position :math:`i`
  from the state, so :func:`restart_inner_loop` restarts both (the reference
  restarts the inner loop at every epoch). The optimizer is built anew on
  every update with its step size as a scalar, as
  ``optax.inject_hyperparams`` does, so it must take the learning rate as
  the keyword ``learning_rate=`` and keep its state's tree the same for any
  value of it (every optax optimizer does).

  Args:
    optimizer: an optax optimizer factory (not an optimizer: pass
      ``optax.adam``, not ``optax.adam(1e-3)``), called as
      ``optimizer(learning_rate=..., **optimizer_kwargs)``: ``optax.adamw``,
      ``optax.lion``, ``optax.sgd``. A factory without that keyword
      (``optax.scale_by_adam``) fails at ``init`` with Python's own message.
    learning_rate: the outer learning rate :math:`\eta_k`, a float or a
      schedule.
    period: the inner-loop length :math:`S`, a Python int (the reference's
      default is 10).
    lambda_w: the reference's :math:`\lambda_w \ge 0`, a float or a
      schedule of :math:`k`; defaults to :math:`0.1 \eta_0`. 0 leaves the
      inner-loop step size alone, without a pull. A traced one (injected
      by ``optax.inject_hyperparams``) cannot be checked: a negative one
      pushes the params away from the anchor.
    weight_decay: L2 weight decay :math:`\mathrm{wd}`, a float or a
      schedule, added to the gradient after the proximal term (the
      reference's ``weight_decay``).
    anchor_dtype: dtype to store the anchor in; default each param's dtype.
    **optimizer_kwargs: the optimizer's other arguments, passed on to it
      (``momentum=0.9`` for ``optax.sgd``). ``weight_decay`` is the one
      above; for the optimizer's own (``optax.adamw``'s decoupled decay),
      pass ``functools.partial(optax.adamw, weight_decay=1e-4)``.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs` whose ``update``
    requires ``params``; its state is a :class:`TrajectoryRegularizedState`.

  Raises:
    TypeError: if ``optimizer`` is not callable (an optimizer instance, for
      example) or a ``functools.partial`` that fixes ``learning_rate``, or
      ``period`` is not an int.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_prox
    >>> tx = optax_prox.trajectory_regularized(
    ...     optax.lion, learning_rate=1e-3, period=5, weight_decay=1e-4,
    ...     b1=0.95)
    >>> params = {"w": jnp.ones(3)}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.ones(3)}, state, params)
    >>> print(updates["w"])
    [-0.001 -0.001 -0.001]

  References:
    Zhang, Qu, Chen and Metaxas, `Taming the Noisy Gradient: Train Deep
    Neural Networks with Small Batch Sizes
    <https://www.ijcai.org/proceedings/2019/0604.pdf>`_, IJCAI 2019.
  """
  # optax.inject_hyperparams binds this signature and passes the keyword
  # arguments back as one keyword named after them.
  optimizer_kwargs = {
    **optimizer_kwargs.pop("optimizer_kwargs", {}),
    **optimizer_kwargs,
  }
  _validation.check_optimizer(optimizer)

  def make_optimizer(
    step_size: jax.Array, params: optax.Params
  ) -> optax.GradientTransformation:
    # Cast as optax.inject_hyperparams casts an injected learning rate.
    step_size = step_size.astype(optax.tree.dtype(params, "highest"))
    return optimizer(learning_rate=step_size, **optimizer_kwargs)

  return _build(
    make_optimizer, learning_rate, period, lambda_w, weight_decay, anchor_dtype
  )


def trsgd(
  learning_rate: optax.ScalarOrSchedule,
  *,
  period: int = 10,
  lambda_w: optax.ScalarOrSchedule | None = None,
  momentum: float | jax.Array | None = 0.9,
  nesterov: bool = False,
  weight_decay: optax.ScalarOrSchedule = 0.0,
  anchor_dtype: jax.typing.DTypeLike | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""TRSGD: heavy-ball SGD in the Trajectory Regularized Algorithm.

  .. math::

    a &\leftarrow w_k \quad \text{if } i = 0, \qquad i = k \bmod S, \\
    g &\leftarrow \nabla f(w_k) + \tfrac{2\lambda_w}{\eta_k}(w_k - a)
      + \mathrm{wd}\, w_k, \\
    b &\leftarrow \gamma\, b + g, \qquad
    w \leftarrow w - \tfrac{\eta_k}{i + 1}\, b

  where :math:`b` is the momentum buffer and :math:`\gamma` the momentum
  (with ``nesterov=True`` the step uses :math:`g + \gamma b` instead of
  :math:`b`; with ``momentum=None`` there is no buffer and the step uses
  :math:`g`). :math:`\mathrm{wd}` is the L2 weight decay. See
  :func:`trajectory_regularized`.

  Args:
    learning_rate: the outer learning rate :math:`\eta_k`, float or schedule.
    period: the inner-loop length :math:`S`.
    lambda_w: :math:`\lambda_w \ge 0`, float or schedule; defaults to
      :math:`0.1 \eta_0`.
    momentum: the heavy-ball coefficient :math:`\gamma \in [0, 1)`, or None for
      plain SGD without a momentum buffer (as ``optax.sgd``: 0.0 keeps a
      buffer).
    nesterov: use Nesterov momentum (needs a momentum).
    weight_decay: L2 weight decay :math:`\mathrm{wd}`.
    anchor_dtype: dtype to store the anchor in; default each param's dtype.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs` whose ``update``
    requires ``params``; its state is a :class:`TrajectoryRegularizedState`.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_prox
    >>> tx = optax_prox.trsgd(learning_rate=0.05, period=4)
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> loss = lambda w: jnp.sum(w ** 2)
    >>> for _ in range(50):
    ...   grads = jax.grad(loss)(params)
    ...   updates, state = tx.update(grads, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> bool(loss(params) < 1e-2)
    True

  References:
    Zhang, Qu, Chen and Metaxas, `Taming the Noisy Gradient: Train Deep
    Neural Networks with Small Batch Sizes
    <https://www.ijcai.org/proceedings/2019/0604.pdf>`_, IJCAI 2019.
  """
  if momentum is None:
    if nesterov:
      raise ValueError("nesterov=True needs a momentum, not momentum=None.")
    direction = optax.identity()
  else:
    _validation.check_fraction("momentum", momentum)
    direction = optax.trace(decay=momentum, nesterov=nesterov)
  return _build(
    _descending(direction),
    learning_rate,
    period,
    lambda_w,
    weight_decay,
    anchor_dtype,
  )


def tradam(
  learning_rate: optax.ScalarOrSchedule,
  *,
  period: int = 10,
  lambda_w: optax.ScalarOrSchedule | None = None,
  b1: float | jax.Array = 0.9,
  b2: float | jax.Array = 0.999,
  eps: float | jax.Array = 1e-8,
  weight_decay: optax.ScalarOrSchedule = 0.0,
  anchor_dtype: jax.typing.DTypeLike | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""TRAdam: Adam in the Trajectory Regularized Algorithm.

  .. math::

    a &\leftarrow w_k \quad \text{if } i = 0, \qquad i = k \bmod S, \\
    g &\leftarrow \nabla f(w_k) + \tfrac{2\lambda_w}{\eta_k}(w_k - a)
      + \mathrm{wd}\, w_k, \\
    m &\leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
    v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \\
    w &\leftarrow w - \tfrac{\eta_k}{i + 1}\,
      \frac{\sqrt{1 - \beta_2^{k+1}}}{1 - \beta_1^{k+1}}\,
      \frac{m}{\sqrt{v} + \epsilon},

  where :math:`m` and :math:`v` are the first and second moments, the bias
  correction counts all steps, and :math:`\epsilon` is added before the
  bias correction, as in the reference (``optax.adam`` adds it after).
  See :func:`trajectory_regularized`.

  Args:
    learning_rate: the outer learning rate :math:`\eta_k`, float or schedule.
    period: the inner-loop length :math:`S`.
    lambda_w: :math:`\lambda_w \ge 0`, float or schedule; defaults to
      :math:`0.1 \eta_0`.
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon`, added to the denominator.
    weight_decay: L2 weight decay :math:`\mathrm{wd}` (coupled, as in the
      reference and in PyTorch's Adam; use :func:`trajectory_regularized`
      with ``optax.adamw`` for decoupled decay).
    anchor_dtype: dtype to store the anchor in; default each param's dtype.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs` whose ``update``
    requires ``params``; its state is a :class:`TrajectoryRegularizedState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax_prox
    >>> tx = optax_prox.tradam(learning_rate=1e-3, period=4)
    >>> params = {"w": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.array([0.5, -3.0])}, state,
    ...                            params)
    >>> print(updates["w"])
    [-0.001  0.001]

  References:
    Zhang, Qu, Chen and Metaxas, `Taming the Noisy Gradient: Train Deep
    Neural Networks with Small Batch Sizes
    <https://www.ijcai.org/proceedings/2019/0604.pdf>`_, IJCAI 2019.
  """
  _validation.check_fraction("b1", b1)
  _validation.check_fraction("b2", b2)
  _validation.check_nonnegative("eps", eps, schedule_ok=False)
  return _build(
    _descending(_reference_rules.scale_by_reference_adam(b1, b2, eps)),
    learning_rate,
    period,
    lambda_w,
    weight_decay,
    anchor_dtype,
  )
