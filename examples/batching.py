"""Batches for the examples' training loops and their padded evaluation.

* :func:`epoch_batches`: a fresh random order of the training examples, cut
  into full batches, traceable (the study draws it inside ``jax.vmap``).
* :func:`padded_chunks` and :func:`summed_loss_and_correct`: a held-out
  split in equal chunks, the last one padded with examples of weight 0, and
  the weighted sums of the loss and of the correct predictions per chunk
  under ``jax.lax.map`` (one compiled chunk, bounded memory).

Importing this module creates no arrays.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax


def epoch_batches(key: jax.Array, num_examples: int, batch_size: int):
  """A random order of the examples as ``(steps, batch_size)`` indices.

  The last partial batch is dropped.
  """
  steps = num_examples // batch_size
  order = jax.random.permutation(key, num_examples)[: steps * batch_size]
  return order.reshape(steps, batch_size)


def padded_chunks(
  x: np.ndarray, y: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(inputs, labels, weights)`` in chunks of ``size``; padding weighs 0."""
  chunks = -(-len(x) // size)
  pad = chunks * size - len(x)
  weight = np.concatenate([np.ones(len(x)), np.zeros(pad)]).astype(np.float32)
  x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
  y = np.concatenate([y, np.zeros(pad, y.dtype)])
  return (
    x.reshape(chunks, size, *x.shape[1:]),
    y.reshape(chunks, size),
    weight.reshape(chunks, size),
  )


def summed_loss_and_correct(
  logits_fn: Callable[[jax.Array], jax.Array], chunks
) -> tuple[jax.Array, jax.Array]:
  """Per chunk of :func:`padded_chunks`: summed cross-entropy and hits.

  Returns two arrays of shape ``(chunks,)``; divide their sums by the sum
  of the weights for the mean loss and the accuracy.
  """

  def on_chunk(chunk):
    x, y, weight = chunk
    logits = logits_fn(x)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    correct = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
    return jnp.sum(weight * losses), jnp.sum(weight * correct)

  return jax.lax.map(on_chunk, chunks)
