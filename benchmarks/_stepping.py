"""A jitted step run in a loop on donated buffers, ready to be timed."""

from typing import Any, Callable, Sequence

import jax


def tree_bytes(tree: Any) -> int:
  """The total size in bytes of a tree's arrays."""
  return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def scan_steps(
    step: Callable[..., tuple[Any, ...]], num_carry: int, num_steps: int
) -> Callable[..., tuple[Any, ...]]:
  """``step`` repeated ``num_steps`` times inside one ``lax.scan``.

  The returned function has the signature of ``step``: its first
  ``num_carry`` arguments are the carry, the rest are constants.
  """

  def many_steps(*args):
    carry, constants = args[:num_carry], args[num_carry:]

    def body(carry, _):
      return tuple(step(*carry, *constants)), None

    return jax.lax.scan(body, tuple(carry), None, length=num_steps)[0]

  return many_steps


class DonatedLoop:
  """Compiles ``step(*carry, *constants) -> carry`` with the carry donated.

  Calling the loop runs ``steps_per_call`` steps, feeding each step's carry
  (params, optimizer state, ...) to the next, and blocks until done. The
  constants (gradients or a batch) are reused and never donated.

  With ``scanned=False`` each step is its own call of the jitted step, as
  in a Python training loop: every call pays the host's dispatch cost for
  each array it takes and returns. With ``scanned=True`` one call runs all
  the steps in a ``lax.scan``, so only the device work is left.
  """

  def __init__(
      self,
      step: Callable[..., tuple[Any, ...]],
      carry: Sequence[Any],
      constants: Sequence[Any],
      *,
      steps_per_call: int,
      scanned: bool = False,
  ):
    donated = tuple(range(len(carry)))
    program = (scan_steps(step, len(carry), steps_per_call) if scanned
               else step)
    self.compiled = jax.jit(program, donate_argnums=donated).lower(
        *carry, *constants).compile()
    self.carry = tuple(carry)
    self.constants = tuple(constants)
    self.calls = 1 if scanned else steps_per_call

  def __call__(self) -> None:
    for _ in range(self.calls):
      self.carry = self.compiled(*self.carry, *self.constants)
    jax.block_until_ready(self.carry)

  def num_arrays(self) -> int:
    """The number of arrays one call takes and returns donated."""
    return len(jax.tree.leaves(self.carry))

  def temp_bytes(self) -> int:
    """The compiled program's temporary memory (beyond its arguments)."""
    return self.compiled.memory_analysis().temp_size_in_bytes

  def hlo_streams(self, buffer_bytes: int) -> float:
    """XLA's estimate of bytes accessed per call, in param-sized buffers.

    XLA adds up both branches of a conditional, so the anchor refresh counts
    as if it ran on every step.
    """
    return self.compiled.cost_analysis()["bytes accessed"] / buffer_bytes
