r"""The schedules of the Trajectory Regularized Algorithm."""

from typing import Any

import jax
import jax.numpy as jnp
import optax

from optax_prox import _validation


def value_at(value: optax.ScalarOrSchedule, count: Any) -> Any:
  """A hyper-parameter's value at step ``count``: a schedule is called."""
  return value(count) if callable(value) else value


def inner_step_size(
  learning_rate: optax.ScalarOrSchedule, step: Any, position: Any
) -> Any:
  r"""The step size :math:`\eta_k / (i + 1)`, in the default float dtype."""
  eta = jnp.asarray(value_at(learning_rate, step), float)
  return eta / jnp.asarray(position + 1, eta.dtype)


def inner_loop_schedule(
  learning_rate: optax.ScalarOrSchedule, period: int
) -> optax.Schedule:
  r"""Divides a learning rate by the position in the inner loop.

  .. math::

    \eta'(k) = \frac{\eta(k)}{(k \bmod S) + 1},

  so the step size restarts at :math:`\eta(k)` whenever the anchor is
  refreshed and decays as :math:`1/(i+1)` inside each inner loop of
  :math:`S` steps, as in the Trajectory Regularized Algorithm.

  For compositions by hand, such as ``optax.chain(proximal_regularize(mu,
  S), optax.sgd(inner_loop_schedule(eta, S)))``: the schedule reads optax's
  own step count, so :func:`restart_inner_loop` does not reach it.
  :func:`trajectory_regularized` reads the position from its state instead.

  Args:
    learning_rate: the outer learning rate :math:`\eta`, a float or a
      schedule of the step :math:`k`.
    period: the inner-loop length :math:`S \ge 1`, a static Python int.

  Returns:
    An :class:`optax.Schedule` mapping :math:`k` to :math:`\eta'(k)`.

  Examples:
    >>> import optax_prox
    >>> schedule = optax_prox.inner_loop_schedule(0.6, period=3)
    >>> [round(float(schedule(k)), 4) for k in range(5)]
    [0.6, 0.3, 0.2, 0.6, 0.3]

  References:
    Zhang, Qu, Chen and Metaxas, `Taming the Noisy Gradient: Train Deep
    Neural Networks with Small Batch Sizes
    <https://www.ijcai.org/proceedings/2019/0604.pdf>`_, IJCAI 2019.
  """
  period = _validation.check_period(period)
  _validation.check_nonnegative("learning_rate", learning_rate)

  def schedule(count: Any) -> Any:
    return inner_step_size(learning_rate, count, jnp.asarray(count) % period)

  return schedule


def coupled_strength(
  learning_rate: optax.ScalarOrSchedule, lambda_w: optax.ScalarOrSchedule
) -> optax.ScalarOrSchedule:
  r"""The reference's strength :math:`\mu_k = 2\lambda_w(k) / \eta_k`.

  Where :math:`\eta_k \le 0` (a warm-up from zero, a decay to zero) there is
  no proximal pull, :math:`\mu_k = 0`, instead of a division by zero. A
  schedule when either argument is one, else a scalar.
  """

  def strength_at(count: Any) -> Any:
    eta = jnp.asarray(value_at(learning_rate, count))
    positive = eta > 0
    safe_eta = jnp.where(positive, eta, jnp.ones_like(eta))
    pull = 2 * value_at(lambda_w, count)
    return jnp.where(positive, pull / safe_eta, jnp.zeros_like(eta))

  if callable(learning_rate) or callable(lambda_w):
    return strength_at
  constant: jax.Array = strength_at(None)
  return constant
