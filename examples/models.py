"""The models of the examples, as plain ``flax.nnx`` modules.

* :class:`Cnn1d`: a small 1-D CNN for MNIST-1D (signals of length 40).
* :class:`Cnn2d`: a small 2-D CNN for grey images (the study's real digits,
  14x14), plain or with BatchNorm or GroupNorm after each convolution. Both
  CNNs share :class:`ConvReadout`'s forward pass.
* :class:`Mlp`: a two-hidden-layer perceptron, for the sharded-training
  example (with sharded kernels).
* :class:`ResNet18`: the CIFAR variant of ResNet-18 used by the paper
  (3x3 stem, no max-pool, four stages of two basic blocks).

Importing this module only defines classes: no arrays are created.
"""

import functools

from flax import nnx
import jax
import jax.numpy as jnp

LECUN_NORMAL = nnx.initializers.lecun_normal()  # nnx.Linear's default


class Conv1d(nnx.Module):
  """A strided 1-D convolution ('SAME' padding) written as one matmul.

  It gathers the sliding windows and multiplies them by the kernel. Under
  ``jax.vmap`` over several models (the examples train many configurations
  at once) that stays a batched matmul, which runs several times faster on
  a CPU than the grouped convolution a vmapped ``nnx.Conv`` becomes.
  """

  def __init__(
    self,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    *,
    rngs: nnx.Rngs,
  ):
    self.kernel = nnx.Param(
      LECUN_NORMAL(rngs.params(), (kernel_size, in_channels, out_channels))
    )
    self.bias = nnx.Param(jnp.zeros((out_channels,)))
    self.stride = stride

  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps ``(batch, length, in)`` to ``(batch, ceil(length/stride), out)``."""
    kernel_size, length = self.kernel.shape[0], x.shape[1]
    out_length = -(-length // self.stride)
    pad = max((out_length - 1) * self.stride + kernel_size - length, 0)
    x = jnp.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)))
    starts = jnp.arange(out_length)[:, None] * self.stride
    windows = x[:, starts + jnp.arange(kernel_size)[None, :], :]
    return jnp.einsum("bokc,kcd->bod", windows, self.kernel[...]) + self.bias[
      ...
    ].reshape(1, 1, -1)


class ConvReadout(nnx.Module):
  """Strided convolutions with ReLU, then a linear read-out of the last map.

  The forward pass of :class:`Cnn1d` and :class:`Cnn2d`, which build
  ``self.convs`` (an ``nnx.List``), ``self.norms`` (an ``nnx.List`` of a
  normalisation per convolution, or of ``None``) and ``self.head`` (an
  ``nnx.Linear``).
  """

  convs: nnx.List
  norms: nnx.List
  head: nnx.Linear

  def __call__(self, x: jax.Array) -> jax.Array:
    h = x[..., None]
    for conv, norm in zip(self.convs, self.norms):
      h = conv(h)
      h = jax.nn.relu(h if norm is None else norm(h))
    return self.head(h.reshape(h.shape[0], -1))


class Cnn1d(ConvReadout):
  """Three strided 1-D convolutions and a linear read-out.

  Takes signals of shape ``(batch, length)`` and returns logits of shape
  ``(batch, num_classes)``.
  """

  def __init__(
    self,
    rngs: nnx.Rngs,
    *,
    length: int = 40,
    channels: int = 32,
    num_classes: int = 10,
  ):
    self.convs = nnx.List(
      [
        Conv1d(1, channels, kernel_size=5, stride=2, rngs=rngs),
        Conv1d(channels, channels, kernel_size=3, stride=2, rngs=rngs),
        Conv1d(channels, channels, kernel_size=3, stride=2, rngs=rngs),
      ]
    )
    self.norms = nnx.List([None] * len(self.convs))
    out_length = length
    for _ in self.convs:
      out_length = -(-out_length // 2)
    self.head = nnx.Linear(out_length * channels, num_classes, rngs=rngs)


class Conv2d(nnx.Module):
  """A strided 2-D convolution ('SAME' padding) written as one matmul.

  It extracts the image patches (``jax.lax.conv_general_dilated_patches``)
  and multiplies them by the kernel, for the same reason as :class:`Conv1d`:
  vmapped over many models, it stays a batched matmul.
  """

  def __init__(
    self,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    *,
    rngs: nnx.Rngs,
    use_bias: bool = True,
  ):
    fan_in = in_channels * kernel_size * kernel_size
    self.kernel = nnx.Param(LECUN_NORMAL(rngs.params(), (fan_in, out_channels)))
    self.bias = nnx.Param(jnp.zeros((out_channels,))) if use_bias else None
    self.kernel_size, self.stride = kernel_size, stride

  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps ``(batch, h, w, in)`` to ``(batch, ceil(h/s), ceil(w/s), out)``."""
    patches = jax.lax.conv_general_dilated_patches(
      x,
      (self.kernel_size, self.kernel_size),
      (self.stride, self.stride),
      "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    out = patches @ self.kernel[...]
    return out if self.bias is None else out + self.bias[...]


GROUP_SIZE = 4  # channels per group of Cnn2d's GroupNorm


def normalisation(kind: str | None, channels: int, rngs: nnx.Rngs):
  """``None``, or a BatchNorm or GroupNorm layer over ``channels``.

  BatchNorm normalises with the batch's statistics in training mode and
  with its running averages (momentum 0.9) in evaluation mode
  (``model.eval()``); GroupNorm normalises each example over groups of
  :data:`GROUP_SIZE` channels, the same way in both modes.
  """
  if kind is None:
    return None
  if kind == "batch":
    return nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-5, rngs=rngs)
  if kind == "group":
    return nnx.GroupNorm(
      channels, num_groups=channels // GROUP_SIZE, epsilon=1e-5, rngs=rngs
    )
  raise ValueError(f"norm must be None, 'batch' or 'group', not {kind!r}")


