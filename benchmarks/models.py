"""The benchmark's own model: a transformer of a few hundred million params.

:class:`Transformer` is a causal transformer language model of about
``12 * depth * width**2`` params, sized by arguments: tiny in the tests,
319M for the accelerator section. The CNNs the benchmark also trains, the
paper's CIFAR ResNet-18 (62 param leaves, about ``2735 * width**2`` params:
11.2M at width 64) and the 1-D CNN of the MNIST-1D study, are the ones
``examples/models.py`` defines; one copy of each serves both.

Importing this module only defines classes: no arrays are created.
"""

import functools

from flax import nnx
import jax
import jax.numpy as jnp


class TransformerBlock(nnx.Module):
  """Pre-norm causal self-attention, then a 4x wide GELU MLP, residual."""

  def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
    dense = functools.partial(nnx.Linear, rngs=rngs)
    self.heads = heads
    self.attention_norm = nnx.LayerNorm(width, rngs=rngs)
    self.qkv = dense(width, 3 * width, use_bias=False)
    self.attention_out = dense(width, width, use_bias=False)
    self.mlp_norm = nnx.LayerNorm(width, rngs=rngs)
    self.mlp_in = dense(width, 4 * width)
    self.mlp_out = dense(4 * width, width)

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, length, width = x.shape
    qkv = self.qkv(self.attention_norm(x))
    qkv = qkv.reshape(batch, length, 3 * self.heads, width // self.heads)
    query, key, value = jnp.split(qkv, 3, axis=2)
    y = jax.nn.dot_product_attention(query, key, value, is_causal=True)
    x = x + self.attention_out(y.reshape(batch, length, width))
    return x + self.mlp_out(nnx.gelu(self.mlp_in(self.mlp_norm(x))))


class Transformer(nnx.Module):
  """Tokens ``(batch, length)`` to next-token logits ``(..., vocab)``.

  Token and learned position embeddings, ``depth`` blocks, a final layer
  norm and the token embedding again as the read-out.
  """

  def __init__(
    self,
    rngs: nnx.Rngs,
    *,
    vocab: int,
    length: int,
    width: int,
    depth: int,
    heads: int,
  ):
    self.embed = nnx.Embed(vocab, width, rngs=rngs)
    init = nnx.initializers.normal(0.02)
    self.position = nnx.Param(init(rngs.params(), (length, width)))
    self.blocks = nnx.List(
      [TransformerBlock(width, heads, rngs) for _ in range(depth)]
    )
    self.norm = nnx.LayerNorm(width, rngs=rngs)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    x = self.embed(tokens) + self.position[None, : tokens.shape[1]]
    for block in self.blocks:
      x = block(x)
    return self.embed.attend(self.norm(x))
