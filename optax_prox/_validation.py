"""Argument checks shared by the public factories.

Every check raises at construction time with a message that names the
argument, says what was wrong, and says how to fix it. Values that are traced
(for instance hyper-parameters injected by ``optax.inject_hyperparams`` inside
``jax.jit``) cannot be inspected and are let through.
"""

import math
from typing import Any

import jax
import numpy as np

_INT32_MAX = np.iinfo(np.int32).max


def concrete_float(value: Any) -> float | None:
  """Returns ``value`` as a Python float, or None when it is traced."""
  if isinstance(value, jax.core.Tracer):
    return None
  array = np.asarray(value)
  if array.ndim != 0 or not np.issubdtype(array.dtype, np.number):
    raise TypeError(f"expected a real scalar, got {value!r}")
  return float(array)


def check_period(period: Any) -> int:
  """Checks that ``period`` is a static integer in ``[1, 2**31 - 1]``."""
  if isinstance(period, jax.Array):
    raise TypeError(
        "period must be a static Python int, but it is a JAX array. With"
        " optax.inject_hyperparams pass static_args=('period',)."
    )
  if isinstance(period, bool) or not isinstance(period, (int, np.integer)):
    raise TypeError(
        f"period must be a Python int (the inner-loop length S), got"
        f" {period!r} of type {type(period).__name__}."
    )
  if not 1 <= period <= _INT32_MAX:
    raise ValueError(
        f"period must be >= 1 (1 disables the proximal term), got {period}."
    )
  return int(period)


def check_nonnegative(name: str, value: Any, hint: str = "") -> None:
  """Checks that a scalar hyper-parameter is finite and >= 0.

  Schedules are checked at step 0; traced values are not checked.
  """
  at_zero = value(0) if callable(value) else value
  try:
    number = concrete_float(at_zero)
  except TypeError as error:
    raise TypeError(f"{name}: {error}. {hint}".rstrip()) from None
  if number is None:
    return
  where = " at step 0" if callable(value) else ""
  if math.isnan(number) or math.isinf(number) or number < 0:
    raise ValueError(
        f"{name} must be a finite number >= 0, got {number}{where}. {hint}"
        .rstrip()
    )


def check_fraction(name: str, value: Any) -> None:
  """Checks that a decay rate such as a momentum lies in ``[0, 1)``."""
  number = concrete_float(value)
  if number is not None and not 0 <= number < 1:
    raise ValueError(f"{name} must lie in [0, 1), got {number}.")
