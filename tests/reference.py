"""The published update rules of TRSGD and TRAdam, stated in plain NumPy.

This file is written from the rules (step k from 0, inner index i = k mod S,
anchor refreshed when i == 0, mu_k = 2 * lambda_w / eta_k, L2 decay after
the proximal term, step size eta_k / (i + 1), Adam's eps added to sqrt(v)
before the bias correction) and from the reference's training driver (with
``epoch_length``, the inner-loop counter restarts at 0 with every epoch), not
from the library, so the tests compare the library against an independent
statement. It computes in float64.
"""

from collections.abc import Callable

import numpy as np

GradFn = Callable[[np.ndarray, int], np.ndarray]
LrFn = Callable[[int], float]


def _trajectory(
  direction: Callable[[np.ndarray, int], np.ndarray],
  grad_fn: GradFn,
  w0: np.ndarray,
  lr: LrFn,
  steps: int,
  period: int,
  lambda_w: float | LrFn | None,
  weight_decay: float,
  epoch_length: int | None,
) -> list[np.ndarray]:
  """Runs the outer/inner loops; ``direction(g, k)`` is the optimizer.

  ``lambda_w`` may be a function of k (the library's extension: the
  reference's is a constant).
  """
  default = 0.1 * lr(0)
  lambda_at = lambda_w if callable(lambda_w) else lambda k: lambda_w
  w = np.asarray(w0, np.float64)
  anchor = None
  trajectory = [w]
  for k in range(steps):
    counter = k if epoch_length is None else k % epoch_length
    i = counter % period
    eta = lr(k)
    if i == 0:
      anchor = w.copy()
    lam = lambda_at(k)
    mu = 2 * (default if lam is None else lam) / eta if eta > 0 else 0.0
    g = grad_fn(w, k) + mu * (w - anchor) + weight_decay * w
    w = w - eta / (i + 1) * direction(g, k)
    trajectory.append(w)
  return trajectory


def trsgd(
  grad_fn: GradFn,
  w0: np.ndarray,
  lr: LrFn,
  steps: int,
  *,
  period: int,
  lambda_w: float | LrFn | None = None,
  momentum: float = 0.9,
  nesterov: bool = False,
  weight_decay: float = 0.0,
  epoch_length: int | None = None,
) -> list[np.ndarray]:
  """TRSGD: heavy ball ``buf <- m buf + g``, ``w <- w - eta/(i+1) buf``."""
  buf = np.zeros_like(np.asarray(w0, np.float64))

  def heavy_ball(g, k):
    del k
    nonlocal buf
    buf = momentum * buf + g
    return g + momentum * buf if nesterov else buf

  return _trajectory(
    heavy_ball,
    grad_fn,
    w0,
    lr,
    steps,
    period,
    lambda_w,
    weight_decay,
    epoch_length,
  )


def tradam(
  grad_fn: GradFn,
  w0: np.ndarray,
  lr: LrFn,
  steps: int,
  *,
  period: int,
  lambda_w: float | LrFn | None = None,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  epoch_length: int | None = None,
) -> list[np.ndarray]:
  """TRAdam: Adam moments on g, bias correction over all steps k.

  eps is added to sqrt(v) before the bias correction, as in the reference:
  ``sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)``.
  """
  m = np.zeros_like(np.asarray(w0, np.float64))
  v = np.zeros_like(m)

  def adam(g, k):
    nonlocal m, v
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    t = k + 1
    return np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)

  return _trajectory(
    adam, grad_fn, w0, lr, steps, period, lambda_w, weight_decay, epoch_length
  )