class Cnn2d(ConvReadout):
  """Strided 3x3 convolutions and a linear read-out, for small grey images.

  Takes images of shape ``(batch, size, size)`` and returns logits of shape
  ``(batch, num_classes)``. Each convolution halves the map (14 -> 7 -> 4
  for the study's digits) and has the next number of ``channels``. With
  ``norm`` ("batch" or "group", see :func:`normalisation`) each
  convolution drops its bias and is followed by that normalisation, before
  the ReLU. A BatchNorm net trains in ``model.train()`` mode (the default)
  and is evaluated after ``model.eval()``.
  """

  def __init__(
    self,
    rngs: nnx.Rngs,
    *,
    size: int = 14,
    channels: tuple[int, ...] = (8, 16),
    num_classes: int = 10,
    norm: str | None = None,
  ):
    widths = (1, *channels)
    self.convs = nnx.List(
      [
        Conv2d(widths[i], widths[i + 1], 3, 2, rngs=rngs, use_bias=not norm)
        for i in range(len(channels))
      ]
    )
    self.norms = nnx.List([normalisation(norm, c, rngs) for c in channels])
    for _ in channels:
      size = -(-size // 2)
    self.head = nnx.Linear(size * size * widths[-1], num_classes, rngs=rngs)


class Mlp(nnx.Module):
  """A two-hidden-layer perceptron with ReLU for feature vectors.

  Takes features of shape ``(batch, features)`` and returns logits of shape
  ``(batch, num_classes)``. ``kernel_init`` initialises the three kernels;
  wrapped in ``nnx.with_partitioning``, it shards them.
  """

  def __init__(
    self,
    rngs: nnx.Rngs,
    *,
    features: int = 20,
    hidden: int = 64,
    num_classes: int = 10,
    kernel_init: nnx.Initializer = LECUN_NORMAL,
  ):
    linear = functools.partial(nnx.Linear, rngs=rngs, kernel_init=kernel_init)
    self.hidden1 = linear(features, hidden)
    self.hidden2 = linear(hidden, hidden)
    self.head = linear(hidden, num_classes)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.hidden1(x))
    x = nnx.relu(self.hidden2(x))
    return self.head(x)


class BasicBlock(nnx.Module):
  """Two 3x3 convolutions with batch norm and a (projected) shortcut."""

  def __init__(
    self, in_channels: int, out_channels: int, stride: int, rngs: nnx.Rngs
  ):
    self.conv1 = nnx.Conv(
      in_channels,
      out_channels,
      kernel_size=(3, 3),
      strides=(stride, stride),
      use_bias=False,
      rngs=rngs,
    )
    self.norm1 = nnx.BatchNorm(out_channels, rngs=rngs)
    self.conv2 = nnx.Conv(
      out_channels, out_channels, kernel_size=(3, 3), use_bias=False, rngs=rngs
    )
    self.norm2 = nnx.BatchNorm(out_channels, rngs=rngs)
    needs_projection = stride != 1 or in_channels != out_channels
    self.shortcut = (
      nnx.Sequential(
        nnx.Conv(
          in_channels,
          out_channels,
          kernel_size=(1, 1),
          strides=(stride, stride),
          use_bias=False,
          rngs=rngs,
        ),
        nnx.BatchNorm(out_channels, rngs=rngs),
      )
      if needs_projection
      else None
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.norm1(self.conv1(x)))
    y = self.norm2(self.conv2(y))
    shortcut = x if self.shortcut is None else self.shortcut(x)
    return nnx.relu(y + shortcut)


class ResNet18(nnx.Module):
  """ResNet-18 for 32x32 images (CIFAR), as in the paper's experiments.

  Takes images of shape ``(batch, 32, 32, 3)`` and returns logits of shape
  ``(batch, num_classes)``. ``width`` is the number of channels of the first
  stage (64 in the paper; the tests use a narrower network).
  """

  def __init__(self, num_classes: int, rngs: nnx.Rngs, *, width: int = 64):
    self.stem = nnx.Conv(
      3, width, kernel_size=(3, 3), use_bias=False, rngs=rngs
    )
    self.stem_norm = nnx.BatchNorm(width, rngs=rngs)
    blocks = []
    in_channels = width
    for stage, out_channels in enumerate(
      (width, 2 * width, 4 * width, 8 * width)
    ):
      for index in range(2):
        stride = 2 if stage > 0 and index == 0 else 1
        blocks.append(BasicBlock(in_channels, out_channels, stride, rngs))
        in_channels = out_channels
    self.blocks = nnx.List(blocks)
    self.head = nnx.Linear(in_channels, num_classes, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    x = nnx.relu(self.stem_norm(self.stem(images)))
    for block in self.blocks:
      x = block(x)
    return self.head(jnp.mean(x, axis=(1, 2)))
