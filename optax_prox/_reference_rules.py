r"""The reference's Adam direction and its step, as optax transformations.

Private: :func:`optax_prox.trsgd` and :func:`optax_prox.tradam` build on
them (trsgd's heavy ball is ``optax.trace``). They leave the learning rate to
the caller.
"""

from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_prox import _validation

_FLOAT16_TINY = float(np.finfo(np.float16).tiny)


def at_least_float32(dtype: Any) -> Any:
  """Where to compute Adam's scalars: beta2 = 0.999 is 1 in bfloat16."""
  return dtype if jnp.dtype(dtype).itemsize >= 4 else jnp.float32


def descend(step_size: jax.Array) -> optax.GradientTransformation:
  r"""Scales the updates by :math:`-\eta`, cast to each update's dtype.

  Like PyTorch's ``p.add_(buf, alpha=-lr)``: a bfloat16 param gets a
  bfloat16 update, and a float64 one the rate in float64.
  """

  def update_fn(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
  ) -> tuple[optax.Updates, optax.OptState]:
    del params
    return jax.tree.map(
      lambda u: -jnp.asarray(step_size, u.dtype) * u, updates
    ), state

  return optax.GradientTransformation(
    lambda params: optax.EmptyState(), update_fn
  )


def scale_by_reference_adam(
  b1: Any, b2: Any, eps: Any
) -> optax.GradientTransformation:
  r"""Adam with the reference's placement of :math:`\epsilon`.

  .. math::

    m &\leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
    v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \\
    u &= \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t} \,
      \frac{m}{\sqrt{v} + \epsilon},

  with :math:`t` the number of updates so far, this one included:
  :math:`\epsilon` is added before the bias correction, as PyTorch's Adam of
  2019 and the reference TRAdam do (``optax.scale_by_adam`` adds it after).
  The state is an :class:`optax.ScaleByAdamState`.
  """

  def init_fn(params: optax.Params) -> optax.ScaleByAdamState:
    eps_value = _validation.concrete_float("eps", eps)
    if (
      eps_value is not None
      and eps_value < _FLOAT16_TINY
      and any(
        jnp.result_type(p) == jnp.float16 for p in jax.tree.leaves(params)
      )
    ):
      raise ValueError(
        f"eps={eps} rounds sqrt(v) + eps to 0 in the float16 params: pass"
        " eps=1e-4, or keep the params in bfloat16 or float32."
      )
    return optax.ScaleByAdamState(
      count=jnp.zeros([], jnp.int32),
      mu=optax.tree.zeros_like(params),
      nu=optax.tree.zeros_like(params),
    )

  def update_fn(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
  ) -> tuple[optax.Updates, optax.OptState]:
    del params
    state = cast(optax.ScaleByAdamState, state)

    def moment(decay: Any, previous: jax.Array, g: jax.Array) -> jax.Array:
      # 1 - decay before rounding: 1 - 0.999 is 0 in bfloat16.
      decay = jnp.asarray(decay, at_least_float32(previous.dtype))
      dtype = previous.dtype
      new: jax.Array = decay.astype(dtype) * previous + (1 - decay).astype(
        dtype
      ) * g.astype(dtype)
      return new

    mu = jax.tree.map(lambda m, g: moment(b1, m, g), state.mu, updates)
    nu = jax.tree.map(lambda v, g: moment(b2, v, g * g), state.nu, updates)
    count = jnp.asarray(optax.safe_increment(state.count))

    def direction(m: jax.Array, v: jax.Array) -> jax.Array:
      dtype = at_least_float32(m.dtype)
      t = count.astype(dtype)
      beta1, beta2 = (jnp.asarray(b, dtype) for b in (b1, b2))
      correction = jnp.sqrt(1 - beta2**t) / (1 - beta1**t)
      denominator = jnp.sqrt(v) + jnp.asarray(eps, v.dtype)
      return correction.astype(m.dtype) * m / denominator

    updates = jax.tree.map(direction, mu, nu)
    return updates, optax.ScaleByAdamState(count, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)
