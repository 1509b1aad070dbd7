"""A jitted step run in a loop on donated buffers, ready to be timed."""

from typing import Any, Callable, Sequence

import jax


def tree_bytes(tree: Any) -> int:
  """The total size in bytes of a tree's arrays."""
  return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


class DonatedLoop:
  """Compiles ``step(*carry, *constants) -> carry`` with the carry donated.

  Calling the loop runs ``steps_per_call`` steps, feeding each step's carry
  (params, optimizer state, ...) to the next, and blocks until done. The
  constants (gradients or a batch) are reused and never donated.
  """

  def __init__(
      self,
      step: Callable[..., tuple[Any, ...]],
      carry: Sequence[Any],
      constants: Sequence[Any],
      *,
      steps_per_call: int,
  ):
    donated = tuple(range(len(carry)))
    self.compiled = jax.jit(step, donate_argnums=donated).lower(
        *carry, *constants).compile()
    self.carry = tuple(carry)
    self.constants = tuple(constants)
    self.steps_per_call = steps_per_call

  def __call__(self) -> None:
    for _ in range(self.steps_per_call):
      self.carry = self.compiled(*self.carry, *self.constants)
    jax.block_until_ready(self.carry)

  def temp_bytes(self) -> int:
    """The compiled step's temporary memory (beyond arguments and outputs)."""
    return self.compiled.memory_analysis().temp_size_in_bytes

  def hlo_streams(self, buffer_bytes: int) -> float:
    """XLA's estimate of bytes accessed per step, in param-sized buffers.

    XLA adds up both branches of a conditional, so the anchor refresh counts
    as if it ran on every step.
    """
    return self.compiled.cost_analysis()["bytes accessed"] / buffer_bytes
