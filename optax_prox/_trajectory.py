r"""The Trajectory Regularized Algorithm around any optax optimizer."""

import functools
from typing import Any, Callable

import optax

from optax_prox import _proximal
from optax_prox import _schedules
from optax_prox import _validation

def _default_lambda_w(learning_rate: optax.ScalarOrSchedule) -> Any:
  """The reference default ``lambda_w = 0.1 * eta_0``."""
  if not callable(learning_rate):
    return 0.1 * learning_rate
  eta_0 = learning_rate(0)
  if _validation.concrete_float(eta_0) == 0:
    raise ValueError(
        "lambda_w defaults to 0.1 * learning_rate(0), but learning_rate(0) is"
        " 0 (a warm-up from zero?), which would switch the proximal term off."
        " Pass lambda_w explicitly, e.g. 0.1 * peak_learning_rate."
    )
  return 0.1 * eta_0


def trajectory_regularized(
    optimizer: Callable[[optax.ScalarOrSchedule], optax.GradientTransformation],
    learning_rate: optax.ScalarOrSchedule,
    *,
    period: int = 10,
    lambda_w: Any | None = None,
    weight_decay: Any = 0.0,
    anchor_dtype: Any | None = None,
) -> optax.GradientTransformation:
  r"""Wraps an optimizer in the Trajectory Regularized Algorithm.

  With :math:`k` the step, :math:`i = k \bmod S`, :math:`w_k` the params
  and :math:`\eta_k` the outer learning rate, each update computes

  .. math::

    a &\leftarrow w_k \quad \text{if } i = 0, \\
    g &\leftarrow \nabla f(w_k) + \mu_k (w_k - a) + \mathrm{wd}\, w_k,
    \qquad \mu_k = 2 \lambda_w / \eta_k, \\
    w &\leftarrow \text{optimizer step on } g \text{ with step size }
    \eta_k / (i + 1),

  i.e. ``optax.chain(proximal_regularize(mu, period),
  optax.add_decayed_weights(weight_decay),
  optimizer(inner_loop_schedule(learning_rate, period)))``. Because
  :math:`\mu_k \eta_k = 2 \lambda_w`, the proximal pull per step does not
  change when the outer schedule decays. Where :math:`\eta_k = 0` the pull
  is switched off (:math:`\mu_k = 0`): the step is zero there anyway.

  Args:
    optimizer: an optax optimizer factory whose first argument is the
      learning rate and accepts a schedule, such as ``optax.adamw``,
      ``optax.lion`` or ``functools.partial(optax.sgd, momentum=0.9)``.
    learning_rate: the outer learning rate :math:`\eta_k`, a float or a
      schedule.
    period: the inner-loop length :math:`S` (the reference's default is 10).
    lambda_w: the reference's :math:`\lambda_w \ge 0`; defaults to
      :math:`0.1 \eta_0`.
    weight_decay: L2 weight decay added to the gradient after the proximal
      term (the reference's ``weight_decay``).
    anchor_dtype: dtype to store the anchor in; default each param's dtype.

  Returns:
    An :class:`optax.GradientTransformation` whose ``update`` requires
    ``params``.

  Examples:
    >>> import functools
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_prox
    >>> tx = optax_prox.trajectory_regularized(
    ...     optax.lion, learning_rate=1e-3, period=5, weight_decay=1e-4)
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
  period = _validation.check_period(period)
  _validation.check_nonnegative("learning_rate", learning_rate)
  if lambda_w is None:
    lambda_w = _default_lambda_w(learning_rate)
  _validation.check_nonnegative("lambda_w", lambda_w)
  _validation.check_nonnegative("weight_decay", weight_decay)
  no_decay = isinstance(weight_decay, (int, float)) and weight_decay == 0
  return optax.chain(
      _proximal.proximal_regularize(
          _schedules.coupled_strength(learning_rate, lambda_w),
          period,
          anchor_dtype=anchor_dtype,
      ),
      optax.identity() if no_decay
      else optax.add_decayed_weights(weight_decay),
      optimizer(_schedules.inner_loop_schedule(learning_rate, period)),
  )


def trsgd(
    learning_rate: optax.ScalarOrSchedule,
    *,
    period: int = 10,
    lambda_w: Any | None = None,
    momentum: Any = 0.9,
    nesterov: bool = False,
    weight_decay: Any = 0.0,
    anchor_dtype: Any | None = None,
) -> optax.GradientTransformation:
  r"""TRSGD: SGD with heavy-ball momentum in the Trajectory Regularized Algorithm.

  .. math::

    a &\leftarrow w_k \quad \text{if } i = 0, \qquad i = k \bmod S, \\
    g &\leftarrow \nabla f(w_k) + \tfrac{2\lambda_w}{\eta_k}(w_k - a)
      + \mathrm{wd}\, w_k, \\
    b &\leftarrow m\, b + g, \qquad
    w \leftarrow w - \tfrac{\eta_k}{i + 1}\, b

  (with ``nesterov=True`` the step uses :math:`g + m b` instead of
  :math:`b`). See :func:`trajectory_regularized`.

  Args:
    learning_rate: the outer learning rate :math:`\eta_k`, float or schedule.
    period: the inner-loop length :math:`S`.
    lambda_w: :math:`\lambda_w \ge 0`; defaults to :math:`0.1 \eta_0`.
    momentum: the heavy-ball coefficient :math:`m \in [0, 1)`.
    nesterov: use Nesterov momentum.
    weight_decay: L2 weight decay :math:`\mathrm{wd}`.
    anchor_dtype: dtype to store the anchor in; default each param's dtype.

  Returns:
    An :class:`optax.GradientTransformation` whose ``update`` requires
    ``params``.

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
  _validation.check_fraction("momentum", momentum)
  sgd = functools.partial(
      optax.sgd,
      momentum=None if isinstance(momentum, (int, float)) and momentum == 0
      else momentum,
      nesterov=nesterov,
  )
  return trajectory_regularized(
      sgd, learning_rate, period=period, lambda_w=lambda_w,
      weight_decay=weight_decay, anchor_dtype=anchor_dtype,
  )


