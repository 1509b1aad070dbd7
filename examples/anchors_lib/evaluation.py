"""Several held-out splits in one padded pass: loss and accuracy of each.

The splits (say validation, old-class test, new-class test) are cut into
equal chunks by :func:`examples.batching.padded_chunks` and concatenated,
so one compiled evaluation serves all of them; each split's chunks are a
fixed range of the whole, given as a hashable ``parts`` tuple that a jitted
function can take as a static argument. :func:`evaluate_models` evaluates
many models of one structure at once, ``jax.vmap``-ped.
"""

from collections.abc import Callable, Mapping
import functools
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from examples import batching

CHUNK = 200

Chunks = tuple[np.ndarray, np.ndarray, np.ndarray]
Parts = tuple[tuple[str, int, int], ...]  # (split, first chunk, end chunk)


def held_out(
  splits: Mapping[str, tuple[np.ndarray, np.ndarray]], chunk: int = CHUNK
) -> tuple[Chunks, Parts]:
  """Every split's padded chunks, concatenated, and where each split is.

  Args:
    splits: name -> (inputs, labels).
    chunk: the number of examples per chunk.

  Returns:
    ``(inputs, labels, weights)`` of shapes ``(chunks, chunk, ...)``, and
    the parts: ``(name, first chunk, end chunk)`` of each split.
  """
  pieces, parts, start = [], [], 0
  for name, (x, y) in splits.items():
    piece = batching.padded_chunks(x, y, chunk)
    parts.append((name, start, start + len(piece[0])))
    start += len(piece[0])
    pieces.append(piece)
  inputs, labels, weights = (np.concatenate(a) for a in zip(*pieces))
  return (inputs, labels, weights), tuple(parts)


def evaluate(
  logits_fn: Callable[[jax.Array], jax.Array],
  chunks: Chunks,
  parts: Parts,
) -> dict[str, tuple[jax.Array, jax.Array]]:
  """Mean cross-entropy and accuracy of one model on each split.

  Traceable: call it inside ``jax.vmap`` to evaluate many models at once.

  Args:
    logits_fn: maps a batch of inputs to logits.
    chunks: the first result of :func:`held_out`.
    parts: its second result.

  Returns:
    name -> ``(mean loss, accuracy)``, float32 scalars.
  """
  losses, correct = batching.summed_loss_and_correct(logits_fn, chunks)
  weight = jnp.sum(jnp.asarray(chunks[2]), axis=1)
  mean = lambda sums, start, end: (
    jnp.sum(sums[start:end]) / jnp.sum(weight[start:end])
  )
  return {
    name: (mean(losses, start, end), mean(correct, start, end))
    for name, start, end in parts
  }


@functools.partial(jax.jit, static_argnums=(1, 2))
def evaluate_models(
  params: Any, graphdef: nnx.GraphDef, parts: Parts, chunks: Chunks
) -> dict[str, tuple[jax.Array, jax.Array]]:
  """:func:`evaluate` for many models of one structure at once.

  Args:
    params: the models' ``nnx.State``s, stacked on a leading axis.
    graphdef: their structure (``nnx.graphdef``).
    parts: :func:`held_out`'s second result.
    chunks: its first result.

  Returns:
    name -> ``(mean losses, accuracies)``, one per model.
  """
  of_one = lambda p: evaluate(nnx.merge(graphdef, p), chunks, parts)
  return jax.vmap(of_one)(params)
