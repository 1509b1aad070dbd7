"""The learning-rate schedule the paper uses, shared by the examples.

``examples/study.py`` and ``examples/cifar10_resnet18.py`` both train with
it; importing this module creates no arrays.
"""

from typing import Any

import jax.numpy as jnp
import optax


def step_decay(learning_rate: Any, total_updates: int) -> optax.Schedule:
  """The paper's schedule: x0.1 at 50% and again at 75% of training.

  ``learning_rate`` may be a traced scalar (the study vmaps over rates).
  """
  first, second = total_updates // 2, (3 * total_updates) // 4

  def schedule(count: Any) -> Any:
    factor = jnp.where(
      count >= second, 0.01, jnp.where(count >= first, 0.1, 1.0)
    )
    return learning_rate * factor

  return schedule