def tradam(
    learning_rate: optax.ScalarOrSchedule,
    *,
    period: int = 10,
    lambda_w: Any | None = None,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    anchor_dtype: Any | None = None,
) -> optax.GradientTransformation:
  r"""TRAdam: Adam in the Trajectory Regularized Algorithm.

  .. math::

    a &\leftarrow w_k \quad \text{if } i = 0, \qquad i = k \bmod S, \\
    g &\leftarrow \nabla f(w_k) + \tfrac{2\lambda_w}{\eta_k}(w_k - a)
      + \mathrm{wd}\, w_k, \\
    m &\leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
    v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \\
    w &\leftarrow w - \tfrac{\eta_k}{i + 1}\,
      \frac{m / (1 - \beta_1^{k+1})}{\sqrt{v / (1 - \beta_2^{k+1})}
      + \epsilon},

  the bias correction counting all steps. See :func:`trajectory_regularized`.

  Args:
    learning_rate: the outer learning rate :math:`\eta_k`, float or schedule.
    period: the inner-loop length :math:`S`.
    lambda_w: :math:`\lambda_w \ge 0`; defaults to :math:`0.1 \eta_0`.
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon`, added to the denominator.
    weight_decay: L2 weight decay :math:`\mathrm{wd}` (coupled, as in the
      reference and in PyTorch's Adam; use :func:`trajectory_regularized`
      with ``optax.adamw`` for decoupled decay).
    anchor_dtype: dtype to store the anchor in; default each param's dtype.

  Returns:
    An :class:`optax.GradientTransformation` whose ``update`` requires
    ``params``.

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
  _validation.check_nonnegative("eps", eps)
  adam = functools.partial(optax.adam, b1=b1, b2=b2, eps=eps)
  return trajectory_regularized(
      adam, learning_rate, period=period, lambda_w=lambda_w,
      weight_decay=weight_decay, anchor_dtype=anchor_dtype,
  )
