"""The optimizers compared: each of ours next to its bare optax baseline.

Every candidate gets the same hyper-parameters as its baseline (learning
rate, momentum, weight decay); ours add the proximal pull with the default
``period=10`` and ``lambda_w = 0.1 * learning_rate``.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

import optax_prox

PERIOD = 10
LEARNING_RATE = 1e-3
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
# trajectory_regularized's strength 2 * lambda_w / eta with lambda_w = 0.1 eta.
STRENGTH = 0.2


@dataclasses.dataclass(frozen=True)
class Candidate:
  """An optimizer to time.

  Attributes:
    name: how the tables name it.
    make: builds the transformation.
    ideal_streams: how many param-sized float32 buffers a perfectly fused
      update must read or write per step, averaged over a period (the
      anchor is written on one step of ``PERIOD``).
    wrap_params: turns the model's params into what ``update`` expects
      (``optax.lookahead`` keeps fast and slow params).
  """

  name: str
  make: Callable[[], optax.GradientTransformation]
  ideal_streams: float
  wrap_params: Callable[[Any], Any] = lambda params: params


def sgd_with_l2() -> optax.GradientTransformation:
  """The bare baseline of TRSGD: L2 weight decay, then SGD with momentum."""
  return optax.chain(
      optax.add_decayed_weights(WEIGHT_DECAY),
      optax.sgd(LEARNING_RATE, momentum=MOMENTUM),
  )


# Per step: read params, grads and state, write params and state.
SGD = Candidate("optax.sgd(momentum) + L2", sgd_with_l2, ideal_streams=5)
TRSGD = Candidate(
    "optax_prox.trsgd",
    lambda: optax_prox.trsgd(
        LEARNING_RATE, period=PERIOD, momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY),
    ideal_streams=6 + 1 / PERIOD,  # + read the anchor, + write it per period
)


def fixed_anchor(*, pull: bool) -> optax.GradientTransformation:
  """A diagnostic: a params-shaped buffer in the state, never refreshed.

  With ``pull=False`` the buffer is only carried from step to step; with
  ``pull=True`` the update also reads it, ``g + STRENGTH * (w - a)``. Put in
  front of bare SGD, the two split TRSGD's cost into carrying the anchor,
  reading it, and the rest (refresh, counters, inner-loop schedule).
  """

  def init_fn(params):
    return jax.tree.map(jnp.zeros_like, params)

  def update_fn(updates, anchor, params=None):
    if pull:
      updates = jax.tree.map(
          lambda g, w, a: g + STRENGTH * (w - a), updates, params, anchor)
    return updates, anchor

  return optax.GradientTransformation(init_fn, update_fn)


SGD_CARRY = Candidate(
    "sgd + a carried buffer (diagnostic)",
    lambda: optax.chain(fixed_anchor(pull=False), sgd_with_l2()),
    ideal_streams=5,
)
SGD_READ = Candidate(
    "sgd + a pull, never refreshed (diagnostic)",
    lambda: optax.chain(fixed_anchor(pull=True), sgd_with_l2()),
    ideal_streams=6,
)
LOOKAHEAD = Candidate(
    "optax.lookahead(sgd) (reference)",
    lambda: optax.lookahead(
        sgd_with_l2(), sync_period=PERIOD, slow_step_size=0.5),
    ideal_streams=5 + 2 / PERIOD,  # + read and write the slow params per sync
    wrap_params=lambda params: optax.LookaheadParams(
        fast=params, slow=jax.tree.map(jnp.copy, params)),  # two buffers
)
ADAM = Candidate(
    "optax.adam", lambda: optax.adam(LEARNING_RATE), ideal_streams=7)
TRADAM = Candidate(
    "optax_prox.tradam",
    lambda: optax_prox.tradam(LEARNING_RATE, period=PERIOD),
    ideal_streams=8 + 1 / PERIOD,
)
LION = Candidate(
    "optax.lion", lambda: optax.lion(LEARNING_RATE / 10), ideal_streams=5)
PROX_LION = Candidate(
    "proximal_regularize + optax.lion",
    lambda: optax.chain(
        optax_prox.proximal_regularize(STRENGTH, PERIOD),
        optax.lion(LEARNING_RATE / 10)),
    ideal_streams=6 + 1 / PERIOD,
)

# Each group is timed interleaved; its first member is the baseline.
UPDATE_GROUPS = (
    (SGD, SGD_CARRY, SGD_READ, TRSGD, LOOKAHEAD),
    (ADAM, TRADAM),
    (LION, PROX_LION),
)
TRAINING_GROUPS = ((SGD, TRSGD), (ADAM, TRADAM))
