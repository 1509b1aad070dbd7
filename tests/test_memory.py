"""Memory: one anchor on top of the base optimizer, and no extra temporaries.

The state of a TR optimizer is the state of the optimizer it wraps plus one
parameter-sized anchor and two int32 counters; ``anchor_dtype=jnp.bfloat16``
halves the anchor. A jitted training step that donates params and state needs
no more temporary memory than the same step with plain SGD.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox

LEARNING_RATE = 0.1
PERIOD = 10
COUNTER_BYTES = 2 * 4  # inner_step and prox_count, int32 scalars
# Enough temporaries for a few scalars, far below one parameter-sized buffer.
SMALL_CONSTANT_BYTES = 1024
PARAMS = {
    "w": np.ones((64, 48), np.float32),
    "b": np.ones((48,), np.float32),
    "embedding": np.ones((16, 8), jnp.bfloat16),
}

ANCHOR_DTYPES = pytest.mark.parametrize(
    "anchor_dtype", [None, jnp.bfloat16], ids=["param-dtype", "bf16"])

Factory = Callable[[Any], optax.GradientTransformation]


def nbytes(tree: Any) -> int:
  return sum(leaf.nbytes for leaf in jax.tree.leaves(tree))


def anchor_bytes(params: Any, anchor_dtype: Any) -> int:
  return sum(p.size * jnp.dtype(anchor_dtype or p.dtype).itemsize
             for p in jax.tree.leaves(params))


def inner_loop_learning_rate() -> optax.Schedule:
  return optax_prox.inner_loop_schedule(LEARNING_RATE, PERIOD)


# Each TR optimizer beside the base optimizer it wraps, with the same kind of
# learning rate (a schedule has a step counter of its own).
PAIRS: dict[str, tuple[Factory, Callable[[], optax.GradientTransformation]]] = {
    "trsgd": (
        lambda dtype: optax_prox.trsgd(LEARNING_RATE, period=PERIOD,
                                       anchor_dtype=dtype),
        lambda: optax.sgd(inner_loop_learning_rate(), momentum=0.9),
    ),
    "tradam": (
        lambda dtype: optax_prox.tradam(LEARNING_RATE, period=PERIOD,
                                        anchor_dtype=dtype),
        lambda: optax.adam(inner_loop_learning_rate()),
    ),
    "proximal_regularize+lion": (
        lambda dtype: optax.chain(
            optax_prox.proximal_regularize(0.5, PERIOD, anchor_dtype=dtype),
            optax.lion(LEARNING_RATE)),
        lambda: optax.lion(LEARNING_RATE),
    ),
}


@ANCHOR_DTYPES
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_state_is_base_state_plus_one_anchor_and_two_counters(
    name: str, anchor_dtype: Any):
  make_tr, make_base = PAIRS[name]
  params = jax.tree.map(jnp.asarray, PARAMS)
  state_bytes = nbytes(make_tr(anchor_dtype).init(params))
  base_bytes = nbytes(make_base().init(params))
  assert state_bytes == (base_bytes + anchor_bytes(params, anchor_dtype)
                         + COUNTER_BYTES)


def test_bfloat16_anchor_takes_half_the_bytes_of_float32_params():
  params = {k: v for k, v in PARAMS.items() if v.dtype == np.float32}
  assert anchor_bytes(params, jnp.bfloat16) * 2 == nbytes(params)
  wide = optax_prox.trsgd(LEARNING_RATE).init(params)
  narrow = optax_prox.trsgd(LEARNING_RATE,
                            anchor_dtype=jnp.bfloat16).init(params)
  assert nbytes(wide) - nbytes(narrow) == nbytes(params) // 2


# --------------------------------------------------- compiled step memory ----

# A two-layer network of 0.6 MiB of float32 params.
STEP_PARAMS = {"w1": np.ones((256, 512), np.float32),
               "b1": np.ones((1, 512), np.float32),
               "w2": np.ones((512, 64), np.float32)}


def mlp_loss(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
  hidden = jnp.tanh(x @ params["w1"] + params["b1"])
  return jnp.mean((hidden @ params["w2"]) ** 2)


def donated_step_memory(tx: optax.GradientTransformation) -> Any:
  """The memory analysis of a compiled step that donates params and state."""
  params = jax.tree.map(jnp.asarray, STEP_PARAMS)

  def train_step(params, state, x):
    updates, state = tx.update(jax.grad(mlp_loss)(params, x), state, params)
    return optax.apply_updates(params, updates), state

  compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(
      params, tx.init(params), jnp.ones((8, 256))).compile()
  return compiled.memory_analysis()


def sgd_and_trsgd_step_memory(anchor_dtype: Any) -> tuple[Any, Any]:
  sgd = optax.sgd(inner_loop_learning_rate(), momentum=0.9)
  trsgd = optax_prox.trsgd(LEARNING_RATE, period=PERIOD,
                           anchor_dtype=anchor_dtype)
  return donated_step_memory(sgd), donated_step_memory(trsgd)



@ANCHOR_DTYPES
def test_donated_trsgd_step_updates_the_whole_state_in_place(anchor_dtype):
  sgd, trsgd = sgd_and_trsgd_step_memory(anchor_dtype)
  extra_state = anchor_bytes(STEP_PARAMS, anchor_dtype) + COUNTER_BYTES
  assert trsgd.alias_size_in_bytes == sgd.alias_size_in_bytes + extra_state


@ANCHOR_DTYPES
def test_donated_trsgd_step_needs_no_more_temporaries_than_sgd(anchor_dtype):
  sgd, trsgd = sgd_and_trsgd_step_memory(anchor_dtype)
  extra_temp = trsgd.temp_size_in_bytes - sgd.temp_size_in_bytes
  assert extra_temp <= SMALL_CONSTANT_BYTES, (
      f"the TRSGD step needs {extra_temp} more temporary bytes than SGD's;"
      f" the params take {nbytes(STEP_PARAMS)} bytes")
