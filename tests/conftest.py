"""Strict numerics for every test: mixed precision must not leak.

optax 0.2.8's Adam bias correction and its built-in schedules compute
``float ** int32``, which strict promotion rejects; tests that run them are
marked ``optax_not_strict`` and run with standard promotion. Everything of
ours runs strict in the tests that use SGD and ``tests/helpers.py``'s
schedule.
"""

import jax
import pytest


def pytest_configure(config: pytest.Config) -> None:
  config.addinivalue_line(
      "markers",
      "optax_not_strict: runs optax code that strict dtype promotion rejects",
  )


@pytest.fixture(autouse=True)
def _strict_numerics(request: pytest.FixtureRequest):
  strict = request.node.get_closest_marker("optax_not_strict") is None
  promotion = "strict" if strict else "standard"
  with jax.numpy_dtype_promotion(promotion), jax.numpy_rank_promotion("raise"):
    yield
